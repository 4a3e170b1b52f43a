"""What a notification's message is rendered from: its template names and the variables it sees.

One place for both the daemon, which composes the email, and ``check``/``simulate``, which print its
subject: the two cannot drift apart. Kept light on purpose (no jinja2, icalendar, aiosmtplib or
daemon import), since ``check`` imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sopwatch.messages.context import alert_context

if TYPE_CHECKING:
    from sopwatch.config.loader import Setup
    from sopwatch.core.evaluate import Notification
    from sopwatch.core.model import Action, Cycle, CycleCalendar, Directory
    from sopwatch.core.rules import Rule

# Which built-in stands in for a failing or missing template, by notification kind.
BUILTIN_FOR_KIND = {
    "reminder": "reminder",
    "escalation": "escalation",
    "resolved": "resolved",
    "hold": "hold",
    "hold-update": "hold",
    "cancel": "cancel",
}


def template_names(notification: Notification) -> tuple[str, str]:
    """(the template to render, the built-in that replaces it when it fails or lacks a part)."""
    builtin = BUILTIN_FOR_KIND.get(notification.kind, "reminder" if notification.step == 0 else "escalation")
    return notification.template or builtin, builtin


def templates_folder(setup: Setup) -> Path | None:
    """The config's ``templates:`` folder; None when unset or not a folder: the built-ins alone."""
    config = setup.loaded.config
    folder = setup.loaded.path(config.templates) if config.templates else None
    return folder if folder is not None and folder.is_dir() else None


def rendered_at(notification: Notification, now: datetime) -> datetime:
    """The instant a message is dated and rendered as of: the earliest it may go out.

    A reminder composed at midnight that waits for the recipient's 08:00 window says 08:00.
    """
    return max(now, notification.not_before)


def org_name(sender: str) -> str:
    """The organisation's name in templates: the display name of the ``from`` address."""
    return parseaddr(sender)[0] or "sopwatch"


def cycle_context(cycle: Cycle | None) -> dict[str, Any]:
    if cycle is None:
        return {}
    return {pid: {"start": p.start, "end": p.end, "meeting": p.meeting} for pid, p in cycle.phases.items()}


def hold_context(notification: Notification) -> dict[str, Any] | None:
    hold = notification.hold
    if hold is None:
        return None
    return {"start": hold.start, "end": hold.end, "uid": hold.uid, "sequence": hold.sequence}


def notification_context(
    notification: Notification,
    *,
    action: Mapping[str, Any] | None,
    rule: Mapping[str, Any],
    directory: Directory,
    org_name: str,
    org_tz: tzinfo,
    now: datetime,
    cycle: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The template variables of one notification; ``recipient`` is its first To (else Cc) address."""
    n = notification
    first = n.to[0] if n.to else (n.cc[0] if n.cc else None)
    return alert_context(
        action=action,
        action_id=n.action,
        rule=rule,
        step=n.step,
        fired_at=n.fire_at,
        repeats=n.repeat,
        kind=n.kind,
        recipient=first,
        directory=directory,
        org_name=org_name,
        org_tz=org_tz,
        now=now,
        cycle=cycle,
        notes=n.notes,
        hold=hold_context(n),
    )


@dataclass(frozen=True, slots=True)
class MessageSetup:
    """What composing any notification's message needs from a Setup, looked up once per setup."""

    rules: Mapping[str, Rule]
    directory: Directory
    cycles: CycleCalendar
    sender: str
    org_tz: tzinfo
    instance: str = ""  # the state file's token, in message ids and hold UIDs

    @classmethod
    def of(cls, setup: Setup, instance: str = "") -> MessageSetup:
        rules: dict[str, Rule] = {}
        for rule in setup.rules:
            rules.setdefault(rule.id, rule)  # the first of a duplicated id, as RuleSet.get finds it
        env = setup.environment
        sender = setup.loaded.config.delivery.from_
        return cls(rules, env.directory, env.cycles, sender, setup.loaded.tz, instance)

    @property
    def org_name(self) -> str:
        return org_name(self.sender)

    def rule_context(self, notification: Notification) -> dict[str, Any]:
        rule = self.rules.get(notification.rule)
        return {
            "id": notification.rule,
            "description": rule.description if rule else "",
            "severity": notification.severity,
        }

    def cycle(self, action: Action | None) -> Cycle | None:
        cycle_id = action.fields.get("cycle") if action else None
        return self.cycles.cycles.get(cycle_id) if cycle_id else None

    def context(
        self,
        notification: Notification,
        action: Action | None,
        now: datetime,
        observed: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The variables ``notification``'s templates see, as of ``now`` (see ``rendered_at``);
        ``observed`` adds the action's observed instants (``status_since``, ...)."""
        fields = action.fields if action else None
        if fields is not None and observed:
            fields = {**fields, **observed}
        return notification_context(
            notification,
            # An action gone from the register (a resolution after its row was deleted): the
            # context keeps the notification's action id (action_context).
            action=fields,
            rule=self.rule_context(notification),
            directory=self.directory,
            org_name=self.org_name,
            org_tz=self.org_tz,
            now=now,
            cycle=cycle_context(self.cycle(action)),
        )


class ThreadSubjects:
    """The subject every message about an action keeps (SPEC §3): that of the first one to go out.

    Starts from what the state file holds (``StateStore.thread_subjects``); a message that goes out
    now sets its action's subject for the messages after it, two about a new action in one tick
    included. Digests are about many actions and keep their own subjects.
    """

    def __init__(self, known: Mapping[str, str] | None = None) -> None:
        self._known = dict(known or {})

    def of(self, action: str) -> str | None:
        return self._known.get(action)

    def going_out(self, action: str, subject: str) -> None:
        self._known.setdefault(action, subject)
