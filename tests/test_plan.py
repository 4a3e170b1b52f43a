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
