"""Digests: when they are due for a recipient, and the execution-discipline figures they show.

Pure functions over records (register fields + observed instants) and the directory.
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


def figures(
    records: Iterable[Mapping[str, Any]],
    scope: frozenset[str],
    directory: Directory,
    terminal: frozenset[str],
    cycles: CycleCalendar,
    tz: ZoneInfo,
    now: datetime,
    stale_after: timedelta = timedelta(days=2),
) -> DigestFigures:
    def person_id(reference: Any) -> str | None:
        found = directory.find(str(reference)) if reference else None
        return found.id if found else None

    def instant(value: Any) -> datetime | None:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=tz)
        if isinstance(value, date):
            return datetime.combine(value + timedelta(days=1), time(0), tzinfo=tz)
        return None

    current_cycle = _current_cycle(cycles, now.astimezone(tz).date())
    open_count = overdue = stale = unassigned = 0
    ageing = {"0-2 days": 0, "3-7 days": 0, "8+ days": 0}
    oldest: tuple[datetime, str] | None = None
    closed = on_time = 0
    turnarounds: list[float] = []
    for record in records:
        owner = person_id(record.get("owner"))
        in_scope = owner in scope or person_id(record.get("approver")) in scope
        is_open = record["status"] not in terminal
        unowned_decision = record.get("kind") == "decision" and not record.get("owner") and is_open
        if unowned_decision and (person_id(record.get("raised_by")) in scope or not scope):
            unassigned += 1
        if record.get("kind") == "approval":
            requested, decided = (
                instant(record.get("approval_requested_at")),
                instant(record.get("decided_at")),
            )
            if in_scope and requested and decided and decided >= requested:
                turnarounds.append((decided - requested).total_seconds())
        if not in_scope:
            continue
        due = instant(record.get("due"))
        if is_open:
            open_count += 1
            started = instant(record.get("created_at")) or record.get("first_seen")
            if started is not None and (oldest is None or started < oldest[0]):
                oldest = (started, record["id"])
            if due is not None and due < now:
                overdue += 1
                late = (now - due).days
                ageing["0-2 days" if late <= 2 else "3-7 days" if late <= 7 else "8+ days"] += 1
            if record.get("status") == "pending_approval":
                since = record.get("status_since")
                if isinstance(since, datetime) and now - since >= stale_after:
                    stale += 1
        elif record.get("cycle") == current_cycle and record["status"] in ("done", "approved"):
            closed += 1
            finished = record.get("decided_at") or record.get("status_since")
            finished_at = instant(finished)
            if due is None or (finished_at is not None and finished_at <= due):
                on_time += 1
    return DigestFigures(
        open=open_count,
        overdue=overdue,
        ageing=ageing,
        stale_approvals=stale,
        unassigned_decisions=unassigned,
        oldest_item=(oldest[1], human_span(now - oldest[0])) if oldest else None,
        closed_on_time_pct=round(100 * on_time / closed, 1) if closed else None,
        median_approval_turnaround=human_span(timedelta(seconds=_median(turnarounds)))
        if turnarounds
        else None,
    )


def _median(values: list[float]) -> float:
    import statistics  # only digests need it; it imports fractions, decimal and random (~7 ms)

    return statistics.median(values)


def _current_cycle(cycles: CycleCalendar, today: date) -> str | None:
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
