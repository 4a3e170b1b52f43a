"""Parsing instants and steps given on the command line."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sopwatch.core.timeexpr import BUSINESS_DAYS, Duration, ExpressionError, parse_duration


def parse_instant(text: str, tz: ZoneInfo) -> datetime:
    """ISO 8601 date or datetime; naive values are in ``tz`` and a bare date means its 00:00."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=tz)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 date or datetime such as 2026-12-03T09:00, got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=tz)


def parse_step(text: str) -> timedelta:
    """A simulation step: a fixed length of real time (``1h``, ``30m``, ``1d``)."""
    duration = parse_duration(text)
    if duration.unit == BUSINESS_DAYS:
        raise ExpressionError("the step must be a fixed length of time such as 1h, 30m or 1d")
    minutes = {"minutes": 1, "hours": 60, "days": 1440, "weeks": 10080}[duration.unit]
    if duration.amount == 0:
        raise ExpressionError("the step must be longer than zero")
    return timedelta(minutes=duration.amount * minutes)


def interval_seconds(duration: Duration) -> float:
    """A clock-time duration in seconds (business days have no fixed length)."""
    if duration.unit == BUSINESS_DAYS:
        raise ExpressionError("an interval must be a fixed length of time such as 5m or 1h")
    return duration.amount * {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}[duration.unit]
