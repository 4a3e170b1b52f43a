"""What `sopwatch demo` writes: every .eml and .ics checked against SPEC §3 (run once per module)."""

from __future__ import annotations

import email
import email.policy
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest
import vobject
import yaml
from icalendar import Calendar

ORGANIZER = "mailto:sopwatch@northwind.example"
KINDS = {"reminder", "escalation", "hold", "hold-update", "cancel", "resolved", "digest"}
HOLD_KINDS = {"hold", "hold-update", "cancel"}
# Headers a delivered message may carry; anything else (Bcc, an injected header) is a failure.
ALLOWED_HEADERS = {
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "auto-submitted",
    "x-auto-response-suppress",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "x-sopwatch-rule",
    "x-sopwatch-action",
    "x-sopwatch-kind",
    "x-sopwatch-repeat",
    "x-sopwatch-digest",
    # added by the maildir writer / Python's mailbox module
    "status",
    "x-status",
}


@dataclass(frozen=True)
class Delivered:
    path: Path
    raw: bytes
    message: EmailMessage

    @property
    def kind(self) -> str:
        return str(self.message["X-Sopwatch-Kind"])

    @property
    def action(self) -> str | None:
        value = self.message["X-Sopwatch-Action"]
        return str(value) if value is not None else None


@dataclass(frozen=True)
class Demo:
    root: Path
    stdout: str
    messages: list[Delivered]
    ics_files: list[Path]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, make_example_copy, run_sopwatch) -> Demo:
    """The CLI demo over December 2026 on a private copy (example/demo-changes.yaml sits next to it)."""
    root = tmp_path_factory.mktemp("demo")
    setup = make_example_copy(root / "setup")
    assert (setup / "example" / "demo-changes.yaml").is_file()
    out = root / "out"
    result = run_sopwatch(
        "demo",
        "--config",
        str(setup / "config.yaml"),
        "--out",
        str(out),
        "--from",
        "2026-12-01T00:00",
        "--to",
        "2026-12-31T23:00",
        "--every",
        "1h",
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    messages = []
    for path in sorted((out / "eml").glob("*.eml")):
        raw = path.read_bytes()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        messages.append(Delivered(path, raw, parsed))
    return Demo(out, result.stdout, messages, sorted((out / "ics").glob("*.ics")))


def alerts(demo: Demo) -> list[Delivered]:
    """Messages about one action (everything but digests and admin notices)."""
    return [m for m in demo.messages if m.kind not in ("digest", "admin")]


def calendar_parts(message: EmailMessage) -> list[bytes]:
    """The text/calendar alternative and the .ics attachment of one message."""
    return [
        part.get_payload(decode=True)
        for part in message.walk()
        if part.get_content_type() in ("text/calendar", "application/ics")
    ]


def method_of(ics: bytes) -> str:
    return str(Calendar.from_ical(ics)["METHOD"])


def event_of(ics: bytes):  # type: ignore[no-untyped-def]
    events = Calendar.from_ical(ics).walk("VEVENT")
    assert len(events) == 1
    return events[0]


# --- the demo ran and wrote what it says ------------------------------------------------------------


def test_demo_counts_match_the_files(demo: Demo) -> None:
    match = re.search(r"^(\d+) emails in ", demo.stdout, re.M)
    assert match, demo.stdout
    assert int(match.group(1)) == len(demo.messages) > 50
    match = re.search(r"^(\d+) calendar files in ", demo.stdout, re.M)
    assert match, demo.stdout
    assert int(match.group(1)) == len(demo.ics_files) >= 5
    assert len(list((demo.root / "maildir" / "new").iterdir())) == len(demo.messages)


def test_every_kind_appears(demo: Demo) -> None:
    kinds = {m.kind for m in demo.messages}
    assert kinds >= KINDS, KINDS - kinds
    repeats = [
        m
        for m in demo.messages
        if m.kind in ("reminder", "escalation") and int(str(m.message["X-Sopwatch-Repeat"])) > 0
    ]
    assert repeats, "no reminder or escalation was ever repeated"


# --- headers ----------------------------------------------------------------------------------------


def test_required_headers_on_every_message(demo: Demo) -> None:
    for m in demo.messages:
        msg = m.message
        for name in ("From", "To", "Subject", "Date", "Message-ID"):
            assert msg[name] is not None and str(msg[name]).strip(), (m.path.name, name)
        assert msg["From"].addresses[0].addr_spec == "sopwatch@northwind.example"
        assert all("@" in a.addr_spec for a in msg["To"].addresses), m.path.name
        assert msg["Date"].datetime.tzinfo is not None
        assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(msg["Message-ID"])), msg["Message-ID"]
        assert str(msg["Auto-Submitted"]) == "auto-generated", m.path.name
        suppress = msg.get_all("X-Auto-Response-Suppress")
        assert suppress == ["OOF, AutoReply"], (m.path.name, suppress)
        assert "all" not in str(suppress).lower()


def test_no_header_carries_a_line_break_or_an_unexpected_name(demo: Demo) -> None:
    for m in demo.messages:
        for name, value in m.message.items():
            assert "\r" not in str(value) and "\n" not in str(value), (m.path.name, name, value)
            assert name.lower() in ALLOWED_HEADERS, (m.path.name, name)
        # The raw header block: every line is a header or a folded continuation.
        head = m.raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
        for line in head.split(b"\n"):
            assert line[:1] in (b" ", b"\t") or re.match(rb"^[!-9;-~]+:", line), (m.path.name, line)


def test_message_ids_are_unique(demo: Demo) -> None:
    ids = [str(m.message["Message-ID"]) for m in demo.messages]
    assert len(set(ids)) == len(ids)


def test_one_thread_and_one_subject_per_action(demo: Demo) -> None:
    roots: dict[str, set[str]] = defaultdict(set)
    subjects: dict[str, set[str]] = defaultdict(set)
    for m in alerts(demo):
        assert m.action, m.path.name
        in_reply_to = str(m.message["In-Reply-To"])
        assert str(m.message["References"]) == in_reply_to, m.path.name
        assert in_reply_to != str(m.message["Message-ID"])
        roots[m.action].add(in_reply_to)
        subjects[m.action].add(str(m.message["Subject"]))
    assert len(roots) >= 10
    for action, found in roots.items():
        assert len(found) == 1, (action, found)
        assert len(subjects[action]) == 1, (action, subjects[action])
        assert action in next(iter(subjects[action]))
    all_roots = [next(iter(found)) for found in roots.values()]
    assert len(set(all_roots)) == len(all_roots), "two actions share a thread root"
    # A root is never itself a sent message.
    sent_ids = {str(m.message["Message-ID"]) for m in demo.messages}
    assert not sent_ids & set(all_roots)


# --- MIME structure ---------------------------------------------------------------------------------


def test_normal_messages_are_text_and_html_alternatives(demo: Demo) -> None:
    normal = [m for m in demo.messages if m.kind not in HOLD_KINDS]
    assert normal
    for m in normal:
        msg = m.message
        assert msg.get_content_type() == "multipart/alternative", m.path.name
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"], (m.path.name, parts)
        assert not calendar_parts(msg)


def test_holds_and_cancels_are_imip_messages(demo: Demo) -> None:
    holds = [m for m in demo.messages if m.kind in HOLD_KINDS]
    assert {m.kind for m in holds} == HOLD_KINDS
    for m in holds:
        msg = m.message
        assert msg.get_content_type() == "multipart/mixed", m.path.name
        outer = list(msg.iter_parts())
        assert [p.get_content_type() for p in outer] == ["multipart/alternative", "application/ics"]
        inner = list(outer[0].iter_parts())
        assert [p.get_content_type() for p in inner] == ["text/plain", "text/html", "text/calendar"]
        expected = "CANCEL" if m.kind == "cancel" else "REQUEST"
        assert inner[2].get_param("method") == expected, m.path.name
        attachment = outer[1]
        assert attachment.get_content_disposition() == "attachment"
        assert (attachment.get_filename() or "").endswith(".ics")
        alternative, attached = calendar_parts(msg)
        # text parts come back with bare LF line ends; the content is the same object
        assert alternative.replace(b"\r\n", b"\n") == attached.replace(b"\r\n", b"\n")
        assert method_of(alternative) == expected


# --- calendar objects -------------------------------------------------------------------------------


def all_calendars(demo: Demo) -> list[tuple[str, bytes]]:
    found = [(p.name, p.read_bytes()) for p in demo.ics_files]
    for m in demo.messages:
        found.extend((m.path.name, ics) for ics in calendar_parts(m.message))
    return found


def test_every_calendar_object_parses_and_follows_imip(demo: Demo) -> None:
    calendars = all_calendars(demo)
    assert len(calendars) >= 3 * len(demo.ics_files) >= 15
    for name, ics in calendars:
        # icalendar
        event = event_of(ics)
        method = method_of(ics)
        assert method in ("REQUEST", "CANCEL"), name
        assert str(event["UID"]).strip(), name
        assert int(event["SEQUENCE"]) >= 0
        start, end = event.decoded("DTSTART"), event.decoded("DTEND")
        assert start.utcoffset().total_seconds() == 0 and end.utcoffset().total_seconds() == 0, name
        assert end > start
        assert str(event["ORGANIZER"]).lower() == ORGANIZER
        attendees = event.get("ATTENDEE")
        attendees = attendees if isinstance(attendees, list) else [attendees]
        assert attendees and attendees[0] is not None, name
        for attendee in attendees:
            assert str(attendee).startswith("mailto:"), attendee
            assert str(attendee).lower() != ORGANIZER
            assert attendee.params.get("RSVP") == "TRUE", (name, attendee.params)
        if method == "CANCEL":
            assert str(event["STATUS"]) == "CANCELLED"
        # the raw text: times written in UTC
        text = ics.decode("utf-8").replace("\r\n ", "")
        assert re.search(r"^DTSTART:\d{8}T\d{6}Z\r?$", text, re.M), name
        assert re.search(r"^DTEND:\d{8}T\d{6}Z\r?$", text, re.M), name
        # vobject, an independent parser
        parsed = vobject.readOne(ics.decode("utf-8"))
        assert parsed.method.value == method
        vevent = parsed.vevent
        assert vevent.uid.value == str(event["UID"])
        assert int(vevent.sequence.value) == int(event["SEQUENCE"])
        assert vevent.dtstart.value == start and vevent.dtend.value == end
        assert vevent.dtstart.value.utcoffset().total_seconds() == 0
        assert vevent.organizer.value.lower() == ORGANIZER
        v_attendees = [a.value.lower() for a in vevent.contents.get("attendee", [])]
        assert v_attendees and ORGANIZER not in v_attendees
        assert all(a.params.get("RSVP") == ["TRUE"] for a in vevent.contents["attendee"])


def hold_history(demo: Demo, action: str) -> list[tuple[str, str, int, str, datetime]]:
    """(kind, METHOD, SEQUENCE, UID, DTSTART) of an action's calendar messages, in sending order."""
    history = []
    for m in sorted(demo.messages, key=lambda m: (m.message["Date"].datetime, m.path.name)):
        if m.action != action or m.kind not in HOLD_KINDS:
            continue
        ics = calendar_parts(m.message)[0]
        event = event_of(ics)
        history.append(
            (m.kind, method_of(ics), int(event["SEQUENCE"]), str(event["UID"]), event.decoded("DTSTART"))
        )
    return history


def test_hold_of_nw_1213_is_sent_updated_and_cancelled(demo: Demo) -> None:
    history = hold_history(demo, "NW-1213")
    assert [(kind, method) for kind, method, *_ in history] == [
        ("hold", "REQUEST"),
        ("hold-update", "REQUEST"),
        ("cancel", "CANCEL"),
    ], history
    (_, _, seq0, uid0, start0), (_, _, seq1, uid1, start1), (_, _, seq2, uid2, _) = history
    assert (seq0, seq1) == (0, 1)
    assert seq2 > seq1
    assert uid0 == uid1 == uid2
    assert start1 > start0, "the update moves the hold later (the approval was re-sent)"
    cancel = next(m for m in demo.messages if m.action == "NW-1213" and m.kind == "cancel")
    assert str(event_of(calendar_parts(cancel.message)[0])["STATUS"]) == "CANCELLED"


def test_hold_of_nw_1210_is_sent_then_cancelled(demo: Demo) -> None:
    history = hold_history(demo, "NW-1210")
    assert [method for _, method, *_ in history] == ["REQUEST", "CANCEL"], history
    (_, _, seq0, uid0, _), (_, _, seq1, uid1, _) = history
    assert uid0 == uid1 and seq1 > seq0
    resolved = [m for m in demo.messages if m.action == "NW-1210" and m.kind == "resolved"]
    assert resolved, "approving NW-1210 sends a resolved notice"


def test_holds_have_distinct_uids_per_action(demo: Demo) -> None:
    uids: dict[str, set[str]] = defaultdict(set)
    for m in demo.messages:
        if m.kind in HOLD_KINDS:
            uids[m.action or ""].add(str(event_of(calendar_parts(m.message)[0])["UID"]))
    flat = [uid for found in uids.values() for uid in found]
    assert len(flat) == len(set(flat)) >= 3


# --- digests ----------------------------------------------------------------------------------------


def test_digest_groups_items_by_rule_with_summary_figures(demo: Demo) -> None:
    digests = [m for m in demo.messages if m.kind == "digest"]
    assert digests
    rules_dir = Path(__file__).resolve().parents[1] / "rules"
    descriptions = {}
    for path in rules_dir.glob("*.yaml"):
        for rule in yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]:
            descriptions[rule["description"]] = rule["id"]
    listed: list[tuple[tuple[str, str], str]] = []  # ((date, recipient), action)
    for m in digests:
        msg = m.message
        assert len(msg["To"].addresses) == 1 and msg["Cc"] is None
        assert msg["In-Reply-To"] is None, "a digest is about many actions: it starts no thread"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        groups = re.findall(r"^== \[(\w+)\] (.+) \((\d+)\)$", text, re.M)
        assert groups, text
        assert len({g[1] for g in groups}) == len(groups), "a rule appears in two groups"
        for severity, description, count in groups:
            assert severity.lower() in ("info", "warning", "critical")
            assert description in descriptions, description
            block = text.split(f"{description} ({count})", 1)[1].split("\n\n", 1)[0]
            items = re.findall(r"^  - (NW-\d+):", block, re.M)
            assert len(items) == int(count) > 0, block
            when = (m.message["Date"].datetime.isoformat(), m.message["To"].addresses[0].addr_spec)
            listed.extend((when, item) for item in items)
            for item in items:
                assert item in html
        for figure in (
            "Open items:",
            "Overdue:",
            "Stale approvals:",
            "Unassigned decisions:",
            "Oldest item:",
        ):
            assert re.search(rf"^\s+{figure}\s+\S", text, re.M), (figure, text)
        assert re.search(r"Closed on time.*:\s+(\d+%|n/a)", text)
        assert re.search(r"Median approval time:\s+\S", text)
    # An item is listed once per digest, and again in later digests while its episode is open:
    # NW-1110 waits for approval all month.
    for digest in {when for when, _ in listed}:
        items = [item for when, item in listed if when == digest]
        assert len(items) == len(set(items)), (digest, items)
    assert len({when for when, item in listed if item == "NW-1110"}) > 1, listed


# --- delivery windows -------------------------------------------------------------------------------


def business_day(day: date, closures: set[date], public: holidays.HolidayBase) -> bool:
    return day.weekday() < 5 and day not in closures and day not in public


def test_nothing_is_delivered_outside_the_recipients_business_hours(demo: Demo) -> None:
    root = Path(__file__).resolve().parents[1]
    people = yaml.safe_load((root / "example" / "people.yaml").read_text(encoding="utf-8"))["people"]
    zones = {p["email"].lower(): p.get("timezone", "Europe/Berlin") for p in people}
    assert zones["david.ortiz@northwind.example"] == "America/New_York"
    config = yaml.safe_load((root / "config.example.yaml").read_text(encoding="utf-8"))
    closures = {date.fromisoformat(str(d)) for d in config["business_calendar"]["closures"]}
    public = holidays.country_holidays("DE", years=[2026, 2027])
    outside = []
    checked_zones = set()
    for m in demo.messages:
        if m.kind == "admin":
            continue
        first = m.message["To"].addresses[0].addr_spec.lower()
        zone = ZoneInfo(zones.get(first, config["timezone"]))
        checked_zones.add(str(zone))
        sent = m.message["Date"].datetime
        local = sent.astimezone(zone)
        inside = 8 <= local.hour < 18 and business_day(local.date(), closures, public)
        if not inside:
            outside.append((m.path.name, first, local.isoformat()))
    assert not outside, f"{len(outside)} messages dated outside business hours, e.g. {outside[:5]}"
    assert {"America/New_York", "Asia/Singapore", "Europe/Berlin"} <= checked_zones


def test_dates_never_run_backwards_in_the_export_order(demo: Demo) -> None:
    dates = [m.message["Date"].datetime.astimezone(UTC) for m in demo.messages]
    assert dates == sorted(dates)
    assert datetime(2026, 11, 30, 23, tzinfo=UTC) <= dates[0] <= dates[-1] <= datetime(2027, 1, 1, tzinfo=UTC)


def test_messages_of_one_instant_are_numbered_by_message_id_not_file_name(tmp_path: Path) -> None:
    """Maildir file names carry unpadded microseconds and a counter: sorting them is not stable
    between runs. Two messages dated alike come out in Message-ID order whatever their names."""
    from email.message import EmailMessage as Message

    from sopwatch.daemon.demo import _export

    new = tmp_path / "maildir" / "new"
    new.mkdir(parents=True)
    # By name "1.M123P1" sorts first; by Message-ID "<a@x>" does.
    for name, ident, action in (("1.M123P1", "<b@x>", "A-2"), ("1.M99P1", "<a@x>", "A-1")):
        message = Message()
        message["Date"] = "Wed, 02 Dec 2026 08:00:00 +0100"
        message["Message-ID"] = ident
        message["To"] = "ann@example.com"
        message["X-Sopwatch-Kind"] = "reminder"
        message["X-Sopwatch-Action"] = action
        message.set_content("x")
        (new / name).write_bytes(message.as_bytes())
    (tmp_path / "out").mkdir()
    result = _export(tmp_path / "maildir", tmp_path / "out")
    assert [p.name for p in result.eml] == ["0001-reminder-A-1.eml", "0002-reminder-A-2.eml"]


def short_demo(run_sopwatch, setup: Path, out: Path):  # type: ignore[no-untyped-def]
    return run_sopwatch(
        "demo", "--config", str(setup / "config.yaml"), "--out", str(out),
        "--from", "2026-12-07T00:00", "--to", "2026-12-07T12:00", timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "files",
    [["notes.txt"], ["state.db", "maildir/cur/1.eml"]],  # the second looks like a daemon's folder
)
def test_demo_refuses_to_replace_a_folder_it_did_not_write(
    run_sopwatch, example_copy: Path, files: list[str]
) -> None:
    out = example_copy / "mine"
    for name in files:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("keep me", encoding="utf-8")
    result = short_demo(run_sopwatch, example_copy, out)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "not empty and not the output of an earlier demo" in result.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(files)
    assert all((out / name).read_text(encoding="utf-8") == "keep me" for name in files)


def test_demo_writes_into_an_empty_folder_and_replaces_its_own_output(
    run_sopwatch, example_copy: Path
) -> None:
    out = example_copy / "demo-out"
    out.mkdir()
    first = short_demo(run_sopwatch, example_copy, out)
    assert first.returncode == 0, first.stderr
    emails = sorted(p.name for p in (out / "eml").iterdir())
    assert emails
    (out / "eml" / "stale.eml").write_text("from an older run", encoding="utf-8")
    again = short_demo(run_sopwatch, example_copy, out)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (out / "eml").iterdir()) == emails  # replaced, not added to


def test_messages_are_signed_with_the_organisation_named_in_from(demo: Demo) -> None:
    escalation = next(m for m in demo.messages if m.kind == "escalation")  # the built-in template
    assert escalation.message["From"].addresses[0].display_name == "Northwind Home Care"
    text = escalation.message.get_body(("plain",)).get_content()
    assert "Sent automatically by sopwatch for Northwind Home Care" in text
    reminder = next(m for m in demo.messages if m.kind == "reminder")  # the example's override
    assert "sopwatch for Northwind Home Care S&OP" in reminder.message.get_body(("plain",)).get_content()
