"""The evaluation plan is only a shortcut: simulating with it must equal a full scan at every tick."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from sopwatch.config.loader import load_setup
from sopwatch.core.evaluate import apply, evaluate
from sopwatch.core.model import Action, Snapshot
from sopwatch.core.rules import SEVERITY_RANK
from sopwatch.core.simulate import simulate, ticks
from sopwatch.core.state import Silence, State

ROOT = Path(__file__).resolve().parent.parent


def full_scan(snapshot, rules, env, start, end, every, state=None):
    current = state or State()
    for now in ticks(start, end, every):
        evaluation = evaluate(snapshot, rules, env, current, now)  # no plan: every pair, every tick
        current = apply(current, evaluation)
        yield evaluation


def outcome(evaluations):
    return [
        (n.at, n.rule, n.action, n.step, n.repeat, n.kind, n.to, n.cc, n.not_before, n.silenced_by)
        for evaluation in evaluations
        for n in evaluation.notifications
    ]


@pytest.fixture(scope="module")
def example():
    return load_setup(ROOT / "config.example.yaml")


def test_a_month_of_the_example_is_the_same_with_and_without_the_plan(example) -> None:
    tz = example.loaded.tz
    start, end = datetime(2026, 11, 30, tzinfo=tz), datetime(2026, 12, 31, 23, tzinfo=tz)
    args = (example.snapshot, example.rules, example.environment, start, end, timedelta(hours=1))
    planned = outcome(simulate(*args))
    scanned = outcome(full_scan(*args))
    assert len(planned) > 100
    assert planned == scanned


@pytest.mark.parametrize("seed", range(6))
def test_random_registers_silences_and_steps_agree(example, seed: int) -> None:
    """Random statuses, kinds, owners and due dates, a silence, odd tick lengths and a small cap."""
    rng = random.Random(seed)
    tz = example.loaded.tz
    statuses = ["open", "in_progress", "pending_approval", "blocked", "done", "approved"]
    kinds = ["decision", "action", "approval", "input"]
    people = list(example.environment.directory.people)
    actions = {}
    for base in list(example.snapshot)[:40]:
        fields = dict(base.fields)
        fields["status"] = rng.choice(statuses)
        fields["kind"] = rng.choice(kinds)
        fields["owner"] = rng.choice([*people, None])
        fields["due"] = date(2026, 12, 1) + timedelta(days=rng.randint(-10, 25))
        actions[base.id] = Action(base.id, fields, base.row)
    snapshot = Snapshot(actions, example.snapshot.columns)
    env = replace(example.environment, max_messages_per_tick=rng.choice([3, 10, 200]))
    rule = rng.choice(list(example.rules)).id
    silence = Silence("s1", datetime(2026, 12, rng.randint(3, 20), 9, tzinfo=tz), "a", "r", rule=rule)
    state = State(silences=(silence,))
    start, end = datetime(2026, 12, 1, tzinfo=tz), datetime(2026, 12, 24, tzinfo=tz)
    every = timedelta(minutes=rng.choice([20, 45, 60, 180]))
    args = (snapshot, example.rules, env, start, end, every)
    assert outcome(simulate(*args, state=state)) == outcome(full_scan(*args, state=state))


def capped_by_hand(uncapped, cap: int):
    """What ``max_messages_per_tick=cap`` keeps of an uncapped evaluation, by the rule of SPEC §2:
    resolutions first, then by severity and fire_at; a pair whose messages exceed what is left waits.
    """
    pairs: dict[tuple[str, str], list] = {}
    for n in uncapped.notifications:  # in rule order, then register order
        pairs.setdefault((n.rule, n.action), []).append(n)
    ranked = sorted(
        pairs.values(),
        key=lambda ns: (
            not any(n.kind in ("resolved", "cancel") for n in ns),
            SEVERITY_RANK[ns[0].severity],
            ns[0].fire_at,
        ),
    )
    budget, waiting = cap, set()
    for ns in ranked:
        messages = sum(1 for n in ns if n.channel != "digest" and n.silenced_by is None)
        if messages > budget:
            waiting.add((ns[0].rule, ns[0].action))
            continue
        budget -= messages
    return [n for n in uncapped.notifications if (n.rule, n.action) not in waiting], waiting


@pytest.mark.parametrize("seed", range(4))
def test_the_cap_keeps_what_an_uncapped_evaluation_would_rank_first(example, seed: int) -> None:
    """Sends deferred once the budget is spent are not built; what is kept must not change for it,
    with a full scan or with the plan (the uncapped evaluation is a full scan at every tick)."""
    rng = random.Random(seed)
    tz = example.loaded.tz
    people = list(example.environment.directory.people)
    actions = {}
    for base in list(example.snapshot)[:60]:
        fields = dict(base.fields)
        fields["status"] = rng.choice(["open", "in_progress", "pending_approval", "blocked", "done"])
        fields["owner"] = rng.choice([*people, None])
        fields["due"] = date(2026, 12, 1) + timedelta(days=rng.randint(-10, 20))
        actions[base.id] = Action(base.id, fields, base.row)
    snapshot = Snapshot(actions, example.snapshot.columns)
    cap = rng.choice([1, 2, 5])
    env = replace(example.environment, max_messages_per_tick=cap)
    unlimited = replace(example.environment, max_messages_per_tick=10**9)
    rule = rng.choice(list(example.rules)).id
    silence = Silence("s1", datetime(2026, 12, rng.randint(3, 12), 9, tzinfo=tz), "a", "r", rule=rule)
    state = State(silences=(silence,))
    deferrals, plan = 0, None
    for now in ticks(datetime(2026, 12, 1, tzinfo=tz), datetime(2026, 12, 16, tzinfo=tz), timedelta(hours=3)):
        capped = evaluate(snapshot, example.rules, env, state, now, plan)
        uncapped = evaluate(snapshot, example.rules, unlimited, state, now)
        expected, waiting = capped_by_hand(uncapped, cap)
        assert list(capped.notifications) == expected
        assert capped.deferred == len(waiting)
        assert capped.episodes == tuple(e for e in uncapped.episodes if (e.rule, e.action) not in waiting)
        assert capped.resolved == tuple(e for e in uncapped.resolved if (e.rule, e.action) not in waiting)
        deferrals += len(waiting)
        state, plan = apply(state, capped), capped.plan
    assert deferrals > 0  # the cap did hold sends back
