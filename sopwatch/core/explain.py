"""``explain``: for one action, what every rule thinks of it at one instant, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sopwatch.core.evaluate import Environment, current_step, firing, record_of, resolve_recipients, step_due
from sopwatch.core.model import Snapshot
from sopwatch.core.rules import RuleSet
from sopwatch.core.state import State


@dataclass(frozen=True)
class StepView:
    index: int
    due: datetime | None
    via: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    notes: tuple[str, ...]
    sends: int = 0


@dataclass(frozen=True)
class RuleView:
    rule: str
    severity: str
    matched: bool
    reason: str | None  # why it does not fire
    fire_at: datetime | None
    episode: str | None
    current: StepView | None
    next: StepView | None
    next_repeat: datetime | None
    silences: tuple[str, ...]
    steps: tuple[StepView, ...] = field(default_factory=tuple)


def explain(
    action_id: str, snapshot: Snapshot, rules: RuleSet, env: Environment, state: State, now: datetime
) -> list[RuleView]:
    record = record_of(snapshot, state, now, action_id)
    views = []
    for rule in rules:
        episode = state.episodes.get((rule.id, action_id))
        fire_at, reason = firing(rule, record, episode, env, now)
        computed_fire_at = fire_at
        waiting = record["status"] not in env.terminal and rule.matches(record)
        if fire_at is None and rule.fire_at is not None and waiting:
            # It matches but fire_at is still ahead: show when it will fire. A rule that does
            # not match shows no instants, which would read as a promise.
            computed_fire_at = rule.fire_at.at(env.clock, record, env.cycles, now)
        steps = []
        for step in rule.steps:
            to, cc, notes = resolve_recipients(step, record, env)
            sent = episode.steps.get(step.index) if episode else None
            due = step_due(step, env.clock, computed_fire_at) if computed_fire_at else None
            steps.append(
                StepView(
                    step.index,
                    due,
                    step.via,
                    tuple(r.email for r in to),
                    cc,
                    notes,
                    sent.sends if sent else 0,
                )
            )
        current = next_step = next_repeat = None
        if fire_at is not None:
            step = current_step(rule, env.clock, fire_at, now)
            if step is not None:
                current = steps[step.index]
                sent = episode.steps.get(step.index) if episode else None
                if rule.repeat and sent is not None and sent.last_sent is not None:
                    next_repeat = env.clock.add(sent.last_sent, rule.repeat)
            following = (step.index + 1) if step is not None else 0
            next_step = steps[following] if following < len(steps) else None
        elif computed_fire_at is not None:
            next_step = steps[0]
        silences = tuple(
            f"{s.id} until {s.ends_at.isoformat()} ({s.reason})"
            for s in state.silences
            if s.matches(rule.id, record, now)
        )
        views.append(
            RuleView(
                rule=rule.id,
                severity=rule.severity,
                matched=fire_at is not None,
                reason=reason,
                fire_at=computed_fire_at,
                episode=episode.id if episode else None,
                current=current,
                next=next_step,
                next_repeat=next_repeat,
                silences=silences,
                steps=tuple(steps),
            )
        )
    return views
