"""The digest's execution-discipline figures for each recipient's scope (SPEC §2 Digests).

``ScopeFigures`` reduces the records once and files them under their people, so that a digest
tick with many recipients does not rescan the register for each. The oracle here is the plain
reading of the definition: for one scope, walk every record and count. Hypothesis draws small
management trees and registers full of edge cases (unknown people, emails for ids, missing dates,
naive datetimes, closed work from other cycles) and compares the two for every recipient.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from sopwatch.core.digest import DigestFigures, ScopeFigures, human_span, scope_of
from sopwatch.core.model import Cycle, CycleCalendar, Directory, Person, Phase

TZ = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 14, 9, 30, tzinfo=TZ)
STATUSES = ["open", "in_progress", "pending_approval", "done", "approved", "rejected", "cancelled"]
TERMINAL = frozenset({"done", "approved", "rejected", "cancelled"})
CYCLES = CycleCalendar(
    {
        "2026-11": Cycle("2026-11", {"close": Phase("close", date(2026, 11, 1), date(2026, 11, 30))}),
        "2026-12": Cycle("2026-12", {"close": Phase("close", date(2026, 12, 1), date(2026, 12, 31))}),
    }
)
CURRENT = "2026-12"  # the cycle whose phases span NOW
STALE_AFTER = timedelta(days=2)


def reference(
    records: list[Mapping[str, Any]],
    scope: frozenset[str],
    directory: Directory,
    *,
    terminal: frozenset[str] = TERMINAL,
    current_cycle: str | None = CURRENT,
    tz: ZoneInfo = TZ,
    now: datetime = NOW,
    stale_after: timedelta = STALE_AFTER,
) -> DigestFigures:
    """The figures for ``scope`` by walking every record, straight from the definition.

    (``bench/run.py`` measures the daemon's figures against this scan per recipient.)
    """

    def person(reference: Any) -> str | None:
        found = directory.find(str(reference)) if reference else None
        return found.id if found else None

    def instant(value: Any) -> datetime | None:  # a date means the end of that day, as for due
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=tz)
        if isinstance(value, date):
            return datetime.combine(value + timedelta(days=1), time(0), tzinfo=tz)
        return None

    mine = [r for r in records if person(r.get("owner")) in scope or person(r.get("approver")) in scope]
    open_ = [r for r in mine if r["status"] not in terminal]
    late = [(now - due).days for r in open_ if (due := instant(r.get("due"))) is not None and due < now]
    started = [
        (s, r["id"]) for r in open_ if (s := instant(r.get("created_at")) or r.get("first_seen")) is not None
    ]
    oldest = min(started, key=lambda pair: pair[0]) if started else None  # min keeps the first of ties
    closed = [
        r
        for r in mine
        if r["status"] in terminal
        and r["status"] in ("done", "approved")
        and current_cycle is not None
        and r.get("cycle") == current_cycle
    ]
    on_time = [
        r
        for r in closed
        if (due := instant(r.get("due"))) is None
        or (
            (finished := instant(r.get("decided_at") or r.get("status_since"))) is not None
            and finished <= due
        )
    ]
    turnarounds = [
        (decided - requested).total_seconds()
        for r in mine
        if r.get("kind") == "approval"
        and (requested := instant(r.get("approval_requested_at")))
        and (decided := instant(r.get("decided_at")))
        and decided >= requested
    ]
    unassigned = [
        r
        for r in records
        if r.get("kind") == "decision"
        and r["status"] not in terminal
        and not r.get("owner")
        and (not scope or person(r.get("raised_by")) in scope)
    ]
    stale = [
        r
        for r in open_
        if r["status"] == "pending_approval"
        and (since := instant(r.get("status_since"))) is not None
        and now - since >= stale_after
    ]
    return DigestFigures(
        open=len(open_),
        overdue=len(late),
        ageing={
            "0-2 days": sum(d <= 2 for d in late),
            "3-7 days": sum(2 < d <= 7 for d in late),
            "8+ days": sum(d > 7 for d in late),
        },
        stale_approvals=len(stale),
        unassigned_decisions=len(unassigned),
        oldest_item=(oldest[1], human_span(now - oldest[0])) if oldest else None,
        closed_on_time_pct=round(100 * len(on_time) / len(closed), 1) if closed else None,
        median_approval_turnaround=human_span(timedelta(seconds=statistics.median(turnarounds)))
        if turnarounds
        else None,
    )


@st.composite
def directories(draw: st.DrawFn) -> Directory:
    """Up to 7 people; each one's manager, if any, comes earlier, so the tree has no cycle."""
    count = draw(st.integers(1, 7))
    people = {}
    for n in range(count):
        manager = draw(st.one_of(st.none(), st.integers(0, n - 1).map(lambda m: f"p{m}"))) if n else None
        people[f"p{n}"] = Person(f"p{n}", f"Person {n}", f"p{n}@example.com", manager)
    return Directory(people)


# References to people as a register writes them: ids, emails in any case, strangers, blanks.
REFERENCES = st.sampled_from([None, "", "p0", "p1", "p2", "p5", "P1@EXAMPLE.COM", "p3@example.com", "nobody"])
# A few instants that many records share (ties for the oldest item, turnarounds of zero), among
# arbitrary ones: dates, naive datetimes (register-local) and aware ones.
SHARED = [
    date(2026, 12, 1),
    date(2026, 12, 12),
    datetime(2026, 12, 1, 23, 0),
    datetime(2026, 12, 2, 0, 0, tzinfo=TZ),
    datetime(2026, 12, 12, 9, 30, tzinfo=TZ),
]
INSTANTS = st.one_of(
    st.none(),
    st.sampled_from(SHARED),
    st.dates(date(2026, 11, 1), date(2026, 12, 31)),
    st.datetimes(datetime(2026, 11, 1), datetime(2026, 12, 31)),
    st.datetimes(datetime(2026, 11, 1), datetime(2026, 12, 31), timezones=st.just(TZ)),
)
SEEN = st.one_of(st.none(), st.sampled_from([i for i in SHARED if isinstance(i, datetime) and i.tzinfo]))
RECORDS = st.lists(
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(STATUSES),
            "kind": st.sampled_from(["decision", "approval", "task", "issue"]),
            "owner": REFERENCES,
            "approver": REFERENCES,
            "raised_by": REFERENCES,
            "cycle": st.sampled_from([None, "2026-11", "2026-12"]),
            "due": INSTANTS,
            "created_at": INSTANTS,
            "first_seen": SEEN,  # from sopwatch's state: always aware
            "status_since": INSTANTS,
            "approval_requested_at": INSTANTS,
            "decided_at": INSTANTS,
        }
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(
    directory=directories(),
    drawn=RECORDS,
    terminal=st.frozensets(st.sampled_from(STATUSES)),  # "done" need not be terminal
    with_cycles=st.booleans(),
)
def test_every_recipients_figures_match_a_scan_of_the_whole_register(
    directory: Directory, drawn: list[dict[str, Any]], terminal: frozenset[str], with_cycles: bool
) -> None:
    records = [{"id": f"A-{n}", **fields} for n, fields in enumerate(drawn)]
    cycles, current = (CYCLES, CURRENT) if with_cycles else (CycleCalendar(), None)
    figures = ScopeFigures(records, directory, terminal, cycles, TZ, NOW, STALE_AFTER)
    for recipient in [*directory.people.values(), None]:  # None: an address the directory lacks
        scope = scope_of(recipient, directory)
        expected = reference(records, scope, directory, terminal=terminal, current_cycle=current)
        assert figures.for_scope(scope) == expected, recipient


def test_of_equally_old_items_the_first_in_the_register_is_the_oldest() -> None:
    # Records 2 and 9 tie; a set of positions would yield 9 first (9 % 8 == 1 < 2). Bob owns the
    # rest, so they are filed too and the positions are 2 and 9.
    directory = Directory(
        {"ann": Person("ann", "Ann", "ann@example.com"), "bob": Person("bob", "Bob", "bob@example.com")}
    )
    created = datetime(2026, 12, 1, 8, 0, tzinfo=TZ)
    records = [{"id": f"A-{n}", "status": "open", "owner": "bob", "created_at": created} for n in range(10)]
    for n in (2, 9):
        records[n] = {**records[n], "owner": "ann"}
    figures = ScopeFigures(records, directory, TERMINAL, CYCLES, TZ, NOW).for_scope(frozenset({"ann"}))
    assert figures.oldest_item == ("A-2", "13 days")


def test_without_a_cycle_calendar_nothing_is_closed_this_cycle() -> None:
    directory = Directory({"ann": Person("ann", "Ann", "ann@example.com")})
    records = [{"id": "A-1", "status": "done", "owner": "ann"}]  # no cycle, like every record here
    figures = ScopeFigures(records, directory, TERMINAL, CycleCalendar(), TZ, NOW).for_scope(
        frozenset({"ann"})
    )
    assert figures.closed_on_time_pct is None


def test_a_manager_sees_the_team_and_a_report_only_their_own() -> None:
    directory = Directory(
        {
            "boss": Person("boss", "Boss", "boss@example.com"),
            "ann": Person("ann", "Ann", "ann@example.com", manager="boss"),
            "bob": Person("bob", "Bob", "bob@example.com", manager="boss"),
        }
    )
    records = [
        {"id": "A-1", "status": "open", "owner": "ann", "due": date(2026, 12, 1)},  # 12 days late
        {"id": "A-2", "status": "open", "owner": "BOB@example.com", "due": date(2026, 12, 12)},  # 1 day
        {"id": "A-3", "status": "pending_approval", "owner": "bob", "approver": "ann"},
        {"id": "A-4", "status": "open", "kind": "decision", "owner": "", "raised_by": "ann"},
    ]
    figures = ScopeFigures(records, directory, TERMINAL, CYCLES, TZ, NOW)
    boss = figures.for_scope(scope_of(directory.people["boss"], directory))
    ann = figures.for_scope(scope_of(directory.people["ann"], directory))
    assert (boss.open, boss.overdue, dict(boss.ageing)) == (
        3,
        2,
        {"0-2 days": 1, "3-7 days": 0, "8+ days": 1},
    )
    assert (ann.open, ann.overdue, ann.unassigned_decisions) == (2, 1, 1)  # A-3 as its approver
    assert figures.for_scope(frozenset({"bob"})).unassigned_decisions == 0
    assert figures.for_scope(frozenset()).unassigned_decisions == 1  # unknown recipient: register-wide
