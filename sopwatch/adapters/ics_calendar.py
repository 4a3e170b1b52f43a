"""Read iCalendar (.ics) exports from Outlook, Google & co. as cycle calendars and holiday calendars.

Everything a third-party file can get wrong ends as one :class:`ConfigError` located at the file:
a one-line message that names the event at fault, never another exception type. icalendar parses
(it resolves a calendar's own VTIMEZONE definitions, so Outlook's ``W. Europe Standard Time``
works); recurring-ical-events expands RRULE, RDATE, EXDATE and moved occurrences (RECURRENCE-ID)
and applies ``X-WR-TIMEZONE`` (Google) to floating and UTC times.

**The expansion window.** Recurring events may repeat forever, and the loader has no clock, so
each file is expanded over a window derived from the file itself: from the earliest DTSTART of the
events that matter to the latest date the file mentions (DTSTART, DTEND, RECURRENCE-ID, RDATE,
DTSTAMP, LAST-MODIFIED, CREATED; DTSTAMP is usually the export time) plus
:data:`CYCLE_YEARS_AHEAD` years for cycle calendars, :data:`HOLIDAY_YEARS_AHEAD` for holiday
calendars. A cycle calendar's window can be set explicitly (``from``/``to`` in config). A file
that would expand to more than :data:`MAX_OCCURRENCES` occurrences is refused.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sopwatch.core.model import Cycle, CycleCalendar, Phase
from sopwatch.errors import ConfigError, Location

CYCLE_YEARS_AHEAD = 3
HOLIDAY_YEARS_AHEAD = 10
MAX_OCCURRENCES = 10_000
MAX_FILE_BYTES = 50_000_000

Match = Literal["summary", "categories"]
PhaseRule = tuple[re.Pattern[str], str]
_TIMING = ("DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID")
_FIRST_SPAN = timedelta(minutes=1)  # the expansion step at a series' start; it grows


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One expanded occurrence, reduced to what sopwatch uses.

    ``start``/``end`` are dates for all-day events (``end`` exclusive, as in iCalendar) and aware
    datetimes otherwise (floating times are placed in the organisation's timezone).
    """

    summary: str
    categories: tuple[str, ...]
    start: date | datetime
    end: date | datetime

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)

    def local_dates(self, tz: ZoneInfo | None) -> tuple[date, date]:
        """First and last day covered (inclusive), timed events in ``tz`` (their own zone if None)."""
        if isinstance(self.start, datetime):
            start = self.start.astimezone(tz) if tz else self.start
            end = (
                self.end
                if isinstance(self.end, datetime)
                else datetime.combine(self.end, time(), start.tzinfo)
            )
            end = end.astimezone(tz) if tz else end
            if end <= start:
                return start.date(), start.date()
            return start.date(), max(start.date(), (end - timedelta(microseconds=1)).date())
        end = self.end.date() if isinstance(self.end, datetime) else self.end
        return self.start, max(self.start, end - timedelta(days=1))


# --- public API -----------------------------------------------------------------------------------


def load_ics_cycles(
    path: Path,
    tz: ZoneInfo,
    rules: Sequence[PhaseRule] | None = None,
    *,
    match: Match = "summary",
    cycle_id: str = "%Y-%m",
    window: tuple[date | None, date | None] = (None, None),
) -> CycleCalendar:
    """A cycle calendar from an .ics file.

    ``rules`` map events to phases: the first ``(pattern, phase id)`` whose pattern is found
    (``re.search``) in the event's summary, or in one of its CATEGORIES with ``match="categories"``,
    wins; unmatched events are ignored. Without rules every event is a phase named after its
    summary (or first category) in snake_case (``Demand Review`` -> ``demand_review``).

    A phase lasts from its event's first to last local day in ``tz`` (an all-day event's DTEND is
    exclusive); a timed event also gives the phase its ``meeting``, the event's start. The cycle id
    is ``cycle_id`` applied with strftime to the phase's start date. Several occurrences of one
    phase in one cycle merge: earliest start, latest end, the earliest timed start as the meeting.
    ``window`` bounds the phase starts; a missing bound is derived from the file (see the module).
    """
    name = _phase_namer(rules, match)
    calendars = read_ics(path)
    selected = _select(path, calendars, lambda c: name(_summary(c), _categories(c)) is not None)
    if not any(groups for _cal, groups in selected):
        what = "no event in the calendar" if rules is None else "no event matches the phases mapping"
        raise ConfigError(f"{what}: it has no cycle phases", Location(str(path)))
    for _cal, groups in selected:
        for group in groups:
            _check_zones(path, group)
    first, last = _window(selected, calendars, CYCLE_YEARS_AHEAD, window)
    if last < first:
        raise ConfigError(
            f"the window is empty: it ends on {last} before it starts on {first}", Location(str(path))
        )

    spans: dict[tuple[str, str], list[Any]] = {}  # (cycle, phase) -> [start, end, meeting]
    for occurrence in _expand(path, selected, first, last, tz):
        phase_id = name(occurrence.summary, occurrence.categories)
        if phase_id is None:
            continue  # a moved occurrence renamed out of the mapping
        start, end = occurrence.local_dates(tz)
        if not first <= start <= last:
            continue
        meeting = occurrence.start.astimezone(tz) if isinstance(occurrence.start, datetime) else None
        key = (start.strftime(cycle_id), phase_id)
        span = spans.get(key)
        if span is None:
            spans[key] = [start, end, meeting]
            continue
        span[0], span[1] = min(span[0], start), max(span[1], end)
        if meeting is not None and (span[2] is None or meeting < span[2]):
            span[2] = meeting
    if not spans:
        raise ConfigError(
            f"no matching event starts between {first} and {last}: it has no cycle phases",
            Location(str(path)),
        )
    phases_of: dict[str, list[Phase]] = {}
    for (cycle, phase_id), (start, end, meeting) in spans.items():
        phases_of.setdefault(cycle, []).append(Phase(phase_id, start, end, meeting))
    cycles = []
    for cycle, phases in phases_of.items():
        phases.sort(key=lambda p: (p.start, p.end, p.id))
        cycles.append(Cycle(cycle, {p.id: p for p in phases}))
    cycles.sort(key=lambda c: (min(p.start for p in c.phases.values()), c.id))
    return CycleCalendar({c.id: c for c in cycles})


def load_ics_holidays(path: Path, tz: ZoneInfo | None = None) -> frozenset[date]:
    """Every day an event of the file covers, recurring events expanded (see the module's window).

    All-day events cover DTSTART up to the day before DTEND; timed events the local days they touch
    in ``tz`` (in their own timezone when ``tz`` is None). Cancelled events are ignored.
    """
    calendars = read_ics(path)
    selected = _select(path, calendars, lambda component: True)
    if not any(groups for _cal, groups in selected):
        return frozenset()
    first, last = _window(selected, calendars, HOLIDAY_YEARS_AHEAD, (None, None))
    days: set[date] = set()
    for occurrence in _expand(path, selected, first, last, tz):
        start, end = occurrence.local_dates(tz)
        day, end = max(start, first), min(end, last)
        while day <= end:
            days.add(day)
            day += timedelta(days=1)
    return frozenset(days)


def slug(text: str) -> str:
    """``Demand Review`` -> ``demand_review``: a summary as a phase id (letters, digits and _)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")


def read_ics(path: Path) -> list[Any]:
    """The VCALENDARs of a file (a file may hold several); one-line ConfigErrors otherwise."""
    import icalendar

    where = Location(str(path))
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"the file is larger than {MAX_FILE_BYTES // 1_000_000} MB", where)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", where) from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not an .ics file", where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", where) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")  # RFC 5545 says UTF-8; old Windows exports differ
    if "BEGIN:VCALENDAR" not in text.upper():
        raise ConfigError("not an iCalendar file: there is no BEGIN:VCALENDAR", where)
    try:
        components = icalendar.Calendar.from_ical(text, multiple=True)
    except Exception as exc:  # the parser's errors are ValueErrors, but a third-party file may find others
        raise ConfigError(f"not an iCalendar file ({_describe(exc)})", where) from None
    calendars = [c for c in components if getattr(c, "name", None) == "VCALENDAR"]
    if not calendars:
        raise ConfigError("not an iCalendar file: no complete BEGIN:VCALENDAR ... END:VCALENDAR", where)
    return calendars


# --- selection, window and expansion ------------------------------------------------------------------


def _phase_namer(
    rules: Sequence[PhaseRule] | None, match: Match
) -> Callable[[str, tuple[str, ...]], str | None]:
    def name(summary: str, categories: tuple[str, ...]) -> str | None:
        texts = categories if match == "categories" else (summary,)
        if rules is None:
            return next((slug(text) for text in texts if slug(text)), None)
        for pattern, phase_id in rules:
            if any(pattern.search(text) for text in texts):
                return phase_id
        return None

    return name


def _summary(component: Any) -> str:
    value = component.get("SUMMARY")
    if isinstance(value, list):
        value = value[0] if value else None
    return "" if value is None else str(value).strip()


def _categories(component: Any) -> tuple[str, ...]:
    value = component.get("CATEGORIES")
    if value is None:
        return ()
    found: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        cats = getattr(item, "cats", None)
        if cats is None:
            found.extend(part.strip() for part in str(item).split(","))
        else:
            found.extend(str(cat).strip() for cat in cats)
    return tuple(cat for cat in found if cat)


def _uid(component: Any) -> str | None:
    value = component.get("UID")
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


def _label(component: Any) -> str:
    summary = _one_line(_summary(component), 60) or "(no summary)"
    uid = _uid(component)
    return f"event {summary!r}" + (f" (UID {_one_line(uid, 60)})" if uid else "")


_Selection = list[tuple[Any, list[list[Any]]]]  # per VCALENDAR: its selected groups of VEVENTs


def _select(path: Path, calendars: list[Any], wanted: Callable[[Any], bool]) -> _Selection:
    """Per calendar, the VEVENTs grouped by UID (a series and its moved occurrences), keeping the
    groups in which any component is wanted; broken timing properties are reported."""
    selection: _Selection = []
    for calendar in calendars:
        groups: dict[Any, list[Any]] = {}
        for index, component in enumerate(calendar.subcomponents):
            if getattr(component, "name", None) != "VEVENT":
                continue
            uid = _uid(component)
            groups.setdefault(uid if uid is not None else ("no uid", index), []).append(component)
        kept = []
        for group in groups.values():
            if not any(wanted(component) for component in group):
                continue
            for component in group:
                for prop, problem in getattr(component, "errors", ()) or ():
                    if str(prop).upper() in _TIMING:
                        raise ConfigError(
                            f"{_label(component)}: bad {prop}: {_one_line(str(problem), 120)}",
                            Location(str(path)),
                        )
                if "DTSTART" not in component:
                    raise ConfigError(f"{_label(component)} has no DTSTART", Location(str(path)))
            kept.append(group)
        selection.append((calendar, kept))
    return selection


def _check_zones(path: Path, group: list[Any]) -> None:
    """A TZID that is neither an IANA/Windows name nor defined by a VTIMEZONE leaves the time floating
    (icalendar's choice); a meeting instant must not silently move, so refuse it."""
    for component in group:
        for prop in ("DTSTART", "DTEND", "RECURRENCE-ID"):
            value = component.get(prop)
            tzid = getattr(value, "params", {}).get("TZID") if value is not None else None
            moment = getattr(value, "dt", None)
            if tzid and isinstance(moment, datetime) and moment.tzinfo is None:
                raise ConfigError(
                    f"{_label(component)}: {prop} names the unknown time zone {_one_line(str(tzid), 60)!r} "
                    "and the file has no VTIMEZONE for it",
                    Location(str(path)),
                )


def _as_date(value: Any) -> date | None:
    moment = getattr(value, "dt", value)
    if isinstance(moment, datetime):
        return moment.date()
    if isinstance(moment, date):
        return moment
    if isinstance(moment, tuple) and moment and isinstance(moment[0], date):  # an RDATE period
        return _as_date(moment[0])
    return None


def _dates_of(component: Any, props: Iterable[str]) -> Iterable[date]:
    for prop in props:
        values = component.get(prop)
        if values is None:
            continue
        for value in values if isinstance(values, list) else [values]:
            inner = getattr(value, "dts", None)  # RDATE/EXDATE lists
            for item in inner if inner is not None else [value]:
                day = _as_date(item)
                if day is not None:
                    yield day


def _window(
    selection: _Selection, calendars: list[Any], years_ahead: int, given: tuple[date | None, date | None]
) -> tuple[date, date]:
    first, last = given
    if first is None:
        starts = [d for _c, groups in selection for g in groups for c in g for d in _dates_of(c, ["DTSTART"])]
        first = min(starts)  # not empty: every selected event has a DTSTART
    if last is None:
        props = ("DTSTART", "DTEND", "RECURRENCE-ID", "RDATE", "DTSTAMP", "LAST-MODIFIED", "CREATED")
        mentioned = [
            d
            for calendar in calendars
            for component in calendar.subcomponents
            if getattr(component, "name", None) == "VEVENT"
            for d in _dates_of(component, props)
        ]
        latest = max(mentioned, default=first)
        last = _add_years(latest, years_ahead)
    return first, last


def _add_years(day: date, years: int) -> date:
    year = min(day.year + years, date.max.year)
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February
        return day.replace(year=year, day=28)


def _expand(
    path: Path, selection: _Selection, first: date, last: date, tz: ZoneInfo | None
) -> list[Occurrence]:
    """The occurrences overlapping ``first``..``last``, series by series so an error names its event.

    The window is walked in growing steps and the count checked after each, so a FREQ=SECONDLY
    series is refused after a few thousand occurrences instead of generating millions.
    """
    import icalendar
    import recurring_ical_events

    where = Location(str(path))
    lo_limit = datetime.combine(max(first, date.min + timedelta(days=2)), time())
    hi_limit = datetime.combine(min(last, date.max - timedelta(days=2)) + timedelta(days=1), time())
    found: list[Occurrence] = []
    for calendar, groups in selection:
        header = {k: calendar[k] for k in ("X-WR-TIMEZONE", "CALSCALE") if k in calendar}
        x_wr_zone = None
        if "X-WR-TIMEZONE" in header:
            try:
                x_wr_zone = ZoneInfo(str(header["X-WR-TIMEZONE"]).strip())
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(
                    f"X-WR-TIMEZONE {_one_line(str(header['X-WR-TIMEZONE']), 60)!r} is not a known time zone",
                    where,
                ) from None
        for group in groups:
            single = icalendar.Calendar()
            for key, value in header.items():
                single[key] = value
            single.subcomponents = list(group)
            seen: set[Any] = set()
            # Start at the series' first start (in the wall-clock terms the library compares naive
            # bounds in), so the steps below meet a dense series at their smallest.
            lo, span = max(lo_limit, _wall_start(group, x_wr_zone) - _FIRST_SPAN), _FIRST_SPAN
            try:
                query = recurring_ical_events.of(single)
                while lo < hi_limit:
                    hi = min(lo + span, hi_limit)
                    batch = query.between(lo, hi)
                    for component in batch:
                        occurrence = _occurrence(component, tz)
                        if occurrence is None:
                            continue
                        key = (occurrence.start, occurrence.summary, _recurrence_key(component))
                        if key in seen:
                            continue
                        seen.add(key)
                        found.append(occurrence)
                    if len(found) > MAX_OCCURRENCES:
                        raise ConfigError(
                            f"{_label(group[0])} repeats too often: the calendar has more than "
                            f"{MAX_OCCURRENCES} occurrences between {first} and {last}",
                            where,
                        )
                    if len(batch) < 50:
                        span *= 4
                    elif len(batch) < 200:
                        span *= 2
                    elif len(batch) > 800:
                        span /= 2
                    lo = hi
            except ConfigError:
                raise
            except Exception as exc:  # recurring-ical-events, icalendar and dateutil raise assorted types
                raise ConfigError(f"{_label(group[0])}: {_describe(exc)}", where) from None
    return found


def _wall_start(group: list[Any], x_wr_zone: ZoneInfo | None) -> datetime:
    """The earliest DTSTART/RDATE of a group as a naive wall-clock time in its own zone (UTC
    times in the X-WR-TIMEZONE, as recurring-ical-events will read them)."""
    walls = []
    for component in group:
        for prop in ("DTSTART", "RDATE"):
            values = component.get(prop)
            for value in values if isinstance(values, list) else [values]:
                inner = getattr(value, "dts", None)
                for item in inner if inner is not None else [value]:
                    moment = getattr(item, "dt", item)
                    if isinstance(moment, tuple) and moment:  # an RDATE period
                        moment = moment[0]
                    if isinstance(moment, datetime):
                        if x_wr_zone is not None and moment.utcoffset() == timedelta(0):
                            moment = moment.astimezone(x_wr_zone)
                        walls.append(moment.replace(tzinfo=None))
                    elif isinstance(moment, date):
                        walls.append(datetime.combine(moment, time()))
    return min(walls, default=datetime.min + timedelta(days=2))


def _recurrence_key(component: Any) -> Any:
    value = component.get("RECURRENCE-ID")
    return getattr(value, "dt", None)


def _occurrence(component: Any, tz: ZoneInfo | None) -> Occurrence | None:
    status = component.get("STATUS")
    if status is not None and str(status).strip().upper() == "CANCELLED":
        return None
    start, end = component.start, component.end
    if isinstance(start, datetime) and start.tzinfo is None and tz is not None:
        start = start.replace(tzinfo=tz)  # floating: the organisation's wall clock
    if isinstance(end, datetime) and end.tzinfo is None and tz is not None:
        end = end.replace(tzinfo=tz)
    if isinstance(start, datetime) and isinstance(end, datetime):
        if start.tzinfo is None and end.tzinfo is not None:  # a floating start with a zoned end
            end = end.replace(tzinfo=None)
        elif start.tzinfo is not None and end.tzinfo is None:
            end = end.replace(tzinfo=start.tzinfo)
    return Occurrence(_summary(component), _categories(component), start, end)


def _describe(exc: BaseException) -> str:
    """A library exception as a short phrase: its message, with the type when it is unexpected."""
    text = _one_line(str(exc), 160)
    if isinstance(exc, ZoneInfoNotFoundError):
        return f"unknown time zone ({text})"
    if type(exc) is KeyError:
        return f"missing {text}"
    if isinstance(exc, ValueError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _one_line(text: str, limit: int) -> str:
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
