"""Build the core's :class:`BusinessCalendar` from the ``business_calendar:`` config section."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo

from sopwatch.adapters.public_holidays import HolidayCache, public_holidays
from sopwatch.config.schema import BusinessCalendarConfig, HolidaySource
from sopwatch.core.business import WEEKDAYS, BusinessCalendar
from sopwatch.errors import ConfigError


def build_business_calendar(
    cfg: BusinessCalendarConfig,
    base_dir: Path | None = None,
    *,
    tz: ZoneInfo | None = None,
    holiday_cache: HolidayCache | None = None,
) -> BusinessCalendar:
    """The calendar the time expressions and delivery windows use.

    ``holidays.ics`` files are read relative to ``base_dir`` (the config file's folder; the current
    folder when None); their timed events count on their local day in ``tz``. A country's public
    holidays come from the ``holidays`` package, through ``holiday_cache`` if one is given.

    Raises :class:`ConfigError` without a location for an unknown holiday country/subdivision;
    the caller knows where ``business_calendar.holidays`` sits in the config file. A problem in an
    .ics file is located at that file.
    """
    hours_start, hours_end = parse_hours(cfg.hours)
    extra: set[date] = set()
    if cfg.holidays is not None and cfg.holidays.ics:
        from sopwatch.adapters.ics_calendar import load_ics_holidays  # only for .ics holiday files

        folder = base_dir if base_dir is not None else Path()
        for relative in cfg.holidays.ics:
            extra |= load_ics_holidays((folder / relative).resolve(), tz)
    return BusinessCalendar(
        workdays=sorted({WEEKDAYS.index(day) for day in cfg.workdays}),
        closures=frozenset(cfg.closures),
        is_holiday=_holiday_predicate(cfg.holidays, extra, holiday_cache),
        hours_start=hours_start,
        hours_end=hours_end,
    )


def parse_hours(text: str) -> tuple[time, time]:
    """``"08:00-18:00"`` -> (08:00, 18:00); an end of ``24:00`` means the whole rest of the day."""
    try:
        start_text, end_text = text.split("-")
        start = _clock(start_text)
        end = time.max if end_text.strip() == "24:00" else _clock(end_text)
    except ValueError:
        raise ConfigError(f"hours must look like '08:00-18:00', got {text!r}") from None
    if start >= end:
        raise ConfigError(f"hours must start before they end, got {text!r}")
    return start, end


def _clock(text: str) -> time:
    hour, minute = text.strip().split(":")
    return time(int(hour), int(minute))


def _holiday_predicate(
    source: HolidaySource | None, extra: Collection[date], cache: HolidayCache | None
) -> Callable[[date], bool] | None:
    if source is None or (source.country is None and source.subdiv is None):
        return frozenset(extra).__contains__ if extra else None
    if source.country is None:
        raise ConfigError(f"holidays: subdiv {source.subdiv!r} needs a country as well")
    return public_holidays(source.country, source.subdiv, extra, cache=cache)
