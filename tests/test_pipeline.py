"""The daemon's pipeline end to end through ``Engine.tick(now)``: register -> rules -> outbox -> maildir.

Each test writes a small setup into tmp_path (hours 00:00-24:00 on all seven days, so only the
rules decide when something is due) and drives the engine with explicit instants.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from daemon_setup import LATE_RULE, delivered, kind_of, messages, of_kind, write_setup

from sopwatch.adapters.state_store import StateStore
from sopwatch.core.state import Silence
from sopwatch.delivery.base import OutgoingMessage, SendResult
from sopwatch.messages.email import hold_uid

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ADMIN = "admin@example.com"
ANN, NICK, CARL = "ann@example.com", "nick@example.com", "carl@example.com"

PEOPLE = """\
people:
  - {id: ann, name: Ann Example, email: ann@example.com, timezone: Europe/Berlin, manager: carl}
  - {id: nick, name: Nick York, email: nick@example.com, timezone: America/New_York, manager: carl}
  - {id: carl, name: Carl Boss, email: carl@example.com, timezone: Europe/Berlin}
"""

DIGEST_RULE = """\
rules:
  - id: late-digest
    description: Late work, listed in the weekly digest
    severity: info
    when: {status: open}
    fire_at: due
    escalation:
      - notify: [owner]
        via: digest
"""


def make_setup(
    folder: Path,
    rows: Sequence[dict[str, str]],
    *,
    rules: str = LATE_RULE,
    templates: dict[str, str] | None = None,
    digests: bool = False,
) -> Path:
    """A complete setup in ``folder``; returns the config path."""
    extra = 'digests:\n  - {id: weekly, schedule: "mon 08:00"}\n' if digests else ""
    fields = ["id", "title", "status", "owner", "due"]
    return write_setup(
        folder, rows, people=PEOPLE, rules=rules, fields=fields, extra=extra, templates=templates
    )


def row(ident: str, owner: str, due: str, title: str | None = None) -> dict[str, str]:
    return {"id": ident, "title": title or f"Item {ident}", "status": "open", "owner": owner, "due": due}


def outbox_rows(config: Path) -> list[tuple[int, str, str, bytes | None]]:
    with contextlib.closing(sqlite3.connect(config.parent / "state.db")) as db:
        return db.execute("SELECT id, key, status, message FROM outbox ORDER BY id").fetchall()


def message_id(data: bytes) -> str:
    return str(email.message_from_bytes(data, policy=email.policy.default)["Message-ID"])


# --- hostile data end to end ------------------------------------------------------------------------

HOSTILE = (
    "Pay\r\nBcc: evil@example.com\r\n =?utf-8?q?x=0D=0ABcc:_evil2@example.com?= "
    "=?utf-8?b?DQpCY2M6IGV2aWwzQGV4YW1wbGUuY29t?= <script>alert(1)</script>"
)


def test_hostile_title_cannot_add_headers_or_script(tmp_path: Path, engines) -> None:
    config = make_setup(tmp_path / "s", [row("A-1", "ann", "2026-12-01", HOSTILE)])
    engines(config).tick(datetime(2026, 12, 2, 10, tzinfo=BERLIN))
    messages = delivered(config)
    assert len(messages) == 1
    raw, message = messages[0]
    assert message["To"].addresses[0].addr_spec == ANN
    assert message.get_all("Bcc") is None and message.get_all("Cc") is None
    for name, value in message.items():
        assert "\r" not in str(value) and "\n" not in str(value), (name, value)
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\n") if line[:1] not in (b" ", b"\t")]
    assert b"bcc" not in names and b"cc" not in names
    unfolded = re.sub(rb"\n[ \t]", b" ", head).split(b"\n")
    assert [line for line in unfolded if b"evil" in line and not line.startswith(b"Subject: ")] == []
    subject = str(message["Subject"])
    assert "Bcc: evil@example.com" in subject, "the title stays readable text in the subject"
    assert "evil2" in subject and "evil3" not in subject, "encoded words are not decoded into headers"
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    text = message.get_body(("plain",)).get_content()
    assert "<script>alert(1)</script>" in text, "the text part shows the title as written"


# --- template overrides -----------------------------------------------------------------------------

ESCAPE = "{{ ''.__class__.__mro__ }}\n"


def test_sandbox_violation_sends_the_builtin_and_tells_the_admin(tmp_path: Path, engines) -> None:
    config = make_setup(
        tmp_path / "s", [row("A-1", "ann", "2026-12-01")], templates={"reminder.txt.j2": ESCAPE}
    )
    engines(config).tick(datetime(2026, 12, 2, 10, tzinfo=BERLIN))
    reminders = of_kind(config, "reminder")
    assert len(reminders) == 1
    text = reminders[0].get_body(("plain",)).get_content()
    assert "A-1" in text and "Item A-1" in text, "the built-in body was used"
    assert "class" not in text and "object" not in text
    admin = of_kind(config, "admin")
    assert len(admin) == 1
    assert admin[0]["To"].addresses[0].addr_spec == ADMIN
    assert str(admin[0]["Auto-Submitted"]) == "auto-generated"
    assert str(admin[0]["X-Auto-Response-Suppress"]) == "OOF, AutoReply"
    body = admin[0].get_body(("plain",)).get_content()
    assert "reminder.txt.j2" in body and "unsafe" in body, body
    # The file named is the admin's own, not the private copy the daemon renders from.
    assert str(config.parent / "templates" / "reminder.txt.j2") in body, body
    html = admin[0].get_body(("html",)).get_content()  # text and HTML, as every email (SPEC §3)
    assert "reminder.txt.j2" in html and "<html" in html


def test_an_admin_notice_with_non_ascii_text_is_sent_7bit(tmp_path: Path, engines) -> None:
    """As every other message: a relay without 8BITMIME must not get 8-bit data (RFC 6152). The
    notice is short on purpose: the standard library sends short non-ASCII lines as 8bit unless the
    policy says 7bit (long lines go quoted-printable either way)."""
    config = make_setup(tmp_path / "s", [row("A-1", "ann", "2026-12-01")])
    engine = engines(config)
    now = datetime(2026, 12, 2, 10, tzinfo=BERLIN)
    engine._admin("template failed", "'nope_ü' is undefined")  # what a template error queues
    engine.tick(now)
    (raw,) = [raw for raw, message in delivered(config) if kind_of(message) == "admin"]
    admin = email.message_from_bytes(raw, policy=email.policy.default)
    assert "nope_ü" in admin.get_body(("plain",)).get_content()
    assert raw.isascii(), "8-bit bytes in the admin notice"


def test_validate_names_the_unsafe_template(tmp_path: Path, run_sopwatch) -> None:
    config = make_setup(
        tmp_path / "s", [row("A-1", "ann", "2026-12-01")], templates={"reminder.txt.j2": ESCAPE}
    )
    result = run_sopwatch("validate", "--config", str(config))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert re.search(r"reminder\.txt\.j2:1\b.*unsafe", output), output


def test_validate_refuses_a_template_name_that_climbs_out(tmp_path: Path, run_sopwatch) -> None:
    rules = LATE_RULE.replace(
        "      - notify: [owner]\n", "      - notify: [owner]\n        template: ../x\n"
    )
    assert "../x" in rules
    config = make_setup(tmp_path / "s", [row("A-1", "ann", "2026-12-01")], rules=rules)
    result = run_sopwatch("validate", "--config", str(config))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert re.search(r"rules\.yaml:\d+:\d+:.*template", output), output


# --- idempotence and crashes ------------------------------------------------------------------------


def test_two_ticks_at_the_same_instant_enqueue_nothing_new(tmp_path: Path, engines) -> None:
    config = make_setup(tmp_path / "s", [row("A-1", "ann", "2026-12-01"), row("N-1", "nick", "2026-12-01")])
    now = datetime(2026, 12, 2, 10, tzinfo=BERLIN)
    engine = engines(config)
    first = engine.tick(now)
    assert first.enqueued == 2
    rows = outbox_rows(config)
    second = engine.tick(now)
    assert second.enqueued == 0
    assert outbox_rows(config) == rows
    # A fresh engine (a restart) at the same instant adds nothing either.
    engine.close()
    engines(config).tick(now)
    assert len(outbox_rows(config)) == len(rows) == 2
    assert len(delivered(config)) == 2


class Crash(Exception):
    pass


class CrashingTransport:
    """The process dies after the commit, while handing the batch to the server."""

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        raise Crash("killed mid-delivery")

    async def close(self) -> None:
        return None


class FailingTransport:
    """The server is down: every message fails temporarily."""

    def __init__(self) -> None:
        self.calls = 0

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        self.calls += 1
        return [SendResult(m.id, error="421 4.3.2 service not available") for m in messages]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("transport", [CrashingTransport, FailingTransport])
def test_restart_after_failed_delivery_sends_each_message_once(tmp_path: Path, engines, transport) -> None:
    config = make_setup(tmp_path / "s", [row("A-1", "ann", "2026-12-01"), row("N-1", "nick", "2026-12-01")])
    now = datetime(2026, 12, 2, 10, tzinfo=BERLIN)
    broken = engines(config, transport=transport())
    with contextlib.suppress(Crash):
        broken.tick(now)
    broken.close()
    rows = outbox_rows(config)
    assert len(rows) == 2
    assert {status for _, _, status, _ in rows} <= {"pending", "retry"}
    assert delivered(config) == []
    committed_ids = {message_id(data) for *_, data in rows if data}
    assert len(committed_ids) == 2

    fresh = engines(config)
    fresh.tick(now + timedelta(minutes=5))  # past the first retry's backoff (at most 30 s)
    fresh.tick(now + timedelta(minutes=10))
    ids = [str(m["Message-ID"]) for _, m in delivered(config)]
    assert sorted(ids) == sorted(committed_ids), "each committed message exactly once, same Message-ID"
    assert [status for _, _, status, _ in outbox_rows(config)] == ["sent", "sent"]


# --- digests ----------------------------------------------------------------------------------------


def test_weekly_digest_at_08_00_recipient_local(tmp_path: Path, engines) -> None:
    config = make_setup(
        tmp_path / "s",
        [
            row("A-1", "ann", "2026-12-02"),  # fires Thu 3 Dec 00:00 Berlin
            row("N-1", "nick", "2026-12-02"),
            row("A-2", "ann", "2026-12-09"),  # fires Thu 10 Dec: only in the second digest
        ],
        rules=DIGEST_RULE,
        digests=True,
    )
    engine = engines(config)
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    end = datetime(2026, 12, 15, 0, tzinfo=UTC)
    while now <= end:
        engine.tick(now)
        now += timedelta(hours=1)
    digests = of_kind(config, "digest")
    got = []
    for message in digests:
        recipient = message["To"].addresses[0].addr_spec
        zone = NEW_YORK if recipient == NICK else BERLIN
        local = message["Date"].datetime.astimezone(zone)
        text = message.get_body(("plain",)).get_content()
        items = re.findall(r"^  - ([AN]-\d):", text, re.M)
        got.append((recipient, local.strftime("%a %Y-%m-%d %H:%M"), items))
        assert len(message["To"].addresses) == 1
        assert "Late work, listed in the weekly digest" in text
    # An item stays in every digest until its episode resolves (all three are still open).
    assert sorted(got) == [
        (ANN, "Mon 2026-12-07 08:00", ["A-1"]),
        (ANN, "Mon 2026-12-14 08:00", ["A-1", "A-2"]),
        (NICK, "Mon 2026-12-07 08:00", ["N-1"]),
        (NICK, "Mon 2026-12-14 08:00", ["N-1"]),
    ]
    # Digest items never go out as single emails; Carl, with nothing pending, gets nothing.
    assert all(kind_of(m) == "digest" for _, m in delivered(config))


# --- reloading the rules ----------------------------------------------------------------------------


def test_bad_rules_edit_keeps_the_last_good_rules_until_fixed(tmp_path: Path, engines) -> None:
    config = make_setup(tmp_path / "s", [row("A-1", "ann", "2026-12-01"), row("A-2", "ann", "2026-12-05")])
    rules = config.parent / "rules.yaml"
    engine = engines(config)
    engine.tick(datetime(2026, 12, 2, 10, tzinfo=BERLIN))
    assert len(of_kind(config, "reminder")) == 1

    broken = LATE_RULE.replace("when: {status: open}", "when: {status: {bogus: open}}")
    rules.write_text(broken, encoding="utf-8")
    line = broken.splitlines().index("    when: {status: {bogus: open}}") + 1
    engine.tick(datetime(2026, 12, 3, 10, tzinfo=BERLIN))
    # The old rules still run: A-1 is repeated a day later.
    reminders = [m for m in of_kind(config, "reminder") if str(m["X-Sopwatch-Action"]) == "A-1"]
    assert [str(m["X-Sopwatch-Repeat"]) for m in reminders] == ["0", "1"]
    admin = of_kind(config, "admin")
    assert len(admin) == 1
    body = admin[0].get_body(("plain",)).get_content()
    assert re.search(rf"rules\.yaml:{line}:\d+: .*bogus", body), body

    # Still broken at the next tick: no second admin message, notifications continue.
    engine.tick(datetime(2026, 12, 6, 10, tzinfo=BERLIN))
    assert len(of_kind(config, "admin")) == 1
    assert any(str(m["X-Sopwatch-Action"]) == "A-2" for m in of_kind(config, "reminder"))

    # Fixed: the new rules are loaded (a new rule id, a different severity).
    rules.write_text(LATE_RULE.replace("id: late", "id: late-fixed"), encoding="utf-8")
    engine.tick(datetime(2026, 12, 6, 11, tzinfo=BERLIN))
    assert [r.id for r in engine.setup.rules] == ["late-fixed"]
    fixed = [m for _, m in delivered(config) if str(m["X-Sopwatch-Rule"]) == "late-fixed"]
    assert {str(m["X-Sopwatch-Action"]) for m in fixed} == {"A-1", "A-2"}
    assert len(of_kind(config, "admin")) == 1


def test_an_edit_that_keeps_size_and_timestamp_is_still_picked_up(tmp_path: Path, engines) -> None:
    """File systems stamp files coarsely; an editor saving `1 day` -> `2 day` inside one stamp."""
    config = make_setup(tmp_path / "s", [row("A-1", "ann", "2026-12-01")])
    rules = config.parent / "rules.yaml"
    engine = engines(config)
    engine.tick(datetime(2026, 12, 2, 10, tzinfo=BERLIN))
    assert engine.setup.rules.get("late").repeat.amount == 1

    stamp = rules.stat().st_mtime_ns
    edited = LATE_RULE.replace("repeat: 1 day", "repeat: 2 day")
    assert len(edited) == len(LATE_RULE)
    rules.write_text(edited, encoding="utf-8")
    os.utime(rules, ns=(stamp, stamp))  # the same size and the same timestamp as before
    engine.tick(datetime(2026, 12, 2, 11, tzinfo=BERLIN))
    assert engine.setup.rules.get("late").repeat.amount == 2


# --- template edits ----------------------------------------------------------------------------------

GOOD_TEMPLATE = "Custom reminder for {{ action.id }}: please act.\n"
BROKEN_TEMPLATE = "Custom reminder for {{ action.id }: please act.\n"  # unbalanced braces: a syntax error


def test_a_broken_template_edit_keeps_the_last_good_copy(tmp_path: Path, engines) -> None:
    config = make_setup(
        tmp_path / "s",
        [row("A-1", "ann", "2026-12-01"), row("A-2", "ann", "2026-12-05")],
        templates={"reminder.txt.j2": GOOD_TEMPLATE},
    )
    engine = engines(config)
    engine.tick(datetime(2026, 12, 2, 10, tzinfo=BERLIN))
    first = of_kind(config, "reminder")
    assert len(first) == 1
    assert "Custom reminder for A-1: please act." in first[0].get_body(("plain",)).get_content()

    (config.parent / "templates" / "reminder.txt.j2").write_text(BROKEN_TEMPLATE, encoding="utf-8")
    engine.tick(datetime(2026, 12, 6, 10, tzinfo=BERLIN))
    second = [m for m in of_kind(config, "reminder") if str(m["X-Sopwatch-Action"]) == "A-2"]
    assert len(second) == 1
    # The override as it was before the edit, not the built-in and not the broken text.
    assert "Custom reminder for A-2: please act." in second[0].get_body(("plain",)).get_content()
    admin = of_kind(config, "admin")
    assert len(admin) == 1
    body = admin[0].get_body(("plain",)).get_content()
    assert "reminder.txt.j2" in body and str(config.parent / "templates") in body


# --- message ids and hold UIDs across state files -------------------------------------------------

HOLD_LATE_RULE = LATE_RULE.replace(
    "      - notify: [owner]\n",
    '      - notify: [owner]\n        calendar_hold: {start: "fire_at + 1 day", duration: 30m}\n',
)


def ids_and_uids(config: Path) -> tuple[set[str], set[str]]:
    ids, uids = set(), set()
    for _raw, message in delivered(config):
        ids.add(str(message["Message-ID"]))
        for part in message.walk():
            if part.get_content_type() == "text/calendar":
                uids.update(re.findall(r"^UID:(.+?)\r?$", part.get_content(), re.MULTILINE))
    return ids, uids


def test_a_new_state_file_never_reuses_the_ids_of_messages_sent_before(engines, tmp_path: Path) -> None:
    """After a state reset the episode numbers start again; the ids must not (mail systems drop a
    message whose Message-ID they have seen, calendars ignore an event UID at an old SEQUENCE)."""
    config = make_setup(tmp_path / "s", [row("A-1", "ann", "2026-12-01")], rules=HOLD_LATE_RULE)
    now = datetime(2026, 12, 2, 10, tzinfo=BERLIN)
    engines(config).tick(now)
    first_ids, first_uids = ids_and_uids(config)
    assert len(first_ids) == 2 and len(first_uids) == 1  # the reminder and its hold

    for name in ("state.db", "state.db-wal", "state.db-shm"):  # the admin starts afresh
        (config.parent / name).unlink(missing_ok=True)
    for path in (config.parent / "maildir" / "new").iterdir():
        path.unlink()
    engines(config).tick(now)
    second_ids, second_uids = ids_and_uids(config)
    assert len(second_ids) == 2 and len(second_uids) == 1
    assert not first_ids & second_ids and not first_uids & second_uids


def test_a_state_file_from_before_the_token_keeps_its_ids(engines, tmp_path: Path) -> None:
    """Holds already in calendars must still be updated and cancelled under the UIDs they were
    sent with: a used state file without a token (written by an older sopwatch) gets none."""
    config = make_setup(tmp_path / "s", [row("A-1", "ann", "2026-12-01")], rules=HOLD_LATE_RULE)
    engines(config).tick(datetime(2026, 12, 2, 10, tzinfo=BERLIN))
    with contextlib.closing(sqlite3.connect(config.parent / "state.db")) as db, db:
        token = db.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()[0]
        db.execute("DELETE FROM meta WHERE key = 'instance'")
    assert re.fullmatch(r"[0-9a-f]{12}", token)
    store = StateStore(config.parent / "state.db")
    try:
        assert store.instance() == "" and store.instance() == ""  # decided once, then kept
    finally:
        store.close()
    assert hold_uid("late/A-1/1/hold0@sopwatch", "") == "late/A-1/1/hold0@sopwatch"
    assert hold_uid("late/A-1/1/hold0@sopwatch", token) == f"late/A-1/1/hold0.{token}@sopwatch"


# --- resolution withdraws what has not gone out ---------------------------------------------------

# The hold is set for the Thursday after: still to come when the work is done, so it is cancelled.
NOTIFYING_HOLD_RULE = (
    HOLD_LATE_RULE.replace("fire_at + 1 day", "fire_at + 5 days") + "    notify_resolved: true\n"
)


def office_hours_setup(folder: Path) -> Path:
    config = make_setup(folder, [row("A-1", "ann", "2026-12-04")], rules=NOTIFYING_HOLD_RULE)
    text = config.read_text(encoding="utf-8")
    text = text.replace("  workdays: [mon, tue, wed, thu, fri, sat, sun]\n", "").replace(
        '"00:00-24:00"', '"08:00-18:00"'
    )
    config.write_text(text, encoding="utf-8")
    return config


def set_status(config: Path, status: str) -> None:
    path = config.parent / "register.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(",open,", f",{status},"), encoding="utf-8")


def add_silence(config: Path, silence: Silence) -> None:
    """As `sopwatch silence add` does, beside a running daemon."""
    store = StateStore(config.parent / "state.db")
    try:
        store.add_silence(silence)
    finally:
        store.close()


def outbox_statuses(config: Path) -> list[tuple[str, str, str | None]]:
    with contextlib.closing(sqlite3.connect(config.parent / "state.db")) as db:
        return db.execute("SELECT kind, status, last_error FROM outbox ORDER BY id").fetchall()


def test_work_done_before_monday_morning_sends_nothing_on_monday(engines, tmp_path: Path) -> None:
    """Due Friday, overdue on Saturday (queued for Monday 08:00), done on Sunday: the reminder, the
    hold, its cancel and the resolved notice would all arrive on Monday about finished work."""
    config = office_hours_setup(tmp_path / "s")
    engine = engines(config)
    engine.tick(datetime(2026, 12, 5, 10, tzinfo=BERLIN))  # Saturday: queued until Monday 08:00
    assert [(kind, status) for kind, status, _ in outbox_statuses(config)] == [
        ("reminder", "pending"),
        ("hold", "pending"),
    ]
    set_status(config, "done")
    engine.tick(datetime(2026, 12, 6, 10, tzinfo=BERLIN))  # Sunday: the episode resolves
    engine.tick(datetime(2026, 12, 7, 9, tzinfo=BERLIN))  # Monday, in the window
    assert delivered(config) == []
    rows = outbox_statuses(config)
    assert [(kind, status) for kind, status, _ in rows] == [
        ("reminder", "withdrawn"),
        ("hold", "withdrawn"),
        ("cancel", "withdrawn"),
        ("resolved", "withdrawn"),
    ]
    assert all(error and error.startswith("withdrawn: ") for _kind, _status, error in rows)


def test_work_done_after_its_reminder_went_out_is_cancelled_and_closed(engines, tmp_path: Path) -> None:
    config = office_hours_setup(tmp_path / "s")
    engine = engines(config)
    engine.tick(datetime(2026, 12, 7, 9, tzinfo=BERLIN))  # Monday: reminder and hold go out
    set_status(config, "done")
    engine.tick(datetime(2026, 12, 7, 11, tzinfo=BERLIN))
    assert sorted(kind_of(m) for _raw, m in delivered(config)) == ["cancel", "hold", "reminder", "resolved"]
    assert {status for _kind, status, _ in outbox_statuses(config)} == {"sent"}


@pytest.mark.parametrize(("matcher", "held"), [({"action": "A-1"}, True), ({"rule": "other"}, False)])
def test_a_silence_added_while_a_message_waits_for_the_window_holds_it_back(
    engines, tmp_path: Path, matcher: dict[str, str], held: bool
) -> None:
    config = office_hours_setup(tmp_path / "s")
    engine = engines(config)
    saturday = datetime(2026, 12, 5, 10, tzinfo=BERLIN)
    engine.tick(saturday)  # queued until Monday 08:00
    add_silence(
        config,
        Silence(
            "quiet",
            datetime(2026, 12, 20, tzinfo=BERLIN),
            "ops",
            "year-end freeze",
            created_at=saturday,
            **matcher,
        ),
    )
    engine.tick(datetime(2026, 12, 7, 9, tzinfo=BERLIN))
    rows = outbox_statuses(config)
    if held:
        assert delivered(config) == []
        assert [(kind, status) for kind, status, _ in rows] == [
            ("reminder", "silenced"),
            ("hold", "silenced"),
        ]
        assert all("silenced by quiet (year-end freeze)" in (error or "") for _k, _s, error in rows)
    else:
        assert sorted(kind_of(m) for _raw, m in delivered(config)) == ["hold", "reminder"]


def test_a_digest_lists_an_episode_once_at_its_latest_digest_step_until_it_resolves(
    tmp_path: Path, engines
) -> None:
    rules = DIGEST_RULE + "      - after: 1 day\n        notify: [owner]\n        via: digest\n"
    config = make_setup(tmp_path / "s", [row("A-1", "ann", "2026-12-02")], rules=rules, digests=True)
    engine = engines(config)
    for day in (3, 5, 7, 14):  # both steps come due before Monday 7 Dec; done before the 14th
        if day == 14:
            set_status(config, "done")
        engine.tick(datetime(2026, 12, day, 9, tzinfo=BERLIN))
    digests = of_kind(config, "digest")
    assert len(digests) == 1  # Monday 7 Dec; by the 14th the episode resolved: nothing is pending
    text = digests[0].get_body(("plain",)).get_content()
    assert re.findall(r"^  - ([AN]-\d):", text, re.M) == ["A-1"]
    with contextlib.closing(sqlite3.connect(config.parent / "state.db")) as db:
        left = db.execute("SELECT step, status FROM outbox WHERE channel = 'digest' ORDER BY step").fetchall()
    assert left == [(0, "digested"), (1, "digested")]  # out of the digests once resolved


def test_a_digest_template_that_fails_on_real_data_falls_back_and_tells_the_admin(
    tmp_path: Path, engines
) -> None:
    """Validation renders one sample item; this override breaks only with two."""
    override = "{% if count == 2 %}{{ 1 // 0 }}{% endif %}Your digest: {{ count }} items\n"
    config = make_setup(
        tmp_path / "s",
        [row("A-1", "ann", "2026-12-02"), row("A-2", "ann", "2026-12-03")],
        rules=DIGEST_RULE,
        digests=True,
        templates={"digest.txt.j2": override},
    )
    engine = engines(config)
    engine.tick(datetime(2026, 12, 4, 9, tzinfo=BERLIN))
    engine.tick(datetime(2026, 12, 7, 9, tzinfo=BERLIN))  # Monday
    (digest,) = of_kind(config, "digest")
    assert "Your digest" not in digest.get_body(("plain",)).get_content()  # the built-in
    (admin,) = of_kind(config, "admin")
    body = admin.get_body(("plain",)).get_content()
    assert str(config.parent / "templates" / "digest.txt.j2") in body and "division" in body, body


def test_a_custom_template_sees_observed_instants_and_times_in_the_recipients_zone(
    tmp_path: Path, engines
) -> None:
    """SPEC §3: dates render in the recipient's timezone, with or without ``|localtime``; and the
    action's observed fields (SPEC §1.1) are filled in, not None."""
    override = (
        "fired {{ alert.fired_at }}\nnow {{ now }}\nsince {{ action.status_since }}\n"
        "owner since {{ action.owner_since }}\nfirst seen {{ action.first_seen }}\n"
    )
    config = make_setup(
        tmp_path / "s", [row("N-1", "nick", "2026-12-01")], templates={"reminder.txt.j2": override}
    )
    engines(config).tick(datetime(2026, 12, 2, 10, tzinfo=BERLIN))
    (reminder,) = of_kind(config, "reminder")
    lines = reminder.get_body(("plain",)).get_content().splitlines()
    # Due 1 Dec: fired at the end of that day in Berlin, 18:00 the same day in New York; first
    # seen (and so in its status and with its owner since) at the tick, 04:00 in New York.
    assert lines[:5] == [
        "fired 2026-12-01 18:00:00-05:00",
        "now 2026-12-02 04:00:00-05:00",
        "since 2026-12-02 04:00:00-05:00",
        "owner since 2026-12-02 04:00:00-05:00",
        "first seen 2026-12-02 04:00:00-05:00",
    ]


def test_a_later_step_due_after_the_digest_slot_does_not_hide_the_episode_from_that_digest(
    tmp_path: Path, engines
) -> None:
    """Step 0 listed since Saturday; step 1 comes due at the first tick after a weekend of
    downtime (Monday 09:30), after the 08:00 slot: that digest still lists the episode."""
    rules = DIGEST_RULE + "      - after: 2 days 9 hours\n        notify: [owner]\n        via: digest\n"
    rules = rules.replace("after: 2 days 9 hours", "after: 57h")
    config = make_setup(tmp_path / "s", [row("A-1", "ann", "2026-12-04")], rules=rules, digests=True)
    engine = engines(config)
    engine.tick(datetime(2026, 12, 5, 10, tzinfo=BERLIN))  # Saturday: step 0's item
    engine.tick(datetime(2026, 12, 7, 9, 30, tzinfo=BERLIN))  # Monday after downtime: step 1 too
    (digest,) = of_kind(config, "digest")
    assert re.findall(r"^  - ([AN]-\d):", digest.get_body(("plain",)).get_content(), re.M) == ["A-1"]


def test_a_send_held_back_by_a_silence_goes_out_when_the_silence_ends(engines, tmp_path: Path) -> None:
    """Queued on Saturday for Monday; a silence from Saturday 11:00 to Sunday 12:00 catches it on
    Sunday's tick. When it ends the step was never notified, so it goes out on Monday, once (SPEC §2)."""
    config = office_hours_setup(tmp_path / "s")
    engine = engines(config)
    engine.tick(datetime(2026, 12, 5, 10, tzinfo=BERLIN))
    add_silence(
        config,
        Silence(
            "brief",
            datetime(2026, 12, 6, 12, tzinfo=BERLIN),
            "ops",
            "migration",
            action="A-1",
            created_at=datetime(2026, 12, 5, 11, tzinfo=BERLIN),
        ),
    )
    engine.tick(datetime(2026, 12, 6, 10, tzinfo=BERLIN))  # Sunday, silenced
    engine.tick(datetime(2026, 12, 6, 13, tzinfo=BERLIN))  # the silence has ended
    engine.tick(datetime(2026, 12, 7, 9, tzinfo=BERLIN))  # Monday, in the window
    sent = delivered(config)
    assert sorted(kind_of(m) for _raw, m in sent) == ["hold", "reminder"]
    rows = outbox_statuses(config)
    assert [(kind, status) for kind, status, _ in rows] == [
        ("reminder", "silenced"),
        ("hold", "silenced"),
        ("reminder", "sent"),
        ("hold", "sent"),
    ]


# --- one subject per action (SPEC §3) -----------------------------------------------------------

ESCALATING_RULE = LATE_RULE.replace(
    "      - notify: [owner]\n",
    '      - notify: [owner]\n      - after: 1 day\n        notify: ["manager(owner)"]\n        template: escalate\n',
)


def test_every_message_about_an_action_keeps_the_subject_of_the_first(
    tmp_path: Path, engines, run_sopwatch
) -> None:
    """A title edited in the register, or a step with a subject of its own, would split the thread
    in Gmail and Outlook, which thread by subject; the body still shows the title as it is now."""
    templates = {
        "escalate.subject.j2": "ESCALATED {{ action.id }}\n",
        "escalate.txt.j2": "{{ action.title }}\n",
    }
    config = make_setup(
        tmp_path / "s", [row("A-1", "ann", "2026-12-01", "Pay")], rules=ESCALATING_RULE, templates=templates
    )
    engine = engines(config)
    engine.tick(datetime(2026, 12, 2, 10, tzinfo=BERLIN))  # the reminder
    register = config.parent / "register.csv"
    register.write_text(
        register.read_text(encoding="utf-8").replace(",Pay,", ",Pay the invoice,"), encoding="utf-8"
    )
    check = run_sopwatch("check", "--json", "--at", "2026-12-03T10:00", "--config", str(config))
    assert check.returncode == 0, check.stderr
    assert {json.loads(line)["subject"] for line in check.stdout.splitlines()} == {"[S&OP] A-1: Pay"}
    engine.tick(datetime(2026, 12, 3, 10, tzinfo=BERLIN))  # the escalation, with a template of its own
    sent = messages(config)
    assert len(sent) == 2
    assert {str(m["Subject"]) for m in sent} == {"[S&OP] A-1: Pay"}
    assert len({str(m["References"]) for m in sent}) == 1
    escalation = next(m for m in sent if m["To"].addresses[0].addr_spec == CARL)
    assert escalation.get_body(("plain",)).get_content().strip() == "Pay the invoice"


def test_two_messages_about_a_new_action_in_one_tick_share_a_subject_and_check_says_which(
    tmp_path: Path, engines, run_sopwatch
) -> None:
    """A step with a subject of its own and a calendar hold: two messages in the first tick."""
    rules = LATE_RULE.replace(
        "      - notify: [owner]\n",
        '      - notify: [owner]\n        template: nudge\n        calendar_hold: {start: "fire_at + 2 days", duration: 30m}\n',
    )
    templates = {"nudge.subject.j2": "NUDGE {{ action.id }}\n", "nudge.txt.j2": "{{ action.title }}\n"}
    config = make_setup(
        tmp_path / "s", [row("A-1", "ann", "2026-12-01", "Pay")], rules=rules, templates=templates
    )
    check = run_sopwatch("check", "--json", "--at", "2026-12-02T10:00", "--config", str(config))
    assert check.returncode == 0, check.stderr
    promised = [json.loads(line)["subject"] for line in check.stdout.splitlines()]
    engines(config).tick(datetime(2026, 12, 2, 10, tzinfo=BERLIN))
    sent = [str(m["Subject"]) for m in messages(config)]
    assert len(sent) == 2 and len(set(sent)) == 1, sent
    assert sorted(promised) == sorted(sent)


def test_a_first_message_nobody_received_does_not_set_the_subject(tmp_path: Path, engines) -> None:
    """Queued for Monday's window, withdrawn when the work was done on Sunday: the thread starts
    with the first message that does go out, under the title the action has by then."""
    config = office_hours_setup(tmp_path / "s")
    engine = engines(config)
    engine.tick(datetime(2026, 12, 5, 10, tzinfo=BERLIN))  # Saturday: queued until Monday 08:00
    set_status(config, "done")
    engine.tick(datetime(2026, 12, 6, 10, tzinfo=BERLIN))  # Sunday: withdrawn
    register = config.parent / "register.csv"
    text = (
        register.read_text(encoding="utf-8")
        .replace(",done,", ",open,")
        .replace("Item A-1", "Pay the supplier")
    )
    register.write_text(text, encoding="utf-8")
    engine.tick(datetime(2026, 12, 7, 9, tzinfo=BERLIN))  # Monday: a new episode, sent
    subjects = {str(m["Subject"]) for m in messages(config)}
    assert subjects == {"[S&OP] A-1: Pay the supplier"}


def test_a_state_file_from_before_subjects_gets_the_column_and_reads_without_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("DROP INDEX outbox_action")
        db.execute("ALTER TABLE outbox DROP COLUMN subject")  # as an older sopwatch wrote it
    reader = StateStore(path, readonly=True)
    try:
        assert reader.thread_subjects(["A-1"]) == {}
    finally:
        reader.close()
    writer = StateStore(path)
    try:
        assert writer.thread_subjects(["A-1"]) == {}
        columns = {row[1] for row in writer.db.execute("PRAGMA table_info(outbox)")}
        assert "subject" in columns
    finally:
        writer.close()
