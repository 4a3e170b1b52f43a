"""Calendar holds as iCalendar objects for iMIP (RFC 5545 / RFC 5546 / RFC 6047).

One VEVENT per hold. The UID never changes for a hold; each update raises SEQUENCE, and the
cancellation is ``METHOD:CANCEL`` with ``STATUS:CANCELLED`` and a higher SEQUENCE still, which is
what Outlook, Google Calendar and Apple Calendar need to update or remove the same event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Literal

from icalendar import Calendar, Event, vCalAddress, vText

from sopwatch.core.state import HoldRecord
from sopwatch.errors import SopwatchError
from sopwatch.messages.render import one_line, without_controls

PRODID = "-//sopwatch//S&OP reminders//EN"
Method = Literal["REQUEST", "CANCEL"]


def mailbox(address: str) -> str:
    """The bare address from 'Name <addr>' or 'addr'."""
    return parseaddr(one_line(address, limit=1000))[1] or one_line(address, limit=1000)


def _cn(name: str) -> str:
    # A parameter value cannot hold a double quote or control characters (RFC 5545 §3.1).
    return one_line(name, limit=100).replace('"', "'")


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise SopwatchError(f"calendar hold time {instant.isoformat()} has no timezone")
    return instant.astimezone(UTC)


def attendees_without(organizer: str, attendees: Iterable[str]) -> list[str]:
    """Attendee addresses, de-duplicated, without the organizer (RFC 5546: never both)."""
    seen = {organizer.lower()}
    out: list[str] = []
    for address in attendees:
        bare = mailbox(address)
        if bare and bare.lower() not in seen:
            seen.add(bare.lower())
            out.append(bare)
    return out


def build_hold(
    hold: HoldRecord,
    *,
    method: Method,
    organizer: str,
    summary: str,
    description: str,
    busy: bool,
    dtstamp: datetime,
    names: Mapping[str, str] | None = None,
) -> bytes:
    """The .ics bytes for one hold. ``names`` maps lower-cased addresses to display names (CN)."""
    if method not in ("REQUEST", "CANCEL"):
        raise SopwatchError(f"unsupported iTIP method {method!r}")
    names = {k.lower(): v for k, v in (names or {}).items()}
    organizer_name, organizer_address = parseaddr(one_line(organizer, limit=1000))
    organizer_address = organizer_address or mailbox(organizer)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)

    event = Event()
    event.add("uid", hold.uid)
    event.add("sequence", hold.sequence)
    event.add("dtstamp", _utc(dtstamp))
    event.add("dtstart", _utc(hold.start))
    event.add("dtend", _utc(hold.end))
    event.add("summary", one_line(summary))
    event.add("description", without_controls(description))
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("class", "PUBLIC")

    organizer_value = vCalAddress(f"mailto:{organizer_address}")
    organizer_value.params["CN"] = vText(_cn(organizer_name or organizer_address))
    event.add("organizer", organizer_value)
    for address in attendees_without(organizer_address, hold.attendees):
        attendee = vCalAddress(f"mailto:{address}")
        if address.lower() in names:
            attendee.params["CN"] = vText(_cn(names[address.lower()]))
        attendee.params["ROLE"] = "REQ-PARTICIPANT"
        attendee.params["PARTSTAT"] = "NEEDS-ACTION"
        attendee.params["RSVP"] = "TRUE"
        event.add("attendee", attendee)

    # A hold is a nudge, not a meeting: free time by default so it never blocks real bookings.
    status = "BUSY" if busy else "FREE"
    event.add("transp", "OPAQUE" if busy else "TRANSPARENT")
    event.add("x-microsoft-cdo-busystatus", status)
    event.add("x-microsoft-cdo-intendedstatus", status)
    # Counter-proposals would be mailed to sopwatch, which cannot act on them.
    event.add("x-microsoft-disallow-counter", "TRUE")
    calendar.add_component(event)
    return calendar.to_ical()
