"""Business days and delivery windows.

Business-day arithmetic follows SPEC §2 and ``numpy.busday_offset``: a non-business date first
rolls forward (for ``+``) or backward (for ``-``) to the nearest business day, then moves N
business days. The tests check this against numpy as an independent oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class BusinessCalendar:
    """Which dates are business days, and the hours in which mail may be delivered."""

    def __init__(
        self,
        workdays: Collection[int] = range(5),  # date.weekday(): 0 = Monday
        closures: Collection[date] = (),
        is_holiday: Callable[[date], bool] | None = None,
        hours_start: time = time(8, 0),
        hours_end: time = time(18, 0),  # exclusive
    ) -> None:
        if not workdays:
            raise ValueError("at least one weekday must be a business day")
        self.workdays = frozenset(workdays)
        self.closures = frozenset(closures)
        self.is_holiday = is_holiday or (lambda _d: False)
        self.hours_start = hours_start
        self.hours_end = hours_end
        # Per-calendar memo: the same dates come up for thousands of actions.
        self.is_business_day: Callable[[date], bool] = lru_cache(maxsize=65536)(self._is_business_day)
        self.offset: Callable[..., date] = lru_cache(maxsize=65536)(self._offset)

    def _is_business_day(self, day: date) -> bool:
        return day.weekday() in self.workdays and day not in self.closures and not self.is_holiday(day)

    def _offset(self, day: date, n: int, backward: bool = False) -> date:
        """``day`` moved by ``n`` business days. A day that is not a business day first rolls
        forward, or backward for n < 0 and for ``backward`` (``- 0 business days``)."""
        is_bd = self.is_business_day
        step = timedelta(days=-1 if n < 0 or backward else 1)
        while not is_bd(day):
            day += step
        for _ in range(abs(n)):
            day += step
            while not is_bd(day):
                day += step
        return day

    def next_window_start(self, instant: datetime, tz: ZoneInfo) -> datetime:
        """``instant`` itself if it lies in a delivery window in ``tz``, else the next window start."""
        local = instant.astimezone(tz)
        day = local.date()
        if self.is_business_day(day) and self.hours_start <= local.time() < self.hours_end:
            return instant
        try:
            if not (self.is_business_day(day) and local.time() < self.hours_start):
                day = self.offset(day + timedelta(days=1), 0)
            start = datetime.combine(day, self.hours_start, tzinfo=tz)
            return start.astimezone(instant.tzinfo) if instant.tzinfo else start
        except OverflowError:  # no window left before the calendar ends (year 9999): no reason to wait
            return instant
