"""The domain: actions, people, cycles. Plain immutable data built by the adapters."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

STATUSES = (
    "open",
    "in_progress",
    "pending_approval",
    "blocked",
    "approved",
    "rejected",
    "done",
    "cancelled",
)
DEFAULT_TERMINAL = frozenset({"done", "cancelled", "approved", "rejected"})
KINDS = ("decision", "action", "approval", "input")

PERSON_FIELDS = ("owner", "approver", "raised_by")
DATETIME_FIELDS = (
    "created_at",
    "updated_at",
    "approval_requested_at",
    "decided_at",
    "status_changed_at",
)
DATE_FIELDS = ("due", *DATETIME_FIELDS)
TEXT_FIELDS = (
    "id",
    "kind",
    "title",
    "status",
    *PERSON_FIELDS,
    "cycle",
    "phase",
    "parent",
    "priority",
    "team",
    "impact",
    "link",
)
CANONICAL_FIELDS = (*TEXT_FIELDS, *DATE_FIELDS, "tags")
# Instants sopwatch observes itself and keeps in its state file.
OBSERVED_FIELDS = ("status_since", "owner_since", "first_seen")
TIME_FIELDS = frozenset((*DATE_FIELDS, *OBSERVED_FIELDS))


def name_of_header(header: str) -> str:
    """A column header as a field name: lower case, runs of spaces and hyphens as one underscore
    (``Due date`` -> ``due_date``). How a header spells a canonical field, and how a time
    expression names a column whose header it cannot spell."""
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


TimeValue = date | datetime


@dataclass(frozen=True, slots=True)
class Action:
    """One row of the register, normalised. ``fields`` holds canonical and extra columns."""

    id: str
    fields: Mapping[str, Any]
    row: int | None = None

    def __getitem__(self, name: str) -> Any:
        return self.fields.get(name)

    @property
    def status(self) -> str:
        return self.fields["status"]

    @property
    def title(self) -> str:
        return self.fields["title"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The register as read at one moment, in file order."""

    actions: Mapping[str, Action]
    columns: frozenset[str] = frozenset()

    def __iter__(self) -> Iterator[Action]:
        return iter(self.actions.values())

    def status_and_owner(self) -> Iterator[tuple[str, str, str | None]]:
        """(id, status, owner) of every action in file order.

        What observing needs from every row. A register adapter may answer it without building
        the actions (``RegisterActions``): most of a register is closed work no rule reads.
        """
        quick = getattr(self.actions, "status_and_owner", None)
        if quick is not None:
            return quick()
        return ((a.id, a.fields["status"], a.fields.get("owner")) for a in self.actions.values())

    def __len__(self) -> int:
        return len(self.actions)


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    email: str
    manager: str | None = None
    timezone: ZoneInfo | None = None
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Directory:
    """People by id and by email, and role membership (from the people file and config)."""

    people: Mapping[str, Person] = field(default_factory=dict)
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        by_email = {p.email.lower(): p for p in self.people.values() if p.email}
        object.__setattr__(self, "_by_email", by_email)

    def find(self, reference: str | None) -> Person | None:
        """A person by directory id or by email address."""
        if not reference:
            return None
        person = self.people.get(reference)
        if person is None and "@" in reference:
            person = self._by_email.get(reference.lower())  # type: ignore[attr-defined]
        return person


@dataclass(frozen=True, slots=True)
class Phase:
    id: str
    start: date
    end: date  # the cutoff: the end of this day
    meeting: datetime | None = None


@dataclass(frozen=True, slots=True)
class Cycle:
    id: str
    phases: Mapping[str, Phase]


@dataclass(frozen=True)
class CycleCalendar:
    cycles: Mapping[str, Cycle] = field(default_factory=dict)

    @property
    def phase_ids(self) -> frozenset[str]:
        return frozenset(p for c in self.cycles.values() for p in c.phases)
