"""Rule semantics end to end through the pure core (SPEC §1.1 observed fields, §2 Rules).

Rules are written as YAML and compiled by the real ``RuleCompiler``; the register is a hand-built
``Snapshot``; time is driven by ``evaluate``/``apply`` or ``simulate``. Expected instants are written
out by hand (or computed with ``numpy.busday_offset``), never by calling the code under test.
"""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sopwatch.adapters.public_holidays import public_holidays
from sopwatch.adapters.register import text_date_parser
from sopwatch.config.rules_loader import RuleCompiler
from sopwatch.config.schema import RegisterConfig
from sopwatch.core.business import BusinessCalendar
from sopwatch.core.conditions import compile_condition
from sopwatch.core.evaluate import Environment, Evaluation, Notification, apply, evaluate
from sopwatch.core.model import (
    CANONICAL_FIELDS,
    OBSERVED_FIELDS,
    Action,
    CycleCalendar,
    Directory,
    Person,
    Snapshot,
)
from sopwatch.core.recipients import parse_recipient
from sopwatch.core.rules import RuleSet
from sopwatch.core.simulate import simulate
from sopwatch.core.state import Silence, State
from sopwatch.core.timeexpr import Clock
from sopwatch.errors import ProblemList

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
EXTRA_COLUMNS = {"region", "review_date"}
FIELDS = frozenset(CANONICAL_FIELDS) | frozenset(OBSERVED_FIELDS) | EXTRA_COLUMNS
ROLES = {"sop-lead": ("lead",), "planners": ("ann", "bob")}
PEOPLE = {
    p.id: p
    for p in (
        Person("ann", "Ann", "ann@example.com", manager="mia"),
        Person("bob", "Bob", "bob@example.com", manager="mia"),
        Person("mia", "Mia", "mia@example.com", manager="ceo"),
        Person("ceo", "Cleo", "ceo@example.com"),
        Person("lead", "Lee", "lead@example.com"),
        Person("orphan", "Otto", "otto@example.com"),  # no manager
        Person("ned", "Ned", "ned@example.com", manager="mia", timezone=NEW_YORK),
    )
}
LEAD = "lead@example.com"


# --- helpers ------------------------------------------------------------------------------------


def berlin(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BERLIN)


def make_env(
    *,
    business: BusinessCalendar | None = None,
    fallback: str | None = "role(sop-lead)",
    start_date: date | None = None,
    cap: int = 200,
) -> Environment:
    return Environment(
        clock=Clock(BERLIN, business or BusinessCalendar()),
        directory=Directory(PEOPLE, ROLES),
        cycles=CycleCalendar(),
        fallback=parse_recipient(fallback, FIELDS, ROLES) if fallback else None,
        start_date=start_date,
        max_messages_per_tick=cap,
    )


def load_rules(yaml_text: str) -> RuleSet:
    """Write ``yaml_text`` to a rules file and compile it (raises ProblemList on errors)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.yaml"
        path.write_text(textwrap.dedent(yaml_text).lstrip("\n"), encoding="utf-8")
        return RuleCompiler(FIELDS, ROLES, CycleCalendar(), BERLIN).load([path])


def make_rules(yaml_text: str) -> RuleSet:
    rules = load_rules(yaml_text)
    assert len(rules) >= 1
    return rules


def one_rule(
    when: str = "{}",
    *,
    fire_at: str | None = None,
    steps: str = "- notify: [owner]",
    extra: str = "",
    severity: str = "warning",
    rule_id: str = "r",
) -> str:
    """The YAML of a rules file with one rule (``steps`` is the escalation list's YAML)."""
    lines = ["rules:", f"  - id: {rule_id}", f"    severity: {severity}", f"    when: {when}"]
    if fire_at:
        lines.append(f"    fire_at: {fire_at}")
    lines.append("    escalation:")
    lines.extend("      " + line for line in textwrap.dedent(steps).strip().splitlines())
    lines.extend("    " + line for line in textwrap.dedent(extra).strip().splitlines() if line)
    return "\n".join(lines) + "\n"


def action(**fields: Any) -> Action:
    record = {"id": "A1", "title": "Approve Q3 forecast", "status": "open", "kind": "action", "owner": "ann"}
    record.update(fields)
    return Action(record["id"], record)


def snapshot(*actions: Action) -> Snapshot:
    return Snapshot({a.id: a for a in actions})


def run(
    snap: Snapshot,
    rules: RuleSet,
    env: Environment,
    start: datetime,
    end: datetime,
    every: timedelta = timedelta(minutes=30),
    state: State | None = None,
) -> list[Notification]:
    return [n for ev in simulate(snap, rules, env, start, end, every, state) for n in ev.notifications]


def emails(notifications: Iterable[Notification]) -> list[Notification]:
    return [n for n in notifications if n.channel == "email"]


def step_log(notifications: Iterable[Notification]) -> list[tuple[int, int, datetime]]:
    return [(n.step, n.repeat, n.at) for n in emails(notifications)]


def outbox_keys_are_unique(notifications: list[Notification]) -> bool:
    """The outbox ignores a second row with the same key and recipients (INSERT OR IGNORE)."""
    keys = [(n.key, tuple(sorted(n.to))) for n in notifications]
    return len(set(keys)) == len(keys)


def bday(day: date, n: int) -> date:
    """The oracle for Mon-Fri business-day steps (SPEC §2: numpy.busday_offset, roll forward)."""
    return np.busday_offset(np.datetime64(day, "D"), n, roll="forward").astype(date)


# --- conditions ---------------------------------------------------------------------------------

CONDITION_CASES = [
    # (when, fields of a matching action, fields of a non-matching action)
    ("{status: blocked}", {"status": "blocked"}, {"status": "open"}),
    ("{team: {eq: supply}}", {"team": "supply"}, {"team": "Supply"}),
    ("{team: {ne: supply}}", {"team": "demand"}, {"team": "supply"}),
    ("{team: {ne: supply}}", {}, {"team": "supply"}),  # missing value is not equal
    ("{status: [open, blocked]}", {"status": "blocked"}, {"status": "in_progress"}),
    ("{status: {in: [open, blocked]}}", {"status": "open"}, {"status": "pending_approval"}),
    ("{team: {not_in: [supply, finance]}}", {"team": "demand"}, {"team": "finance"}),
    # dates: due against an ISO date, compared on the date in the organisation's timezone
    ("{due: {lt: 2026-12-04}}", {"due": date(2026, 12, 3)}, {"due": date(2026, 12, 4)}),
    ("{due: {lte: 2026-12-04}}", {"due": date(2026, 12, 4)}, {"due": date(2026, 12, 5)}),
    ("{due: {gt: 2026-12-04}}", {"due": date(2026, 12, 5)}, {"due": date(2026, 12, 4)}),
    ("{due: {gte: 2026-12-04}}", {"due": date(2026, 12, 4)}, {"due": date(2026, 12, 3)}),
    ("{due: 2026-12-04}", {"due": date(2026, 12, 4)}, {"due": date(2026, 12, 5)}),
    ("{due: {ne: 2026-12-04}}", {"due": date(2026, 12, 5)}, {"due": date(2026, 12, 4)}),
    ("{due: {in: [2026-12-04, 2026-12-11]}}", {"due": date(2026, 12, 11)}, {"due": date(2026, 12, 10)}),
    (
        "{due: {lt: 2026-12-04}}",
        {"due": datetime(2026, 12, 3, 22, 30, tzinfo=UTC)},  # 23:30 on the 3rd in Berlin
        {"due": datetime(2026, 12, 3, 23, 30, tzinfo=UTC)},  # 00:30 on the 4th in Berlin
    ),
    ("{due: {empty: true}}", {}, {"due": date(2026, 12, 4)}),
    ("{due: {empty: false}}", {"due": date(2026, 12, 4)}, {"due": None}),
    # numbers held as text compare as numbers ("10" > "9" would be false as text)
    ("{priority: {gt: 9}}", {"priority": "10"}, {"priority": "8"}),
    ("{priority: {gte: 10}}", {"priority": "10"}, {"priority": "9.5"}),
    ("{priority: {lt: 10}}", {"priority": "9"}, {"priority": "10"}),
    ("{priority: {lte: 2}}", {"priority": "2"}, {"priority": "11"}),
    ("{priority: {gt: 9}}", {"priority": "10"}, {}),  # empty never orders
    ("{priority: 10}", {"priority": "10"}, {"priority": "100"}),
    ("{priority: [1, 2]}", {"priority": "2"}, {"priority": "12"}),
    # empty
    ("{owner: {empty: true}}", {"owner": ""}, {"owner": "ann"}),
    ("{owner: {empty: true}}", {"owner": None}, {"owner": "bob"}),
    ("{owner: {empty: false}}", {"owner": "ann"}, {"owner": ""}),
    # regex (search) and contains on text
    (
        "{title: {regex: '^Q[1-4] forecast'}}",
        {"title": "Q3 forecast sign-off"},
        {"title": "Final Q3 forecast"},
    ),
    ("{title: {regex: 'capex|opex'}}", {"title": "Approve opex"}, {"title": "Approve Capex"}),
    ("{title: {contains: forecast}}", {"title": "Q3 forecast"}, {"title": "Q3 Forecast"}),
    ("{region: {contains: EU}}", {"region": "EU-West"}, {"region": "APAC"}),  # extra column
    # tags: a list; eq/contains mean "has the tag", in/not_in mean overlap
    ("{tags: urgent}", {"tags": ("urgent", "exec")}, {"tags": ("later",)}),
    ("{tags: {eq: urgent}}", {"tags": ("urgent",)}, {"tags": ()}),
    ("{tags: {ne: urgent}}", {"tags": ("later",)}, {"tags": ("later", "urgent")}),
    ("{tags: [urgent, exec]}", {"tags": ("exec",)}, {"tags": ("later",)}),
    ("{tags: {in: [urgent, exec]}}", {"tags": ("x", "urgent")}, {"tags": ()}),
    ("{tags: {not_in: [urgent, exec]}}", {"tags": ("later",)}, {"tags": ("later", "exec")}),
    ("{tags: {contains: exec}}", {"tags": ("exec",)}, {"tags": ("executive",)}),
    ("{tags: {regex: '^cust-'}}", {"tags": ("x", "cust-acme")}, {"tags": ("acme-cust",)}),
    ("{tags: {empty: true}}", {"tags": ()}, {"tags": ("x",)}),
    ("{tags: {empty: false}}", {"tags": ("x",)}, {"tags": ()}),
    # combinators and nesting
    ("{status: open, team: supply}", {"team": "supply"}, {"team": "demand"}),
    ("{all: [{status: open}, {team: supply}]}", {"team": "supply"}, {"status": "blocked", "team": "supply"}),
    (
        "{any: [{status: blocked}, {priority: {gte: 5}}]}",
        {"status": "open", "priority": "7"},
        {"status": "open", "priority": "4"},
    ),
    ("{any: [{status: blocked}, {priority: {gte: 5}}]}", {"status": "blocked"}, {"status": "open"}),
    ("{not: {status: blocked}}", {"status": "in_progress"}, {"status": "blocked"}),
    (
        "{not: {status: blocked, team: supply}}",
        {"status": "blocked", "team": "demand"},
        {"status": "blocked", "team": "supply"},
    ),
    (
        "{all: [{kind: approval}, {any: [{not: {team: supply}}, {tags: urgent}]}]}",
        {"kind": "approval", "team": "supply", "tags": ("urgent",)},
        {"kind": "approval", "team": "supply", "tags": ("later",)},
    ),
    (
        "{all: [{kind: approval}, {any: [{not: {team: supply}}, {tags: urgent}]}]}",
        {"kind": "approval", "team": "demand", "tags": ()},
        {"kind": "decision", "team": "demand", "tags": ()},
    ),
    ("{not: {any: [{team: supply}, {team: demand}]}}", {"team": "finance"}, {"team": "demand"}),
]


@pytest.mark.parametrize(("when", "matching", "other"), CONDITION_CASES)
def test_condition_op_matches_one_action_and_not_the_other(when: str, matching: dict, other: dict) -> None:
    rules = make_rules(one_rule(when))
    snap = snapshot(action(id="yes", **matching), action(id="no", **other))
    ev = evaluate(snap, rules, make_env(), State(), berlin(2026, 12, 7, 10))
    assert [n.action for n in ev.notifications] == ["yes"]
    assert [e.action for e in ev.episodes] == ["yes"]


def test_terminal_actions_are_never_considered_even_when_the_condition_holds() -> None:
    rules = make_rules(one_rule("{status: [done, open]}"))
    snap = snapshot(action(id="closed", status="done"), action(id="live", status="open"))
    ev = evaluate(snap, rules, make_env(), State(), berlin(2026, 12, 7, 10))
    assert [n.action for n in ev.notifications] == ["live"]


UNKNOWN_NAME_CASES = [
    (
        """
        rules:
          - id: r
            when:
              all:
                - status: open
                - priorty: 3
            escalation:
              - notify: [owner]
        """,
        "priorty",
        6,
    ),
    (
        """
        rules:
          - id: r
            when:
              status: open
              due: {before: 2026-12-01}
            escalation:
              - notify: [owner]
        """,
        "before",
        5,
    ),
    (
        """
        rules:
          - id: ok
            escalation:
              - notify: [owner]
          - id: r
            when:
              any:
                - not:
                    team:
                      eqq: supply
            escalation:
              - notify: [owner]
        """,
        "eqq",
        10,
    ),
    (
        """
        rules:
          - id: r
            when: {staus: open}
            escalation:
              - notify: [owner]
        """,
        "staus",
        3,
    ),
    (
        """
        rules:
          - id: r
            when:
              status: [open, closed]
            escalation:
              - notify: [owner]
        """,
        "closed",  # not a status: the register's spellings are mapped to the canonical ones
        4,
    ),
    (
        """
        rules:
          - id: r
            when: {kind: {ne: task}}
            escalation:
              - notify: [owner]
        """,
        "task",
        3,
    ),
]


@pytest.mark.parametrize(("text", "name", "line"), UNKNOWN_NAME_CASES)
def test_unknown_field_or_op_is_reported_with_its_line(text: str, name: str, line: int) -> None:
    with pytest.raises(ProblemList) as info:
        load_rules(text)
    problem = info.value.problems[0]
    assert repr(name) in problem.message
    assert problem.location is not None
    assert problem.location.line == line


# --- the escalation ladder ----------------------------------------------------------------------

LADDER = one_rule(
    "{status: open}",
    fire_at="due",
    steps="""
    - notify: [owner]
    - after: 1 business day
      notify: ["manager(owner)"]
    - after: 2 business days
      notify: ["role(sop-lead)"]
    """,
)


def test_ladder_on_time_sends_each_step_when_due() -> None:
    # due Thursday 10:00: steps at Thu 10:00, Fri 10:00, Mon 10:00 (over the weekend)
    snap = snapshot(action(due=berlin(2026, 12, 3, 10)))
    log = run(snap, make_rules(LADDER), make_env(), berlin(2026, 12, 3, 9), berlin(2026, 12, 8, 12))
    assert step_log(log) == [
        (0, 0, berlin(2026, 12, 3, 10)),
        (1, 0, berlin(2026, 12, 4, 10)),
        (2, 0, berlin(2026, 12, 7, 10)),
    ]
    assert [n.to for n in emails(log)] == [("ann@example.com",), ("mia@example.com",), (LEAD,)]
    assert [n.kind for n in emails(log)] == ["reminder", "escalation", "escalation"]
    assert {n.episode for n in log} == {"r/A1/1"}


@pytest.mark.parametrize(("fire_at", "fired_hour"), [("now", 9), ("now - 2 hours", 7)])
def test_a_ladder_from_now_climbs_from_the_instant_the_episode_fired(fire_at: str, fired_hour: int) -> None:
    """``fire_at: now`` moves with every tick; the episode keeps the instant it fired at (first
    tick: Thu 3 Dec 09:00), so each step comes due a business day after the one before."""
    rules = make_rules(LADDER.replace("fire_at: due", f'fire_at: "{fire_at}"'))
    snap = snapshot(action(due=berlin(2026, 12, 3, 10)))
    log = run(snap, rules, make_env(), berlin(2026, 12, 3, 9), berlin(2026, 12, 8, 12))
    assert step_log(log) == [
        (0, 0, berlin(2026, 12, 3, 9)),
        (1, 0, berlin(2026, 12, 4, fired_hour)),
        (2, 0, berlin(2026, 12, 7, fired_hour)),
    ]
    assert {n.episode for n in log} == {"r/A1/1"}


def test_ladder_late_start_sends_only_the_current_step() -> None:
    snap = snapshot(action(due=berlin(2026, 12, 3, 10)))
    log = run(snap, make_rules(LADDER), make_env(), berlin(2026, 12, 7, 11), berlin(2026, 12, 9, 12))
    assert step_log(log) == [(2, 0, berlin(2026, 12, 7, 11))]


def test_ladder_start_between_steps_skips_the_lower_step() -> None:
    snap = snapshot(action(due=berlin(2026, 12, 3, 10)))
    log = run(snap, make_rules(LADDER), make_env(), berlin(2026, 12, 4, 15), berlin(2026, 12, 8, 12))
    assert step_log(log) == [(1, 0, berlin(2026, 12, 4, 15)), (2, 0, berlin(2026, 12, 7, 10))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    due_day=st.dates(date(2026, 1, 5), date(2026, 12, 18)).filter(lambda d: d.weekday() < 5),
    offset_minutes=st.integers(0, 8 * 24 * 60),
)
def test_late_start_never_emits_more_than_one_step(due_day: date, offset_minutes: int) -> None:
    fire_at = datetime.combine(due_day, time(10), tzinfo=BERLIN)
    now = fire_at + timedelta(minutes=offset_minutes)
    ev = evaluate(snapshot(action(due=fire_at)), make_rules(LADDER), make_env(), State(), now)
    # the oracle: step k is due at fire_at + after_k business days (0, 1, 2), same wall time
    dues = [datetime.combine(bday(due_day, n), time(10), tzinfo=BERLIN) for n in (0, 1, 2)]
    expected = max(k for k, due in enumerate(dues) if due <= now)
    assert [(n.step, n.repeat) for n in ev.notifications] == [(expected, 0)]


REPEATING = one_rule(
    "{status: open}",
    fire_at="due",
    steps="""
    - notify: [owner]
    - after: 3 business days
      notify: ["manager(owner)"]
    """,
    extra="repeat: 1 business day",
)


def test_repeat_resends_current_step_and_a_new_step_restarts_at_zero() -> None:
    snap = snapshot(action(due=berlin(2026, 12, 3, 10)))  # Thursday
    log = run(
        snap,
        make_rules(REPEATING),
        make_env(),
        berlin(2026, 12, 3, 9),
        berlin(2026, 12, 9, 12),
        timedelta(minutes=20),
    )
    assert step_log(log) == [
        (0, 0, berlin(2026, 12, 3, 10)),
        (0, 1, berlin(2026, 12, 4, 10)),
        (0, 2, berlin(2026, 12, 7, 10)),
        (1, 0, berlin(2026, 12, 8, 10)),  # Thu + 3 business days = Tue
        (1, 1, berlin(2026, 12, 9, 10)),
    ]
    assert len({n.key for n in log}) == len(log)


def test_repeat_is_counted_from_the_last_send_not_from_the_step_due_time() -> None:
    rules = make_rules(one_rule("{status: open}", fire_at="due", extra="repeat: 2h"))
    snap = snapshot(action(due=berlin(2026, 12, 7, 10)))  # Monday
    log = run(
        snap, rules, make_env(), berlin(2026, 12, 7, 10, 25), berlin(2026, 12, 7, 17), timedelta(minutes=5)
    )
    assert step_log(log) == [
        (0, 0, berlin(2026, 12, 7, 10, 25)),
        (0, 1, berlin(2026, 12, 7, 12, 25)),
        (0, 2, berlin(2026, 12, 7, 14, 25)),
        (0, 3, berlin(2026, 12, 7, 16, 25)),
    ]


def test_repeat_after_a_delivery_wait_counts_from_when_the_message_could_go_out() -> None:
    # sent on Saturday: it goes out Monday 08:00, so the 4h repeat is due Monday 12:00
    rules = make_rules(one_rule("{status: open}", fire_at="due", extra="repeat: 4h"))
    snap = snapshot(action(due=berlin(2026, 12, 5, 10)))
    log = run(
        snap, rules, make_env(), berlin(2026, 12, 5, 10), berlin(2026, 12, 7, 13), timedelta(minutes=30)
    )
    assert [(n.repeat, n.at, n.not_before) for n in log] == [
        (0, berlin(2026, 12, 5, 10), berlin(2026, 12, 7, 8)),
        (1, berlin(2026, 12, 7, 12), berlin(2026, 12, 7, 12)),
    ]


# --- episodes and resolution --------------------------------------------------------------------

RESOLVING = """
rules:
  - id: r
    when: {status: [open, in_progress]}
    fire_at: due
    notify_resolved: %s
    escalation:
      - notify: [owner]
        calendar_hold: {start: "fire_at + 2 business days", duration: 30m}
      - after: 1 business day
        notify: ["manager(owner)"]
        cc: [owner]
"""

# due Tuesday 2026-12-01 (a date): fire_at = Wed 00:00, step 1 at Thu 00:00
RESOLUTIONS = {
    "terminal": {"status": "done"},
    "when-stops-holding": {"status": "blocked"},
    "fire-at-moves-to-the-future": {"due": date(2026, 12, 31)},
}
# What the resolved episode records as its reason (``sopwatch episodes`` shows it).
RESOLUTION_REASONS = {
    "terminal": "status 'done' is terminal",
    "when-stops-holding": "status in ['open', 'in_progress'] failed (status is 'blocked')",
    "fire-at-moves-to-the-future": "fire_at 2027-01-01T00:00:00+01:00 is in the future",
}


def _step(
    state: State, snap: Snapshot, rules: RuleSet, env: Environment, now: datetime
) -> tuple[Evaluation, State]:
    ev = evaluate(snap, rules, env, state, now)
    return ev, apply(state, ev)


@pytest.mark.parametrize("notify_resolved", [True, False])
@pytest.mark.parametrize("how", sorted(RESOLUTIONS))
def test_resolution_ends_the_episode_cancels_holds_and_may_notify(how: str, notify_resolved: bool) -> None:
    rules = make_rules(RESOLVING % ("true" if notify_resolved else "false"))
    env = make_env()
    open_ = action(due=date(2026, 12, 1))
    changed = action(**{**open_.fields, **RESOLUTIONS[how]})

    ev0, state = _step(State(), snapshot(open_), rules, env, berlin(2026, 12, 2, 9))
    (reminder, hold) = ev0.notifications
    assert (reminder.kind, reminder.step, reminder.to) == ("reminder", 0, ("ann@example.com",))
    assert (hold.channel, hold.kind, hold.hold.sequence) == ("calendar", "hold", 0)
    # fire_at + 2 business days: Wed 00:00 -> Fri 00:00, 30 minutes long; still to come at resolution
    assert (hold.hold.start, hold.hold.end) == (berlin(2026, 12, 4), berlin(2026, 12, 4, 0, 30))

    ev1, state = _step(state, snapshot(open_), rules, env, berlin(2026, 12, 3, 9))
    assert [(n.step, n.to, n.cc) for n in ev1.notifications] == [
        (1, ("mia@example.com",), ("ann@example.com",))
    ]

    ev2, state = _step(state, snapshot(changed), rules, env, berlin(2026, 12, 3, 11))
    assert [(e.id, e.resolution) for e in ev2.resolved] == [("r/A1/1", RESOLUTION_REASONS[how])]
    assert ev2.episodes == ()
    assert state.episodes == {}
    cancels = [n for n in ev2.notifications if n.channel == "cancel"]
    assert [(n.kind, n.hold.uid, n.hold.sequence) for n in cancels] == [("cancel", hold.hold.uid, 1)]
    resolved = [n for n in ev2.notifications if n.kind == "resolved"]
    if notify_resolved:
        assert [(n.channel, n.to, n.cc, n.step) for n in resolved] == [
            ("email", ("mia@example.com",), ("ann@example.com",), 1)
        ]
    else:
        assert resolved == []
    assert len(ev2.notifications) == 1 + notify_resolved

    # nothing more while resolved
    ev3, state = _step(state, snapshot(changed), rules, env, berlin(2026, 12, 4, 11))
    assert ev3.notifications == () and ev3.resolved == ()

    # a later firing is a new episode, starting from step 0
    again = action(due=date(2026, 12, 7))  # Monday: fire_at Tue 00:00, step 1 at Wed 00:00
    ev4, state = _step(state, snapshot(again), rules, env, berlin(2026, 12, 8, 9))
    assert [(n.episode, n.step, n.repeat, n.kind) for n in ev4.notifications] == [
        ("r/A1/2", 0, 0, "reminder"),
        ("r/A1/2", 0, 0, "hold"),
    ]
    assert [e.number for e in ev4.episodes] == [2]
    assert ev4.notifications[1].hold.uid != hold.hold.uid


def test_an_action_that_leaves_the_register_resolves_its_episode() -> None:
    rules = make_rules(RESOLVING % "true")
    env = make_env()
    ev0, state = _step(State(), snapshot(action(due=date(2026, 12, 1))), rules, env, berlin(2026, 12, 2, 9))
    hold = next(n.hold for n in ev0.notifications if n.kind == "hold")
    ev1, state = _step(
        state, snapshot(action(id="other", status="done")), rules, env, berlin(2026, 12, 2, 10)
    )
    assert [e.id for e in ev1.resolved] == ["r/A1/1"]
    assert [(n.kind, n.to) for n in ev1.notifications] == [
        ("cancel", ("ann@example.com",)),
        ("resolved", ("ann@example.com",)),
    ]
    assert ev1.notifications[0].hold.uid == hold.uid
    assert state.episodes == {}


@pytest.mark.parametrize(
    ("resolved_at", "cancelled"),
    [
        (berlin(2026, 12, 4, 0, 29), True),  # the hold (Fri 00:00-00:30) is under way: cancelled
        (berlin(2026, 12, 4, 0, 30), False),  # it has ended: the meeting took place
        (berlin(2026, 12, 7, 11), False),
    ],
)
def test_a_hold_whose_time_has_passed_is_not_cancelled(resolved_at: datetime, cancelled: bool) -> None:
    """A CANCEL for a past meeting strikes it from the attendees' calendars and mails them about it."""
    rules = make_rules(RESOLVING % "true")
    env = make_env()
    open_ = action(due=date(2026, 12, 1))
    ev0, state = _step(State(), snapshot(open_), rules, env, berlin(2026, 12, 2, 9))
    hold = next(n.hold for n in ev0.notifications if n.kind == "hold")
    assert hold.end == berlin(2026, 12, 4, 0, 30)
    ev1, state = _step(state, snapshot(action(**{**open_.fields, "status": "done"})), rules, env, resolved_at)
    assert [e.id for e in ev1.resolved] == ["r/A1/1"]
    kinds = [n.kind for n in ev1.notifications]
    assert ("cancel" in kinds) is cancelled
    assert "resolved" in kinds  # the people told about the work still hear that it is done


def test_resolution_without_any_send_sends_no_resolved_notice() -> None:
    # the rule fired, but step 0 is only due a day later; resolving then has no one to tell
    rules = make_rules(
        one_rule(
            "{status: open}",
            fire_at="due",
            steps="- after: 1 day\n  notify: [owner]",
            extra="notify_resolved: true",
        )
    )
    env = make_env()
    ev0, state = _step(State(), snapshot(action(due=date(2026, 12, 1))), rules, env, berlin(2026, 12, 2, 9))
    assert ev0.notifications == () and [e.id for e in ev0.episodes] == ["r/A1/1"]
    ev1, _ = _step(
        state, snapshot(action(due=date(2026, 12, 1), status="done")), rules, env, berlin(2026, 12, 2, 10)
    )
    assert [e.id for e in ev1.resolved] == ["r/A1/1"]
    assert ev1.notifications == ()


def test_changed_due_date_updates_the_hold_with_the_same_uid_and_next_sequence() -> None:
    rules = make_rules(
        one_rule(
            "{status: open}",
            fire_at="due",
            steps='- notify: [owner]\n  calendar_hold: {start: "due + 1 business day", duration: 45m}',
        )
    )
    env = make_env()
    ev0, state = _step(State(), snapshot(action(due=date(2026, 12, 3))), rules, env, berlin(2026, 12, 7, 9))
    hold = next(n for n in ev0.notifications if n.kind == "hold")
    # Thu 12-03 + 1 business day = Fri 12-04, end of day = Sat 00:00
    assert hold.hold.start == berlin(2026, 12, 5)

    moved = snapshot(action(due=date(2026, 12, 4)))  # still overdue
    ev1, state = _step(state, moved, rules, env, berlin(2026, 12, 7, 10))
    assert [(n.channel, n.kind) for n in ev1.notifications] == [("calendar", "hold-update")]
    update = ev1.notifications[0].hold
    assert (update.uid, update.sequence) == (hold.hold.uid, 1)
    # Fri 12-04 + 1 business day = Mon 12-07, end of day = Tue 00:00
    assert (update.start, update.end) == (berlin(2026, 12, 8), berlin(2026, 12, 8, 0, 45))
    assert ev1.resolved == ()

    ev2, state = _step(state, moved, rules, env, berlin(2026, 12, 7, 11))
    assert ev2.notifications == ()

    ev3, _ = _step(
        state, snapshot(action(due=date(2026, 12, 4), status="done")), rules, env, berlin(2026, 12, 7, 12)
    )
    assert [(n.kind, n.hold.uid, n.hold.sequence) for n in ev3.notifications] == [
        ("cancel", hold.hold.uid, 2)
    ]


def test_a_hold_counted_from_now_starts_from_when_its_step_goes_out_and_stays_there() -> None:
    """``now`` in ``calendar_hold.start`` (SPEC §2) is the instant the step is sent, not when the
    episode opened; and a register edit does not move such a hold."""
    rules = make_rules(
        one_rule(
            "{status: open}",
            fire_at="due",
            steps="""
            - notify: [owner]
            - after: 3 business days
              notify: [owner]
              calendar_hold: {start: "now + 2 hours", duration: 30m}
            """,
        )
    )
    env = make_env()  # Mon-Fri 08:00-18:00: a step due at night waits for the morning
    ev0, state = _step(State(), snapshot(action(due=date(2026, 12, 4))), rules, env, berlin(2026, 12, 5, 10))
    assert [n.kind for n in ev0.notifications] == ["reminder"]  # opened on Saturday
    # fire_at = end of Fri 4 Dec; + 3 business days = end of Wed 9 Dec: sent Thu 10 Dec 08:00.
    ev1, state = _step(state, snapshot(action(due=date(2026, 12, 4))), rules, env, berlin(2026, 12, 10, 7))
    hold = next(n for n in ev1.notifications if n.kind == "hold")
    assert hold.not_before == berlin(2026, 12, 10, 8)
    assert (hold.hold.start, hold.hold.end) == (berlin(2026, 12, 10, 10), berlin(2026, 12, 10, 10, 30))
    edited = snapshot(action(due=date(2026, 12, 3), title="Renamed"))  # still overdue, fire_at moved
    ev2, _ = _step(state, edited, rules, env, berlin(2026, 12, 10, 9))
    assert not [n for n in ev2.notifications if n.channel == "calendar"]


# --- recipients: fallback and de-duplication ----------------------------------------------------

RECIPIENT_CASES = [
    # (notify, cc, owner, expected to, expected cc, note fragments)
    ("[owner]", "[]", "", (LEAD,), (), ["owner is unassigned", "fallback"]),
    ("[owner]", "[]", None, (LEAD,), (), ["owner is unassigned", "fallback"]),
    ("[owner]", "[]", "zed", (LEAD,), (), ["'zed'", "not in the people directory", "fallback"]),
    ("[owner]", "[]", "x@partner.example", ("x@partner.example",), (), []),
    ("[owner]", "[]", "Ann@Example.com", ("ann@example.com",), (), []),
    ('["manager(owner)"]', "[]", "ann", ("mia@example.com",), (), []),
    ('["manager(owner)"]', "[]", "orphan", (LEAD,), (), ["orphan has no manager", "fallback"]),
    ('["manager(owner)"]', "[]", "", (LEAD,), (), ["owner is unassigned", "fallback"]),
    ('["manager(manager(owner))"]', "[]", "ann", ("ceo@example.com",), (), []),
    ('["manager(manager(owner))"]', "[]", "mia", (LEAD,), (), ["ceo has no manager", "fallback"]),
    ('["role(planners)"]', "[]", "ann", ("ann@example.com", "bob@example.com"), (), []),
    (
        '[owner, ann@example.com, "role(planners)"]',
        "[]",
        "ann",
        ("ann@example.com", "bob@example.com"),
        (),
        [],
    ),
    ("[owner, ANN@EXAMPLE.COM]", "[]", "ann", ("ann@example.com",), (), []),
    (
        "[owner]",
        '["role(planners)", ANN@EXAMPLE.COM, "manager(owner)"]',
        "ann",
        ("ann@example.com",),
        ("bob@example.com", "mia@example.com"),
        [],
    ),
    ("[owner]", '["manager(owner)", mia@example.com]', "bob", ("bob@example.com",), ("mia@example.com",), []),
    ('["role(sop-lead)"]', "[owner]", "lead", (LEAD,), (), []),
]


@pytest.mark.parametrize(("notify", "cc", "owner", "to", "expected_cc", "notes"), RECIPIENT_CASES)
def test_recipients(
    notify: str, cc: str, owner: str | None, to: tuple, expected_cc: tuple, notes: list[str]
) -> None:
    rules = make_rules(one_rule("{status: open}", steps=f"- notify: {notify}\n  cc: {cc}"))
    ev = evaluate(snapshot(action(owner=owner)), rules, make_env(), State(), berlin(2026, 12, 7, 10))
    (n,) = ev.notifications
    assert n.to == to
    assert n.cc == expected_cc
    text = " | ".join(n.notes)
    for fragment in notes:
        assert fragment in text
    if not notes:
        assert n.notes == ()


def test_unresolvable_recipient_without_fallback_says_so() -> None:
    rules = make_rules(one_rule("{status: open}"))
    ev = evaluate(
        snapshot(action(owner="")), rules, make_env(fallback=None), State(), berlin(2026, 12, 7, 10)
    )
    notes = [note for n in ev.notifications for note in n.notes]
    assert any("no fallback_recipient" in note for note in notes)
    assert all(LEAD not in n.to for n in ev.notifications)


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        ('[owner, "role(sop-lead)"]', datetime(2026, 12, 7, 13, tzinfo=UTC)),  # Ned first: 08:00 New York
        ('["role(sop-lead)", owner]', berlin(2026, 12, 7, 8)),  # Lee first: 08:00 Berlin
    ],
)
def test_the_first_to_recipient_sets_the_delivery_window(notify: str, expected: datetime) -> None:
    rules = make_rules(one_rule("{status: open}", steps=f"- notify: {notify}"))
    ev = evaluate(snapshot(action(owner="ned")), rules, make_env(), State(), berlin(2026, 12, 7, 7))
    (n,) = ev.notifications
    assert set(n.to) == {"ned@example.com", LEAD}
    assert n.not_before == expected


# --- delivery windows ---------------------------------------------------------------------------

DE_HOLIDAYS = BusinessCalendar(is_holiday=public_holidays("DE"))
CLOSED_MONDAY = BusinessCalendar(closures=[date(2026, 12, 7)])

WINDOW_CASES = [
    # (id, owner, business calendar, now, expected not_before, expected local hour, expected UTC offset)
    ("saturday", "ann", None, berlin(2026, 12, 5, 11), berlin(2026, 12, 7, 8), BERLIN, 1),
    ("friday-evening", "ann", None, berlin(2026, 12, 4, 18, 30), berlin(2026, 12, 7, 8), BERLIN, 1),
    ("friday-18:00-is-closed", "ann", None, berlin(2026, 12, 4, 18), berlin(2026, 12, 7, 8), BERLIN, 1),
    ("inside-window", "ann", None, berlin(2026, 12, 4, 17, 59), berlin(2026, 12, 4, 17, 59), BERLIN, 1),
    ("early-monday", "ann", None, berlin(2026, 12, 7, 6, 15), berlin(2026, 12, 7, 8), BERLIN, 1),
    ("sunday-late", "ann", None, berlin(2026, 12, 6, 23, 59), berlin(2026, 12, 7, 8), BERLIN, 1),
    ("closure", "ann", CLOSED_MONDAY, berlin(2026, 12, 5, 11), berlin(2026, 12, 8, 8), BERLIN, 1),
    ("holiday-christmas", "ann", DE_HOLIDAYS, berlin(2026, 12, 25, 10), berlin(2026, 12, 28, 8), BERLIN, 1),
    ("holiday-eve-evening", "ann", DE_HOLIDAYS, berlin(2026, 12, 24, 19), berlin(2026, 12, 28, 8), BERLIN, 1),
    # a New York recipient: 08:00 New York is 14:00 in Berlin in December
    ("new-york", "ned", None, berlin(2026, 12, 7, 10), datetime(2026, 12, 7, 13, tzinfo=UTC), NEW_YORK, -5),
    ("new-york-in-hours", "ned", None, berlin(2026, 12, 7, 15), berlin(2026, 12, 7, 15), NEW_YORK, -5),
    # Europe's DST change (Sunday 2026-03-29): CET before, CEST after
    ("eu-before-dst", "ann", None, berlin(2026, 3, 27, 7), datetime(2026, 3, 27, 7, tzinfo=UTC), BERLIN, 1),
    ("eu-across-dst", "ann", None, berlin(2026, 3, 28, 12), datetime(2026, 3, 30, 6, tzinfo=UTC), BERLIN, 2),
    (
        "eu-autumn-before",
        "ann",
        None,
        berlin(2026, 10, 23, 7),
        datetime(2026, 10, 23, 6, tzinfo=UTC),
        BERLIN,
        2,
    ),
    (
        "eu-autumn-across",
        "ann",
        None,
        berlin(2026, 10, 23, 19),
        datetime(2026, 10, 26, 7, tzinfo=UTC),
        BERLIN,
        1,
    ),
    # the US changes on 2026-03-08 and 2026-11-01, weeks apart from Europe
    (
        "us-before-dst",
        "ned",
        None,
        berlin(2026, 3, 6, 10),
        datetime(2026, 3, 6, 13, tzinfo=UTC),
        NEW_YORK,
        -5,
    ),
    (
        "us-across-dst",
        "ned",
        None,
        berlin(2026, 3, 7, 12),
        datetime(2026, 3, 9, 12, tzinfo=UTC),
        NEW_YORK,
        -4,
    ),
    (
        "us-autumn-before",
        "ned",
        None,
        berlin(2026, 10, 30, 10),
        datetime(2026, 10, 30, 12, tzinfo=UTC),
        NEW_YORK,
        -4,
    ),
    (
        "us-autumn-across",
        "ned",
        None,
        berlin(2026, 10, 31, 12),
        datetime(2026, 11, 2, 13, tzinfo=UTC),
        NEW_YORK,
        -5,
    ),
]


@pytest.mark.parametrize(
    ("owner", "business", "now", "expected", "tz", "offset_hours"),
    [case[1:] for case in WINDOW_CASES],
    ids=[case[0] for case in WINDOW_CASES],
)
def test_delivery_window(
    owner: str,
    business: BusinessCalendar | None,
    now: datetime,
    expected: datetime,
    tz: ZoneInfo,
    offset_hours: int,
) -> None:
    rules = make_rules(one_rule("{status: open}"))
    ev = evaluate(snapshot(action(owner=owner)), rules, make_env(business=business), State(), now)
    (n,) = ev.notifications
    assert n.at == now
    assert n.not_before == expected
    local = n.not_before.astimezone(tz)
    assert local.utcoffset() == timedelta(hours=offset_hours)
    if expected != now:
        assert local.time() == time(8, 0)
        assert local.date().weekday() < 5


def test_digest_step_is_not_held_by_the_delivery_window() -> None:
    rules = make_rules(one_rule("{status: open}", steps='- notify: ["role(sop-lead)"]\n  via: digest'))
    now = berlin(2026, 12, 5, 23)  # Saturday night
    ev = evaluate(snapshot(action()), rules, make_env(), State(), now)
    assert [(n.channel, n.to, n.not_before) for n in ev.notifications] == [("digest", (LEAD,), now)]
    assert ev.sendable == ev.notifications


# --- rollout safety -----------------------------------------------------------------------------


def test_start_date_ignores_episodes_that_fired_before_it() -> None:
    rules = make_rules(one_rule("{status: open}", fire_at="due", extra="repeat: 1 day"))
    snap = snapshot(
        action(id="old", due=date(2026, 11, 20)),  # fired 2026-11-21 00:00
        action(id="edge", due=date(2026, 11, 30)),  # fired 2026-12-01 00:00 = start_date itself
        action(id="new", due=date(2026, 12, 3)),  # fires 2026-12-04 00:00
    )
    env = make_env(start_date=date(2026, 12, 1))
    log = run(snap, rules, env, berlin(2026, 12, 1, 9), berlin(2026, 12, 8, 9), timedelta(hours=1))
    assert {n.action for n in log} == {"edge", "new"}
    assert min(n.at for n in log if n.action == "new") == berlin(2026, 12, 4)
    # without start_date the old one alerts straight away
    log = run(snap, rules, make_env(), berlin(2026, 12, 1, 9), berlin(2026, 12, 1, 9), timedelta(hours=2))
    assert {n.action for n in log} == {"old", "edge"}


def test_max_messages_per_tick_sends_critical_first_and_defers_the_rest() -> None:
    rules = make_rules(
        one_rule("{tags: urgent}", fire_at="due", severity="critical", rule_id="crit")
        + one_rule("{tags: {ne: urgent}}", fire_at="due", rule_id="warn").removeprefix("rules:\n")
    )
    snap = snapshot(
        action(id="A1", due=date(2026, 11, 25)),
        action(id="A2", due=date(2026, 11, 20)),
        action(id="A3", due=date(2026, 11, 27)),
        action(id="A4", due=date(2026, 11, 23)),
        action(id="A5", due=date(2026, 11, 30), tags=("urgent",)),  # the newest, but critical
    )
    evs = list(
        simulate(
            snap, rules, make_env(cap=2), berlin(2026, 12, 1, 9), berlin(2026, 12, 1, 11), timedelta(hours=1)
        )
    )
    sent = [sorted((n.rule, n.action) for n in ev.sendable) for ev in evs]
    # critical first, then the oldest fire_at
    assert sent == [[("crit", "A5"), ("warn", "A2")], [("warn", "A1"), ("warn", "A4")], [("warn", "A3")]]
    assert [ev.deferred for ev in evs] == [3, 1, 0]
    assert all(len(ev.sendable) <= 2 for ev in evs)


def test_digest_items_do_not_count_against_the_cap() -> None:
    rules = make_rules(one_rule("{status: open}", steps="- notify: [owner]\n  via: digest"))
    snap = snapshot(*(action(id=f"A{i}") for i in range(5)))
    ev = evaluate(snap, rules, make_env(cap=1), State(), berlin(2026, 12, 7, 10))
    assert len(ev.notifications) == 5 and ev.deferred == 0


# --- silences -----------------------------------------------------------------------------------


def test_silenced_notification_is_recorded_once_and_sent_after_the_silence_if_never_sent() -> None:
    rules = make_rules(one_rule("{status: open}", fire_at="due"))
    silence = Silence("s1", ends_at=berlin(2026, 12, 8, 12), author="ops", reason="freeze", rule="r")
    snap = snapshot(action(due=berlin(2026, 12, 7, 10)), action(id="A2", due=berlin(2026, 12, 7, 10)))
    evs = list(
        simulate(
            snap,
            rules,
            make_env(),
            berlin(2026, 12, 7, 9),
            berlin(2026, 12, 9, 9),
            timedelta(hours=1),
            State(silences=(silence,)),
        )
    )
    log = [n for ev in evs for n in ev.notifications]
    assert [(n.action, n.at, n.silenced_by, n.repeat) for n in log] == [
        ("A1", berlin(2026, 12, 7, 10), "s1", 0),
        ("A2", berlin(2026, 12, 7, 10), "s1", 0),
        ("A1", berlin(2026, 12, 8, 12), None, 0),
        ("A2", berlin(2026, 12, 8, 12), None, 0),
    ]
    assert all(n.silenced_by is None for ev in evs for n in ev.sendable)
    assert sum(len(ev.sendable) for ev in evs) == 2
    # the send after the silence must not collide with the silenced record in the outbox
    assert outbox_keys_are_unique(log)


def test_silence_by_action_or_field_condition_only_affects_matching_actions() -> None:
    rules = make_rules(one_rule("{status: open}"))
    silences = (
        Silence("by-id", berlin(2026, 12, 31), "ops", "known", action="A1"),
        Silence(
            "by-team",
            berlin(2026, 12, 31),
            "ops",
            "reorg",
            when={"team": "finance"},
            matcher=compile_condition({"team": "finance"}, FIELDS, BERLIN),
        ),
        Silence("other-rule", berlin(2026, 12, 31), "ops", "n/a", rule="elsewhere"),
    )
    snap = snapshot(action(id="A1"), action(id="A2", team="finance"), action(id="A3", team="supply"))
    ev = evaluate(snap, rules, make_env(), State(silences=silences), berlin(2026, 12, 7, 10))
    assert {n.action: n.silenced_by for n in ev.notifications} == {"A1": "by-id", "A2": "by-team", "A3": None}
    assert [n.action for n in ev.sendable] == ["A3"]


def test_after_a_silence_only_the_current_step_is_sent() -> None:
    silence = Silence("s1", ends_at=berlin(2026, 12, 8, 12), author="ops", reason="freeze")
    snap = snapshot(action(due=berlin(2026, 12, 3, 10)))  # steps Thu, Fri, Mon 10:00
    log = run(
        snap,
        make_rules(LADDER),
        make_env(),
        berlin(2026, 12, 3, 9),
        berlin(2026, 12, 9, 9),
        timedelta(hours=1),
        State(silences=(silence,)),
    )
    assert [(n.step, n.at, n.silenced_by) for n in log] == [
        (0, berlin(2026, 12, 3, 10), "s1"),
        (1, berlin(2026, 12, 4, 10), "s1"),
        (2, berlin(2026, 12, 7, 10), "s1"),
        (2, berlin(2026, 12, 8, 12), None),
    ]
    assert outbox_keys_are_unique(log)


def test_a_silenced_repeat_does_not_collide_with_the_repeat_sent_after_the_silence() -> None:
    rules = make_rules(one_rule("{status: open}", fire_at="due", extra="repeat: 1 day"))
    env = make_env()
    snap = snapshot(action(due=berlin(2026, 12, 7, 10)))
    first, state = _step(State(), snap, rules, env, berlin(2026, 12, 7, 10))
    silence = Silence("s1", ends_at=berlin(2026, 12, 8, 12), author="ops", reason="freeze")
    state = State(state.observations, state.episodes, state.episode_counts, (silence,))
    log = list(first.notifications) + run(
        snap, rules, env, berlin(2026, 12, 7, 11), berlin(2026, 12, 9, 13), timedelta(hours=1), state
    )
    assert [(n.repeat, n.at, n.silenced_by) for n in log] == [
        (0, berlin(2026, 12, 7, 10), None),
        (1, berlin(2026, 12, 8, 10), "s1"),  # recorded once, not every tick
        (1, berlin(2026, 12, 8, 12), None),  # the repeat resumes when the silence ends
        (2, berlin(2026, 12, 9, 12), None),  # counted from that send
    ]
    assert outbox_keys_are_unique(log)


def test_a_step_sent_before_a_silence_is_not_sent_again_when_it_ends() -> None:
    rules = make_rules(one_rule("{status: open}", fire_at="due"))
    env = make_env()
    snap = snapshot(action(due=berlin(2026, 12, 7, 10)))
    ev0, state = _step(State(), snap, rules, env, berlin(2026, 12, 7, 10))
    assert len(ev0.sendable) == 1
    silence = Silence("s1", ends_at=berlin(2026, 12, 7, 12), author="ops", reason="later")
    state = State(state.observations, state.episodes, state.episode_counts, (silence,))
    log = run(snap, rules, env, berlin(2026, 12, 7, 11), berlin(2026, 12, 8, 12), timedelta(hours=1), state)
    assert log == []


# --- firing without fire_at, empty anchors ------------------------------------------------------


def test_without_fire_at_a_rule_fires_as_soon_as_when_holds() -> None:
    rules = make_rules(
        one_rule("{status: blocked}", steps="- notify: [owner]\n- after: 2h\n  notify: ['manager(owner)']")
    )
    env = make_env()
    t0, t1 = berlin(2026, 12, 7, 9), berlin(2026, 12, 7, 10)
    ev0, state = _step(State(), snapshot(action(status="open")), rules, env, t0)
    assert ev0.notifications == ()
    ev1, state = _step(state, snapshot(action(status="blocked")), rules, env, t1)
    assert [(n.step, n.fire_at) for n in ev1.notifications] == [(0, t1)]
    # fire_at stays at the first firing, so step 1 comes two hours later
    log = run(
        snapshot(action(status="blocked")),
        rules,
        env,
        t1 + timedelta(minutes=30),
        berlin(2026, 12, 7, 14),
        timedelta(minutes=30),
        state,
    )
    assert [(n.step, n.at, n.fire_at) for n in log] == [(1, berlin(2026, 12, 7, 12), t1)]


@pytest.mark.parametrize(
    ("fire_at", "fields"),
    [
        ("due", {}),
        ("due", {"due": None}),
        ("due - 1 business day", {"due": None}),
        ("review_date", {"review_date": ""}),
        ("review_date", {"review_date": "not a date"}),
        ("status_changed_at + 1h", {}),
    ],
)
def test_an_empty_anchor_never_fires(fire_at: str, fields: dict) -> None:
    rules = make_rules(one_rule("{status: open}", fire_at=f'"{fire_at}"'))
    log = run(
        snapshot(action(**fields)),
        rules,
        make_env(),
        berlin(2026, 12, 1),
        berlin(2026, 12, 31),
        timedelta(hours=12),
    )
    assert log == []


def test_a_text_date_column_is_an_anchor() -> None:
    rules = make_rules(one_rule("{status: open}", fire_at='"review_date - 1 business day"'))
    snap = snapshot(action(review_date="2026-12-07"))  # Monday: minus 1 bd = Fri, end of day = Sat 00:00
    log = run(snap, rules, make_env(), berlin(2026, 12, 4, 12), berlin(2026, 12, 6), timedelta(hours=1))
    assert [n.at for n in log] == [berlin(2026, 12, 5)]
    assert log[0].fire_at == berlin(2026, 12, 5)


DAY_FIRST = text_date_parser(RegisterConfig(type="csv", path="r.csv", date_format="%d/%m/%Y"), BERLIN)


def day_first_rules(yaml_text: str) -> RuleSet:
    """Rules compiled for a register whose dates are written 05/12/2026 (``date_format``)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.yaml"
        path.write_text(textwrap.dedent(yaml_text).lstrip("\n"), encoding="utf-8")
        return RuleCompiler(FIELDS, ROLES, CycleCalendar(), BERLIN, DAY_FIRST).load([path])


def test_another_column_as_an_anchor_is_read_with_the_registers_date_format() -> None:
    rules = day_first_rules(one_rule("{status: open}", fire_at='"review_date - 1 business day"'))
    snap = snapshot(action(review_date="07/12/2026"))  # Monday 7 Dec, as the register writes it
    log = run(snap, rules, make_env(), berlin(2026, 12, 4, 12), berlin(2026, 12, 6), timedelta(hours=1))
    assert [n.fire_at for n in log] == [berlin(2026, 12, 5)]


@pytest.mark.parametrize(
    ("when", "cell", "matches"),
    [
        ("{review_date: {lt: 2026-12-06}}", "07/12/2026", False),  # as text, "07/..." < "2026-..."
        ("{review_date: {lt: 2026-12-06}}", "05/12/2026", True),
        ("{review_date: {lte: 2026-12-05}}", "2026-12-05T10:00", True),  # on the calendar date
        ("{review_date: 2026-12-05}", "2026-12-05T10:00", True),
        ("{review_date: [2026-12-04, 2026-12-05]}", "05/12/2026", True),
        ("{review_date: {ne: 2026-12-05}}", "05/12/2026", False),
        ("{review_date: {gt: 2026-12-01}}", "soon", False),  # not a date: never ordered
        ("{review_date: {lt: 2026-12-06}}", 46000, False),  # a number from SQLite or XLSX: neither
        ("{review_date: {lt: 2026-12-06}}", "soon", False),  # nor is text that is not a date
        ("{review_date: {ne: 2026-12-06}}", time(10, 30), True),  # a time of day is no date
        ("{region: {gt: 2026}}", "2027", True),  # not a date operand: numbers, as before
        ("{region: {contains: 2026-12}}", "2026-12-05", True),  # text operators stay text
    ],
)
def test_another_column_tested_against_a_date_is_compared_as_a_date(
    when: str, cell: str, matches: bool
) -> None:
    (rule,) = day_first_rules(one_rule(when))
    field = "region" if "region" in when else "review_date"
    assert rule.matches(action(**{field: cell}).fields) is matches


def rules_over_columns(columns: set[str], yaml_text: str) -> RuleSet:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.yaml"
        path.write_text(textwrap.dedent(yaml_text).lstrip("\n"), encoding="utf-8")
        return RuleCompiler(FIELDS | columns, ROLES, CycleCalendar(), BERLIN).load([path])


def test_a_header_with_spaces_is_an_anchor_in_lower_case_with_underscores() -> None:
    """A time expression cannot spell ``Review date``; ``review_date`` names that column."""
    rules = rules_over_columns(
        {"Next Review-Date"}, one_rule("{status: open}", fire_at='"next_review_date - 1 business day"')
    )
    snap = snapshot(action(**{"Next Review-Date": "2026-12-07"}))
    log = run(snap, rules, make_env(), berlin(2026, 12, 4, 12), berlin(2026, 12, 6), timedelta(hours=1))
    assert [n.fire_at for n in log] == [berlin(2026, 12, 5)]
    with pytest.raises(ProblemList, match="unknown anchor 'next_review_date'"):  # two columns spell it
        rules_over_columns({"Next review date", "next-review-date"}, one_rule(fire_at="next_review_date"))


# --- observed fields ----------------------------------------------------------------------------

STALE = one_rule(
    "{status: pending_approval}", fire_at='"status_since + 2 business days"', steps="- notify: [approver]"
)


def test_status_since_comes_from_status_changed_at_when_present() -> None:
    changed_at = berlin(2026, 12, 1, 9)  # Tuesday; + 2 business days = Thursday 09:00
    snap = snapshot(action(status="pending_approval", approver="bob", status_changed_at=changed_at))
    ev = evaluate(snap, make_rules(STALE), make_env(), State(), berlin(2026, 12, 3, 9, 30))
    assert [(n.to, n.fire_at) for n in ev.notifications] == [(("bob@example.com",), berlin(2026, 12, 3, 9))]


def test_status_changed_at_as_naive_datetime_is_in_the_organisation_timezone() -> None:
    snap = snapshot(
        action(status="pending_approval", approver="bob", status_changed_at=datetime(2026, 12, 1, 9))
    )
    ev = evaluate(snap, make_rules(STALE), make_env(), State(), berlin(2026, 12, 3, 9, 30))
    assert [n.fire_at for n in ev.notifications] == [berlin(2026, 12, 3, 9)]


def test_status_since_defaults_to_the_first_observation() -> None:
    rules, env = make_rules(STALE), make_env()
    snap = snapshot(action(status="pending_approval", approver="bob"))
    first = berlin(2026, 12, 3, 9, 30)  # Thursday: + 2 business days = Monday 09:30
    ev0, state = _step(State(), snap, rules, env, first)
    assert ev0.notifications == ()
    assert ev0.observations["A1"].status_since == first
    assert ev0.observations["A1"].first_seen == first
    log = run(
        snap, rules, env, berlin(2026, 12, 4, 9, 30), berlin(2026, 12, 8, 9), timedelta(minutes=30), state
    )
    assert [n.at for n in log] == [berlin(2026, 12, 7, 9, 30)]


def test_a_status_change_resets_status_since_but_not_first_seen() -> None:
    rules, env = make_rules(STALE), make_env()
    t0, t1, t2 = berlin(2026, 12, 1, 9), berlin(2026, 12, 2, 15), berlin(2026, 12, 3, 11)
    _, state = _step(State(), snapshot(action(status="in_progress", approver="bob")), rules, env, t0)
    pending = snapshot(action(status="pending_approval", approver="bob"))
    ev1, state = _step(state, pending, rules, env, t1)
    seen = ev1.observations["A1"]
    assert (seen.status, seen.status_since, seen.first_seen, seen.owner_since) == (
        "pending_approval",
        t1,
        t0,
        t0,
    )
    # unchanged status and owner: nothing new observed
    ev2, state = _step(state, pending, rules, env, t2)
    assert ev2.observations == {}
    # an owner change moves owner_since only
    ev3, state = _step(
        state, snapshot(action(status="pending_approval", approver="bob", owner="bob")), rules, env, t2
    )
    assert (ev3.observations["A1"].status_since, ev3.observations["A1"].owner_since) == (t1, t2)
    # the rule measures from t1 (Wed 15:00): + 2 business days = Fri 15:00
    log = run(
        pending, rules, env, berlin(2026, 12, 4, 14), berlin(2026, 12, 4, 16), timedelta(minutes=30), state
    )
    assert [n.at for n in log] == [berlin(2026, 12, 4, 15)]


# --- simulate == evaluate + apply ---------------------------------------------------------------


def test_simulate_equals_evaluate_and_apply_by_hand() -> None:
    rules = make_rules(RESOLVING % "true")
    snap = snapshot(
        action(id="A1", due=date(2026, 12, 1)),
        action(id="A2", due=berlin(2026, 12, 4, 16), owner="ned"),
        action(id="A3", due=None),
        action(id="A4", due=date(2026, 12, 2), owner=""),
        action(id="A5", due=date(2026, 12, 2), status="done"),
    )
    env = make_env()
    start, end, every = berlin(2026, 12, 1, 8), berlin(2026, 12, 9, 8), timedelta(hours=3)
    simulated = list(simulate(snap, rules, env, start, end, every))
    by_hand: list[Evaluation] = []
    state, now = State(), start
    while now <= end:
        ev = evaluate(snap, rules, env, state, now)
        state = apply(state, ev)
        by_hand.append(ev)
        now += every
    assert simulated == by_hand
    assert len(simulated) == 65
    assert sum(len(ev.notifications) for ev in simulated) > 0
    assert {n.action for ev in simulated for n in ev.notifications} == {"A1", "A2", "A4"}
