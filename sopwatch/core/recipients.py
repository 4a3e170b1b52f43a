"""Recipient expressions: ``owner``, ``manager(approver)``, ``role(sop-lead)``, ``a@b.example``.

Parsed once per rule; resolved per action against the people directory. An expression that cannot
be resolved says why, so the caller can fall back and record the reason.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sopwatch.core.addresses import address_problem, is_address
from sopwatch.core.model import Directory, Person

_CALL = re.compile(r"^(manager|role)\((.*)\)$")


class RecipientError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Recipient:
    """A resolved address; ``person`` is known when the address is in the directory."""

    email: str
    person: Person | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    recipients: tuple[Recipient, ...]
    problem: str | None = None  # why (part of) the expression could not be resolved


class RecipientExpr:
    text: str

    def people(self, record: Mapping[str, Any], directory: Directory) -> Resolution:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class FieldRecipient(RecipientExpr):
    text: str

    def people(self, record: Mapping[str, Any], directory: Directory) -> Resolution:
        reference = record.get(self.text)
        if reference is None or reference == "":
            return Resolution((), f"{self.text} is unassigned")
        reference = str(reference)
        person = directory.find(reference)
        if person is not None:
            return Resolution((Recipient(person.email, person),))
        if is_address(reference):
            return Resolution((Recipient(reference),))
        return Resolution((), f"{self.text} {reference!r} is not in the people directory")


@dataclass(frozen=True, slots=True)
class ManagerRecipient(RecipientExpr):
    text: str
    inner: RecipientExpr

    def people(self, record: Mapping[str, Any], directory: Directory) -> Resolution:
        inner = self.inner.people(record, directory)
        if inner.problem and not inner.recipients:
            return Resolution((), inner.problem)
        found: list[Recipient] = []
        problems: list[str] = []
        for recipient in inner.recipients:
            person = recipient.person
            if person is None:
                problems.append(f"{recipient.email} is not in the people directory, so has no manager")
            elif not person.manager or directory.people.get(person.manager) is None:
                problems.append(f"{person.id} has no manager")
            else:
                manager = directory.people[person.manager]
                found.append(Recipient(manager.email, manager))
        return Resolution(tuple(found), "; ".join(problems) or None)


@dataclass(frozen=True, slots=True)
class RoleRecipient(RecipientExpr):
    text: str
    role: str

    def people(self, record: Mapping[str, Any], directory: Directory) -> Resolution:
        members = []
        for reference in directory.roles.get(self.role, ()):
            person = directory.find(reference)
            if person is not None:
                members.append(Recipient(person.email, person))
            elif "@" in reference:
                members.append(Recipient(reference))
        if not members:
            return Resolution((), f"role {self.role!r} has no members")
        return Resolution(tuple(members))


@dataclass(frozen=True, slots=True)
class AddressRecipient(RecipientExpr):
    text: str

    def people(self, record: Mapping[str, Any], directory: Directory) -> Resolution:
        return Resolution((Recipient(self.text, directory.find(self.text)),))


def parse_recipient(text: Any, fields: Collection[str], roles: Collection[str] | None) -> RecipientExpr:
    """Parse one recipient expression; ``roles`` None skips the role-name check."""
    if not isinstance(text, str) or not text.strip():
        raise RecipientError(
            f"expected a recipient such as owner, manager(owner) or role(sop-lead), got {text!r}"
        )
    source = text.strip()
    call = _CALL.match(source)
    if call:
        name, argument = call.group(1), call.group(2).strip()
        if name == "role":
            if roles is not None and argument not in roles:
                known = ", ".join(sorted(roles)) or "none defined"
                raise RecipientError(f"unknown role {argument!r} (known roles: {known})")
            return RoleRecipient(source, argument)
        return ManagerRecipient(source, parse_recipient(argument, fields, roles))
    if "@" in source:
        problem = address_problem(source)
        if problem is not None:
            raise RecipientError(f"invalid email address: {problem}")
        return AddressRecipient(source)
    if source not in fields:
        raise RecipientError(
            f"unknown recipient {source!r}: use a field holding a person (owner, approver, raised_by, ...), "
            "manager(X), role(name) or an email address"
        )
    return FieldRecipient(source)
