"""What sopwatch remembers between evaluations, as plain immutable values.

The SQLite store (adapters/state_store.py) persists these; ``simulate`` keeps them in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Observation:
    """The instants sopwatch first saw an action, its current status and its current owner."""

    status: str
    status_since: datetime
    owner: str | None
    owner_since: datetime
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class StepRecord:
    sends: int  # how many times this step went out in the episode (0 while only silenced)
    last_sent: datetime | None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    silenced: bool = False


@dataclass(frozen=True, slots=True)
class HoldRecord:
    uid: str
    step: int
    sequence: int
    start: datetime
    end: datetime
    attendees: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Episode:
    id: str
    rule: str
    action: str
    number: int
    fired_at: datetime
    opened_at: datetime
    steps: Mapping[int, StepRecord] = field(default_factory=dict)
    holds: Mapping[int, HoldRecord] = field(default_factory=dict)
    resolved_at: datetime | None = None
    resolution: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.rule, self.action


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    ends_at: datetime
    author: str
    reason: str
    rule: str | None = None
    action: str | None = None
    when: Mapping[str, Any] | None = None
    matcher: Any = None  # a compiled Condition for ``when``
    created_at: datetime | None = None

    def matches(self, rule_id: str, record: Mapping[str, Any], now: datetime) -> bool:
        if now >= self.ends_at:
            return False
        if self.rule is not None and self.rule != rule_id:
            return False
        if self.action is not None and self.action != record.get("id"):
            return False
        return self.matcher is None or self.matcher.test(record)


@dataclass(frozen=True)
class State:
    observations: Mapping[str, Observation] = field(default_factory=dict)
    episodes: Mapping[tuple[str, str], Episode] = field(default_factory=dict)  # open ones
    episode_counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    silences: tuple[Silence, ...] = ()
