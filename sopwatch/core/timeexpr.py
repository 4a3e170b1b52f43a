"""Durations and time expressions (``status_since + 2 business days``), parsed once per rule.

Date-only semantics (SPEC §2): a date anchor stays a date through day, week and business-day steps
and becomes the end of the resulting day (24:00 local) only when the expression ends or an
hour/minute step follows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sopwatch.core.business import BusinessCalendar

MINUTES, HOURS, DAYS, WEEKS, BUSINESS_DAYS = "minutes", "hours", "days", "weeks", "business days"

_UNITS = {
    "m": MINUTES, "min": MINUTES, "mins": MINUTES, "minute": MINUTES, "minutes": MINUTES,
    "h": HOURS, "hour": HOURS, "hours": HOURS,
    "d": DAYS, "day": DAYS, "days": DAYS,
    "w": WEEKS, "week": WEEKS, "weeks": WEEKS,
    "bd": BUSINESS_DAYS, "business day": BUSINESS_DAYS, "business days": BUSINESS_DAYS,
}  # fmt: skip
_DURATION = re.compile(
    r"(\d+)\s*(business\s+days?|minutes?|mins?|hours?|days?|weeks?|bd|m|h|d|w)(?![A-Za-z_])"
)
_ANCHOR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")


class ExpressionError(ValueError):
    """A duration or time expression that cannot be parsed; the message says why."""


@dataclass(frozen=True, slots=True)
class Duration:
    amount: int
    unit: str

    def __str__(self) -> str:
        return f"{self.amount} {self.unit}"

    @property
    def is_clock(self) -> bool:
        return self.unit in (MINUTES, HOURS)


def parse_duration(text: str | int) -> Duration:
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ExpressionError(f"expected a duration such as '2 business days' or '4h', got {text!r}")
    if isinstance(text, int):
        raise ExpressionError(f"a duration needs a unit: '{text} days', '{text}h', '{text}bd'")
    match = _DURATION.fullmatch(" ".join(text.split()))
    if not match:
        raise ExpressionError(
            f"invalid duration {text!r}: expected N minutes|hours|days|weeks|business days "
            "or 30m 4h 2d 1w 3bd"
        )
    duration = Duration(int(match.group(1)), _UNITS[" ".join(match.group(2).split())])
    if duration.amount > _LONGEST[duration.unit]:
        raise ExpressionError(f"duration {text!r} is longer than 100 years")
    return duration


# No rule needs to look further ahead; beyond this, arithmetic would only run off the calendar
# (and business days are counted one at a time).
_LONGEST = {
    MINUTES: 100 * 366 * 24 * 60,
    HOURS: 100 * 366 * 24,
    DAYS: 100 * 366,
    WEEKS: 100 * 53,
    BUSINESS_DAYS: 100 * 366,
}


# Where arithmetic that would leave datetime's range stops instead of raising, a day inside it so
# that any timezone can still show the result: a placeholder such as 9999-12-31 in the register
# means "never", not a failed tick. Nothing comes due at LATEST; EARLIEST is as overdue as any
# past date.
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LAST_DAY, _FIRST_DAY = date(9999, 12, 29), date(1, 1, 3)


def end_of_day(day: date, tz: tzinfo) -> datetime:
    """24:00 local of ``day``, i.e. the next day's midnight: what a date-only value means."""
    if day >= _LAST_DAY:
        return LATEST
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)


class Clock:
    """Calendar arithmetic in the organisation's timezone with its business calendar.

    Results that would fall outside the years 1 to 9999 stop at :data:`EARLIEST`/:data:`LATEST`
    (dates at ``date.min``/``date.max``).
    """

    def __init__(self, tz: ZoneInfo, business: BusinessCalendar) -> None:
        self.tz = tz
        self.business = business

    def end_of_day(self, day: date) -> datetime:
        """24:00 local of ``day``, i.e. the next day's midnight."""
        return end_of_day(day, self.tz)

    def as_instant(self, value: date | datetime) -> datetime:
        if not isinstance(value, datetime):
            return self.end_of_day(value)
        instant = value if value.tzinfo else value.replace(tzinfo=self.tz)
        # Comparing is safe where converting is not: a register's 9999-12-31T23:59 stays usable.
        return LATEST if instant > LATEST else EARLIEST if instant < EARLIEST else instant

    def shift_date(self, day: date, sign: int, duration: Duration) -> date:
        try:
            if duration.unit == BUSINESS_DAYS:
                return self.business.offset(day, sign * duration.amount, sign < 0)
            days = duration.amount * (7 if duration.unit == WEEKS else 1)
            return day + timedelta(days=sign * days)
        except OverflowError:
            return date.max if sign > 0 else date.min

    def shift(self, instant: datetime, sign: int, duration: Duration) -> datetime:
        """Clock units move real time; day units move the local calendar, keeping the wall time."""
        try:
            local = instant.astimezone(self.tz)
        except OverflowError:  # the instant itself lies within hours of the calendar's end
            return LATEST if instant.year > 1 else EARLIEST
        try:
            if duration.is_clock:
                minutes = duration.amount * (60 if duration.unit == HOURS else 1)
                moved = local.astimezone(UTC) + timedelta(minutes=sign * minutes)
                # Whichever end it crossed, not the step's sign: 9999-12-31 - 1 hour is still never.
                return (
                    LATEST if moved > LATEST else EARLIEST if moved < EARLIEST else moved.astimezone(self.tz)
                )
            day = self.shift_date(local.date(), sign, duration)
        except OverflowError:  # moved off the calendar, in the step's direction
            return LATEST if sign > 0 else EARLIEST
        if day > _LAST_DAY:
            return LATEST
        if day < _FIRST_DAY:
            return EARLIEST
        return datetime.combine(day, local.time(), tzinfo=self.tz)

    def add(self, instant: datetime, duration: Duration) -> datetime:
        return self.shift(instant, 1, duration)


# The value of an anchor for one action; None means "empty": the rule does not fire.
AnchorResolver = Callable[[str, Mapping[str, Any]], "date | datetime | None"]


@dataclass(frozen=True, slots=True)
class TimeExpression:
    source: str
    anchor: str
    steps: tuple[tuple[int, Duration], ...]

    def evaluate(self, clock: Clock, value: date | datetime | None) -> datetime | None:
        """Apply the steps to the anchor's ``value``; the caller resolves the anchor."""
        if value is None:
            return None
        # A date-time anchor past an end of the calendar starts from that end (as_instant).
        current: date | datetime = clock.as_instant(value) if isinstance(value, datetime) else value
        for sign, duration in self.steps:
            if isinstance(current, datetime):
                current = clock.shift(current, sign, duration)
            elif duration.is_clock:
                current = clock.shift(clock.end_of_day(current), sign, duration)
            else:
                current = clock.shift_date(current, sign, duration)
        return clock.as_instant(current)


def parse_time_expression(text: Any) -> TimeExpression:
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"expected a time expression such as 'due - 2 business days', got {text!r}")
    source = text.strip()
    match = _ANCHOR.match(source)
    if not match:
        raise ExpressionError(f"time expression {source!r} must start with an anchor such as 'due' or 'now'")
    anchor = match.group(0)
    rest = source[match.end() :]
    steps: list[tuple[int, Duration]] = []
    term = re.compile(r"\s*([+-])\s*([^+-]+)")
    position = 0
    while position < len(rest):
        if not rest[position:].strip():
            break
        m = term.match(rest, position)
        if not m:
            raise ExpressionError(
                f"in {source!r}: expected '+ DURATION' or '- DURATION' after {source[: match.end() + position].strip()!r}"
            )
        try:
            duration = parse_duration(m.group(2).strip())
        except ExpressionError as exc:
            raise ExpressionError(f"in {source!r}: {exc}") from None
        steps.append((1 if m.group(1) == "+" else -1, duration))
        position = m.end()
    return TimeExpression(source, anchor, tuple(steps))
