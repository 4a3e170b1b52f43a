"""Compiled rules: conditions, time expressions and recipients parsed once, ready to evaluate."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sopwatch.core.conditions import Condition, pinned_values, predicate, without_pins
from sopwatch.core.model import CycleCalendar
from sopwatch.core.recipients import RecipientExpr
from sopwatch.core.timeexpr import Clock, Duration, TimeExpression

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}

# Resolves an anchor for one record: (record, cycles, now, fire_at) -> value or None.
AnchorGetter = Callable[
    [Mapping[str, Any], CycleCalendar, datetime, "datetime | None"], "date | datetime | None"
]


@dataclass(frozen=True, slots=True)
class CompiledTime:
    expression: TimeExpression
    anchor: AnchorGetter

    def at(
        self,
        clock: Clock,
        record: Mapping[str, Any],
        cycles: CycleCalendar,
        now: datetime,
        fire_at: datetime | None = None,
    ) -> datetime | None:
        return self.expression.evaluate(clock, self.anchor(record, cycles, now, fire_at))

    def __str__(self) -> str:
        return self.expression.source


@dataclass(frozen=True, slots=True)
class CalendarHold:
    start: CompiledTime
    duration: Duration
    busy: bool
    title: str | None


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    after: Duration | None
    notify: tuple[RecipientExpr, ...]
    cc: tuple[RecipientExpr, ...]
    template: str
    via: str  # email | digest
    calendar_hold: CalendarHold | None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    severity: str
    when: Condition
    fire_at: CompiledTime | None
    steps: tuple[Step, ...]
    repeat: Duration | None
    notify_resolved: bool
    source: str  # "file:line" for messages
    matches: Callable[[Mapping[str, Any]], bool] = field(default=lambda record: True, compare=False)
    # Text values that fields must have for ``when`` to hold: candidates come from an index.
    pins: Mapping[str, frozenset[str]] = field(default_factory=dict, compare=False)
    # ``matches`` for a record known to have the pinned values: the index already tested them.
    matches_unpinned: Callable[[Mapping[str, Any]], bool] = field(default=lambda record: True, compare=False)

    def __post_init__(self) -> None:
        # Compiled once per rule, never per row.
        object.__setattr__(self, "matches", predicate(self.when))
        object.__setattr__(self, "pins", pinned_values(self.when))
        object.__setattr__(self, "matches_unpinned", predicate(without_pins(self.when)))

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)
