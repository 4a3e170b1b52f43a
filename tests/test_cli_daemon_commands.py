"""The daemon-side commands as a real subprocess on a copy of the example: silence, run, outbox, preview.

`run --once` uses the real clock, so these tests add an action that has been overdue since 2020
(always due, whatever today is) and choose the delivery window to make the outcome certain.
"""

from __future__ import annotations

import csv
import email
import email.policy
import json
import re
import sqlite3
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from daemon_setup import in_delivery_order
from icalendar import Calendar

from sopwatch.adapters.state_store import Composed, StateStore

AT = "2026-12-09T10:00"
FAR = "2099-01-01T00:00"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ANCIENT = "NW-9999"


def no_traceback(result) -> None:  # type: ignore[no-untyped-def]
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def ok(result) -> str:  # type: ignore[no-untyped-def]
    no_traceback(result)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def cli(run_sopwatch, setup: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_sopwatch(*args, "--config", "config.yaml", cwd=setup)


def check_lines(out: str, rule: str | None = None) -> list[str]:
    lines = [line for line in out.splitlines() if re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d ", line)]
    return [line for line in lines if rule is None or f" {rule} " in line]


def edit_config(setup: Path, **changes: object) -> dict:
    path = setup / "config.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return config


def add_ancient_action(setup: Path) -> None:
    """An open action owned by tobias, due 1 Jan 2020: missed-deadline fires for it on any day."""
    path = setup / "example" / "register.csv"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle))
    values = {
        "ID": ANCIENT,
        "Type": "action",
        "Title": "Archive the 2019 forecast files",
        "Status": "Open",
        "Decision owner": "tobias",
        "Raised by": "julia",
        "Due date": "01/01/2020",
        "created_at": "2019-12-01",
        "Priority": "P3",
        "Team": "Demand Planning",
        "Impact": "low",
    }
    with path.open("a", encoding="utf-8", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL).writerow([values.get(name, "") for name in header])


def maildir_messages(folder: Path) -> list[EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in in_delivery_order(folder / "new")
    ]


def outbox_json(run_sopwatch, setup: Path, *args: str) -> list[dict]:
    out = ok(cli(run_sopwatch, setup, "outbox", "--json", *args))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# --- silences ---------------------------------------------------------------------------------------


def test_silence_add_list_check_expire(run_sopwatch, example_copy: Path) -> None:
    before = check_lines(ok(cli(run_sopwatch, example_copy, "check", "--at", AT)))
    assert check_lines("\n".join(before), "stale-approval"), "the example has stale approvals at AT"
    assert not any("silenced" in line for line in before)

    out = ok(
        cli(
            run_sopwatch,
            example_copy,
            "silence",
            "add",
            "--rule",
            "stale-approval",
            "--until",
            FAR,
            "--author",
            "a",
            "--reason",
            "r",
        )
    )
    match = re.search(r"silence (\w+) added until 2099-01-01", out)
    assert match, out
    ident = match.group(1)

    listed = ok(cli(run_sopwatch, example_copy, "silence", "list"))
    line = next((line for line in listed.splitlines() if line.startswith(ident)), None)
    assert line is not None, listed
    assert "active" in line and "rule=stale-approval" in line and "by a: r" in line

    lines = check_lines(ok(cli(run_sopwatch, example_copy, "check", "--at", AT)))
    stale = [line for line in lines if " stale-approval " in line]
    others = [line for line in lines if " stale-approval " not in line]
    assert stale and others
    assert all(line.endswith(f"[silenced by {ident}]") for line in stale), stale
    assert not any("silenced" in line for line in others), others
    # check --json says the same
    items = [
        json.loads(x) for x in ok(cli(run_sopwatch, example_copy, "check", "--at", AT, "--json")).splitlines()
    ]
    assert {i["rule"] for i in items if i.get("silenced_by") == ident} == {"stale-approval"}

    out = ok(cli(run_sopwatch, example_copy, "silence", "expire", ident))
    assert f"silence {ident} expired" in out
    assert ident not in ok(cli(run_sopwatch, example_copy, "silence", "list"))
    everything = ok(cli(run_sopwatch, example_copy, "silence", "list", "--all"))
    assert re.search(rf"^{ident}\s+expired\b", everything, re.M), everything
    after = check_lines(ok(cli(run_sopwatch, example_copy, "check", "--at", AT)))
    assert not any("silenced" in line for line in after)
    assert len(after) == len(before)


def test_silence_by_field_silences_only_matching_actions(run_sopwatch, example_copy: Path) -> None:
    add = cli(
        run_sopwatch,
        example_copy,
        "silence",
        "add",
        "--where",
        "team=Marketing",
        "--until",
        FAR,
        "--author",
        "a",
        "--reason",
        "promo freeze",
    )
    ok(add)
    items = [
        json.loads(x) for x in ok(cli(run_sopwatch, example_copy, "check", "--at", AT, "--json")).splitlines()
    ]
    silenced = {i["action"] for i in items if i.get("silenced_by")}
    assert silenced == {"NW-1110"}, "only the Marketing item (NW-1110) is silenced"
    assert len(items) > len(silenced)


def test_silence_add_without_matchers_is_a_usage_error(run_sopwatch, example_copy: Path) -> None:
    result = cli(
        run_sopwatch, example_copy, "silence", "add", "--until", FAR, "--author", "a", "--reason", "r"
    )
    no_traceback(result)
    assert result.returncode == 2, result.stderr
    assert "--rule" in result.stderr


@pytest.mark.parametrize(
    ("author", "reason", "hint"), [("", "freeze", "--author"), ("ops", " \t", "--reason")]
)
def test_a_silence_says_who_and_why(
    run_sopwatch, example_copy: Path, author: str, reason: str, hint: str
) -> None:
    result = cli(
        run_sopwatch, example_copy, "silence", "add", "--rule", "missed-deadline", "--until", FAR,
        "--author", author, "--reason", reason,
    )  # fmt: skip
    no_traceback(result)
    assert result.returncode == 2 and hint in result.stderr and "must not be empty" in result.stderr
    assert ok(cli(run_sopwatch, example_copy, "silence", "list")) == ""  # nothing was added


def test_silence_for_unknown_rule_or_id_exits_1(run_sopwatch, example_copy: Path) -> None:
    result = cli(
        run_sopwatch,
        example_copy,
        "silence",
        "add",
        "--rule",
        "no-such-rule",
        "--until",
        FAR,
        "--author",
        "a",
        "--reason",
        "r",
    )
    no_traceback(result)
    assert result.returncode == 1, result.stderr
    assert "no-such-rule" in result.stderr and "stale-approval" in result.stderr
    result = cli(run_sopwatch, example_copy, "silence", "expire", "deadbeef")
    no_traceback(result)
    assert result.returncode == 1
    assert "deadbeef" in result.stderr


# --- run --once and outbox --------------------------------------------------------------------------


def test_run_once_delivers_into_the_maildir(run_sopwatch, example_copy: Path) -> None:
    add_ancient_action(example_copy)
    edit_config(
        example_copy,
        business_calendar={"workdays": list(WEEKDAYS), "hours": "00:00-24:00", "closures": []},
        state="state/sopwatch.db",  # a folder that does not exist yet
        delivery={"type": "maildir", "path": "mail", "from": "sopwatch <sopwatch@northwind.example>"},
    )
    ok(cli(run_sopwatch, example_copy, "validate"))
    ok(cli(run_sopwatch, example_copy, "run", "--once"))
    assert (example_copy / "state" / "sopwatch.db").is_file()

    messages = maildir_messages(example_copy / "mail")
    ancient = [m for m in messages if str(m["X-Sopwatch-Action"]) == ANCIENT]
    assert len(ancient) == 1, [str(m["Subject"]) for m in messages]
    assert ANCIENT in str(ancient[0]["Subject"])
    assert str(ancient[0]["X-Sopwatch-Rule"]) == "missed-deadline"
    # Overdue since 2020: the current step is the last one (the owner's manager's manager), not a burst.
    assert [a.addr_spec for a in ancient[0]["To"].addresses] == ["stefan.richter@northwind.example"]

    sent = outbox_json(run_sopwatch, example_copy, "--status", "sent")
    assert {row["status"] for row in sent} == {"sent"}
    assert len(sent) == len(messages), "each sent row is exactly one maildir file"
    assert any(row.get("action") == ANCIENT for row in sent)
    text = ok(cli(run_sopwatch, example_copy, "outbox", "--status", "sent"))
    assert re.search(rf"^\s*\d+ sent\s+missed-deadline\s+{ANCIENT}\b", text, re.M), text
    assert text.rstrip().endswith(f"{len(sent)} sent")
    assert outbox_json(run_sopwatch, example_copy, "--status", "pending") == []
    assert "the outbox is empty" in ok(cli(run_sopwatch, example_copy, "outbox", "--status", "pending"))

    # A second run moments later sends nothing again.
    ok(cli(run_sopwatch, example_copy, "run", "--once"))
    again = maildir_messages(example_copy / "mail")
    assert [str(m["Message-ID"]) for m in again].count(str(ancient[0]["Message-ID"])) == 1
    assert len([m for m in again if str(m["X-Sopwatch-Action"]) == ANCIENT]) == 1


def test_run_once_outside_the_window_leaves_messages_pending(run_sopwatch, example_copy: Path) -> None:
    add_ancient_action(example_copy)
    now = datetime.now(ZoneInfo("Europe/Berlin"))
    hour = (now.hour + 12) % 24  # a half-hour window about 12 hours away from now
    edit_config(
        example_copy,
        business_calendar={"hours": f"{hour:02d}:00-{hour:02d}:30"},
        delivery={"type": "maildir", "path": "mail", "from": "sopwatch <sopwatch@northwind.example>"},
        state="state.db",
    )
    ok(cli(run_sopwatch, example_copy, "run", "--once"))
    rule_mail = [m for m in maildir_messages(example_copy / "mail") if m["X-Sopwatch-Action"] is not None]
    assert rule_mail == []

    pending = outbox_json(run_sopwatch, example_copy, "--status", "pending")
    assert {row["status"] for row in pending} == {"pending"}
    mine = [row for row in pending if row.get("action") == ANCIENT]
    assert len(mine) == 1
    not_before = datetime.fromisoformat(mine[0]["not_before"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert not_before > now + timedelta(hours=11)
    assert not_before.strftime("%H:%M") == f"{hour:02d}:00"
    assert not_before.weekday() < 5, "the window opens on a business day"
    sent = outbox_json(run_sopwatch, example_copy, "--status", "sent")
    assert not any(row.get("action") == ANCIENT for row in sent)
    everything = outbox_json(run_sopwatch, example_copy)
    assert len(everything) >= len(pending) + len(sent)


# --- preview ----------------------------------------------------------------------------------------


def test_preview_prints_a_parseable_email(run_sopwatch, example_copy: Path) -> None:
    result = cli(run_sopwatch, example_copy, "preview", "reminder", "--action", "NW-1201", "--at", AT)
    out = ok(result)
    assert "template failed" not in result.stderr
    message = email.message_from_string(out, policy=email.policy.default)
    assert "NW-1201" in str(message["Subject"])
    assert message["Message-ID"] is not None and message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    assert "NW-1201" in text
    assert message.get_body(("html",)) is not None


def test_preview_hold_writes_an_imip_file(run_sopwatch, example_copy: Path, tmp_path: Path) -> None:
    target = tmp_path / "x.eml"
    args = ("preview", "hold", "--action", "NW-1210", "--rule", "stale-approval", "--step", "1")
    out = ok(cli(run_sopwatch, example_copy, *args, "--at", AT, "--out", str(target)))
    assert str(target) in out
    message = email.message_from_bytes(target.read_bytes(), policy=email.policy.default)
    assert "NW-1210" in str(message["Subject"])
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    assert parts[0].get_param("method") == "REQUEST"
    calendar = Calendar.from_ical(parts[0].get_payload(decode=True))
    assert str(calendar["METHOD"]) == "REQUEST"
    event = calendar.walk("VEVENT")[0]
    assert event.decoded("DTSTART").date() > date(2026, 12, 9)
    assert str(event["ORGANIZER"]).lower() == "mailto:sopwatch@northwind.example"


def test_preview_refuses_a_template_name_with_a_path(run_sopwatch, example_copy: Path) -> None:
    result = cli(run_sopwatch, example_copy, "preview", "../x", "--action", "NW-1201")
    no_traceback(result)
    assert result.returncode == 1, result.stdout
    assert "../x" in result.stderr and "not allowed" in result.stderr
    assert result.stdout == ""


def test_preview_unknown_action_exits_1(run_sopwatch, example_copy: Path) -> None:
    result = cli(run_sopwatch, example_copy, "preview", "reminder", "--action", "NW-0000")
    no_traceback(result)
    assert result.returncode == 1
    assert "NW-0000" in result.stderr


# --- a state: that is not a state file ----------------------------------------------------------------

STATE_COMMANDS = [
    ("check", "--at", "2026-12-09T10:00"),
    ("explain", "NW-1110", "--at", "2026-12-09T10:00"),
    ("health",),
    ("outbox",),
    ("silence", "list"),
    ("run", "--once"),
]


@pytest.mark.parametrize("kind", ["random bytes", "a YAML file", "another database"])
def test_a_state_path_that_is_not_a_state_file_is_a_message_and_is_left_alone(
    run_sopwatch, example_copy: Path, kind: str
) -> None:
    path = example_copy / "not-state"
    if kind == "random bytes":
        path.write_bytes(bytes(range(256)) * 16)
    elif kind == "a YAML file":
        path.write_bytes((example_copy / "example" / "people.yaml").read_bytes())
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE actions (id TEXT PRIMARY KEY, title TEXT)")
            db.execute("INSERT INTO actions VALUES ('A-1', 'Keep me')")
        db.close()
    before = path.read_bytes()
    edit_config(example_copy, state="not-state")
    for command in STATE_COMMANDS:
        result = cli(run_sopwatch, example_copy, *command)
        no_traceback(result)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"{path}: ") and "state file" in last, (command, last)
    assert path.read_bytes() == before


def test_a_recipient_refused_for_good_stays_visible_after_the_others_accept(
    run_sopwatch, example_copy: Path
) -> None:
    """To bad@ (550) and temp@ (451, then accepted): the row is sent, and says who refused it."""
    edit_config(example_copy, state="state.db")
    now = datetime(2026, 12, 9, 10, tzinfo=ZoneInfo("Europe/Berlin"))
    store = StateStore(example_copy / "state.db")
    try:
        store.enqueue(
            "admin:test", "admin", Composed("sop@example.com", ("bad@example.com", "temp@example.com"), b"x"),
            now, {"rule": "admin", "to": ["bad@example.com", "temp@example.com"]},
        )  # fmt: skip
        (row,) = store.due(now)
        first = store.record_delivery(
            row, (), {"bad@example.com": "550 5.1.1 no such user"}, ("temp@example.com",),
            None, now, now + timedelta(minutes=1),
        )  # fmt: skip
        (row,) = store.due(now + timedelta(minutes=1))
        second = store.record_delivery(row, ("temp@example.com",), {}, (), None, now, None)
        (stored,) = store.outbox()
    finally:
        store.close()
    assert (first, second) == ("retry", "sent")
    assert stored["refused"] == {"bad@example.com": "550 5.1.1 no such user"}
    assert stored["last_error"] == "refused: bad@example.com: 550 5.1.1 no such user"
    line = ok(cli(run_sopwatch, example_copy, "outbox")).splitlines()[0]
    assert "(refused for bad@example.com)" in line and "550 5.1.1" in line


def test_run_once_exits_1_when_its_tick_fails_and_commits_nothing(run_sopwatch, example_copy: Path) -> None:
    """For cron and systemd timers: a failed tick must show in the exit status. The failure is
    real: the state database itself refuses the tick's write (a trigger), as a full disk would."""
    edit_config(example_copy, state="state.db", delivery={"type": "maildir", "path": "mail"})
    StateStore(example_copy / "state.db").close()  # the schema, as any first command makes it
    with sqlite3.connect(example_copy / "state.db") as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'no space left'); END"
        )
    db.close()
    result = cli(run_sopwatch, example_copy, "run", "--once")
    assert result.returncode == 1
    assert "no space left" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "the tick failed (see the log above); nothing was lost"
    with sqlite3.connect(example_copy / "state.db") as db:
        assert db.execute("SELECT count(*) FROM episodes").fetchone() == (0,)  # all or nothing
    db.close()
    assert not (example_copy / "mail" / "new").exists() or not any((example_copy / "mail" / "new").iterdir())


def test_listing_commands_create_no_state_file(run_sopwatch, example_copy: Path) -> None:
    """A mistyped `state:` path is said, not papered over with a new empty state file."""
    state = example_copy / "example-out" / "state.db"  # the example's, not there in a fresh copy
    out = cli(run_sopwatch, example_copy, "outbox")
    assert out.returncode == 0 and out.stdout.strip() == "the outbox is empty"
    assert f"note: no state file at {state} yet" in out.stderr
    listed = cli(run_sopwatch, example_copy, "silence", "list")
    assert listed.returncode == 0 and listed.stdout == ""
    expired = cli(run_sopwatch, example_copy, "silence", "expire", "s-1")
    assert expired.returncode == 1 and "no silence 's-1'" in expired.stderr
    assert not state.exists() and not state.parent.exists()


READING_COMMANDS = [command for command in STATE_COMMANDS if command[0] != "run"]


@pytest.mark.parametrize("kind", ["an empty file", "a database without tables"])
def test_a_state_file_without_tables_yet_reads_as_no_state(
    run_sopwatch, example_copy: Path, kind: str
) -> None:
    """What a command beside a starting daemon finds: the file is there, its tables are not yet.
    Before, `outbox` and `silence list` failed on 'no such table' with a traceback."""
    path = example_copy / "state.db"
    if kind == "an empty file":
        path.write_bytes(b"")
    else:
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA user_version=0")
        db.close()
    before = path.read_bytes()
    edit_config(example_copy, state="state.db")
    for command in READING_COMMANDS:
        result = cli(run_sopwatch, example_copy, *command)
        no_traceback(result)
        if command[0] == "health":
            assert result.returncode == 1 and "no completed tick" in result.stderr, result
        else:
            assert result.returncode == 0, (command, result.stdout, result.stderr)
    assert cli(run_sopwatch, example_copy, "outbox").stdout.strip() == "the outbox is empty"
    assert path.read_bytes() == before  # reading wrote nothing


def test_the_schema_is_made_in_one_transaction(example_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader sees every table or none: a schema that fails half way leaves no table behind."""
    from sopwatch.adapters import state_store
    from sopwatch.errors import StateError

    monkeypatch.setattr(state_store, "SCHEMA", state_store.SCHEMA + "\nCREATE TABLE broken (;\n")
    path = example_copy / "state.db"
    with pytest.raises(StateError):
        StateStore(path)
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == []
    finally:
        db.close()
