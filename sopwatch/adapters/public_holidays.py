"""Public holidays of a country from the ``holidays`` package, remembered between runs.

Asking the package for any country imports all of its ~250 country modules: ~0.1 s that every
command paid before reading a single row. So the dates of the years around today are kept in a
small JSON file, by package version, country and subdivision; a later command finds them there
without importing the package at all. The file only ever saves time: a day outside the kept
years is asked of the package, and a missing, damaged or unwritable file means asking the package,
as if there were no cache.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from sopwatch.errors import ConfigError

CACHE_FORMAT = 1
YEARS_BEFORE, YEARS_AFTER = 1, 2  # kept around this year: last year's dates still come up


def public_holidays(
    country: str,
    subdiv: str | None = None,
    extra: Collection[date] = (),
    *,
    cache: HolidayCache | None = None,
    today: date | None = None,
) -> Callable[[date], bool]:
    """``is_holiday`` for a country (ISO code, any case) and optional subdivision, plus ``extra``.

    Raises :class:`ConfigError` (without a location) for a country or subdivision the package
    does not know. With a ``cache``, the years around ``today`` (default: the system date) come
    from it when it has them, and are stored in it when it had not.
    """
    this_year = (today or date.today()).year
    years = range(this_year - YEARS_BEFORE, this_year + YEARS_AFTER + 1)
    key = (country.strip().upper(), subdiv.strip().upper() if subdiv else None)
    known = cache.lookup(key, years) if cache is not None else None
    if known is None:
        country_code, subdiv_code = _supported(country, subdiv)
        known = HolidayYears(
            country_code, subdiv_code, years, _package_dates(country_code, subdiv_code, years)
        )
        if cache is not None:
            cache.store(key, known)
    return _PublicHolidays(known, frozenset(extra))


@dataclass(frozen=True, slots=True)
class HolidayYears:
    """The holiday dates of one country (and subdivision, both spelled as the package spells
    them) for a run of whole years."""

    country: str
    subdiv: str | None
    years: range
    dates: frozenset[date]


class _PublicHolidays:
    """The predicate: a set lookup within the kept years, the package itself outside them."""

    __slots__ = ("_first", "_known", "_last", "_package", "country", "extra", "subdiv")

    def __init__(self, entry: HolidayYears, extra: frozenset[date]) -> None:
        self.country, self.subdiv, self.extra = entry.country, entry.subdiv, extra
        self._known = entry.dates | extra
        self._first = date(entry.years.start, 1, 1)
        self._last = date(entry.years.stop - 1, 12, 31)
        self._package: Any = None  # the package's table, made when a day outside the years comes

    def __call__(self, day: date) -> bool:
        if self._first <= day <= self._last:
            return day in self._known
        if day in self.extra:
            return True
        if self._package is None:
            import holidays  # only for a day outside the kept years

            self._package = holidays.country_holidays(self.country, subdiv=self.subdiv)
        return day in self._package


def _supported(country: str, subdiv: str | None) -> tuple[str, str | None]:
    """The package's own spelling of the country and subdivision, or a ConfigError that says why."""
    import holidays  # lazily: listing the countries loads every country table

    supported: dict[str, list[str]] = holidays.list_supported_countries()
    code = country.strip().upper()
    if code not in supported:
        hint = difflib.get_close_matches(code, list(supported), n=1)
        suffix = f"; did you mean {hint[0]!r}?" if hint else " (use an ISO 3166 code such as DE or US)"
        raise ConfigError(f"holidays: unknown country {country!r}{suffix}")
    if subdiv is None:
        return code, None
    by_upper = {s.upper(): s for s in supported[code]}
    found = by_upper.get(subdiv.strip().upper())
    if found is None:
        known = ", ".join(supported[code]) or "none"
        raise ConfigError(f"holidays: country {code} has no subdivision {subdiv!r} (known: {known})")
    return code, found


def _package_dates(country: str, subdiv: str | None, years: range) -> frozenset[date]:
    import holidays

    try:
        return frozenset(holidays.country_holidays(country, subdiv=subdiv, years=years))
    except (NotImplementedError, KeyError, ValueError) as exc:  # the package's own refusal
        raise ConfigError(f"holidays: {exc}") from None


class HolidayCache:
    """A JSON file of holiday dates by country and subdivision, for one version of the package.

    Entries of another package version are not used (its tables may have changed). Reading
    forgives everything, writing replaces the file in one rename: two commands writing at once
    lose at most one entry, which the next command computes again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def lookup(self, key: tuple[str, str | None], years: range) -> HolidayYears | None:
        """The entry for ``key`` if it covers ``years`` (a cache miss is None)."""
        raw = self._tables().get(_name(key))
        try:
            first, last = raw["years"]
            if not (first <= years.start and years.stop - 1 <= last):
                return None
            dates = frozenset(map(date.fromisoformat, raw["dates"]))
            return HolidayYears(raw["country"], raw["subdiv"], range(first, last + 1), dates)
        except (KeyError, TypeError, ValueError):  # no entry, or not one this code wrote
            return None

    def store(self, key: tuple[str, str | None], entry: HolidayYears) -> None:
        tables = self._tables()
        tables[_name(key)] = {
            "country": entry.country,
            "subdiv": entry.subdiv,
            "years": [entry.years.start, entry.years.stop - 1],
            "dates": sorted(day.isoformat() for day in entry.dates),
        }
        content = {"format": CACHE_FORMAT, "holidays": _package_version(), "tables": tables}
        with contextlib.suppress(OSError):  # a read-only home: the next command asks the package again
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".holidays-", suffix=".json")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(content, out)
                os.replace(temporary, self.path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)

    def _tables(self) -> dict[str, Any]:
        try:
            content = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if (
            not isinstance(content, dict)
            or content.get("format") != CACHE_FORMAT
            or content.get("holidays") != _package_version()
            or not isinstance(content.get("tables"), dict)
        ):
            return {}
        return content["tables"]


def default_holiday_cache() -> HolidayCache | None:
    """``$XDG_CACHE_HOME/sopwatch/holidays.json`` (``~/.cache`` by default); None without a home."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no HOME and no password entry (some service accounts)
            return None
    return HolidayCache(Path(base) / "sopwatch" / "holidays.json")


def _name(key: tuple[str, str | None]) -> str:
    country, subdiv = key
    return country if subdiv is None else f"{country}/{subdiv}"


@cache
def _package_version() -> str:
    """The installed package's version, read from its metadata: importing it is what we avoid."""
    try:
        return metadata.version("holidays")
    except metadata.PackageNotFoundError:
        return "unknown"
