"""Build the core's :class:`BusinessCalendar` from the ``business_calendar:`` config section."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection
from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo

from sopwatch.config.schema import BusinessCalendarConfig, HolidaySource
from sopwatch.core.business import WEEKDAYS, BusinessCalendar, make_holiday_predicate
from sopwatch.errors import ConfigError


def build_business_calendar(
    cfg: BusinessCalendarConfig, base_dir: Path | None = None, *, tz: ZoneInfo | None = None
) -> BusinessCalendar:
    """The calendar the time expressions and delivery windows use.

    ``holidays.ics`` files are read relative to ``base_dir`` (the config file's folder; the current
    folder when None); their timed events count on their local day in ``tz``.

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
        is_holiday=_holiday_predicate(cfg.holidays, extra),
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
    source: HolidaySource | None, extra: Collection[date] = ()
) -> Callable[[date], bool] | None:
    if source is None or (source.country is None and source.subdiv is None):
        return frozenset(extra).__contains__ if extra else None
    if source.country is None:
        raise ConfigError(f"holidays: subdiv {source.subdiv!r} needs a country as well")
    import holidays  # lazily: the country tables are slow to load

    supported: dict[str, list[str]] = holidays.list_supported_countries()
    country = source.country.strip().upper()
    if country not in supported:
        hint = difflib.get_close_matches(country, list(supported), n=1)
        suffix = f"; did you mean {hint[0]!r}?" if hint else " (use an ISO 3166 code such as DE or US)"
        raise ConfigError(f"holidays: unknown country {source.country!r}{suffix}")
    subdiv = source.subdiv
    if subdiv is not None:
        by_upper = {s.upper(): s for s in supported[country]}
        subdiv = by_upper.get(subdiv.strip().upper())
        if subdiv is None:
            known = ", ".join(supported[country]) or "none"
            raise ConfigError(
                f"holidays: country {country} has no subdivision {source.subdiv!r} (known: {known})"
            )
    try:
        return make_holiday_predicate(country, subdiv, extra)
    except (NotImplementedError, KeyError, ValueError) as exc:  # the package's own refusal
        raise ConfigError(f"holidays: {exc}") from None
