"""Business-day arithmetic (SPEC §2 "Time expressions"), checked against ``numpy.busday_offset``.

numpy is the independent oracle: SPEC §2 says a business-day step gives "the same result as
``numpy.busday_offset`` with ``roll='forward'``/``'backward'`` on the date".
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sopwatch.adapters.public_holidays import public_holidays
from sopwatch.core.business import BusinessCalendar
from sopwatch.core.timeexpr import Clock, parse_time_expression

BERLIN = ZoneInfo("Europe/Berlin")
MON_FRI = range(5)
FIRST, LAST = date(2020, 1, 1), date(2035, 12, 31)


def numpy_offset(day: date, n: int, workdays=MON_FRI, holiday_dates=(), backward: bool = False) -> date:
    """The oracle: numpy's business-day offset with the roll direction SPEC §2 prescribes
    (``backward`` for a step written with ``-``, which matters for ``- 0 business days``)."""
    weekmask = [wd in set(workdays) for wd in range(7)]
    result = np.busday_offset(
        np.datetime64(day, "D"),
        n,
        roll="backward" if n < 0 or backward else "forward",
        weekmask=weekmask,
        holidays=[np.datetime64(d, "D") for d in holiday_dates],
    )
    return result.astype("datetime64[D]").item()


def numpy_is_busday(day: date, workdays=MON_FRI, holiday_dates=()) -> bool:
    weekmask = [wd in set(workdays) for wd in range(7)]
    return bool(
        np.is_busday(
            np.datetime64(day, "D"),
            weekmask=weekmask,
            holidays=[np.datetime64(d, "D") for d in holiday_dates],
        )
    )


# --- parametrised cases -----------------------------------------------------------------------

# 2026-12-04 is a Friday; 2026-12-05/06 the weekend.
FRI, SAT, SUN, MON = date(2026, 12, 4), date(2026, 12, 5), date(2026, 12, 6), date(2026, 12, 7)


@pytest.mark.parametrize(
    ("day", "n", "expected"),
    [
        (FRI, 0, FRI),  # a business day does not roll
        (FRI, 1, MON),  # over the weekend
        (FRI, -1, date(2026, 12, 3)),
        (FRI, 2, date(2026, 12, 8)),
        (SAT, 0, MON),  # rolls forward for n >= 0
        (SUN, 0, MON),
        (SAT, 1, date(2026, 12, 8)),  # roll to Monday, then one step: Tuesday
        (SAT, -1, date(2026, 12, 3)),  # roll back to Friday, then one step: Thursday
        (SUN, -1, date(2026, 12, 3)),
        (MON, -1, FRI),
        (MON, 5, date(2026, 12, 14)),
        (MON, -5, date(2026, 11, 30)),
        (FRI, 20, date(2027, 1, 1)),  # no holidays configured here
    ],
)
def test_offset_mon_fri_cases(day: date, n: int, expected: date) -> None:
    calendar = BusinessCalendar()
    assert calendar.offset(day, n) == expected
    assert numpy_offset(day, n) == expected  # the hand-computed answer agrees with the oracle


@pytest.mark.parametrize(
    ("day", "n", "closures", "expected"),
    [
        # Thursday 2026-12-24 and Friday 2026-12-25 closed: Wednesday + 1 lands on Monday 28th.
        (date(2026, 12, 23), 1, {date(2026, 12, 24), date(2026, 12, 25)}, date(2026, 12, 28)),
        # starting on a closure day rolls forward first
        (date(2026, 12, 24), 0, {date(2026, 12, 24)}, date(2026, 12, 25)),
        # ... and backward for negative offsets
        (date(2026, 12, 24), -1, {date(2026, 12, 24)}, date(2026, 12, 22)),
        (date(2026, 12, 28), -1, {date(2026, 12, 24), date(2026, 12, 25)}, date(2026, 12, 23)),
    ],
)
def test_offset_with_closures(day: date, n: int, closures: set[date], expected: date) -> None:
    calendar = BusinessCalendar(closures=closures)
    assert calendar.offset(day, n) == expected
    assert numpy_offset(day, n, holiday_dates=closures) == expected


@pytest.mark.parametrize(
    ("workdays", "day", "n", "expected"),
    [
        ((6, 0, 1, 2, 3), date(2026, 12, 3), 1, date(2026, 12, 6)),  # Sun–Thu week: Thu + 1 = Sun
        ((6, 0, 1, 2, 3), date(2026, 12, 4), 0, date(2026, 12, 6)),  # Friday rolls to Sunday
        ((6, 0, 1, 2, 3), date(2026, 12, 5), -1, date(2026, 12, 2)),  # Sat rolls to Thu, then Wed
        ((2,), date(2026, 12, 4), 1, date(2026, 12, 16)),  # Wednesdays only
        ((0, 1, 2, 3, 4, 5), date(2026, 12, 5), 1, date(2026, 12, 7)),  # Saturday is a workday
    ],
)
def test_offset_with_weekmasks(workdays, day: date, n: int, expected: date) -> None:
    calendar = BusinessCalendar(workdays=workdays)
    assert calendar.offset(day, n) == expected
    assert numpy_offset(day, n, workdays) == expected


def test_no_workdays_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one weekday"):
        BusinessCalendar(workdays=())


# --- hypothesis: arbitrary dates, offsets, weekmasks and closures --------------------------------

dates = st.dates(min_value=FIRST, max_value=LAST)
offsets = st.integers(min_value=-30, max_value=30)
weekmasks = st.sets(st.integers(min_value=0, max_value=6), min_size=1)


@st.composite
def closure_sets(draw) -> frozenset[date]:
    """Random closures, concentrated near a random centre so that they actually get hit."""
    centre = draw(dates)
    deltas = draw(st.sets(st.integers(min_value=-60, max_value=60), max_size=25))
    return frozenset(c for d in deltas if FIRST <= (c := centre + timedelta(days=d)) <= LAST)


@settings(max_examples=200, deadline=None)
@given(day=dates, n=offsets, workdays=weekmasks, closures=closure_sets())
def test_offset_matches_numpy(day: date, n: int, workdays: set[int], closures: frozenset[date]) -> None:
    calendar = BusinessCalendar(workdays=workdays, closures=closures)
    assert calendar.offset(day, n) == numpy_offset(day, n, workdays, closures)


@settings(max_examples=200, deadline=None)
@given(day=dates, n=st.integers(0, 40), workdays=weekmasks, closures=closure_sets())
def test_a_step_written_with_minus_rolls_backward_even_for_zero(
    day: date, n: int, workdays: set[int], closures: frozenset[date]
) -> None:
    """``due - 0 business days`` on a Saturday is Friday: the roll follows the sign as written."""
    calendar = BusinessCalendar(workdays=workdays, closures=closures)
    assert calendar.offset(day, -n, True) == numpy_offset(day, -n, workdays, closures, backward=True)
    clock = Clock(BERLIN, calendar)
    moved = parse_time_expression(f"due - {n} business days").evaluate(clock, day)
    assert moved == clock.end_of_day(numpy_offset(day, -n, workdays, closures, backward=True))


@settings(max_examples=200, deadline=None)
@given(day=dates, workdays=weekmasks, closures=closure_sets())
def test_is_business_day_matches_numpy(day: date, workdays: set[int], closures: frozenset[date]) -> None:
    calendar = BusinessCalendar(workdays=workdays, closures=closures)
    assert calendar.is_business_day(day) == numpy_is_busday(day, workdays, closures)


@settings(max_examples=200, deadline=None)
@given(day=dates, n=offsets, workdays=weekmasks, extra=closure_sets())
def test_offset_with_holiday_predicate_matches_numpy(
    day: date, n: int, workdays: set[int], extra: frozenset[date]
) -> None:
    """Holidays given as a predicate (not closures) behave exactly like numpy's ``holidays=``."""
    calendar = BusinessCalendar(workdays=workdays, is_holiday=extra.__contains__)
    assert calendar.offset(day, n) == numpy_offset(day, n, workdays, extra)


@settings(max_examples=200, deadline=None)
@given(day=dates, n=st.integers(min_value=1, max_value=30), closures=closure_sets())
def test_offset_lands_on_a_business_day_and_counts_exactly_n(
    day: date, n: int, closures: frozenset[date]
) -> None:
    """Structural property, independent of numpy: exactly n business days lie in (start, result]."""
    calendar = BusinessCalendar(closures=closures)
    for sign in (1, -1):
        result = calendar.offset(day, sign * n)
        assert calendar.is_business_day(result)
        assert (result > day) if sign > 0 else (result < day)
        lo, hi = sorted((day, result))
        between = [lo + timedelta(days=i) for i in range((hi - lo).days + 1)]
        counted = [d for d in between if calendar.is_business_day(d) and d != day]
        # the roll onto the first business day is not counted as a step
        start = day
        while not calendar.is_business_day(start):
            start += timedelta(days=sign)
        steps = [d for d in counted if d != start]
        assert len(steps) == n


# --- German public holidays from the `holidays` package -----------------------------------------

DE_YEARS = range(2020, 2036)
DE_DATES = frozenset(holidays.country_holidays("DE", years=DE_YEARS))
BY_DATES = frozenset(holidays.country_holidays("DE", subdiv="BY", years=DE_YEARS))
DE_CAL = BusinessCalendar(is_holiday=public_holidays("DE"))
BY_CAL = BusinessCalendar(is_holiday=public_holidays("DE", "BY"))


def test_german_holiday_predicate_known_dates() -> None:
    de = public_holidays("DE")
    by = public_holidays("DE", "BY")
    # Nationwide: New Year, Good Friday and Easter Monday 2026 (Easter Sunday is 5 April 2026),
    # German Unity Day, Christmas.
    for day in (date(2026, 1, 1), date(2026, 4, 3), date(2026, 4, 6), date(2026, 10, 3), date(2026, 12, 25)):
        assert de(day) and by(day), day
    # Bavaria only: Epiphany and Corpus Christi (Easter + 60 days = 4 June 2026).
    for day in (date(2026, 1, 6), date(2026, 6, 4)):
        assert by(day) and not de(day), day
    # Ordinary days are not holidays.
    assert not de(date(2026, 12, 4)) and not by(date(2026, 12, 4))


def test_extra_dates_are_holidays_too() -> None:
    extra = {date(2026, 12, 24), date(2026, 12, 31), date(2040, 12, 24)}  # 2040: beyond the kept years
    is_holiday = public_holidays("DE", None, extra, today=date(2026, 11, 27))
    assert all(is_holiday(day) for day in extra)
    assert not is_holiday(date(2026, 12, 23)) and not is_holiday(date(2040, 12, 23))
    assert is_holiday(date(2026, 12, 25)) and is_holiday(date(2040, 12, 25))  # the country's own


@pytest.mark.parametrize(
    ("calendar", "day", "n", "expected"),
    [
        # Thursday before Easter 2026 + 1: Good Friday and Easter Monday are skipped -> Tuesday.
        (DE_CAL, date(2026, 4, 2), 1, date(2026, 4, 7)),
        (DE_CAL, date(2026, 4, 7), -1, date(2026, 4, 2)),
        # Monday 5 Jan 2026 + 1 is Tuesday 6 Jan nationally, but Epiphany in Bavaria -> Wednesday.
        (DE_CAL, date(2026, 1, 5), 1, date(2026, 1, 6)),
        (BY_CAL, date(2026, 1, 5), 1, date(2026, 1, 7)),
        # Corpus Christi (Thursday 4 June 2026) only in Bavaria.
        (DE_CAL, date(2026, 6, 3), 1, date(2026, 6, 4)),
        (BY_CAL, date(2026, 6, 3), 1, date(2026, 6, 5)),
        # Christmas 2026: Friday 25th and Saturday 26th; Thursday 24th + 1 -> Monday 28th.
        (DE_CAL, date(2026, 12, 24), 1, date(2026, 12, 28)),
        # Starting on a holiday rolls: forward for n >= 0 (Good Friday + 0 -> Tuesday after Easter),
        # backward for n < 0 (Easter Monday rolls back to Thursday, then one step -> Wednesday).
        (DE_CAL, date(2026, 4, 3), 0, date(2026, 4, 7)),
        (DE_CAL, date(2026, 4, 6), -1, date(2026, 4, 1)),
    ],
)
def test_german_holiday_cases(calendar: BusinessCalendar, day: date, n: int, expected: date) -> None:
    assert calendar.offset(day, n) == expected
    holiday_dates = BY_DATES if calendar is BY_CAL else DE_DATES
    assert numpy_offset(day, n, MON_FRI, holiday_dates) == expected


@settings(max_examples=200, deadline=None)
@given(day=st.dates(min_value=date(2020, 3, 1), max_value=date(2035, 10, 31)), n=offsets)
def test_german_holidays_match_numpy(day: date, n: int) -> None:
    assert DE_CAL.offset(day, n) == numpy_offset(day, n, MON_FRI, DE_DATES)
    assert BY_CAL.offset(day, n) == numpy_offset(day, n, MON_FRI, BY_DATES)


@settings(max_examples=200, deadline=None)
@given(day=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)))
def test_german_is_business_day_matches_numpy(day: date) -> None:
    assert DE_CAL.is_business_day(day) == numpy_is_busday(day, MON_FRI, DE_DATES)
    assert BY_CAL.is_business_day(day) == numpy_is_busday(day, MON_FRI, BY_DATES)


# --- SPEC §2 examples through time expressions -------------------------------------------------

CLOCK = Clock(BERLIN, BusinessCalendar())
DUE = date(2026, 12, 4)  # a Friday


def evaluate(text: str, value, clock: Clock = CLOCK) -> datetime | None:
    return parse_time_expression(text).evaluate(clock, value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # "due - 1 business day is the end of Thursday"
        ("due - 1 business day", datetime(2026, 12, 4, 0, 0, tzinfo=BERLIN)),
        # "due + 2 business days the end of Tuesday" (Tuesday 8 Dec -> 24:00 = 9 Dec 00:00)
        ("due + 2 business days", datetime(2026, 12, 9, 0, 0, tzinfo=BERLIN)),
        # SPEC §1.1: "an action due 2026-12-04 becomes overdue at 2026-12-05T00:00 local"
        ("due", datetime(2026, 12, 5, 0, 0, tzinfo=BERLIN)),
        # an hour step turns the date into the end of its day first
        ("due + 4h", datetime(2026, 12, 5, 4, 0, tzinfo=BERLIN)),
        ("due - 30m", datetime(2026, 12, 4, 23, 30, tzinfo=BERLIN)),
        # a day step keeps it a date (Saturday), then end of Saturday + 2h
        ("due + 1 day + 2h", datetime(2026, 12, 6, 2, 0, tzinfo=BERLIN)),
        # 0 business days on a business day is the day itself
        ("due + 0bd", datetime(2026, 12, 5, 0, 0, tzinfo=BERLIN)),
        ("due + 1w", datetime(2026, 12, 12, 0, 0, tzinfo=BERLIN)),
        # a business step after a day step: Friday + 1 day = Saturday, rolls to Monday + 1 = Tuesday
        ("due + 1d + 1bd", datetime(2026, 12, 9, 0, 0, tzinfo=BERLIN)),
        # a business step after an hour step is applied to the instant (Sat 04:00 -> Tue 04:00)
        ("due + 4h + 1bd", datetime(2026, 12, 8, 4, 0, tzinfo=BERLIN)),
    ],
)
def test_spec_date_only_examples(text: str, expected: datetime) -> None:
    result = evaluate(text, DUE)
    assert result == expected
    assert result.utcoffset() == timedelta(hours=1)  # CET in December


def test_date_only_business_steps_agree_with_numpy() -> None:
    for n in range(-10, 11):
        sign = "+" if n >= 0 else "-"
        result = evaluate(f"due {sign} {abs(n)} business days", DUE)
        expected_day = numpy_offset(DUE, n)
        assert result == datetime.combine(expected_day + timedelta(days=1), datetime.min.time(), BERLIN)


def test_datetime_anchor_keeps_time_of_day_through_business_days() -> None:
    anchor = datetime(2026, 12, 4, 15, 45, tzinfo=BERLIN)  # Friday afternoon
    assert evaluate("status_since + 1 business day", anchor) == datetime(2026, 12, 7, 15, 45, tzinfo=BERLIN)
    assert evaluate("status_since - 1bd", anchor) == datetime(2026, 12, 3, 15, 45, tzinfo=BERLIN)
    assert evaluate("status_since + 2bd + 30m", anchor) == datetime(2026, 12, 8, 16, 15, tzinfo=BERLIN)


def test_saturday_datetime_anchor_rolls_then_steps() -> None:
    saturday = datetime(2026, 12, 5, 10, 30, tzinfo=BERLIN)
    # + rolls forward to Monday, then one business day -> Tuesday
    assert evaluate("status_since + 1 business day", saturday) == datetime(2026, 12, 8, 10, 30, tzinfo=BERLIN)
    # - rolls backward to Friday, then one business day -> Thursday
    assert evaluate("status_since - 1 business day", saturday) == datetime(2026, 12, 3, 10, 30, tzinfo=BERLIN)


def test_naive_datetime_anchor_is_in_the_org_timezone() -> None:
    naive = datetime(2026, 12, 4, 9, 0)
    assert evaluate("created_at + 1bd", naive) == datetime(2026, 12, 7, 9, 0, tzinfo=BERLIN)


def test_datetime_anchor_in_another_zone_uses_the_org_calendar_date() -> None:
    # 23:30 UTC on Friday 4 Dec is 00:30 Saturday in Berlin: the business step starts from Saturday.
    utc_friday_night = datetime(2026, 12, 4, 23, 30, tzinfo=ZoneInfo("UTC"))
    result = evaluate("status_since + 1bd", utc_friday_night)
    assert result == datetime(2026, 12, 8, 0, 30, tzinfo=BERLIN)


def test_empty_anchor_does_not_fire() -> None:
    assert evaluate("due + 2 business days", None) is None


def test_spec_examples_with_holidays() -> None:
    # With DE holidays and the 24th closed, an action due Wednesday 23 Dec 2026 + 1bd is Monday 28th.
    calendar = BusinessCalendar(closures={date(2026, 12, 24)}, is_holiday=public_holidays("DE"))
    clock = Clock(BERLIN, calendar)
    assert evaluate("due + 1 business day", date(2026, 12, 23), clock) == datetime(
        2026, 12, 29, 0, 0, tzinfo=BERLIN
    )
    assert evaluate("due - 1 business day", date(2026, 12, 28), clock) == datetime(
        2026, 12, 24, 0, 0, tzinfo=BERLIN
    )


@settings(max_examples=200, deadline=None)
@given(
    day=dates,
    n=offsets,
    hour=st.integers(min_value=0, max_value=23),
    minute=st.integers(min_value=0, max_value=59),
    closures=closure_sets(),
)
def test_datetime_business_steps_match_numpy_and_keep_wall_time(
    day: date, n: int, hour: int, minute: int, closures: frozenset[date]
) -> None:
    clock = Clock(BERLIN, BusinessCalendar(closures=closures))
    anchor = datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN)
    # Skip wall times that do not exist (spring-forward gap); they cannot be "kept".
    if anchor.astimezone(ZoneInfo("UTC")).astimezone(BERLIN).replace(tzinfo=None) != anchor.replace(
        tzinfo=None
    ):
        return
    sign = "+" if n >= 0 else "-"
    result = evaluate(f"fire_at {sign} {abs(n)} bd", anchor, clock)
    local = result.astimezone(BERLIN)
    assert local.date() == numpy_offset(day, n, MON_FRI, closures)
    assert (local.hour, local.minute) == (hour, minute) or not _wall_time_exists(local.date(), hour, minute)


def _wall_time_exists(day: date, hour: int, minute: int) -> bool:
    naive = datetime(day.year, day.month, day.day, hour, minute)
    aware = naive.replace(tzinfo=BERLIN)
    return aware.astimezone(ZoneInfo("UTC")).astimezone(BERLIN).replace(tzinfo=None) == naive
