"""Load the S&OP cycle calendar: explicit cycles, a monthly template, or both; or an .ics export.

The template exists because most S&OP processes are defined in business days ("demand review
ends on business day 6"), which move with weekends and holidays; admins should not have to
recompute them every month. Explicit cycles override generated ones with the same id, so one
exceptional month can be written out by hand. An .ics file (Outlook, Google) is read by
:mod:`sopwatch.adapters.ics_calendar`, its events mapped to phases by the config's ``phases:``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, ConfigDict, Field, StrictInt, field_validator

from sopwatch.config.schema import CycleCalendarSource, Strict
from sopwatch.config.validation import validate_model
from sopwatch.config.yamlsource import LocatedDocument, Path_, load_yaml_file
from sopwatch.core.business import BusinessCalendar
from sopwatch.core.model import Cycle, CycleCalendar, Phase
from sopwatch.errors import ConfigError, Location, ProblemList, SopwatchError

MAX_TEMPLATE_MONTHS = 240
_PHASE_ID = re.compile(r"[A-Za-z0-9_]+")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def _as_date(value: Any) -> Any:
    """Dates only: pydantic would also take a Unix timestamp, which no admin means here."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a date such as 2026-12-01, got {value!r}")


DateValue = Annotated[date, BeforeValidator(_as_date)]


def _check_phase_id(value: str) -> str:
    if not _PHASE_ID.fullmatch(value):
        raise ValueError(
            f"phase id {value!r} may only use letters, digits and _ (rules refer to it as cycle.<phase>.end)"
        )
    return value


class _PhaseSpec(Strict):
    id: str
    start: DateValue
    end: DateValue
    meeting: Any = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _check_phase_id(value)


class _CycleSpec(Strict):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    id: str = Field(min_length=1)
    phases: list[_PhaseSpec] = Field(min_length=1)


class _MeetingSpec(Strict):
    day: StrictInt
    time: str


class _TemplatePhaseSpec(Strict):
    id: str
    start: StrictInt
    end: StrictInt
    meeting: str | _MeetingSpec | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _check_phase_id(value)


class _TemplateSpec(Strict):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    from_: str = Field(alias="from")
    to: str
    cycle_id: str = "%Y-%m"
    phases: list[_TemplatePhaseSpec] = Field(min_length=1)

    @field_validator("from_", "to")
    @classmethod
    def _month(cls, value: str) -> str:
        if _parse_month(value) is None:
            raise ValueError(f"expected a month such as 2026-11, got {value!r}")
        return value


class _CalendarFile(Strict):
    cycles: list[_CycleSpec] = Field(default_factory=list)
    template: _TemplateSpec | None = None


def load_cycle_calendar(
    source: Path | CycleCalendarSource | None,
    tz: ZoneInfo,
    business: BusinessCalendar,
    *,
    base_dir: Path | None = None,
    document: LocatedDocument | None = None,
    at: Path_ = ("calendar",),
) -> CycleCalendar:
    """The cycles and phases the rules' ``cycle.<phase>.start|end|meeting`` anchors use.

    ``source`` is a file (YAML, or .ics by its extension) or the config's ``calendar:`` setting,
    whose path is relative to ``base_dir`` (the config file's folder; the current folder when
    None). ``document``/``at`` locate that setting in the config file for errors in its options.

    Raises :class:`ProblemList` (or one :class:`ConfigError`) with every problem located.
    """
    if source is None:
        return CycleCalendar()
    spec = source if isinstance(source, CycleCalendarSource) else None
    if spec is None:
        path = Path(source)
    else:
        path = ((base_dir if base_dir is not None else Path()) / spec.path).resolve()
    if path.suffix.lower() == ".ics":
        return _load_ics(path, spec, tz, document, at)
    if spec is not None:
        ics_only = sorted(spec.model_fields_set - {"path"})
        if ics_only:
            key = "from" if ics_only[0] == "from_" else ics_only[0]
            raise _config_error(
                document,
                (*at, key),
                f"calendar.{key} only applies to .ics calendars; {spec.path} is read as YAML",
                key=True,
            )
    doc = load_yaml_file(path)
    if not isinstance(doc.data, dict):
        raise ConfigError(
            "a cycle calendar must be a YAML mapping with `cycles:` and/or `template:`", doc.location(())
        )
    if "cycles" not in doc.data and "template" not in doc.data:
        raise ConfigError("no cycles: add a `cycles:` list, a `template:`, or both", doc.location(()))
    spec = validate_model(doc, _CalendarFile)
    problems: list[SopwatchError] = []
    cycles: dict[str, Cycle] = {}
    if spec.template is not None:
        cycles.update(_generate(spec.template, doc, tz, business, problems))
    explicit = _explicit(spec.cycles, doc, tz, problems)
    if problems:
        raise problems[0] if len(problems) == 1 else ProblemList(problems)
    cycles.update(explicit)
    ordered = sorted(cycles.values(), key=lambda c: min(p.start for p in c.phases.values()))
    return CycleCalendar({c.id: c for c in ordered})


def _config_error(
    document: LocatedDocument | None, path: Path_, message: str, *, key: bool = False
) -> ConfigError:
    return ConfigError(message) if document is None else document.error(path, message, key=key)


def _load_ics(
    path: Path, spec: CycleCalendarSource | None, tz: ZoneInfo, document: LocatedDocument | None, at: Path_
) -> CycleCalendar:
    """An .ics cycle calendar: the config's options checked (located in the config), then the file."""
    # Imported here: most setups keep their calendar in YAML, and every command loads this module.
    from sopwatch.adapters.ics_calendar import PhaseRule, load_ics_cycles

    if spec is None:
        return load_ics_cycles(path, tz)
    problems: list[SopwatchError] = []
    rules: list[PhaseRule] | None = None
    if spec.phases is not None:
        rules = []
        if not spec.phases:
            problems.append(
                _config_error(document, (*at, "phases"), "calendar.phases is empty: map at least one pattern")
            )
        for pattern, phase_id in spec.phases.items():
            here: Path_ = (*at, "phases", pattern)
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                problems.append(
                    _config_error(
                        document,
                        here,
                        f"calendar.phases: bad regular expression {pattern!r}: {exc}",
                        key=True,
                    )
                )
                continue
            try:
                rules.append((compiled, _check_phase_id(phase_id)))
            except ValueError as exc:
                problems.append(_config_error(document, here, f"calendar.phases: {exc}"))
    first = _parse_month(spec.from_) if spec.from_ else None
    last = _parse_month(spec.to) if spec.to else None
    if last is not None:
        last = (last + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    if first is not None and last is not None and last < first:
        problems.append(
            _config_error(document, (*at, "to"), f"calendar.to ({spec.to}) is before from ({spec.from_})")
        )
    if problems:
        raise problems[0] if len(problems) == 1 else ProblemList(problems)
    return load_ics_cycles(path, tz, rules, match=spec.match, cycle_id=spec.cycle_id, window=(first, last))


def describe_cycles(calendar: CycleCalendar, tz: ZoneInfo | None = None) -> list[str]:
    """One line per cycle for ``validate``/``explain``, phases in date order, e.g.
    ``2026-12: data_gathering 1–3 Dec, demand_review 8 Dec 10:00, exec_review 14–15 Dec (meeting 15 Dec 09:00)``.

    A meeting is shown in ``tz`` (in its own timezone when None); a one-day phase with its meeting
    on that day shows just the day and time.
    """
    lines = []
    for cycle in calendar.cycles.values():
        parts = []
        for phase in sorted(cycle.phases.values(), key=lambda p: (p.start, p.end, p.id)):
            span = _span(phase.start, phase.end)
            if phase.meeting is None:
                parts.append(f"{phase.id} {span}")
                continue
            meeting = phase.meeting.astimezone(tz) if tz is not None else phase.meeting
            if phase.start == phase.end == meeting.date():
                parts.append(f"{phase.id} {span} {meeting:%H:%M}")
            else:
                parts.append(
                    f"{phase.id} {span} (meeting {_span(meeting.date(), meeting.date())} {meeting:%H:%M})"
                )
        lines.append(f"{cycle.id}: " + (", ".join(parts) if parts else "no phases"))
    return lines


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _span(start: date, end: date) -> str:
    """``8 Dec``, ``1–3 Dec``, ``28 Nov–3 Dec``, ``28 Dec 2026–4 Jan 2027`` (English, whatever the locale)."""

    def day(d: date, year: bool = False) -> str:
        return f"{d.day} {_MONTH_NAMES[d.month - 1]}" + (f" {d.year}" if year else "")

    if start == end:
        return day(start)
    if start.year != end.year:
        return f"{day(start, True)}–{day(end, True)}"
    if start.month != end.month:
        return f"{day(start)}–{day(end)}"
    return f"{start.day}–{day(end)}"


def _explicit(
    specs: list[_CycleSpec], doc: LocatedDocument, tz: ZoneInfo, problems: list[SopwatchError]
) -> dict[str, Cycle]:
    cycles: dict[str, Cycle] = {}
    first_line: dict[str, Location] = {}
    for i, cycle in enumerate(specs):
        here: Path_ = ("cycles", i)
        if cycle.id in first_line:
            problems.append(
                doc.error(
                    (*here, "id"),
                    f"duplicate cycle id {cycle.id!r} (first on line {first_line[cycle.id].line})",
                )
            )
            continue
        first_line[cycle.id] = doc.location((*here, "id"))
        phases: dict[str, Phase] = {}
        for j, phase in enumerate(cycle.phases):
            at: Path_ = (*here, "phases", j)
            if phase.id in phases:
                first = doc.location((*here, "phases", list(phases).index(phase.id), "id"))
                problems.append(
                    doc.error(
                        (*at, "id"),
                        f"duplicate phase id {phase.id!r} in cycle {cycle.id!r} (first on line {first.line})",
                    )
                )
                continue
            if phase.end < phase.start:
                problems.append(
                    doc.error(
                        (*at, "end"),
                        f"phase {phase.id!r} ends on {phase.end} before it starts on {phase.start}",
                    )
                )
            meeting = None
            if phase.meeting is not None:
                try:
                    meeting = _explicit_meeting(phase.meeting, phase.end, tz)
                except ValueError as exc:
                    problems.append(doc.error((*at, "meeting"), str(exc)))
            phases[phase.id] = Phase(phase.id, phase.start, phase.end, meeting)
        cycles[cycle.id] = Cycle(cycle.id, phases)
    return cycles


def _explicit_meeting(value: Any, end: date, tz: ZoneInfo) -> datetime:
    """A datetime (naive = organisation time), or a bare time meaning that time on the end day."""
    if isinstance(value, datetime):
        return value.astimezone(tz) if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, str):
        text = value.strip()
        if _CLOCK.fullmatch(text):
            return datetime.combine(end, _parse_clock(text), tzinfo=tz)
        if len(text) > 10:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                pass
            else:
                return parsed.astimezone(tz) if parsed.tzinfo else parsed.replace(tzinfo=tz)
    raise ValueError(
        f"meeting {value!r} is not a date and time: use '2026-12-15T10:00', or '10:00' for the end day"
    )


def _parse_clock(text: str) -> time:
    match = _CLOCK.fullmatch(text.strip())
    if not match:
        raise ValueError(f"bad time {text!r}: use HH:MM, e.g. '10:00'")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"bad time {text!r}: use HH:MM, e.g. '10:00'")
    return time(hour, minute, second)


def _parse_month(text: str) -> date | None:
    match = _MONTH.fullmatch(text.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        return None
    return date(int(match[1]), int(match[2]), 1)


def _months(first: date, last: date) -> list[date]:
    months = []
    month = first
    while month <= last:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def _generate(
    spec: _TemplateSpec,
    doc: LocatedDocument,
    tz: ZoneInfo,
    business: BusinessCalendar,
    problems: list[SopwatchError],
) -> dict[str, Cycle]:
    """One cycle per month, business-day numbers resolved against that month's business days."""
    base: Path_ = ("template",)
    before = len(problems)
    first, last = _parse_month(spec.from_), _parse_month(spec.to)
    if first is None or last is None:  # already reported by the model
        return {}
    if last < first:
        problems.append(doc.error((*base, "to"), f"to ({spec.to}) is before from ({spec.from_})"))
    months = _months(first, last)
    if len(months) > MAX_TEMPLATE_MONTHS:
        problems.append(
            doc.error(
                (*base, "to"), f"the template spans {len(months)} months; at most {MAX_TEMPLATE_MONTHS}"
            )
        )

    # Per phase: (path of start, start), (path of end, end), meeting (path of day or None, day, time).
    plans: list[tuple[str, int, int, tuple[Path_, int] | None, time | None]] = []
    seen: dict[str, int] = {}
    for j, phase in enumerate(spec.phases):
        at: Path_ = (*base, "phases", j)
        if phase.id in seen:
            line = doc.location((*base, "phases", seen[phase.id], "id")).line
            problems.append(doc.error((*at, "id"), f"duplicate phase id {phase.id!r} (first on line {line})"))
            continue
        seen[phase.id] = j
        for key, number in (("start", phase.start), ("end", phase.end)):
            if number == 0:
                problems.append(doc.error((*at, key), _ZERO))
        meeting_day: tuple[Path_, int] | None = None
        clock: time | None = None
        if isinstance(phase.meeting, _MeetingSpec):
            meeting_day = ((*at, "meeting", "day"), phase.meeting.day)
            if phase.meeting.day == 0:
                problems.append(doc.error(meeting_day[0], _ZERO))
            clock_text, clock_path = phase.meeting.time, (*at, "meeting", "time")
        else:
            clock_text, clock_path = phase.meeting, (*at, "meeting")
        if clock_text is not None:
            try:
                clock = _parse_clock(clock_text)
            except ValueError as exc:
                problems.append(doc.error(clock_path, str(exc)))
        plans.append((phase.id, phase.start, phase.end, meeting_day, clock))
    if len(problems) > before:
        return {}

    cycles: dict[str, Cycle] = {}
    month_of: dict[str, date] = {}
    reported: set[Path_] = set()

    def report(path: Path_, message: str) -> None:
        if path not in reported:  # one problem per key, not one per month
            reported.add(path)
            problems.append(doc.error(path, message))

    for month in months:
        next_month = (month + timedelta(days=32)).replace(day=1)
        days = [month + timedelta(days=n) for n in range((next_month - month).days)]
        business_days = [d for d in days if business.is_business_day(d)]
        label = month.strftime("%Y-%m")

        def nth(
            number: int, path: Path_, label: str = label, business_days: list[date] = business_days
        ) -> date | None:
            if abs(number) > len(business_days):
                report(
                    path,
                    f"business day {number} does not exist in {label} ({len(business_days)} business days)",
                )
                return None
            return business_days[number - 1 if number > 0 else number]

        phases: dict[str, Phase] = {}
        for phase_id, start_n, end_n, meeting_day, clock in plans:
            at = (*base, "phases", seen[phase_id])
            start = nth(start_n, (*at, "start"))
            end = nth(end_n, (*at, "end"))
            if start is None or end is None:
                continue
            if end < start:
                report(
                    (*at, "end"),
                    f"phase {phase_id!r} ends before it starts in {label} "
                    f"(business day {end_n} is {end}, business day {start_n} is {start})",
                )
                continue
            meeting = None
            if clock is not None:
                meeting_date = end if meeting_day is None else nth(meeting_day[1], meeting_day[0])
                if meeting_date is None:
                    continue
                meeting = datetime.combine(meeting_date, clock, tzinfo=tz)
            phases[phase_id] = Phase(phase_id, start, end, meeting)
        cycle_id = month.strftime(spec.cycle_id)
        if cycle_id in month_of:
            report(
                (*base, "cycle_id"),
                f"cycle_id {spec.cycle_id!r} gives the same id {cycle_id!r} to "
                f"{month_of[cycle_id]:%Y-%m} and {label}",
            )
            continue
        month_of[cycle_id] = month
        cycles[cycle_id] = Cycle(cycle_id, phases)
    return cycles


_ZERO = "business day 0 does not exist: count 1, 2, ... from the month's first business day or -1, -2, ... from its last"
