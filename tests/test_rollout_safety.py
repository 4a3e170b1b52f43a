"""Rollout and safety: the register shrink guard (``register.max_shrink``) and ``allowed_domains``.

Library-level: an Engine in tmp_path driven with explicit instants, delivering to a maildir, as in
test_pipeline.py. Business hours are 00:00-24:00 on all seven days so only the rules decide.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import re
import sqlite3
import textwrap
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import daemon_setup
import pytest
from daemon_setup import ANN_AND_CARL, messages, of_kind, write_setup

from sopwatch.config.loader import load_setup
from sopwatch.daemon.policy import domain_problems, is_allowed
from sopwatch.delivery.base import OutgoingMessage, SendResult
from sopwatch.errors import ProblemList

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 12, 2, 10, tzinfo=BERLIN)

HOLD_RULE = """\
rules:
  - id: late
    description: Open work past its due date
    when: {status: open}
    fire_at: due
    escalation:
      - notify: [owner]
        calendar_hold: {start: "fire_at + 1 day", duration: 30m}
    repeat: 1 day
    notify_resolved: true
"""

FIELDS = ["id", "title", "status", "owner", "raised_by", "due"]
write_register = partial(daemon_setup.write_register, fields=FIELDS)
write_xlsx = partial(daemon_setup.write_xlsx, fields=FIELDS)


def rows(count: int, start: int = 1, **extra: str) -> list[dict[str, str]]:
    return [
        {"id": f"A-{i}", "title": f"Item {i}", "status": "open", "owner": "ann", "due": "2026-12-01", **extra}
        for i in range(start, start + count)
    ]


def make_setup(
    folder: Path,
    register_rows: Sequence[dict[str, str]],
    *,
    rules: str = HOLD_RULE,
    extra: str = "",
    register: str = "{type: csv, path: register.csv}",
) -> Path:
    return write_setup(
        folder, register_rows, people=ANN_AND_CARL, rules=rules, fields=FIELDS, extra=extra, register=register
    )


def count(config: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in messages(config):
        kind = str(message["X-Sopwatch-Kind"])
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def open_episodes(config: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(config.parent / "state.db")) as db:
        return {a for (a,) in db.execute("SELECT action FROM episodes WHERE resolved_at IS NULL")}


def body(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


# --- the register shrink guard ----------------------------------------------------------------------


def test_a_register_that_lost_most_rows_is_refused_until_it_is_back(tmp_path: Path, engines) -> None:
    config = make_setup(tmp_path / "s", rows(40))
    register = config.parent / "register.csv"
    engine = engines(config)
    engine.tick(T0)
    assert count(config) == {"reminder": 40, "hold": 40}
    assert len(open_episodes(config)) == 40

    write_register(register, rows(5))
    report = engine.tick(T0 + timedelta(hours=1))
    assert report.actions == 40, "the last accepted snapshot is evaluated"
    assert count(config) == {"reminder": 40, "hold": 40, "admin": 1}, "no resolved notice, no cancel"
    assert len(open_episodes(config)) == 40
    notice = of_kind(config, "admin")[0]
    assert "refused" in str(notice["Subject"])
    text = body(notice)
    assert "5 actions" in text and "40" in text and "max_shrink" in text, text
    assert "last accepted setup" in text

    # Still shrunk, and edited again: refused, evaluated as before, and no second notice.
    write_register(register, rows(6))
    engine.tick(T0 + timedelta(hours=2))
    engine.tick(T0 + timedelta(hours=3))
    assert count(config) == {"reminder": 40, "hold": 40, "admin": 1}
    assert len(open_episodes(config)) == 40

    # Back to 40: accepted again (the admin hears so), nothing resolved or re-sent.
    write_register(register, rows(40))
    report = engine.tick(T0 + timedelta(hours=4))
    assert report.actions == 40
    assert count(config) == {"reminder": 40, "hold": 40, "admin": 2}
    subjects = sorted(str(m["Subject"]) for m in of_kind(config, "admin"))
    assert ["accepted again" in x for x in subjects] == [True, False], subjects
    assert len(open_episodes(config)) == 40


def test_a_shrink_within_max_shrink_is_accepted_and_resolves_the_missing(tmp_path: Path, engines) -> None:
    config = make_setup(tmp_path / "s", rows(40))
    engine = engines(config)
    engine.tick(T0)
    write_register(config.parent / "register.csv", rows(30))  # 25% fewer, within 0.5
    report = engine.tick(T0 + timedelta(hours=1))
    assert report.actions == 30
    assert count(config) == {"reminder": 40, "hold": 40, "cancel": 10, "resolved": 10}
    assert open_episodes(config) == {f"A-{i}" for i in range(1, 31)}
    cancelled = {str(m["X-Sopwatch-Action"]) for m in of_kind(config, "cancel")}
    assert cancelled == {f"A-{i}" for i in range(31, 41)}


def test_an_empty_register_after_a_full_one_is_refused(tmp_path: Path, engines) -> None:
    config = make_setup(tmp_path / "s", rows(3))
    engine = engines(config)
    engine.tick(T0)
    write_register(config.parent / "register.csv", [])
    engine.tick(T0 + timedelta(hours=1))
    assert count(config) == {"reminder": 3, "hold": 3, "admin": 1}
    assert "no actions" in body(of_kind(config, "admin")[0])
    assert len(open_episodes(config)) == 3


def test_max_shrink_is_configurable_and_1_turns_the_guard_off(tmp_path: Path, engines) -> None:
    config = make_setup(tmp_path / "s", rows(40), register="{type: csv, path: register.csv, max_shrink: 0.1}")
    engine = engines(config)
    engine.tick(T0)
    write_register(config.parent / "register.csv", rows(30))  # 25% fewer: more than 0.1
    engine.tick(T0 + timedelta(hours=1))
    assert count(config) == {"reminder": 40, "hold": 40, "admin": 1}
    assert "max_shrink: 0.1" in body(of_kind(config, "admin")[0])

    text = config.read_text(encoding="utf-8").replace("max_shrink: 0.1", "max_shrink: 1")
    config.write_text(text, encoding="utf-8")
    engine.tick(T0 + timedelta(hours=2))
    assert count(config)["cancel"] == 10
    assert len(open_episodes(config)) == 30


def test_the_guard_remembers_the_last_count_across_a_restart(tmp_path: Path, engines) -> None:
    config = make_setup(tmp_path / "s", rows(40))
    first = engines(config)
    first.tick(T0)
    first.close()
    write_register(config.parent / "register.csv", rows(5))
    second = engines(config)  # `run --once` from cron is a new process every time
    report = second.tick(T0 + timedelta(hours=1))
    assert report.actions == 0 and report.enqueued == 0, "nothing accepted yet: nothing evaluated"
    assert count(config) == {"reminder": 40, "hold": 40, "admin": 1}
    assert "No register has been accepted" in body(of_kind(config, "admin")[0])
    assert len(open_episodes(config)) == 40
    write_register(config.parent / "register.csv", rows(40))
    second.tick(T0 + timedelta(hours=2))
    assert len(open_episodes(config)) == 40
    assert "cancel" not in count(config)


def test_a_half_written_csv_is_refused_until_complete(tmp_path: Path, engines) -> None:
    config = make_setup(tmp_path / "s", rows(40))
    register = config.parent / "register.csv"
    engine = engines(config)
    engine.tick(T0)
    complete = register.read_bytes()
    # The writer has reached the middle of the last row: one action short, well within max_shrink.
    register.write_bytes(complete[: complete.rindex(b"A-40,") + 8])
    engine.tick(T0 + timedelta(hours=1))
    assert count(config) == {"reminder": 40, "hold": 40, "admin": 1}
    assert "half-written" in body(of_kind(config, "admin")[0])
    # Cut inside a quoted value.
    register.write_bytes(complete.rstrip(b"\r\n") + b'\r\nA-41,"Item 41')
    engine.tick(T0 + timedelta(hours=2))
    assert len(open_episodes(config)) == 40
    register.write_bytes(complete)
    engine.tick(T0 + timedelta(hours=3))
    assert count(config) == {"reminder": 40, "hold": 40, "admin": 2}
    assert len(open_episodes(config)) == 40


def test_a_corrupt_xlsx_register_mid_run_keeps_the_last_good_one(tmp_path: Path, engines) -> None:
    config = make_setup(tmp_path / "s", rows(40), register="{type: xlsx, path: register.xlsx}")
    register = config.parent / "register.xlsx"
    engine = engines(config)
    engine.tick(T0)
    assert count(config) == {"reminder": 40, "hold": 40}
    good = register.read_bytes()
    register.write_bytes(good[: len(good) // 2])  # truncated mid-save
    report = engine.tick(T0 + timedelta(hours=1))
    assert report.actions == 40
    engine.tick(T0 + timedelta(hours=2))
    assert count(config) == {"reminder": 40, "hold": 40, "admin": 1}
    assert len(open_episodes(config)) == 40
    text = body(of_kind(config, "admin")[0])
    assert "register.xlsx" in text and "XLSX" in text, text
    register.write_bytes(b"")  # locked/zero-length while Excel saves
    engine.tick(T0 + timedelta(hours=3))
    assert len(open_episodes(config)) == 40
    assert "cancel" not in count(config)
    write_xlsx(register, rows(40))
    report = engine.tick(T0 + timedelta(hours=4))
    assert report.actions == 40
    assert len(open_episodes(config)) == 40
    assert "cancel" not in count(config) and "resolved" not in count(config)


def test_max_shrink_out_of_range_is_a_config_error(tmp_path: Path) -> None:
    config = make_setup(tmp_path / "s", rows(1), register="{type: csv, path: register.csv, max_shrink: 1.5}")
    with pytest.raises(ProblemList) as caught:
        load_setup(config)
    assert re.search(r"config\.yaml:2:\d+: .*max_shrink", str(caught.value)), str(caught.value)


# --- allowed_domains --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "allowed", "expected"),
    [
        ("ann@example.com", ["example.com"], True),
        ("Ann@EXAMPLE.com", ["example.com"], True),
        ("ann@example.com.", ["example.com"], True),
        ("Ann <ann@example.com>", ["example.com"], True),
        ("ann@eu.example.com", ["example.com"], False),
        ("ann@eu.example.com", [".example.com"], True),
        ("ann@a.b.example.com", [".example.com"], True),
        ("ann@example.com", [".example.com"], False),
        ("ann@badexample.com", [".example.com"], False),
        ("ann@example.com.evil.test", ["example.com"], False),
        ('"ann@example.com"@evil.test', ["example.com"], False),
        ("ann", ["example.com"], False),
        ("anyone@anywhere.test", None, True),
    ],
)
def test_is_allowed(address: str, allowed: list[str] | None, expected: bool) -> None:
    assert is_allowed(address, allowed) is expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[]", "at least 1"),
        ("[ann@example.com]", "is an address"),
        ('["*.example.com"]', "write '.example.com'"),
        ('["exa mple.com"]', "not a domain"),
    ],
)
def test_allowed_domains_entries_are_checked(tmp_path: Path, value: str, message: str) -> None:
    config = make_setup(tmp_path / "s", rows(1), extra=f"allowed_domains: {value}\n")
    with pytest.raises(ProblemList) as caught:
        load_setup(config)
    assert re.search(rf"config\.yaml:\d+:\d+: .*{re.escape(message)}", str(caught.value)), str(caught.value)


def test_allowed_domains_are_normalised(tmp_path: Path) -> None:
    config = make_setup(tmp_path / "s", rows(1), extra='allowed_domains: [" Example.COM. ", .Example.org]\n')
    assert load_setup(config).loaded.config.allowed_domains == ["example.com", ".example.org"]


OUTSIDE_PEOPLE = """\
people:
  - {id: ann, name: Ann Example, email: ann@example.com, manager: carl}
  - {id: carl, name: Carl Boss, email: carl@example.com}
  - {id: pat, name: Pat Partner, email: pat@partner.test}
"""

OUTSIDE_RULES = """\
rules:
  - id: late
    when: {status: open}
    fire_at: due
    escalation:
      - notify: [owner, audit@example.com, ext@partner.test]
        cc: board@evil.test
      - after: 1 day
        notify: ["manager(owner)", "manager(x@evil.test)"]
        cc: [carl@example.com, "ops@eu.example.com"]
"""


def test_validate_reports_every_address_outside_allowed_domains(tmp_path: Path, run_sopwatch) -> None:
    extra = textwrap.dedent(
        """\
        allowed_domains: [example.com]
        fallback_recipient: fallback@partner.test
        roles:
          lead: [ann, lee@evil.test]
        """
    )
    config = make_setup(tmp_path / "s", rows(1), rules=OUTSIDE_RULES, extra=extra)
    config.write_text(config.read_text().replace("admin@example.com", "root@evil.test"), encoding="utf-8")
    (config.parent / "people.yaml").write_text(OUTSIDE_PEOPLE, encoding="utf-8")
    setup = load_setup(config)  # not a load error: the daemon refuses these at send time
    found = [str(p) for p in domain_problems(setup)]
    folder = str(config.parent.resolve())
    expected = [
        r"config\.yaml:\d+:\d+: admin 'root@evil\.test' is outside allowed_domains \(example\.com\)",
        r"config\.yaml:\d+:\d+: fallback_recipient 'fallback@partner\.test' is outside",
        r"config\.yaml:\d+:\d+: role 'lead' member 'lee@evil\.test' is outside",
        r"rules\.yaml:6:\d+: notify 'ext@partner\.test' is outside",
        r"rules\.yaml:7:\d+: cc 'board@evil\.test' is outside",
        r"rules\.yaml:10:\d+: cc 'ops@eu\.example\.com' is outside",
        r"people\.yaml:4:\d+: person 'pat': email 'pat@partner\.test' is outside",
    ]
    assert len(found) == len(expected), found
    for pattern, line in zip(expected, found, strict=True):
        assert line.startswith(folder), line
        assert re.search(pattern, line), (pattern, line)
    assert not any("manager(x@evil.test)" in line or "audit@" in line for line in found)

    result = run_sopwatch("validate", "--config", str(config))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    for pattern in expected:
        assert re.search(pattern, output), (pattern, output)


def test_check_and_simulate_show_what_the_daemon_would_send(tmp_path: Path, run_sopwatch) -> None:
    """Recipients outside allowed_domains are left out of check/simulate, as they are at send time."""
    register = [
        {"id": "A-1", "title": "Mixed", "status": "open", "owner": "ann", "due": "2026-12-01"},
        {
            "id": "A-2",
            "title": "Nobody left",
            "status": "open",
            "owner": "mallory@evil.test",
            "due": "2026-12-01",
        },
    ]
    config = make_setup(
        tmp_path / "s", register, rules=OUTSIDE_RULES, extra="allowed_domains: [example.com]\n"
    )
    at = ("--at", "2026-12-02T12:00")  # a due date ends with its day: due from Dec 2, 00:00

    lines = run_sopwatch("check", "--config", str(config), *at, "--json")
    assert lines.returncode == 0, lines.stderr
    sent = {(row["action"], row["step"]): row for row in map(json.loads, lines.stdout.splitlines())}
    mixed = sent[("A-1", 0)]
    assert mixed["to"] == ["ann@example.com", "audit@example.com"] and mixed["cc"] == []
    assert mixed["refused"] == ["ext@partner.test", "board@evil.test"]
    assert mixed["subject"] == "[S&OP] A-1: Mixed"
    nobody = sent[("A-2", 0)]
    assert nobody["to"] == ["audit@example.com"] and nobody["refused"] == [
        "mallory@evil.test",
        "ext@partner.test",
        "board@evil.test",
    ]

    text = run_sopwatch("check", "--config", str(config), *at)
    assert text.returncode == 0, text.stderr
    assert "-> ann@example.com, audit@example.com\n" in text.stdout
    assert "note: not sent to ext@partner.test, board@evil.test: outside allowed_domains" in text.stdout
    assert "evil.test  cc" not in text.stdout and "-> ext@" not in text.stdout

    simulated = run_sopwatch("simulate", "--config", str(config), "--from", "2026-12-01T00:00", "--to", at[1])
    assert simulated.returncode == 0, simulated.stderr
    summary = simulated.stdout.split("by recipient:")[1]
    assert "ann@example.com" in summary and "partner.test" not in summary and "evil.test" not in summary


def test_validate_reports_people_csv_rows(tmp_path: Path) -> None:
    config = make_setup(tmp_path / "s", rows(1), extra="allowed_domains: [example.com]\n")
    people = config.parent / "people.csv"
    people.write_text("id,name,email\nann,Ann,ann@example.com\npat,Pat,pat@partner.test\n", encoding="utf-8")
    config.write_text(config.read_text().replace("people.yaml", "people.csv"), encoding="utf-8")
    found = [str(p) for p in domain_problems(load_setup(config))]
    assert len(found) == 1 and re.search(r"people\.csv:row 3: person 'pat'", found[0]), found


class Recording:
    """A transport that records envelopes and accepts everything."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        self.sent.extend(messages)
        return [SendResult(m.id, accepted=tuple(m.recipients)) for m in messages]

    async def close(self) -> None:
        return None


CC_RULE = """\
rules:
  - id: late
    description: Open work past its due date
    when: {status: open}
    fire_at: due
    escalation:
      - notify: [owner]
        cc: [raised_by]
        calendar_hold: {start: "fire_at + 1 day", duration: 30m}
"""


def test_send_time_refusal_drops_outside_recipients_and_tells_the_admin(tmp_path: Path, engines) -> None:
    register = [
        {
            "id": "A-1",
            "title": "Fine",
            "status": "open",
            "owner": "ann",
            "raised_by": "carl",
            "due": "2026-12-01",
        },
        {
            "id": "A-2",
            "title": "Outside owner",
            "status": "open",
            "owner": "mallory@evil.test",
            "due": "2026-12-01",
        },
        {
            "id": "A-3",
            "title": "Outside cc",
            "status": "open",
            "owner": "ann",
            "raised_by": "eve@Evil.Test",
            "due": "2026-12-01",
        },
    ]
    config = make_setup(tmp_path / "s", register, rules=CC_RULE, extra="allowed_domains: [example.com]\n")
    transport = Recording()
    engines(config, transport=transport).tick(T0)

    envelopes = {m.id: m.recipients for m in transport.sent}
    everyone = {a.lower() for recipients in envelopes.values() for a in recipients}
    assert everyone == {"ann@example.com", "carl@example.com", "admin@example.com"}, everyone
    for message in transport.sent:
        assert b"evil.test" not in message.data.lower() or b"X-Sopwatch-Kind: admin" in message.data
        parsed = email.message_from_bytes(message.data, policy=email.policy.default)
        for name in ("To", "Cc"):
            assert "evil" not in str(parsed.get(name, "")).lower()

    with contextlib.closing(sqlite3.connect(config.parent / "state.db")) as db:
        outbox = {
            (action, kind): (status, error, json.loads(refused))
            for action, kind, status, error, refused in db.execute(
                "SELECT action, kind, status, last_error, refused FROM outbox WHERE kind != 'admin'"
            )
        }
    assert outbox[("A-1", "reminder")][0] == "sent"
    status, error, refused = outbox[("A-2", "reminder")]
    assert status == "failed" and "allowed_domains" in error and list(refused) == ["mallory@evil.test"]
    assert outbox[("A-2", "hold")][0] == "failed"
    status, _error, refused = outbox[("A-3", "reminder")]
    assert status == "sent" and list(refused) == ["eve@Evil.Test"]
    assert outbox[("A-3", "hold")][0] == "sent"

    admin = [m for m in transport.sent if b"X-Sopwatch-Kind: admin" in m.data]
    assert len(admin) == 1, "one notice for the tick, listing every refusal"
    text = body(email.message_from_bytes(admin[0].data, policy=email.policy.default))
    assert "mallory@evil.test" in text and "eve@Evil.Test" in text and "marked failed" in text, text


def test_send_time_refusal_in_maildir_headers_and_invites(tmp_path: Path, engines) -> None:
    register = [
        {
            "id": "A-3",
            "title": "Outside cc",
            "status": "open",
            "owner": "ann",
            "raised_by": "eve@evil.test",
            "due": "2026-12-01",
        },
    ]
    config = make_setup(tmp_path / "s", register, rules=CC_RULE, extra="allowed_domains: [example.com]\n")
    engines(config).tick(T0)
    counts = count(config)
    assert counts == {"reminder": 1, "hold": 1, "admin": 1}, counts
    for message in of_kind(config, "reminder") + of_kind(config, "hold"):
        assert [a.addr_spec for a in message["To"].addresses] == ["ann@example.com"]
        assert message["Cc"] is None
        raw = message.as_bytes()
        assert b"evil.test" not in raw


def test_digest_recipients_outside_allowed_domains_are_dropped(tmp_path: Path, engines) -> None:
    rules = """\
rules:
  - id: late-digest
    when: {status: open}
    fire_at: due
    escalation:
      - notify: [owner]
        via: digest
"""
    register = [
        {"id": "A-1", "title": "Inside", "status": "open", "owner": "ann", "due": "2026-12-01"},
        {
            "id": "A-2",
            "title": "Outside",
            "status": "open",
            "owner": "mallory@evil.test",
            "due": "2026-12-01",
        },
    ]
    extra = 'allowed_domains: [example.com]\ndigests:\n  - {id: weekly, schedule: "mon 08:00"}\n'
    config = make_setup(tmp_path / "s", register, rules=rules, extra=extra)
    engine = engines(config)
    now = datetime(2026, 12, 6, 12, tzinfo=BERLIN)  # Sunday
    for hour in range(0, 48, 6):
        engine.tick(now + timedelta(hours=hour))
    digests = of_kind(config, "digest")
    assert [m["To"].addresses[0].addr_spec for m in digests] == ["ann@example.com"]
    admin = of_kind(config, "admin")
    assert len(admin) == 1 and "mallory@evil.test" in body(admin[0])


def test_admin_outside_allowed_domains_hears_nothing(tmp_path: Path, engines, caplog) -> None:
    config = make_setup(
        tmp_path / "s", rows(1, owner="x@evil.test"), extra="allowed_domains: [example.com]\n"
    )
    config.write_text(config.read_text().replace("admin@example.com", "root@evil.test"), encoding="utf-8")
    engines(config).tick(T0)
    assert messages(config) == []
    assert "admin root@evil.test is outside allowed_domains" in caplog.text
