"""``allowed_domains``: which recipient addresses sopwatch may send to.

Two places use it: ``validate`` reports every address written in the setup that falls outside the
list (with its ``file:line:col``), and the engine drops such recipients from each message it
composes, so an address that reaches a notification at run time (a literal email in the register's
owner column, a directory edit) is never sent to.

Matching is on the domain after the last ``@``, case-insensitive, one trailing dot ignored:
``example.com`` allows exactly that domain; ``.example.com`` allows its subdomains
(``eu.example.com``) but not ``example.com`` itself. Nothing is implied: an admin who wants both
lists both, so a forgotten subdomain relay never receives mail by accident.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sopwatch.config.yamlsource import LocatedDocument, load_yaml_file
from sopwatch.core.evaluate import Notification
from sopwatch.errors import ConfigError, Location, ProblemList, SopwatchError

if TYPE_CHECKING:
    from sopwatch.config.loader import Setup


def domain_of(address: str) -> str:
    """The domain mail to ``address`` is routed by; ``Name <a@b>`` is understood too."""
    text = address.strip()
    if text.endswith(">"):
        text = parseaddr(text)[1] or text
    return text.rpartition("@")[2].strip().rstrip(".").lower()


def is_allowed(address: str, allowed: Sequence[str] | None) -> bool:
    """Whether ``address`` may receive mail; every address may when ``allowed`` is None."""
    if allowed is None:
        return True
    if "@" not in address:
        return False
    domain = domain_of(address)
    if not domain:
        return False
    for entry in allowed:
        if entry.startswith("."):
            if domain.endswith(entry) and len(domain) > len(entry):
                return True
        elif domain == entry:
            return True
    return False


def refusal_reason(allowed: Sequence[str]) -> str:
    return f"outside allowed_domains ({', '.join(allowed)})"


@dataclass(frozen=True, slots=True)
class Filtered:
    """A notification with the refused recipients taken out, and who was refused."""

    notification: Notification
    refused: tuple[str, ...]

    @property
    def recipients(self) -> tuple[str, ...]:
        n = self.notification
        return tuple(dict.fromkeys((*n.to, *n.cc)))


def filter_notification(n: Notification, allowed: Sequence[str] | None) -> Filtered:
    """``n`` without recipients outside ``allowed``: in To, Cc and a calendar hold's attendees.

    The message is composed from the result, so a refused address is neither an envelope
    recipient nor named in a header or an invitation.
    """
    if allowed is None:
        return Filtered(n, ())
    everyone = (*n.to, *n.cc, *(n.hold.attendees if n.hold else ()))
    refused = tuple(dict.fromkeys(a for a in everyone if not is_allowed(a, allowed)))
    if not refused:
        return Filtered(n, ())
    out = set(refused)
    hold = n.hold
    if hold is not None:
        hold = replace(hold, attendees=tuple(a for a in hold.attendees if a not in out))
    kept = replace(
        n,
        to=tuple(a for a in n.to if a not in out),
        cc=tuple(a for a in n.cc if a not in out),
        hold=hold,
    )
    return Filtered(kept, refused)


# -- validate: addresses written in the setup -------------------------------------------------------


def domain_problems(setup: Setup) -> list[SopwatchError]:
    """Every address in config, rules and the people file outside ``allowed_domains``."""
    allowed = setup.loaded.config.allowed_domains
    if allowed is None:
        return []
    reason = refusal_reason(allowed)
    problems: list[SopwatchError] = []

    def check(address: Any, location: Location, what: str) -> None:
        if isinstance(address, str) and not is_allowed(address, allowed):
            problems.append(ConfigError(f"{what} {address.strip()!r} is {reason}", location))

    config = setup.loaded.config
    doc = setup.loaded.document
    if config.admin:
        check(config.admin, doc.location(("admin",)), "admin")
    if config.fallback_recipient and _is_literal(config.fallback_recipient):
        check(config.fallback_recipient, doc.location(("fallback_recipient",)), "fallback_recipient")
    for role, members in config.roles.items():
        for index, member in enumerate(members):
            if "@" in member:
                check(member, doc.location(("roles", role, index)), f"role {role!r} member")
    for path in setup.rule_paths:
        problems.extend(_rule_problems(path, allowed, reason))
    if config.people:
        problems.extend(_people_problems(setup.loaded.path(config.people), allowed, reason))
    return problems


def _is_literal(expression: str) -> bool:
    """A literal address, not ``manager(x@y)`` (whose recipient is the manager) or a field."""
    return "@" in expression and "(" not in expression


def _rule_problems(path: Path, allowed: Sequence[str], reason: str) -> Iterable[SopwatchError]:
    try:
        doc = load_yaml_file(path)
    except SopwatchError:
        return []  # already reported by the loader
    rules = doc.data.get("rules") if isinstance(doc.data, dict) else None
    if not isinstance(rules, list):
        return []
    problems: list[SopwatchError] = []
    for r, rule in enumerate(rules):
        steps = rule.get("escalation") if isinstance(rule, dict) else None
        if not isinstance(steps, list):
            continue
        for s, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            for key in ("notify", "cc"):
                problems.extend(
                    _step_problems(doc, ("rules", r, "escalation", s, key), step.get(key), allowed, reason)
                )
    return problems


def _step_problems(
    doc: LocatedDocument, path: tuple[Any, ...], value: Any, allowed: Sequence[str], reason: str
) -> list[SopwatchError]:
    entries = (
        [(path, value)] if isinstance(value, str) else [((*path, i), v) for i, v in enumerate(value or ())]
    )
    return [
        ConfigError(f"{path[-1]} {entry.strip()!r} is {reason}", doc.location(where))
        for where, entry in entries
        if isinstance(entry, str) and _is_literal(entry) and not is_allowed(entry, allowed)
    ]


def _people_problems(path: Path, allowed: Sequence[str], reason: str) -> list[SopwatchError]:
    # The directory loader's own records know where each value sits (file:line:col or row N).
    from sopwatch.adapters.people import _csv_records, _yaml_records

    try:
        if path.suffix.lower() == ".csv":
            records, _ = _csv_records(path)
        else:
            records = _yaml_records(path)
    except (ProblemList, SopwatchError):
        return []  # already reported by the loader
    return [
        ConfigError(f"person {r.id!r}: email {r.email!r} is {reason}", r.where("email"))
        for r in records
        if not is_allowed(r.email, allowed)
    ]
