"""Replay time over a fixed register from a fresh state, exactly as the daemon would tick."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from sopwatch.core.evaluate import Environment, Evaluation, apply, evaluate
from sopwatch.core.model import Snapshot
from sopwatch.core.rules import RuleSet
from sopwatch.core.state import State


def ticks(start: datetime, end: datetime, every: timedelta) -> Iterator[datetime]:
    """``start``, ``start + every``, ... up to and including ``end``, in real (UTC) time."""
    if every <= timedelta(0):
        raise ValueError("the step must be positive")
    instant = start
    while instant <= end:
        yield instant
        try:
            instant = instant + every
        except OverflowError:  # the calendar ends (year 9999) before ``end`` does
            return


def simulate(
    snapshot: Snapshot,
    rules: RuleSet,
    env: Environment,
    start: datetime,
    end: datetime,
    every: timedelta,
    state: State | None = None,
) -> Iterator[Evaluation]:
    """One evaluation per tick, each applied to the state the next one sees."""
    current = state if state is not None else State()
    plan = None  # the register stays as it is, so each tick looks only at pairs that came due
    for now in ticks(start, end, every):
        evaluation = evaluate(snapshot, rules, env, current, now, plan)
        current = apply(current, evaluation)
        plan = evaluation.plan
        yield evaluation
