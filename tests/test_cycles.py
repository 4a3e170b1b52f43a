"""Cycle calendars (explicit and template) and the business calendar they count days with."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sopwatch.adapters.business_calendar import build_business_calendar
from sopwatch.adapters.cycles import load_cycle_calendar
from sopwatch.config.schema import BusinessCalendarConfig
from sopwatch.core.business import BusinessCalendar
from sopwatch.core.model import CycleCalendar, Phase
from sopwatch.errors import ConfigError, Location, ProblemList, SopwatchError

BERLIN = ZoneInfo("Europe/Berlin")

# December 2026 by hand: Dec 1 is a Tuesday; Dec 25/26 are German public holidays (the 26th is a
# Saturday anyway); Dec 24 and 31 are closures. Business days:
DEC_2026 = [1, 2, 3, 4, 7, 8, 9, 10, 11, 14, 15, 16, 17, 18, 21, 22, 23, 28, 29, 30]


@pytest.fixture(scope="module")
def business() -> BusinessCalendar:
    return build_business_calendar(
        BusinessCalendarConfig(holidays={"country": "DE"}, closures=[date(2026, 12, 24), date(2026, 12, 31)])
    )


def write(tmp_path: Path, text: str, name: str = "cycles.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors(exc: SopwatchError) -> list[str]:
    return [str(p) for p in exc.problems] if isinstance(exc, ProblemList) else [str(exc)]


def test_business_days_of_december_2026(business: BusinessCalendar) -> None:
    days = [date(2026, 12, d) for d in range(1, 32)]
    assert [d.day for d in days if business.is_business_day(d)] == DEC_2026


TEMPLATE = """\
template:
  from: "2026-12"
  to: "2027-01"
  phases:
    - {id: data_gathering, start: 1, end: 3}
    - {id: demand_review, start: 4, end: 6, meeting: {day: 6, time: "14:30"}}
    - {id: exec_review, start: 9, end: 10, meeting: "10:00"}
    - {id: closing, start: 17, end: -1}
"""


def test_template_generates_business_day_phases(tmp_path: Path, business: BusinessCalendar) -> None:
    calendar = load_cycle_calendar(write(tmp_path, TEMPLATE), BERLIN, business)
    assert list(calendar.cycles) == ["2026-12", "2027-01"]
    dec = calendar.cycles["2026-12"].phases

    def bd(n: int) -> date:
        return date(2026, 12, DEC_2026[n - 1 if n > 0 else n])

    assert dec["data_gathering"] == Phase("data_gathering", date(2026, 12, 1), date(2026, 12, 3))
    assert dec["demand_review"] == Phase(
        "demand_review", date(2026, 12, 4), date(2026, 12, 8), datetime(2026, 12, 8, 14, 30, tzinfo=BERLIN)
    )
    assert dec["exec_review"] == Phase(
        "exec_review", date(2026, 12, 11), date(2026, 12, 14), datetime(2026, 12, 14, 10, 0, tzinfo=BERLIN)
    )
    # Business day 17 is the 23rd; the last (-1) skips the 24th-27th and the closure on the 31st.
    assert dec["closing"] == Phase("closing", date(2026, 12, 23), date(2026, 12, 30))
    assert (bd(6), bd(17), bd(-1)) == (date(2026, 12, 8), date(2026, 12, 23), date(2026, 12, 30))
    jan = calendar.cycles["2027-01"].phases
    # 1 January is a holiday, so business day 1 is Monday the 4th.
    assert jan["data_gathering"] == Phase("data_gathering", date(2027, 1, 4), date(2027, 1, 6))
    assert jan["closing"] == Phase("closing", date(2027, 1, 26), date(2027, 1, 29))
    assert calendar.phase_ids == {"data_gathering", "demand_review", "exec_review", "closing"}


def test_explicit_cycles_override_generated_ones(tmp_path: Path, business: BusinessCalendar) -> None:
    text = (
        TEMPLATE
        + """\
cycles:
  - id: "2026-12"
    phases:
      - {id: data_gathering, start: 2026-12-01, end: 2026-12-02}
      - {id: exec_review, start: 2026-12-14, end: 2026-12-15, meeting: "2026-12-15T10:00"}
      - {id: wrap_up, start: 2026-12-16, end: 2026-12-16, meeting: "09:15"}
      - {id: board, start: 2026-12-17, end: 2026-12-17, meeting: "2026-12-17T09:00:00+00:00"}
      - {id: audit, start: 2026-12-18, end: 2026-12-18, meeting: 2026-12-18 16:00:00}
  - id: 202611
    phases:
      - {id: data_gathering, start: "2026-11-02", end: "2026-11-04"}
"""
    )
    calendar = load_cycle_calendar(write(tmp_path, text), BERLIN, business)
    assert list(calendar.cycles) == ["202611", "2026-12", "2027-01"]  # ordered by first start
    dec = calendar.cycles["2026-12"].phases
    assert list(dec) == ["data_gathering", "exec_review", "wrap_up", "board", "audit"]
    assert dec["data_gathering"].end == date(2026, 12, 2)
    assert dec["exec_review"].meeting == datetime(2026, 12, 15, 10, 0, tzinfo=BERLIN)
    assert dec["wrap_up"].meeting == datetime(2026, 12, 16, 9, 15, tzinfo=BERLIN)
    assert dec["board"].meeting == datetime(2026, 12, 17, 10, 0, tzinfo=BERLIN)
    assert dec["board"].meeting.tzinfo is BERLIN
    assert dec["audit"].meeting == datetime(2026, 12, 18, 16, 0, tzinfo=BERLIN)
    assert calendar.cycles["202611"].phases["data_gathering"].start == date(2026, 11, 2)
    assert calendar.cycles["2027-01"].phases["data_gathering"].start == date(2027, 1, 4)


def test_custom_cycle_id_format(tmp_path: Path, business: BusinessCalendar) -> None:
    text = TEMPLATE.replace('  to: "2027-01"\n', '  to: "2027-01"\n  cycle_id: "FY%y-M%m"\n')
    calendar = load_cycle_calendar(write(tmp_path, text), BERLIN, business)
    assert list(calendar.cycles) == ["FY26-M12", "FY27-M01"]


def test_no_path_gives_an_empty_calendar(business: BusinessCalendar) -> None:
    assert load_cycle_calendar(None, BERLIN, business) == CycleCalendar()


def test_ics_without_events_is_one_clear_error(tmp_path: Path, business: BusinessCalendar) -> None:
    path = write(tmp_path, "BEGIN:VCALENDAR\nEND:VCALENDAR\n", "cycles.ics")
    with pytest.raises(ConfigError) as info:
        load_cycle_calendar(path, BERLIN, business)
    assert str(info.value) == f"{path}: no event in the calendar: it has no cycle phases"
    assert info.value.location == Location(str(path))


def test_explicit_cycle_errors(tmp_path: Path, business: BusinessCalendar) -> None:
    path = write(
        tmp_path,
        "cycles:\n"  # 1
        '  - id: "2026-12"\n'  # 2
        "    phases:\n"  # 3
        "      - {id: data, start: 2026-12-05, end: 2026-12-03}\n"  # 4
        "      - {id: data, start: 2026-12-01, end: 2026-12-03}\n"  # 5
        '      - {id: review, start: 2026-12-14, end: 2026-12-15, meeting: "25:00"}\n'  # 6
        '      - {id: board, start: 2026-12-14, end: 2026-12-15, meeting: "tomorrow"}\n'  # 7
        '  - id: "2026-12"\n'  # 8
        "    phases:\n"  # 9
        "      - {id: x, start: 2026-12-01, end: 2026-12-01}\n",  # 10
    )
    with pytest.raises(ProblemList) as info:
        load_cycle_calendar(path, BERLIN, business)
    assert errors(info.value) == [
        f"{path}:4:44: phase 'data' ends on 2026-12-03 before it starts on 2026-12-05",
        f"{path}:5:14: duplicate phase id 'data' in cycle '2026-12' (first on line 4)",
        f"{path}:6:67: bad time '25:00': use HH:MM, e.g. '10:00'",
        f"{path}:7:66: meeting 'tomorrow' is not a date and time: use '2026-12-15T10:00', or '10:00' for the end day",
        f"{path}:8:9: duplicate cycle id '2026-12' (first on line 2)",
    ]


def test_unknown_keys_and_bad_values(tmp_path: Path, business: BusinessCalendar) -> None:
    path = write(
        tmp_path,
        "cycles:\n"  # 1
        "  - id: c1\n"  # 2
        "    phase:\n"  # 3
        "      - {id: a, start: 2026-12-01, end: 2026-12-02}\n"  # 4
        "  - id: c2\n"  # 5
        "    phases:\n"  # 6
        "      - {id: exec-review, start: 20261201, end: 2026-12-02, owner: lee}\n",  # 7
    )
    with pytest.raises(ProblemList) as info:
        load_cycle_calendar(path, BERLIN, business)
    assert errors(info.value) == [
        f"{path}:2:5: cycles[0].phases: required key is missing",
        f"{path}:3:5: unknown key 'phase' in cycles[0]; did you mean 'phases'?",
        f"{path}:7:14: cycles[1].phases[0].id: phase id 'exec-review' may only use letters, digits and _ "
        "(rules refer to it as cycle.<phase>.end)",
        f"{path}:7:34: cycles[1].phases[0].start: expected a date such as 2026-12-01, got 20261201",
        f"{path}:7:61: unknown key 'owner' in cycles[1].phases[0]",
    ]


def test_template_static_errors(tmp_path: Path, business: BusinessCalendar) -> None:
    path = write(
        tmp_path,
        "template:\n"  # 1
        '  from: "2026-12"\n'  # 2
        '  to: "2027-01"\n'  # 3
        "  phases:\n"  # 4
        "    - {id: a, start: 0, end: 3}\n"  # 5
        '    - {id: d, start: 1, end: 2, meeting: "9:75"}\n'  # 6
        "    - {id: a, start: 1, end: 2}\n"  # 7
        '    - {id: e, start: 1, end: 2, meeting: {day: 0, time: "10:00"}}\n',  # 8
    )
    with pytest.raises(ProblemList) as info:
        load_cycle_calendar(path, BERLIN, business)
    zero = (
        "business day 0 does not exist: count 1, 2, ... from the month's first business day "
        "or -1, -2, ... from its last"
    )
    assert errors(info.value) == [
        f"{path}:5:22: {zero}",
        f"{path}:6:42: bad time '9:75': use HH:MM, e.g. '10:00'",
        f"{path}:7:12: duplicate phase id 'a' (first on line 5)",
        f"{path}:8:48: {zero}",
    ]


def test_template_month_errors_are_reported_once(tmp_path: Path, business: BusinessCalendar) -> None:
    path = write(
        tmp_path,
        "template:\n"  # 1
        '  from: "2026-11"\n'  # 2
        '  to: "2026-12"\n'  # 3
        '  cycle_id: "%Y"\n'  # 4
        "  phases:\n"  # 5
        "    - {id: b, start: 1, end: 25}\n"  # 6
        "    - {id: c, start: 5, end: 2}\n"  # 7
        "    - {id: f, start: -21, end: -1}\n",  # 8
    )
    with pytest.raises(ProblemList) as info:
        load_cycle_calendar(path, BERLIN, business)
    # November 2026 has 21 business days (no national holiday), December 20.
    assert errors(info.value) == [
        f"{path}:6:30: business day 25 does not exist in 2026-11 (21 business days)",
        f"{path}:7:30: phase 'c' ends before it starts in 2026-11 "
        "(business day 2 is 2026-11-03, business day 5 is 2026-11-06)",
        f"{path}:8:22: business day -21 does not exist in 2026-12 (20 business days)",
        f"{path}:4:13: cycle_id '%Y' gives the same id '2026' to 2026-11 and 2026-12",
    ]


def test_template_month_range_errors(tmp_path: Path, business: BusinessCalendar) -> None:
    path = write(
        tmp_path,
        'template:\n  from: "2027-02"\n  to: "2026-13"\n  phases:\n    - {id: a, start: 1, end: 2}\n',
    )
    with pytest.raises(ProblemList) as info:
        load_cycle_calendar(path, BERLIN, business)
    assert errors(info.value) == [f"{path}:3:7: template.to: expected a month such as 2026-11, got '2026-13'"]
    path.write_text(
        'template:\n  from: "2027-02"\n  to: "2026-12"\n  phases:\n    - {id: a, start: 1, end: 2}\n'
    )
    with pytest.raises(ConfigError) as one:
        load_cycle_calendar(path, BERLIN, business)
    assert str(one.value) == f"{path}:3:7: to (2026-12) is before from (2027-02)"


def test_a_file_without_cycles_or_template(tmp_path: Path, business: BusinessCalendar) -> None:
    path = write(tmp_path, "cycle:\n  - id: x\n")
    with pytest.raises(ConfigError) as info:
        load_cycle_calendar(path, BERLIN, business)
    assert str(info.value) == f"{path}:1:1: no cycles: add a `cycles:` list, a `template:`, or both"


# --- business calendar -------------------------------------------------------------------------


def test_business_calendar_workdays_closures_and_hours() -> None:
    calendar = build_business_calendar(
        BusinessCalendarConfig(
            workdays=["sun", "mon", "tue", "wed", "thu"], closures=[date(2026, 12, 6)], hours="00:00-24:00"
        )
    )
    week = [date(2026, 12, 6) + timedelta(days=n) for n in range(7)]  # Sunday to Saturday
    assert [calendar.is_business_day(d) for d in week] == [False, True, True, True, True, False, False]
    assert (calendar.hours_start, calendar.hours_end) == (time(0, 0), time.max)
    # Thursday 23:59 is still inside the window that runs to midnight.
    late = datetime(2026, 12, 10, 23, 59, tzinfo=BERLIN)
    assert calendar.next_window_start(late, BERLIN) == late


def test_business_calendar_subdivision_holidays() -> None:
    bavaria = build_business_calendar(BusinessCalendarConfig(holidays={"country": "de", "subdiv": "by"}))
    berlin = build_business_calendar(BusinessCalendarConfig(holidays={"country": "DE", "subdiv": "BE"}))
    epiphany = date(2027, 1, 6)  # a holiday in Bavaria, not in Berlin
    assert (bavaria.is_business_day(epiphany), berlin.is_business_day(epiphany)) == (False, True)
    assert (bavaria.hours_start, bavaria.hours_end) == (time(8, 0), time(18, 0))


@pytest.mark.parametrize(
    ("holidays", "message"),
    [
        ({"country": "XX"}, "holidays: unknown country 'XX' (use an ISO 3166 code such as DE or US)"),
        (
            {"country": "DEU", "subdiv": "Bayern"},
            "holidays: country DEU has no subdivision 'Bayern' (known: ",
        ),
        ({"subdiv": "BY"}, "holidays: subdiv 'BY' needs a country as well"),
    ],
)
def test_business_calendar_bad_holidays_are_config_errors(holidays: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_business_calendar(BusinessCalendarConfig(holidays=holidays))
    assert str(info.value).startswith(message)
    assert info.value.location is None
