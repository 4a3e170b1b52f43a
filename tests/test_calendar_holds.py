"""Calendar holds: iCalendar objects checked with two parsers, and the iMIP email around them."""

from __future__ import annotations

import email
import email.policy
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
import vobject
from icalendar import Calendar

from sopwatch.core.evaluate import Notification
from sopwatch.core.model import Directory, Person
from sopwatch.core.state import HoldRecord
from sopwatch.errors import SopwatchError
from sopwatch.messages.email import compose_from_context
from sopwatch.messages.ical import build_hold
from sopwatch.messages.notification import notification_context
from sopwatch.messages.templates import TemplateSet

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 9, 10, 0, tzinfo=BERLIN)
SENDER = "sopwatch <sopwatch@northwind.example>"
UID = "stale-approval/A-17/1/hold1@sopwatch"

HOLD = HoldRecord(
    uid=UID,
    step=1,
    sequence=0,
    start=datetime(2026, 12, 10, 10, 0, tzinfo=BERLIN),
    end=datetime(2026, 12, 10, 10, 30, tzinfo=BERLIN),
    # The organizer's own mailbox slipped into the attendees, in another case: it must be dropped.
    attendees=("dana@northwind.example", "SopWatch@Northwind.example", "sam@northwind.example"),
)
MOVED = replace(
    HOLD,
    sequence=1,
    start=datetime(2026, 12, 11, 15, 0, tzinfo=BERLIN),
    end=datetime(2026, 12, 11, 15, 30, tzinfo=BERLIN),
)
CANCELLED = replace(MOVED, sequence=2)

DIRECTORY = Directory(
    people={
        "dana": Person("dana", "Dana Scholz", "dana@northwind.example", timezone=BERLIN),
        "sam": Person("sam", "Sam Okafor, Jr.", "sam@northwind.example"),
    }
)


def ics(hold: HoldRecord, method: str = "REQUEST", *, busy: bool = False) -> bytes:
    return build_hold(
        hold,
        method=method,  # type: ignore[arg-type]
        organizer=SENDER,
        summary="A-17: Approve the Q1\r\nsafety-stock increase",
        description="Line one\nLine two; with, punctuation",
        busy=busy,
        dtstamp=NOW,
        names={"dana@northwind.example": "Dana Scholz"},
    )


PROGRESSION = [(HOLD, "REQUEST"), (MOVED, "REQUEST"), (CANCELLED, "CANCEL")]


def test_progression_with_icalendar() -> None:
    sequences = []
    for hold, method in PROGRESSION:
        calendar = Calendar.from_ical(ics(hold, method))
        assert str(calendar["METHOD"]) == method
        assert str(calendar["VERSION"]) == "2.0"
        assert "sopwatch" in str(calendar["PRODID"])
        events = calendar.walk("VEVENT")
        assert len(events) == 1
        event = events[0]
        assert str(event["UID"]) == UID
        sequences.append(int(event["SEQUENCE"]))
        assert event.decoded("DTSTART") == hold.start.astimezone(UTC)
        assert event.decoded("DTEND") == hold.end.astimezone(UTC)
        assert event.decoded("DTSTAMP") == NOW.astimezone(UTC)
        assert str(event["SUMMARY"]) == "A-17: Approve the Q1 safety-stock increase"
        assert str(event["DESCRIPTION"]) == "Line one\nLine two; with, punctuation"
        assert str(event["STATUS"]) == ("CANCELLED" if method == "CANCEL" else "CONFIRMED")
        organizer = event["ORGANIZER"]
        assert str(organizer) == "mailto:sopwatch@northwind.example"
        assert organizer.params["CN"] == "sopwatch"
        attendees = event["ATTENDEE"]
        assert [str(a) for a in attendees] == [
            "mailto:dana@northwind.example",
            "mailto:sam@northwind.example",
        ]
        for attendee in attendees:
            assert attendee.params["RSVP"] == "TRUE"
            assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
            assert attendee.params["ROLE"] == "REQ-PARTICIPANT"
        assert attendees[0].params["CN"] == "Dana Scholz"
    assert sequences == [0, 1, 2]


def _unfolded_lines(data: bytes) -> list[str]:
    return data.decode("utf-8").replace("\r\n ", "").split("\r\n")


def test_progression_with_vobject() -> None:
    previous = -1
    for hold, method in PROGRESSION:
        calendar = vobject.readOne(ics(hold, method).decode("utf-8"))
        assert calendar.method.value == method
        assert calendar.version.value == "2.0"
        event = calendar.vevent
        assert event.uid.value == UID
        sequence = int(event.sequence.value)
        assert sequence > previous
        previous = sequence
        assert event.dtstart.value == hold.start
        assert event.dtstart.value.utcoffset() == timedelta(0)
        assert event.dtend.value == hold.end
        assert event.organizer.value.lower() == "mailto:sopwatch@northwind.example"
        addresses = [a.value.lower() for a in event.attendee_list]
        assert "mailto:sopwatch@northwind.example" not in addresses
        assert addresses == ["mailto:dana@northwind.example", "mailto:sam@northwind.example"]
        for attendee in event.attendee_list:
            assert attendee.params["RSVP"] == ["TRUE"]
        if method == "CANCEL":
            assert event.status.value == "CANCELLED"


def test_times_are_utc_and_lines_are_folded() -> None:
    data = ics(HOLD)
    lines = _unfolded_lines(data)
    for name in ("DTSTART", "DTEND", "DTSTAMP"):
        (line,) = [x for x in lines if x.startswith(f"{name}:") or x.startswith(f"{name};")]
        assert line.endswith("Z") and ";TZID" not in line, line
    assert "DTSTART:20261210T090000Z" in lines
    assert "DTEND:20261210T093000Z" in lines
    assert data.endswith(b"\r\n")
    assert all(len(raw) <= 75 for raw in data.split(b"\r\n"))
    assert "VTIMEZONE" not in data.decode()


@pytest.mark.parametrize(
    ("busy", "transp", "status"), [(False, "TRANSPARENT", "FREE"), (True, "OPAQUE", "BUSY")]
)
def test_free_busy_follows_busy(busy: bool, transp: str, status: str) -> None:
    lines = _unfolded_lines(ics(HOLD, busy=busy))
    assert f"TRANSP:{transp}" in lines
    assert f"X-MICROSOFT-CDO-BUSYSTATUS:{status}" in lines
    assert f"X-MICROSOFT-CDO-INTENDEDSTATUS:{status}" in lines
    event = vobject.readOne(ics(HOLD, busy=busy).decode()).vevent
    assert event.transp.value == transp
    assert event.contents["x-microsoft-cdo-busystatus"][0].value == status


def test_hostile_names_cannot_break_parameters() -> None:
    data = build_hold(
        HOLD,
        method="REQUEST",
        organizer='"Evil\r\nATTENDEE:mailto:x@y" <sopwatch@northwind.example>',
        summary="x\r\nATTENDEE:mailto:evil@example.com",
        description="d",
        busy=False,
        dtstamp=NOW,
        names={"dana@northwind.example": 'Dana "the" Boss\r\nX: y'},
    )
    event = vobject.readOne(data.decode()).vevent
    assert [a.value for a in event.attendee_list] == [
        "mailto:dana@northwind.example",
        "mailto:sam@northwind.example",
    ]
    assert event.summary.value == "x ATTENDEE:mailto:evil@example.com"


def test_naive_times_and_unknown_methods_are_refused() -> None:
    with pytest.raises(SopwatchError):
        ics(replace(HOLD, start=datetime(2026, 12, 10, 10, 0)))
    with pytest.raises(SopwatchError):
        ics(HOLD, "PUBLISH")


# -- the iMIP email --------------------------------------------------------------------------------


def hold_notification(hold: HoldRecord, channel: str, kind: str) -> Notification:
    return Notification(
        at=NOW,
        rule="stale-approval",
        action="A-17",
        episode="stale-approval/A-17/1",
        step=1,
        repeat=hold.sequence,
        channel=channel,
        kind=kind,
        to=hold.attendees,
        cc=(),
        template="cancel" if channel == "cancel" else "hold",
        not_before=NOW,
        severity="warning",
        fire_at=NOW - timedelta(days=2),
        hold=hold,
    )


def compose_hold(hold: HoldRecord, channel: str, kind: str, *, busy: bool = False) -> EmailMessage:
    n = hold_notification(hold, channel, kind)
    context = notification_context(
        n,
        action={"id": "A-17", "title": "Approve the Q1 safety-stock increase", "status": "pending_approval"},
        rule={"id": "stale-approval", "description": "Stale approvals", "severity": "warning"},
        directory=DIRECTORY,
        org_name="Northwind",
        org_tz=BERLIN,
        now=NOW,
    )
    composed = compose_from_context(
        n, context, directory=DIRECTORY, templates=TemplateSet(), sender=SENDER, now=NOW, busy=busy
    )
    assert composed.fallback_reason is None
    parsed = email.message_from_bytes(composed.message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize(
    ("hold", "channel", "kind", "method"),
    [
        (HOLD, "calendar", "hold", "REQUEST"),
        (MOVED, "calendar", "hold-update", "REQUEST"),
        (CANCELLED, "cancel", "cancel", "CANCEL"),
    ],
)
def test_imip_structure(hold: HoldRecord, channel: str, kind: str, method: str) -> None:
    message = compose_hold(hold, channel, kind)
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = list(message.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    plain, html, calendar = list(alternative.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_param("method") == method
    assert calendar.get_content_charset() == "utf-8"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_content_type() in ("application/ics", "text/calendar")
    inline = calendar.get_content().encode("utf-8")
    attached = attachment.get_content()
    assert inline.replace(b"\r\n", b"\n") == attached.replace(b"\r\n", b"\n")
    event = Calendar.from_ical(attached).walk("VEVENT")[0]
    assert str(event["UID"]) == UID and int(event["SEQUENCE"]) == hold.sequence
    # Threaded with everything else about the action, from the organizer's mailbox.
    assert message["References"] == "<action-A-17@northwind.example>"
    assert message["From"] == SENDER
    assert message["Subject"] == "[S&OP] A-17: Approve the Q1 safety-stock increase"
    assert "sopwatch@northwind.example" not in str(event["ATTENDEE"])


def test_imip_description_is_the_text_body_and_cn_from_directory() -> None:
    message = compose_hold(HOLD, "calendar", "hold", busy=True)
    attachment = list(message.iter_parts())[1]
    event = vobject.readOne(attachment.get_content().decode()).vevent
    assert "Time is set aside" in event.description.value
    assert event.transp.value == "OPAQUE"
    names = {a.value: a.params.get("CN", [None])[0] for a in event.attendee_list}
    assert names == {
        "mailto:dana@northwind.example": "Dana Scholz",
        "mailto:sam@northwind.example": "Sam Okafor, Jr.",
    }


def test_hold_update_and_cancel_have_distinct_message_ids() -> None:
    ids = {
        compose_hold(hold, channel, kind)["Message-ID"]
        for hold, channel, kind in (
            (HOLD, "calendar", "hold"),
            (MOVED, "calendar", "hold-update"),
            (CANCELLED, "cancel", "cancel"),
        )
    }
    assert len(ids) == 3


def test_control_characters_from_data_never_reach_the_calendar_text() -> None:
    """RFC 5545 TEXT has no control characters; the description is the email's text body, whose
    title comes from the register."""
    data = build_hold(
        HOLD,
        method="REQUEST",
        organizer=SENDER,
        summary="A-17: Ctrl \x1b[31mred\x07",
        description="Line one \x1b[31mred\x07 bell\x7f\r\nLine two\x85\tend",
        busy=False,
        dtstamp=NOW,
    )
    text = data.decode("utf-8")
    assert not [c for c in text if unicodedata.category(c) == "Cc" and c not in "\r\n\t"], repr(
        text
    )  # TEXT allows HTAB
    (event,) = Calendar.from_ical(data).walk("VEVENT")
    assert str(event["DESCRIPTION"]) == "Line one [31mred bell\nLine two\tend"
