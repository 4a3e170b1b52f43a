"""Cycle and holiday calendars from iCalendar exports (SPEC §1.3, §1.4).

The expected phases, meetings and fire_at instants below were worked out by hand from the fixture
files in ``tests/data`` (Outlook: Windows time zone with its own VTIMEZONE, RRULE, EXDATE, a moved
occurrence, all-day events; Google: X-WR-TIMEZONE, floating/UTC/TZID times, CATEGORIES), never by
calling the code under test. The robustness test feeds every real-world calendar that
recurring-ical-events ships with its tests through both loaders.
"""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
import yaml

from sopwatch.adapters import ics_calendar
from sopwatch.adapters.business_calendar import build_business_calendar
from sopwatch.adapters.cycles import describe_cycles, load_cycle_calendar
from sopwatch.adapters.ics_calendar import load_ics_holidays
from sopwatch.config.loader import load_setup
from sopwatch.config.rules_loader import RuleCompiler
from sopwatch.config.schema import BusinessCalendarConfig, Config, CycleCalendarSource
from sopwatch.config.validation import validate_model
from sopwatch.config.yamlsource import load_yaml_file
from sopwatch.core.business import BusinessCalendar
from sopwatch.core.evaluate import Environment, firing
from sopwatch.core.model import CANONICAL_FIELDS, OBSERVED_FIELDS, Cycle, CycleCalendar, Phase
from sopwatch.core.timeexpr import Clock
from sopwatch.daemon.inputs import watched_files
from sopwatch.errors import ConfigError, ProblemList, SopwatchError

DATA = Path(__file__).parent / "data"
BERLIN = ZoneInfo("Europe/Berlin")
CHICAGO = ZoneInfo("America/Chicago")
NEW_YORK = ZoneInfo("America/New_York")
OUTLOOK_PHASES = {
    "Data gathering": "data_gathering",
    "Demand review": "demand_review",  # case-insensitive: matches "S&OP Demand Review"
    "Executive review": "exec_review",
}
GOOGLE_PHASES = {"^Data$": "data_gathering", "^Demand$": "demand_review", "^Supply$": "supply_review"}
GOOGLE_PHASES["^Executive$"] = "exec_review"


def berlin(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BERLIN)


def utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def phases(calendar: CycleCalendar) -> dict[str, dict[str, tuple[date, date, datetime | None]]]:
    return {
        cycle.id: {p.id: (p.start, p.end, p.meeting) for p in cycle.phases.values()}
        for cycle in calendar.cycles.values()
    }


def errors(exc: SopwatchError) -> list[str]:
    return [str(p) for p in exc.problems] if isinstance(exc, ProblemList) else [str(exc)]


@pytest.fixture(scope="module")
def german() -> BusinessCalendar:
    """German public holidays plus the company closures from the Outlook holiday export."""
    config = BusinessCalendarConfig(holidays={"country": "DE", "ics": "closures-outlook.ics"})
    return build_business_calendar(config, DATA, tz=BERLIN)


@pytest.fixture(scope="module")
def american() -> BusinessCalendar:
    return build_business_calendar(BusinessCalendarConfig(holidays={"country": "US"}))


def outlook(business: BusinessCalendar, **options: Any) -> CycleCalendar:
    source = CycleCalendarSource(path="sop-outlook.ics", phases=OUTLOOK_PHASES, **options)
    return load_cycle_calendar(source, BERLIN, business, base_dir=DATA)


def google(business: BusinessCalendar) -> CycleCalendar:
    source = CycleCalendarSource(path="sop-google.ics", phases=GOOGLE_PHASES, match="categories")
    return load_cycle_calendar(source, CHICAGO, business, base_dir=DATA)


# --- the Outlook export ---------------------------------------------------------------------------


def test_outlook_export_phases_per_cycle(german: BusinessCalendar) -> None:
    # The executive review recurs on the third Thursday (RRULE BYDAY=3TH) until May 2027 in
    # "W. Europe Standard Time", defined by the file's own VTIMEZONE: 10:00 is CET (UTC+1) in
    # winter and CEST (UTC+2) from 28 March 2027. February's is deleted (EXDATE); January's
    # (21 Jan) was moved to Friday 22 Jan 14:00 (RECURRENCE-ID) and renamed, still matching.
    # Data gathering: a December all-day event (DTEND 4 Dec exclusive -> ends 3 Dec), a series of
    # three-day events on each first Monday (4 Jan, 1 Feb, 1 Mar, 5 Apr, 3 May), and a "late
    # inputs" day on 8 Jan that merges into January's phase. The January demand review is
    # cancelled (STATUS:CANCELLED); the weekly team lunch matches no pattern.
    assert phases(outlook(german)) == {
        "2026-12": {
            "data_gathering": (date(2026, 12, 1), date(2026, 12, 3), None),
            "demand_review": (date(2026, 12, 8), date(2026, 12, 8), utc(2026, 12, 8, 9)),
            "exec_review": (date(2026, 12, 17), date(2026, 12, 17), utc(2026, 12, 17, 9)),
        },
        "2027-01": {
            "data_gathering": (date(2027, 1, 4), date(2027, 1, 8), None),
            "exec_review": (date(2027, 1, 22), date(2027, 1, 22), utc(2027, 1, 22, 13)),
        },
        "2027-02": {"data_gathering": (date(2027, 2, 1), date(2027, 2, 3), None)},
        "2027-03": {
            "data_gathering": (date(2027, 3, 1), date(2027, 3, 3), None),
            "exec_review": (date(2027, 3, 18), date(2027, 3, 18), utc(2027, 3, 18, 9)),
        },
        "2027-04": {
            "data_gathering": (date(2027, 4, 5), date(2027, 4, 7), None),
            "exec_review": (date(2027, 4, 15), date(2027, 4, 15), utc(2027, 4, 15, 8)),
        },
        "2027-05": {
            "data_gathering": (date(2027, 5, 3), date(2027, 5, 5), None),
            "exec_review": (date(2027, 5, 20), date(2027, 5, 20), utc(2027, 5, 20, 8)),
        },
    }


def test_meetings_are_in_the_organisation_timezone(german: BusinessCalendar) -> None:
    meeting = outlook(german).cycles["2027-04"].phases["exec_review"].meeting
    assert meeting is not None and meeting.tzinfo == BERLIN and (meeting.hour, meeting.minute) == (10, 0)


def test_describe_cycles(german: BusinessCalendar) -> None:
    assert describe_cycles(outlook(german)) == [
        "2026-12: data_gathering 1–3 Dec, demand_review 8 Dec 10:00, exec_review 17 Dec 10:00",
        "2027-01: data_gathering 4–8 Jan, exec_review 22 Jan 14:00",
        "2027-02: data_gathering 1–3 Feb",
        "2027-03: data_gathering 1–3 Mar, exec_review 18 Mar 10:00",
        "2027-04: data_gathering 5–7 Apr, exec_review 15 Apr 10:00",
        "2027-05: data_gathering 3–5 May, exec_review 20 May 10:00",
    ]
    spans = CycleCalendar(
        {
            "x": Cycle(
                "x",
                {
                    "a": Phase("a", date(2026, 11, 28), date(2026, 12, 3)),
                    "b": Phase("b", date(2026, 12, 28), date(2027, 1, 4), berlin(2027, 1, 4, 9, 30)),
                },
            )
        }
    )
    assert describe_cycles(spans, ZoneInfo("Europe/London")) == [
        "x: a 28 Nov–3 Dec, b 28 Dec 2026–4 Jan 2027 (meeting 4 Jan 08:30)"
    ]


def test_holiday_calendar_from_outlook() -> None:
    # All-day closure 18-19 May 2027 (DTEND 20 May exclusive), a yearly founders' day from
    # 12 June 2026 expanded ten years past the newest date in the file (20 May 2027), and a timed
    # afternoon offsite on 5 March 2027.
    days = load_ics_holidays(DATA / "closures-outlook.ics", BERLIN)
    founders = {date(year, 6, 12) for year in range(2026, 2037)}
    assert days == {date(2027, 5, 18), date(2027, 5, 19), date(2027, 3, 5)} | founders


def test_business_calendar_combines_country_and_ics_holidays(german: BusinessCalendar) -> None:
    assert not german.is_business_day(date(2027, 5, 17))  # Whit Monday (holidays package)
    assert not german.is_business_day(date(2027, 5, 18))  # closure (ics)
    assert german.is_business_day(date(2027, 6, 11))  # the Friday before founders' day 2027 (a Saturday)
    assert not german.is_business_day(date(2028, 6, 12))  # founders' day 2028, a Monday (ics RRULE)
    only_ics = build_business_calendar(
        BusinessCalendarConfig(holidays={"ics": ["closures-outlook.ics"]}), DATA
    )
    assert not only_ics.is_business_day(date(2027, 5, 19))
    assert only_ics.is_business_day(date(2027, 5, 17))  # no country: Whit Monday is a working day


RULE = """\
rules:
  - id: exec-prep
    when: {kind: decision}
    fire_at: cycle.exec_review.meeting - 2 business days
    escalation:
      - notify: [owner]
"""


def fire_at(calendar: CycleCalendar, business: BusinessCalendar, tz: ZoneInfo, cycle: str, tmp: Path) -> Any:
    path = tmp / "rules.yaml"
    path.write_text(RULE)
    fields = set(CANONICAL_FIELDS) | set(OBSERVED_FIELDS)
    rule = next(iter(RuleCompiler(fields, set(), calendar, tz).load([path])))
    env = Environment(clock=Clock(tz, business), cycles=calendar)
    record = {"id": "D1", "kind": "decision", "status": "open", "owner": "ann", "cycle": cycle}
    when, reason = firing(rule, record, None, env, datetime(2030, 1, 1, tzinfo=UTC))
    assert reason is None
    return when


@pytest.mark.parametrize(
    ("cycle", "expected"),
    [
        ("2026-12", berlin(2026, 12, 15, 10)),  # Thu 17 Dec -> Tue 15 Dec
        ("2027-01", berlin(2027, 1, 20, 14)),  # the moved meeting, Fri 22 Jan 14:00 -> Wed 20 Jan
        ("2027-03", berlin(2027, 3, 16, 10)),
        ("2027-04", berlin(2027, 4, 13, 10)),  # CEST
        # Thu 20 May: 19 and 18 May are ics closures, 17 May is Whit Monday, 15/16 the weekend:
        # one business day back is Fri 14 May, two is Thu 13 May.
        ("2027-05", berlin(2027, 5, 13, 10)),
    ],
)
def test_fire_at_anchored_on_the_outlook_meeting(
    german: BusinessCalendar, tmp_path: Path, cycle: str, expected: datetime
) -> None:
    assert fire_at(outlook(german), german, BERLIN, cycle, tmp_path) == expected


def test_a_cycle_without_the_phase_does_not_fire(german: BusinessCalendar, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULE)
    calendar = outlook(german)
    fields = set(CANONICAL_FIELDS) | set(OBSERVED_FIELDS)
    rule = next(iter(RuleCompiler(fields, set(), calendar, BERLIN).load([tmp_path / "rules.yaml"])))
    env = Environment(clock=Clock(BERLIN, german), cycles=calendar)
    record = {"id": "D1", "kind": "decision", "status": "open", "owner": "ann", "cycle": "2027-02"}
    assert firing(rule, record, None, env, datetime(2030, 1, 1, tzinfo=UTC)) == (
        None,
        "cycle.exec_review.meeting is empty",
    )


def test_window_from_config(german: BusinessCalendar) -> None:
    calendar = outlook(german, from_="2027-01", to="2027-03")
    assert list(calendar.cycles) == ["2027-01", "2027-02", "2027-03"]


def test_cycle_id_format(german: BusinessCalendar) -> None:
    calendar = outlook(german, cycle_id="FY%y-M%m")
    assert list(calendar.cycles)[:2] == ["FY26-M12", "FY27-M01"]


# --- the Google export ----------------------------------------------------------------------------


def test_google_export_mapped_by_categories(american: BusinessCalendar) -> None:
    # X-WR-TIMEZONE America/New_York; the organisation is in Chicago (one hour behind New York).
    # Demand consensus: floating 09:00 -> 09:00 New York = 14:00Z. Supply review: UTC 00:30 on
    # 11 Dec is 18:30 on 10 Dec in Chicago, so the phase is on 10 Dec. The exec series (TZID
    # America/New_York, third Wednesday, COUNT=3) is called "Monthly leadership sync": only its
    # CATEGORIES map it. "Executive dinner" has no categories and is ignored. In January the
    # all-day "Numbers due" (4-5 Jan) and the floating "Data check-in" (7 Jan 11:00) merge.
    assert phases(google(american)) == {
        "2026-12": {
            "data_gathering": (date(2026, 12, 1), date(2026, 12, 2), None),
            "demand_review": (date(2026, 12, 9), date(2026, 12, 9), utc(2026, 12, 9, 14)),
            "supply_review": (date(2026, 12, 10), date(2026, 12, 10), utc(2026, 12, 11, 0, 30)),
            "exec_review": (date(2026, 12, 16), date(2026, 12, 16), utc(2026, 12, 16, 21)),
        },
        "2027-01": {
            "data_gathering": (date(2027, 1, 4), date(2027, 1, 7), utc(2027, 1, 7, 16)),
            "exec_review": (date(2027, 1, 20), date(2027, 1, 20), utc(2027, 1, 20, 21)),
        },
        "2027-02": {"exec_review": (date(2027, 2, 17), date(2027, 2, 17), utc(2027, 2, 17, 21))},
    }
    assert describe_cycles(google(american), NEW_YORK)[1] == (
        "2027-01: data_gathering 4–7 Jan (meeting 7 Jan 11:00), exec_review 20 Jan 16:00"
    )


@pytest.mark.parametrize(
    ("cycle", "expected"),
    [
        ("2026-12", datetime(2026, 12, 14, 15, tzinfo=CHICAGO)),  # Wed 16 Dec -> Mon 14 Dec
        ("2027-01", datetime(2027, 1, 15, 15, tzinfo=CHICAGO)),  # 18 Jan is MLK Day -> Fri 15 Jan
        ("2027-02", datetime(2027, 2, 12, 15, tzinfo=CHICAGO)),  # 15 Feb Presidents' Day -> Fri 12 Feb
    ],
)
def test_fire_at_anchored_on_the_google_meeting(
    american: BusinessCalendar, tmp_path: Path, cycle: str, expected: datetime
) -> None:
    assert fire_at(google(american), american, CHICAGO, cycle, tmp_path) == expected


# --- time zones and defaults ----------------------------------------------------------------------


def ics(tmp_path: Path, *lines: str, name: str = "cal.ics") -> Path:
    path = tmp_path / name
    path.write_text("\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", *lines, "END:VCALENDAR", ""]))
    return path


def event(summary: str, *props: str, uid: str | None = None) -> list[str]:
    return [
        "BEGIN:VEVENT",
        f"UID:{uid or summary}",
        f"SUMMARY:{summary}",
        "DTSTAMP:20261101T000000Z",
        *props,
        "END:VEVENT",
    ]


def test_floating_times_without_x_wr_timezone_are_organisation_time(
    tmp_path: Path, german: BusinessCalendar
) -> None:
    path = ics(tmp_path, *event("Review", "DTSTART:20261208T100000", "DTEND:20261208T110000"))
    calendar = load_cycle_calendar(path, CHICAGO, german)
    assert calendar.cycles["2026-12"].phases["review"].meeting == datetime(2026, 12, 8, 10, tzinfo=CHICAGO)


def test_windows_zone_name_without_vtimezone(tmp_path: Path, german: BusinessCalendar) -> None:
    path = ics(
        tmp_path,
        *event("Review", "DTSTART;TZID=Eastern Standard Time:20260708T100000", "DURATION:PT1H"),
    )
    meeting = load_cycle_calendar(path, BERLIN, german).cycles["2026-07"].phases["review"].meeting
    assert meeting == utc(2026, 7, 8, 14)  # EDT, UTC-4


def test_a_meeting_late_in_the_evening_counts_on_its_local_day(
    tmp_path: Path, german: BusinessCalendar
) -> None:
    # 22:30Z on 31 Dec is 23:30 in Berlin (1 Jan in UTC+2 and east), and it ends at 23:00Z, midnight
    # in Berlin, which is exclusive: the phase is on 31 Dec only and its cycle is December.
    path = ics(tmp_path, *event("Review", "DTSTART:20261231T223000Z", "DTEND:20261231T230000Z"))
    calendar = load_cycle_calendar(path, BERLIN, german)
    assert phases(calendar) == {
        "2026-12": {"review": (date(2026, 12, 31), date(2026, 12, 31), berlin(2026, 12, 31, 23, 30))}
    }


def test_timed_event_over_midnight_and_ending_at_midnight(tmp_path: Path, german: BusinessCalendar) -> None:
    path = ics(
        tmp_path,
        *event("Offsite", "DTSTART:20261207T090000", "DTEND:20261209T000000"),  # ends at 24:00 on the 8th
        *event("Night shift", "DTSTART:20261214T220000", "DTEND:20261215T020000"),
    )
    assert phases(load_cycle_calendar(path, BERLIN, german)) == {
        "2026-12": {
            "offsite": (date(2026, 12, 7), date(2026, 12, 8), berlin(2026, 12, 7, 9)),
            "night_shift": (date(2026, 12, 14), date(2026, 12, 15), berlin(2026, 12, 14, 22)),
        }
    }


def test_a_plain_ics_path_names_phases_after_summaries(german: BusinessCalendar) -> None:
    calendar = load_cycle_calendar(DATA / "sop-outlook.ics", BERLIN, german)
    assert list(calendar.cycles["2026-12"].phases) == [
        "s_op_data_gathering_december",
        "team_lunch",
        "s_op_demand_review",
        "s_op_executive_review",
    ]


def test_holiday_dates_of_timed_events_and_floating_times(tmp_path: Path) -> None:
    path = ics(
        tmp_path,
        *event(
            "Late party", "DTSTART:20261218T230000Z", "DTEND:20261219T010000Z"
        ),  # Berlin 19 Dec 00:00-02:00
        *event("Floating", "DTSTART:20261222T150000", "DTEND:20261222T160000"),
        *event("Two days", "DTSTART;VALUE=DATE:20261228", "DTEND;VALUE=DATE:20261230"),
        *event("One day, no DTEND", "DTSTART;VALUE=DATE:20261231"),
        *event("Cancelled", "DTSTART;VALUE=DATE:20261201", "STATUS:CANCELLED"),
    )
    days = {date(2026, 12, d) for d in (19, 22, 28, 29, 31)}
    assert load_ics_holidays(path, BERLIN) == days
    # Without a timezone a timed event counts on its own local days: the party's are 18 and 19 Dec (UTC).
    assert load_ics_holidays(path, None) == days | {date(2026, 12, 18)}


# --- errors ---------------------------------------------------------------------------------------


def config_file(tmp_path: Path, calendar: Any) -> Path:
    path = tmp_path / "config.yaml"
    body = yaml.safe_dump({"calendar": calendar}, sort_keys=False, allow_unicode=True)
    path.write_text("register: {type: csv, path: register.csv}\n" + body)
    return path


def load_from_config(path: Path, business: BusinessCalendar) -> CycleCalendar:
    document = load_yaml_file(path)
    config = validate_model(document, Config)
    return load_cycle_calendar(config.calendar, BERLIN, business, base_dir=path.parent, document=document)


def test_config_mapping_errors_are_located(tmp_path: Path, german: BusinessCalendar) -> None:
    shutil.copy(DATA / "sop-outlook.ics", tmp_path / "sop.ics")
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            register: {type: csv, path: register.csv}
            calendar:
              path: sop.ics
              phases:
                "Data (gathering": data_gathering
                Executive: exec-review
                "[Dd]emand": demand_review
            """
        )
    )
    with pytest.raises(ProblemList) as info:
        load_from_config(path, german)
    assert errors(info.value) == [
        f"{path}:5:5: calendar.phases: bad regular expression 'Data (gathering': "
        "missing ), unterminated subpattern at position 5",
        f"{path}:6:16: calendar.phases: phase id 'exec-review' may only use letters, digits and _ "
        "(rules refer to it as cycle.<phase>.end)",
    ]


@pytest.mark.parametrize(
    ("calendar", "message"),
    [
        ({"path": "sop.ics", "phases": {"x": "y"}, "match": "location"}, "calendar.match: Input should be"),
        ({"path": "sop.ics", "cycle_id": "cycle"}, "calendar.cycle_id: 'cycle' has no strftime directives"),
        ({"path": "sop.ics", "from": "2026-13"}, "calendar.from: expected a month such as 2026-11"),
        ({"path": "sop.ics", "phase": {}}, "unknown key 'phase' in calendar; did you mean 'phases'?"),
        (5, "calendar: expected a file name or a mapping with `path:` and `phases:`, got 5"),
    ],
)
def test_config_shape_errors(tmp_path: Path, calendar: Any, message: str) -> None:
    path = config_file(tmp_path, calendar)
    with pytest.raises(ProblemList) as info:
        validate_model(load_yaml_file(path), Config)
    [problem] = errors(info.value)
    assert problem.startswith(f"{path}:") and message in problem


def test_ics_options_on_a_yaml_calendar(tmp_path: Path, german: BusinessCalendar) -> None:
    (tmp_path / "cycles.yaml").write_text("cycles: []\n")
    path = config_file(tmp_path, {"path": "cycles.yaml", "phases": {"x": "y"}})
    with pytest.raises(ConfigError) as info:
        load_from_config(path, german)
    assert (
        str(info.value)
        == f"{path}:4:3: calendar.phases only applies to .ics calendars; cycles.yaml is read as YAML"
    )


def test_yaml_calendar_still_works_through_the_mapping_form(tmp_path: Path, german: BusinessCalendar) -> None:
    (tmp_path / "cycles.yaml").write_text(
        'cycles:\n  - id: "2026-12"\n    phases: [{id: a, start: 2026-12-01, end: 2026-12-02}]\n'
    )
    for setting in ("cycles.yaml", {"path": "cycles.yaml"}):
        calendar = load_from_config(config_file(tmp_path, setting), german)
        assert phases(calendar) == {"2026-12": {"a": (date(2026, 12, 1), date(2026, 12, 2), None)}}


def one_line_error(path: Path, german: BusinessCalendar, **options: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_cycle_calendar(CycleCalendarSource(path=str(path), **options), BERLIN, german)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "file not found"),
        (b"", "not an iCalendar file: there is no BEGIN:VCALENDAR"),
        (b"cycles:\n  - id: x\n", "not an iCalendar file: there is no BEGIN:VCALENDAR"),
        (bytes(range(256)), "not an iCalendar file: there is no BEGIN:VCALENDAR"),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n",
            "not an iCalendar file: no complete BEGIN:VCALENDAR ... END:VCALENDAR",
        ),
        (
            b"BEGIN:VCALENDAR\r\nnot a content line\r\nEND:VCALENDAR\r\n",
            "not an iCalendar file (Content line could not be parsed into parts",
        ),
        (
            b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
            "no event matches the phases mapping: it has no cycle phases",
        ),
    ],
)
def test_file_errors_are_one_line(
    tmp_path: Path, german: BusinessCalendar, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "sop.ics"
    if content is not None:
        path.write_bytes(content)
    assert one_line_error(path, german, phases={".*": "meeting"}).startswith(f"{path}: {problem}")


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (
            event("Review", "DTSTART:garbage"),
            "event 'Review' (UID Review): bad DTSTART: Expected time, got: garbage",
        ),
        (event("Review"), "event 'Review' (UID Review) has no DTSTART"),
        (
            event("Review", "DTSTART:20261201T100000", "RRULE:FREQ=SOMETIMES"),
            "event 'Review' (UID Review): bad RRULE: Expected frequency, got: SOMETIMES",
        ),
        (
            event("Review", "DTSTART;TZID=Mars/Olympus Mons:20261201T100000"),
            "event 'Review' (UID Review): DTSTART names the unknown time zone 'Mars/Olympus Mons' and the file "
            "has no VTIMEZONE for it",
        ),
        (
            ["X-WR-TIMEZONE:Mars/Olympus Mons", *event("Review", "DTSTART:20261201T100000")],
            "X-WR-TIMEZONE 'Mars/Olympus Mons' is not a known time zone",
        ),
        (
            event("Review", "DTSTART:20261201T100000Z", "RRULE:FREQ=SECONDLY"),
            "event 'Review' (UID Review) repeats too often: the calendar has more than 500 "
            "occurrences between 2026-12-01 and 2029-12-01",
        ),
        (
            ["CALSCALE:ETHIOPIC", *event("Review", "DTSTART:20261201T100000Z")],
            "event 'Review' (UID Review): Only Gregorian calendars are supported.",
        ),
    ],
)
def test_event_errors_name_the_event(
    tmp_path: Path, german: BusinessCalendar, lines: list[str], problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ics_calendar, "MAX_OCCURRENCES", 500)  # the real cap (10,000) takes seconds to reach
    path = ics(tmp_path, *lines)
    assert one_line_error(path, german, phases={"Review": "review"}) == f"{path}: {problem}"


def test_holiday_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build_business_calendar(BusinessCalendarConfig(holidays={"ics": "missing.ics"}), tmp_path)
    assert str(info.value) == f"{tmp_path / 'missing.ics'}: file not found"
    path = ics(tmp_path, *event("Holiday", "DTSTART:garbage"))
    with pytest.raises(ConfigError) as info:
        build_business_calendar(BusinessCalendarConfig(holidays={"ics": "cal.ics"}), tmp_path)
    assert str(info.value).startswith(f"{path}: event 'Holiday' (UID Holiday): bad DTSTART")


# --- through load_setup ---------------------------------------------------------------------------


def test_load_setup_with_ics_calendars(example_copy: Path) -> None:
    folder = example_copy
    shutil.copy(DATA / "sop-outlook.ics", folder / "example" / "sop.ics")
    shutil.copy(DATA / "closures-outlook.ics", folder / "example" / "closures.ics")
    config = folder / "config.yaml"
    text = config.read_text()
    text = text.replace(
        "calendar: example/cycles.yaml",
        "calendar:\n"
        "  path: example/sop.ics\n"
        '  phases: {"Data gathering": data_gathering, "Demand review": demand_review, "Executive": exec_review}',
    )
    text = text.replace("holidays: {country: DE}", "holidays: {country: DE, ics: example/closures.ics}")
    config.write_text(text)
    setup = load_setup(config)
    cycles = setup.environment.cycles
    assert cycles.cycles["2027-05"].phases["exec_review"].meeting == berlin(2027, 5, 20, 10)
    assert not setup.environment.clock.business.is_business_day(date(2027, 5, 19))
    assert (folder / "example" / "sop.ics").resolve() in watched_files(setup, config)


def test_load_setup_locates_a_bad_pattern(example_copy: Path) -> None:
    folder = example_copy
    shutil.copy(DATA / "sop-outlook.ics", folder / "example" / "sop.ics")
    config = folder / "config.yaml"
    text = config.read_text().replace(
        "calendar: example/cycles.yaml", "calendar:\n  path: example/sop.ics\n  phases:\n    '(': exec_review"
    )
    config.write_text(text)
    line = text.splitlines().index("    '(': exec_review") + 1
    with pytest.raises(ProblemList) as info:
        load_setup(config)
    assert (
        f"{config}:{line}:5: calendar.phases: bad regular expression '(': "
        "missing ), unterminated subpattern at position 0"
    ) in errors(info.value)


# --- robustness: real-world calendars ----------------------------------------------------------------

SHIPPED = Path(recurring_ical_events.__file__).parent / "test" / "calendars"
REAL_WORLD = sorted(SHIPPED.glob("*.ics")) if SHIPPED.is_dir() else []


def check_outcome(path: Path, load: Any) -> Any:
    """Either the load succeeds or it raises a SopwatchError: one line, naming the file."""
    try:
        return load()
    except SopwatchError as exc:
        message = str(exc)
        assert "\n" not in message, message
        assert message.startswith(f"{path}: "), message
        return None


@pytest.mark.skipif(
    not REAL_WORLD,
    reason=f"recurring-ical-events does not ship its test calendars in this installation ({SHIPPED})",
)
@pytest.mark.parametrize("path", REAL_WORLD, ids=[p.name for p in REAL_WORLD] or None)
def test_real_world_calendars_load_or_fail_in_one_line(path: Path, german: BusinessCalendar) -> None:
    source = CycleCalendarSource(path=str(path), phases={".*": "meeting"})
    calendar = check_outcome(path, lambda: load_cycle_calendar(source, BERLIN, german))
    if calendar is not None:
        assert calendar.cycles
        for line in describe_cycles(calendar, BERLIN):
            assert "\n" not in line
    config = BusinessCalendarConfig(holidays={"ics": str(path)})
    business = check_outcome(path, lambda: build_business_calendar(config, tz=BERLIN))
    if business is not None:
        business.is_business_day(date(2026, 12, 1))


def test_real_world_calendars_are_shipped() -> None:
    if not REAL_WORLD:
        pytest.skip(
            f"recurring-ical-events does not ship its test calendars in this installation ({SHIPPED})"
        )
    assert len(REAL_WORLD) >= 90


def test_window_is_documented_horizon(tmp_path: Path, german: BusinessCalendar) -> None:
    # A series without end, exported (DTSTAMP) on 1 Nov 2026: expanded to 3 years after that.
    path = ics(tmp_path, *event("Review", "DTSTART:20260105T100000", "RRULE:FREQ=MONTHLY"))
    calendar = load_cycle_calendar(path, BERLIN, german)
    # The last occurrence before 1 Nov 2029 is on 5 Oct 2029.
    assert (next(iter(calendar.cycles)), list(calendar.cycles)[-1]) == ("2026-01", "2029-10")
