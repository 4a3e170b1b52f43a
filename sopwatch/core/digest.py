"""Digests: when they are due for a recipient, and the execution-discipline figures they show.

Pure code over records (register fields + observed instants) and the directory: the schedule, a
recipient's scope, and the figures of every scope from one pass over the records (ScopeFigures).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sopwatch.core.business import WEEKDAYS
from sopwatch.core.model import CycleCalendar, Directory, Person
from sopwatch.core.timeexpr import end_of_day

_SCHEDULE = re.compile(r"^\s*([a-z,]+)\s+([01]\d|2[0-3]):([0-5]\d)\s*$")
_GROUPS = {"daily": range(7), "weekdays": range(5)}


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    weekdays: frozenset[int]
    at: time

    def last_occurrence(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The most recent scheduled instant at or before ``now``, in recipient-local time ``tz``."""
        local = now.astimezone(tz)
        for back in range(8):
            day = local.date() - timedelta(days=back)
            if day.weekday() in self.weekdays:
                instant = datetime.combine(day, self.at, tzinfo=tz)
                if instant <= now:
                    return instant
        raise AssertionError("a non-empty weekly schedule always occurs within 8 days")


def parse_schedule(text: str) -> DigestSchedule:
    """``mon 08:00``, ``mon,thu 08:00``, ``weekdays 07:30`` or ``daily 09:00``."""
    match = _SCHEDULE.match(text.lower()) if isinstance(text, str) else None
    if not match:
        raise ScheduleError(f"expected a schedule such as 'mon 08:00' or 'mon,thu 08:00', got {text!r}")
    days: set[int] = set()
    for name in match.group(1).split(","):
        if name in _GROUPS:
            days.update(_GROUPS[name])
        elif name in WEEKDAYS:
            days.add(WEEKDAYS.index(name))
        else:
            raise ScheduleError(f"unknown day {name!r} in schedule {text!r} (mon..sun, weekdays, daily)")
    return DigestSchedule(frozenset(days), time(int(match.group(2)), int(match.group(3))))


@dataclass(frozen=True)
class DigestFigures:
    """The execution-discipline summary for one recipient's scope (their items and their reports')."""

    open: int = 0
    overdue: int = 0
    ageing: Mapping[str, int] = field(default_factory=dict)
    stale_approvals: int = 0
    unassigned_decisions: int = 0
    oldest_item: tuple[str, str] | None = None  # (action id, age text)
    closed_on_time_pct: float | None = None
    median_approval_turnaround: str | None = None


def scope_of(person: Person | None, directory: Directory) -> frozenset[str]:
    """The person's id and everyone who reports to them, directly or not."""
    if person is None:
        return frozenset()
    reports: dict[str, list[str]] = {}
    for p in directory.people.values():
        if p.manager:
            reports.setdefault(p.manager, []).append(p.id)
    scope, frontier = {person.id}, [person.id]
    while frontier:
        for report in reports.get(frontier.pop(), ()):
            if report not in scope:
                scope.add(report)
                frontier.append(report)
    return frozenset(scope)


def human_span(delta: timedelta) -> str:
    """'3 days', '5 hours', '20 minutes': how long something has waited, for people, not machines."""
    seconds = abs(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "less than a minute"


@dataclass(frozen=True, slots=True)
class _Reduced:
    """One record reduced to what any scope's figures need, so each digest recipient costs a pass
    over their own records instead of the whole register."""

    id: str
    open: bool
    started: datetime | None = None  # open records: when the work began
    days_late: int | None = None  # open records past their due instant
    stale: bool = False  # an open approval waiting longer than stale_after
    closed_this_cycle: bool = False  # done or approved, in the current cycle
    on_time: bool = False  # ... and by its due instant
    turnaround: float | None = None  # approvals: seconds from request to decision


class ScopeFigures:
    """The figures of a digest for any recipient's scope, from one pass over the records.

    A digest goes to many people at once, each with a scope of their own (themselves and everyone
    below them); scanning every record for each recipient made a digest tick over a 100k-row
    register take half a minute. Each record is reduced once and filed under the people who own
    or approve it, so a recipient's figures come from their own records only.
    """

    def __init__(
        self,
        records: Iterable[Mapping[str, Any]],
        directory: Directory,
        terminal: frozenset[str],
        cycles: CycleCalendar,
        tz: ZoneInfo,
        now: datetime,
        stale_after: timedelta = timedelta(days=2),
    ) -> None:
        ids: dict[Any, str | None] = {}  # a register names the same few hundred people again and again

        def person_id(reference: Any) -> str | None:
            if not reference:
                return None
            if reference not in ids:
                found = directory.find(str(reference))
                ids[reference] = found.id if found else None
            return ids[reference]

        def instant(value: Any) -> datetime | None:
            if isinstance(value, datetime):
                return value if value.tzinfo else value.replace(tzinfo=tz)
            if isinstance(value, date):
                return end_of_day(value, tz)
            return None

        this_cycle = current_cycle(cycles, now.astimezone(tz).date())
        self._now = now
        self._reduced: list[_Reduced] = []
        self._by_person: dict[str, list[int]] = {}  # person id -> positions of their records
        self._unassigned: dict[str | None, int] = {}  # raised_by person id -> unowned open decisions
        for record in records:
            status = record["status"]
            is_open = status not in terminal
            kind = record.get("kind")
            if kind == "decision" and is_open and not record.get("owner"):
                raiser = person_id(record.get("raised_by"))
                self._unassigned[raiser] = self._unassigned.get(raiser, 0) + 1
            people = {person_id(record.get("owner")), person_id(record.get("approver"))} - {None}
            if not people:
                continue  # in nobody's scope
            turnaround = None
            if kind == "approval":
                requested = instant(record.get("approval_requested_at"))
                decided = instant(record.get("decided_at"))
                if requested and decided and decided >= requested:
                    turnaround = (decided - requested).total_seconds()
            due = instant(record.get("due"))
            if is_open:
                # The register's status_changed_at may be a date or a naive datetime, like any instant.
                since = instant(record.get("status_since"))
                reduced = _Reduced(
                    record["id"],
                    open=True,
                    started=instant(record.get("created_at")) or record.get("first_seen"),
                    days_late=(now - due).days if due is not None and due < now else None,
                    stale=status == "pending_approval" and since is not None and now - since >= stale_after,
                    turnaround=turnaround,
                )
            elif (
                this_cycle is not None  # no cycle calendar, no "this cycle"
                and record.get("cycle") == this_cycle
                and status in ("done", "approved")
            ):
                finished = instant(record.get("decided_at") or record.get("status_since"))
                reduced = _Reduced(
                    record["id"],
                    open=False,
                    closed_this_cycle=True,
                    on_time=due is None or (finished is not None and finished <= due),
                    turnaround=turnaround,
                )
            elif turnaround is not None:
                reduced = _Reduced(record["id"], open=False, turnaround=turnaround)
            else:
                continue  # closed earlier: no figure counts it
            position = len(self._reduced)
            self._reduced.append(reduced)
            for person in people:
                self._by_person.setdefault(person, []).append(position)

    def for_scope(self, scope: frozenset[str]) -> DigestFigures:
        """The figures for the records owned or approved by anyone in ``scope``; with an empty
        scope (a recipient the directory does not know), only the register-wide unassigned count."""
        positions: set[int] = set()
        for person in scope:
            positions.update(self._by_person.get(person, ()))
        if scope:
            unassigned = sum(self._unassigned.get(person, 0) for person in scope)
        else:
            unassigned = sum(self._unassigned.values())
        open_count = overdue = stale = closed = on_time = 0
        ageing = {"0-2 days": 0, "3-7 days": 0, "8+ days": 0}
        oldest: tuple[datetime, str] | None = None
        turnarounds: list[float] = []
        for position in sorted(positions):  # register order: the first of equally old items wins
            item = self._reduced[position]
            if item.turnaround is not None:
                turnarounds.append(item.turnaround)
            if item.open:
                open_count += 1
                if item.started is not None and (oldest is None or item.started < oldest[0]):
                    oldest = (item.started, item.id)
                if item.days_late is not None:
                    overdue += 1
                    late = item.days_late
                    ageing["0-2 days" if late <= 2 else "3-7 days" if late <= 7 else "8+ days"] += 1
                stale += item.stale
            elif item.closed_this_cycle:
                closed += 1
                on_time += item.on_time
        return DigestFigures(
            open=open_count,
            overdue=overdue,
            ageing=ageing,
            stale_approvals=stale,
            unassigned_decisions=unassigned,
            oldest_item=(oldest[1], human_span(self._now - oldest[0])) if oldest else None,
            closed_on_time_pct=round(100 * on_time / closed, 1) if closed else None,
            median_approval_turnaround=human_span(timedelta(seconds=_median(turnarounds)))
            if turnarounds
            else None,
        )


def _median(values: list[float]) -> float:
    import statistics  # only digests need it; it imports fractions, decimal and random (~7 ms)

    return statistics.median(values)


def current_cycle(cycles: CycleCalendar, today: date) -> str | None:
    """The cycle whose phases span today, else the latest one that has started."""
    best: tuple[date, str] | None = None
    for cycle in cycles.cycles.values():
        if not cycle.phases:
            continue
        start = min(p.start for p in cycle.phases.values())
        end = max(p.end for p in cycle.phases.values())
        if start <= today <= end:
            return cycle.id
        if start <= today and (best is None or start > best[0]):
            best = (start, cycle.id)
    return best[1] if best else None
