"""Durations, time expressions, DST behaviour and delivery windows (SPEC §2)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sopwatch.core.business import BusinessCalendar
from sopwatch.core.timeexpr import (
    BUSINESS_DAYS,
    DAYS,
    HOURS,
    LATEST,
    MINUTES,
    WEEKS,
    Clock,
    Duration,
    ExpressionError,
    TimeExpression,
    parse_duration,
    parse_time_expression,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MON_FRI = BusinessCalendar()

# --- parse_duration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the short forms SPEC §2 lists
        ("30m", Duration(30, MINUTES)),
        ("4h", Duration(4, HOURS)),
        ("2d", Duration(2, DAYS)),
        ("1w", Duration(1, WEEKS)),
        ("3bd", Duration(3, BUSINESS_DAYS)),
        # long forms, plural and singular
        ("1 minute", Duration(1, MINUTES)),
        ("45 minutes", Duration(45, MINUTES)),
        ("1 hour", Duration(1, HOURS)),
        ("12 hours", Duration(12, HOURS)),
        ("1 day", Duration(1, DAYS)),
        ("2 days", Duration(2, DAYS)),
        ("1 week", Duration(1, WEEKS)),
        ("3 weeks", Duration(3, WEEKS)),
        ("1 business day", Duration(1, BUSINESS_DAYS)),
        ("2 business days", Duration(2, BUSINESS_DAYS)),
        # spacing is free
        ("2  business   days", Duration(2, BUSINESS_DAYS)),
        ("  4h ", Duration(4, HOURS)),
        ("4 h", Duration(4, HOURS)),
        ("3 bd", Duration(3, BUSINESS_DAYS)),
        ("0d", Duration(0, DAYS)),
        ("120m", Duration(120, MINUTES)),
    ],
)
def test_parse_duration_accepts(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


def test_duration_is_clock_only_for_minutes_and_hours() -> None:
    assert parse_duration("30m").is_clock and parse_duration("4h").is_clock
    for text in ("2d", "1w", "3bd"):
        assert not parse_duration(text).is_clock


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2", "invalid duration '2'"),  # a number without a unit
        (2, "needs a unit"),  # YAML `repeat: 2`
        ("2 fortnights", "invalid duration '2 fortnights'"),
        ("", "invalid duration ''"),
        ("-2d", "invalid duration '-2d'"),  # the sign belongs to the expression, not the duration
        ("two days", "invalid duration"),
        ("2 business", "invalid duration"),
        ("2.5h", "invalid duration"),
        ("2dd", "invalid duration"),
        ("h", "invalid duration"),
        (True, "expected a duration"),  # YAML `repeat: true`
        (None, "expected a duration"),
        (2.5, "expected a duration"),
    ],
)
def test_parse_duration_rejects(value, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_duration(value)
    assert message in str(info.value)


def test_duration_error_lists_the_accepted_forms() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_duration("2 fortnights")
    text = str(info.value)
    for form in ("minutes", "hours", "days", "weeks", "business days", "30m", "4h", "2d", "1w", "3bd"):
        assert form in text


# --- parse_time_expression --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "anchor", "steps"),
    [
        ("due", "due", ()),
        ("now", "now", ()),
        ("  due  ", "due", ()),
        ("status_since + 2 business days", "status_since", ((1, Duration(2, BUSINESS_DAYS)),)),
        ("due - 1 business day", "due", ((-1, Duration(1, BUSINESS_DAYS)),)),
        ("cycle.exec_review.meeting - 2h", "cycle.exec_review.meeting", ((-1, Duration(2, HOURS)),)),
        ("cycle.supply_review.end", "cycle.supply_review.end", ()),
        ("cycle.demand_review.start+1bd", "cycle.demand_review.start", ((1, Duration(1, BUSINESS_DAYS)),)),
        ("fire_at + 3 business days", "fire_at", ((1, Duration(3, BUSINESS_DAYS)),)),
        (
            "due - 2 business days + 4h - 30m",
            "due",
            ((-1, Duration(2, BUSINESS_DAYS)), (1, Duration(4, HOURS)), (-1, Duration(30, MINUTES))),
        ),
        ("due+1d+2h", "due", ((1, Duration(1, DAYS)), (1, Duration(2, HOURS)))),
        ("Decision_Date + 1w", "Decision_Date", ((1, Duration(1, WEEKS)),)),
    ],
)
def test_parse_time_expression(text: str, anchor: str, steps) -> None:
    expression = parse_time_expression(text)
    assert isinstance(expression, TimeExpression)
    assert expression.anchor == anchor
    assert expression.steps == steps
    assert expression.source == text.strip()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "expected a time expression"),
        ("   ", "expected a time expression"),
        (None, "expected a time expression"),
        (5, "expected a time expression"),
        ("+ 2d", "must start with an anchor"),
        ("2d + due", "must start with an anchor"),
        ("due 2d", "expected '+ DURATION' or '- DURATION' after 'due'"),
        ("due +", "expected '+ DURATION' or '- DURATION'"),
        ("due + 2d +", "expected '+ DURATION' or '- DURATION' after 'due + 2d'"),
        ("due + 2 fortnights", "invalid duration '2 fortnights'"),
        ("due - 2", "invalid duration '2'"),
        ("due * 2d", "expected '+ DURATION'"),
        ("cycle.exec_review. + 1d", "expected '+ DURATION'"),
    ],
)
def test_parse_time_expression_rejects(value, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_time_expression(value)
    assert message in str(info.value)


def test_step_error_names_the_whole_expression() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_time_expression("status_since + 2 fortnights")
    assert "in 'status_since + 2 fortnights'" in str(info.value)


# --- DST: day units keep the wall clock, clock units move real time ---------------------------


@pytest.mark.parametrize(
    ("tz", "anchor", "offset_before", "offset_after"),
    [
        # Europe: CET -> CEST on Sunday 2026-03-29, CEST -> CET on Sunday 2026-10-25
        (BERLIN, datetime(2026, 3, 28, 10, 0), 1, 2),
        (BERLIN, datetime(2026, 10, 24, 10, 0), 2, 1),
        # US: EST -> EDT on Sunday 2026-03-08, EDT -> EST on Sunday 2026-11-01
        (NEW_YORK, datetime(2026, 3, 7, 10, 0), -5, -4),
        (NEW_YORK, datetime(2026, 10, 31, 10, 0), -4, -5),
    ],
)
def test_day_step_over_dst_keeps_wall_time_hours_move_real_time(
    tz: ZoneInfo, anchor: datetime, offset_before: int, offset_after: int
) -> None:
    clock = Clock(tz, MON_FRI)
    start = anchor.replace(tzinfo=tz)
    assert start.utcoffset() == timedelta(hours=offset_before)

    by_day = parse_time_expression("created_at + 1 day").evaluate(clock, start)
    by_hours = parse_time_expression("created_at + 24h").evaluate(clock, start)

    local_day = by_day.astimezone(tz)
    assert local_day.date() == anchor.date() + timedelta(days=1)
    assert local_day.time() == anchor.time()  # same wall clock
    assert local_day.utcoffset() == timedelta(hours=offset_after)
    # (subtract in UTC: Python subtracts wall times when both operands share a tzinfo)
    real = by_day.astimezone(UTC) - start.astimezone(UTC)
    assert real == timedelta(hours=24 + offset_before - offset_after)  # 23h or 25h of real time

    assert by_hours.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=24)
    assert by_hours.astimezone(tz).utcoffset() == timedelta(hours=offset_after)
    assert by_hours.astimezone(tz).hour == (10 + offset_after - offset_before) % 24
    assert by_day != by_hours
    assert by_day.utcoffset() != start.utcoffset()


@pytest.mark.parametrize(
    ("tz", "friday"),
    [
        (BERLIN, datetime(2026, 3, 27, 9, 0)),  # Monday after is 2026-03-30, summer time
        (NEW_YORK, datetime(2026, 3, 6, 9, 0)),
        (BERLIN, datetime(2026, 10, 23, 9, 0)),
        (NEW_YORK, datetime(2026, 10, 30, 9, 0)),
    ],
)
def test_business_day_step_over_dst_keeps_wall_time(tz: ZoneInfo, friday: datetime) -> None:
    clock = Clock(tz, MON_FRI)
    start = friday.replace(tzinfo=tz)
    result = parse_time_expression("status_since + 1 business day").evaluate(clock, start)
    local = result.astimezone(tz)
    assert local.date() == friday.date() + timedelta(days=3)
    assert local.time() == time(9, 0)
    assert local.utcoffset() != start.utcoffset()


def test_date_anchor_end_of_day_across_dst() -> None:
    clock = Clock(BERLIN, MON_FRI)
    # Friday 2026-03-27 + 1bd = Monday 30th; its end is 31 March 00:00 CEST (+02:00)
    result = parse_time_expression("due + 1bd").evaluate(clock, date(2026, 3, 27))
    assert result == datetime(2026, 3, 30, 22, 0, tzinfo=UTC)
    # Saturday 28th ends at 29th 00:00 CET (+01:00) = 28th 23:00 UTC; 4 real hours later is
    # 03:00 UTC, which reads 05:00 CEST because the 02:00 hour is skipped that night
    result = parse_time_expression("due + 1d + 4h").evaluate(clock, date(2026, 3, 27))
    assert result == datetime(2026, 3, 29, 3, 0, tzinfo=UTC)
    assert result.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 29, 5, 0)


def test_clock_add_and_as_instant() -> None:
    clock = Clock(BERLIN, MON_FRI)
    start = datetime(2026, 12, 4, 17, 0, tzinfo=BERLIN)
    assert clock.add(start, parse_duration("2h")) == datetime(2026, 12, 4, 19, 0, tzinfo=BERLIN)
    assert clock.add(start, parse_duration("1bd")) == datetime(2026, 12, 7, 17, 0, tzinfo=BERLIN)
    assert clock.as_instant(date(2026, 12, 4)) == datetime(2026, 12, 5, 0, 0, tzinfo=BERLIN)
    assert clock.as_instant(datetime(2026, 12, 4, 9, 0)) == datetime(2026, 12, 4, 9, 0, tzinfo=BERLIN)
    assert clock.end_of_day(date(2026, 12, 31)) == datetime(2027, 1, 1, 0, 0, tzinfo=BERLIN)


# --- delivery windows -------------------------------------------------------------------------


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # inside the window: the same instant
        (berlin(2026, 12, 4, 8, 0), berlin(2026, 12, 4, 8, 0)),  # the start is inclusive
        (berlin(2026, 12, 4, 12, 34, 56), berlin(2026, 12, 4, 12, 34, 56)),
        (berlin(2026, 12, 4, 17, 59, 59), berlin(2026, 12, 4, 17, 59, 59)),
        # the end is exclusive: Friday 18:00 waits for Monday
        (berlin(2026, 12, 4, 18, 0), berlin(2026, 12, 7, 8, 0)),
        (berlin(2026, 12, 4, 19, 0), berlin(2026, 12, 7, 8, 0)),  # Friday evening
        (berlin(2026, 12, 5, 11, 0), berlin(2026, 12, 7, 8, 0)),  # Saturday
        (berlin(2026, 12, 6, 23, 59), berlin(2026, 12, 7, 8, 0)),  # Sunday night
        (berlin(2026, 12, 7, 6, 15), berlin(2026, 12, 7, 8, 0)),  # before 08:00 on a business day
        (berlin(2026, 12, 7, 0, 0), berlin(2026, 12, 7, 8, 0)),
        (berlin(2026, 12, 8, 20, 0), berlin(2026, 12, 9, 8, 0)),  # weekday evening -> next morning
    ],
)
def test_next_window_start(instant: datetime, expected: datetime) -> None:
    result = MON_FRI.next_window_start(instant, BERLIN)
    assert result == expected
    assert result.astimezone(BERLIN).utcoffset() == timedelta(hours=1)


def test_window_skips_closures() -> None:
    calendar = BusinessCalendar(closures={date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 28)})
    # Wednesday 23rd 19:00 -> 24th, 25th closed, weekend, Monday 28th closed -> Tuesday 29th
    assert calendar.next_window_start(berlin(2026, 12, 23, 19, 0), BERLIN) == berlin(2026, 12, 29, 8, 0)
    # in working hours on a closure day is not inside a window
    assert calendar.next_window_start(berlin(2026, 12, 24, 10, 0), BERLIN) == berlin(2026, 12, 29, 8, 0)
    # early on a closure day does not wait only until 08:00 that day
    assert calendar.next_window_start(berlin(2026, 12, 28, 7, 0), BERLIN) == berlin(2026, 12, 29, 8, 0)


def test_window_custom_hours() -> None:
    calendar = BusinessCalendar(hours_start=time(9, 30), hours_end=time(16, 0))
    assert calendar.next_window_start(berlin(2026, 12, 7, 9, 0), BERLIN) == berlin(2026, 12, 7, 9, 30)
    assert calendar.next_window_start(berlin(2026, 12, 7, 16, 0), BERLIN) == berlin(2026, 12, 8, 9, 30)
    assert calendar.next_window_start(berlin(2026, 12, 7, 15, 59), BERLIN) == berlin(2026, 12, 7, 15, 59)


def test_window_for_recipient_in_new_york_with_org_in_berlin() -> None:
    # Monday 09:00 Berlin is 03:00 in New York: wait until 08:00 New York = 14:00 Berlin.
    instant = berlin(2026, 12, 7, 9, 0)
    result = MON_FRI.next_window_start(instant, NEW_YORK)
    assert result == datetime(2026, 12, 7, 8, 0, tzinfo=NEW_YORK)
    assert result == berlin(2026, 12, 7, 14, 0)
    assert result.tzinfo is BERLIN  # reported in the caller's zone
    # Friday 20:00 Berlin is 14:00 in New York: inside the recipient's window
    assert MON_FRI.next_window_start(berlin(2026, 12, 4, 20, 0), NEW_YORK) == berlin(2026, 12, 4, 20, 0)
    # the same instant for a Berlin recipient waits for Monday
    assert MON_FRI.next_window_start(berlin(2026, 12, 4, 20, 0), BERLIN) == berlin(2026, 12, 7, 8, 0)
    # Saturday 01:00 Berlin is still Friday 19:00 in New York: outside hours -> Monday 08:00 NY
    result = MON_FRI.next_window_start(berlin(2026, 12, 5, 1, 0), NEW_YORK)
    assert result == datetime(2026, 12, 7, 8, 0, tzinfo=NEW_YORK)
    # Monday 06:00 Berlin = Sunday 00:00 NY: the recipient's date is Sunday, wait until Monday 08:00 NY
    result = MON_FRI.next_window_start(berlin(2026, 12, 7, 6, 0), NEW_YORK)
    assert result == datetime(2026, 12, 7, 8, 0, tzinfo=NEW_YORK)


@pytest.mark.parametrize(
    ("tz", "friday_evening", "monday", "offset_before", "offset_after"),
    [
        (BERLIN, datetime(2026, 3, 27, 19, 0), date(2026, 3, 30), 1, 2),
        (BERLIN, datetime(2026, 10, 23, 19, 0), date(2026, 10, 26), 2, 1),
        (NEW_YORK, datetime(2026, 3, 6, 19, 0), date(2026, 3, 9), -5, -4),
        (NEW_YORK, datetime(2026, 10, 30, 19, 0), date(2026, 11, 2), -4, -5),
    ],
)
def test_window_start_across_dst(
    tz: ZoneInfo, friday_evening: datetime, monday: date, offset_before: int, offset_after: int
) -> None:
    instant = friday_evening.replace(tzinfo=tz)
    assert instant.utcoffset() == timedelta(hours=offset_before)
    result = MON_FRI.next_window_start(instant, tz)
    local = result.astimezone(tz)
    assert (local.date(), local.time()) == (monday, time(8, 0))
    assert local.utcoffset() == timedelta(hours=offset_after)
    # the 08:00 local start in UTC reflects the new offset
    expected_utc = datetime.combine(monday, time(8, 0), UTC) - timedelta(hours=offset_after)
    assert result.astimezone(UTC) == expected_utc
    # the same when the input is given in UTC
    from_utc = MON_FRI.next_window_start(instant.astimezone(UTC), tz)
    assert from_utc == expected_utc
    assert from_utc.tzinfo is UTC


def test_window_on_the_dst_sunday_itself_for_a_seven_day_calendar() -> None:
    every_day = BusinessCalendar(workdays=range(7))
    # Sunday 2026-03-29 03:30 CEST: before the window -> 08:00 CEST the same day
    result = every_day.next_window_start(berlin(2026, 3, 29, 3, 30), BERLIN)
    assert result.astimezone(UTC) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    # Saturday 2026-03-28 20:00 CET -> Sunday 08:00 CEST
    result = every_day.next_window_start(berlin(2026, 3, 28, 20, 0), BERLIN)
    assert result.astimezone(UTC) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    # New York, 2026-11-01 (fall back) 07:00 EST -> 08:00 EST
    result = every_day.next_window_start(datetime(2026, 11, 1, 7, 0, tzinfo=NEW_YORK), NEW_YORK)
    assert result.astimezone(UTC) == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


ZONES = [BERLIN, NEW_YORK, ZoneInfo("Asia/Tokyo"), ZoneInfo("Australia/Sydney"), ZoneInfo("UTC")]


@settings(max_examples=200, deadline=None)
@given(
    instant=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
    tz=st.sampled_from(ZONES),
    workdays=st.sets(st.integers(min_value=0, max_value=6), min_size=1),
    closure_offsets=st.sets(st.integers(min_value=-3, max_value=20), max_size=8),
    start_hour=st.integers(min_value=5, max_value=12),
    length=st.integers(min_value=1, max_value=11),
)
def test_window_start_properties(
    instant: datetime,
    tz: ZoneInfo,
    workdays: set[int],
    closure_offsets: set[int],
    start_hour: int,
    length: int,
) -> None:
    local_day = instant.astimezone(tz).date()
    closures = {local_day + timedelta(days=d) for d in closure_offsets}
    hours_start, hours_end = time(start_hour, 0), time(start_hour + length, 0)
    calendar = BusinessCalendar(
        workdays=workdays, closures=closures, hours_start=hours_start, hours_end=hours_end
    )
    result = calendar.next_window_start(instant, tz)

    assert result >= instant  # never earlier
    local = result.astimezone(tz)
    assert hours_start <= local.time() < hours_end  # within hours in tz
    assert calendar.is_business_day(local.date())  # on a business day
    assert local.date().weekday() in workdays and local.date() not in closures

    if result != instant:
        # it waited: the result is a window start, and no window opened in between
        assert local.time() == hours_start
        day = instant.astimezone(tz).date()
        while day < local.date():
            opens = datetime.combine(day, hours_start, tzinfo=tz)
            closes = datetime.combine(day, hours_end, tzinfo=tz)
            assert not (calendar.is_business_day(day) and closes > instant and opens <= result), day
            day += timedelta(days=1)
    else:
        # it did not wait: the instant was inside a window
        local_in = instant.astimezone(tz)
        assert calendar.is_business_day(local_in.date())
        assert hours_start <= local_in.time() < hours_end


# --- the ends of the calendar -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "longest"),
    [("52704000 minutes", "52704001 minutes"), ("878400h", "878401h"), ("36600d", "36601d"),
     ("5300w", "5301w"), ("36600bd", "36601bd")],
)  # fmt: skip
def test_a_duration_is_at_most_100_years(text: str, longest: str) -> None:
    parse_duration(text)
    with pytest.raises(ExpressionError, match="longer than 100 years"):
        parse_duration(longest)


ZONES = [UTC, BERLIN, NEW_YORK, ZoneInfo("Asia/Singapore"), ZoneInfo("Pacific/Kiritimati")]
edge_days = st.one_of(
    st.dates(date(9999, 11, 1), date.max),
    st.dates(date.min, date(1, 2, 28)),
    st.dates(min_value=date(1900, 1, 1)),
)
anchors = st.one_of(
    edge_days,
    st.builds(
        lambda day, moment, zone: datetime.combine(day, moment, tzinfo=zone),
        edge_days,
        st.times(),
        st.sampled_from([None, *ZONES]),
    ),
)
steps = st.lists(
    st.tuples(
        st.sampled_from([1, -1]),
        st.builds(
            Duration,
            st.one_of(st.integers(0, 3), st.integers(0, 36600)),
            st.sampled_from([MINUTES, HOURS, DAYS, WEEKS, BUSINESS_DAYS]),
        ),
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(anchor=anchors, moves=steps, org=st.sampled_from(ZONES))
def test_arithmetic_at_the_ends_of_the_calendar_stops_there_and_never_raises(
    anchor: date | datetime, moves: list[tuple[int, Duration]], org: ZoneInfo
) -> None:
    """A placeholder date such as 9999-12-31 in a register must not stop a tick (SPEC §1.1)."""
    clock = Clock(org, BusinessCalendar(closures={date(9999, 12, 24), date(1, 1, 6)}))
    result = TimeExpression("x", "due", tuple(moves)).evaluate(clock, anchor)
    assert result is not None and result.tzinfo is not None
    for zone in ZONES:  # every recipient's zone can show it, and it can be stored and read back
        shown = result.astimezone(zone)
        assert datetime.fromisoformat(shown.isoformat()) == result
    if not moves and isinstance(anchor, date) and not isinstance(anchor, datetime) and anchor == date.max:
        assert result == LATEST  # 9999-12-31 means the end of a day that never ends: never due


# Steps as long as a rule may write them (parse_duration refuses more than 100 years).
LONGEST = {MINUTES: 52_704_000, HOURS: 878_400, DAYS: 36_600, WEEKS: 5_300, BUSINESS_DAYS: 36_600}
rule_steps = st.lists(
    st.tuples(
        st.sampled_from([1, -1]),
        st.sampled_from(sorted(LONGEST)).flatmap(
            lambda unit: st.builds(
                Duration, st.one_of(st.integers(0, 3), st.integers(0, LONGEST[unit])), st.just(unit)
            )
        ),
    ),
    max_size=3,
)


def test_the_longest_steps_are_what_a_rule_may_write() -> None:
    for unit, amount in LONGEST.items():
        assert parse_duration(f"{amount} {unit}") == Duration(amount, unit)


@settings(max_examples=300, deadline=None)
@given(anchor=anchors, moves=rule_steps, org=st.sampled_from(ZONES))
@example(anchor=datetime(9999, 12, 31), moves=[(-1, Duration(1, DAYS))], org=UTC)
@example(anchor=datetime(9999, 12, 30, 23), moves=[(-1, Duration(3, HOURS))], org=BERLIN)
@example(anchor=datetime(1, 1, 1, 10), moves=[(1, Duration(1, DAYS))], org=UTC)
def test_never_stays_never_and_long_ago_stays_overdue(
    anchor: date | datetime, moves: list[tuple[int, Duration]], org: ZoneInfo
) -> None:
    """Three steps of at most 100 years (business days: ~140) cannot carry a placeholder date across
    the calendar: a 9999-12-31 minus a day is still "never", a 0001-01-01 plus a day long overdue."""
    clock = Clock(org, BusinessCalendar())
    result = TimeExpression("x", "due", tuple(moves)).evaluate(clock, anchor)
    assert result is not None
    day = anchor if not isinstance(anchor, datetime) else anchor.replace(tzinfo=None).date()
    if day >= date(9999, 11, 1):
        assert result.astimezone(UTC).year >= 9000, (anchor, moves, result)
    elif day <= date(1, 2, 28):
        assert result.astimezone(UTC).year <= 1000, (anchor, moves, result)
