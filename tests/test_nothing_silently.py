"""A running daemon does not go on silently: an edited ``delivery:`` and ``interval:`` take effect
(they used to be logged as "reloaded" and ignored), a ``state:`` edit is said to need a restart, and
a notification with nobody to send to says why and tells the admin.
"""

from __future__ import annotations

import email
import email.policy
import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon_setup import in_delivery_order
from test_hostile_inputs import make_setup, write_register

from sopwatch.daemon.runner import Daemon, StopSignals

BERLIN = ZoneInfo("Europe/Berlin")
WEDNESDAY = datetime(2026, 12, 2, 10, tzinfo=BERLIN)


def edit(config: Path, old: str, new: str) -> None:
    text = config.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    config.write_text(text.replace(old, new), encoding="utf-8")


def maildir(config: Path, name: str) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in in_delivery_order(config.parent / name / "new")
    ]


def add_overdue_action(config: Path, ident: str) -> None:
    write_register(
        config.parent / "register.csv",
        [["A-1", "Pay", "open", "ann", "2026-12-01"], [ident, "Ship", "open", "ann", "2026-12-01"]],
    )


def test_an_edited_delivery_takes_effect_at_the_next_tick(tmp_path: Path, engines, caplog) -> None:
    config = make_setup(tmp_path / "s")
    engine = engines(config)
    engine.tick(WEDNESDAY)
    assert [str(m["X-Sopwatch-Action"]) for m in maildir(config, "maildir")] == ["A-1"]
    edit(config, "path: maildir,", "path: elsewhere,")
    add_overdue_action(config, "A-2")
    with caplog.at_level(logging.INFO, logger="sopwatch"):
        engine.tick(WEDNESDAY.replace(hour=11))
    assert [str(m["X-Sopwatch-Action"]) for m in maildir(config, "elsewhere")] == ["A-2"]
    assert [str(m["X-Sopwatch-Action"]) for m in maildir(config, "maildir")] == ["A-1"]
    assert any("delivery changed: now maildir elsewhere" in r.getMessage() for r in caplog.records)


def test_a_delivery_edit_that_cannot_be_used_keeps_the_last_one_and_tells_the_admin(
    tmp_path: Path, engines
) -> None:
    """The password variable is the daemon's environment, not the file: only the daemon can tell."""
    config = make_setup(tmp_path / "s")
    engine = engines(config)
    engine.tick(WEDNESDAY)
    smtp = "{type: smtp, host: mail.example.com, starttls: true, user: ops, password_env: SOPWATCH_PW,"
    edit(config, "{type: maildir, path: maildir,", smtp)
    add_overdue_action(config, "A-2")
    engine.tick(WEDNESDAY.replace(hour=11))
    engine.tick(WEDNESDAY.replace(hour=12))  # told once, not on every tick
    sent = maildir(config, "maildir")
    assert [str(m["X-Sopwatch-Action"]) for m in sent if m["X-Sopwatch-Action"]] == ["A-1", "A-2"]
    notices = [m for m in sent if str(m["X-Sopwatch-Kind"]) == "admin"]
    assert len(notices) == 1
    assert "delivery edit not applied" in str(notices[0]["Subject"])
    assert "SOPWATCH_PW" in notices[0].get_body(("plain",)).get_content()


def test_an_edited_state_path_is_said_to_need_a_restart(tmp_path: Path, engines) -> None:
    config = make_setup(tmp_path / "s")
    engine = engines(config)
    engine.tick(WEDNESDAY)
    edit(config, "state: state.db", "state: other.db")
    engine.tick(WEDNESDAY.replace(hour=11))
    engine.tick(WEDNESDAY.replace(hour=12))
    notices = [m for m in maildir(config, "maildir") if str(m["X-Sopwatch-Kind"]) == "admin"]
    assert [str(m["Subject"]) for m in notices] == ["[sopwatch] state edit needs a restart"]
    assert not (config.parent / "other.db").exists()  # the daemon keeps its own state file


def test_an_edited_interval_reschedules_the_ticks(tmp_path: Path, engines, caplog) -> None:
    config = make_setup(tmp_path / "s")
    engine = engines(config)
    daemon = Daemon(engine, StopSignals(), clock=lambda: WEDNESDAY)
    daemon.schedule_ticks()
    assert daemon.every == 300 and [job.interval for job in daemon.scheduler.jobs] == [300]
    edit(config, "state: state.db", "state: state.db\ninterval: 15m")
    with caplog.at_level(logging.INFO, logger="sopwatch"):
        assert daemon.tick()
    assert daemon.every == 900 and [job.interval for job in daemon.scheduler.jobs] == [900]
    assert any("interval changed: now every 900s (was 300s)" in r.getMessage() for r in caplog.records)


def test_a_notification_with_nobody_to_send_to_says_why_and_tells_the_admin(tmp_path: Path, engines) -> None:
    """Without fallback_recipient: kept as failed, as before, but no longer silently."""
    from test_hostile_inputs import CONFIG

    config = make_setup(
        tmp_path / "s",
        [["A-1", "Pay", "open", "ghost", "2026-12-01"], ["A-2", "Ship", "open", "", "2026-12-01"]],
        config=CONFIG.replace("fallback_recipient: carl@example.com\n", ""),
    )
    engine = engines(config)
    engine.tick(WEDNESDAY)
    query = "SELECT action, status, last_error FROM outbox WHERE kind = 'reminder'"
    rows = {action: (status, error) for action, status, error in engine.store.db.execute(query)}
    assert rows["A-1"][0] == rows["A-2"][0] == "failed"
    assert rows["A-1"][1].startswith("no recipient: owner: owner 'ghost' is not in the people directory")
    assert rows["A-2"][1].startswith("no recipient: owner: owner is unassigned")
    (notice,) = [m for m in maildir(config, "maildir") if str(m["X-Sopwatch-Kind"]) == "admin"]
    assert "nobody to send to" in str(notice["Subject"])
    body = notice.get_body(("plain",)).get_content()
    assert "late / A-1" in body and "late / A-2" in body and "fallback_recipient" in body


def test_a_state_edit_taken_back_tells_nobody_anything_more(tmp_path: Path, engines) -> None:
    config = make_setup(tmp_path / "s")
    engine = engines(config)
    engine.tick(WEDNESDAY)
    edit(config, "state: state.db", "state: other.db")
    engine.tick(WEDNESDAY.replace(hour=11))
    edit(config, "state: other.db", "state: state.db")
    engine.tick(WEDNESDAY.replace(hour=12))
    notices = [m for m in maildir(config, "maildir") if str(m["X-Sopwatch-Kind"]) == "admin"]
    assert len(notices) == 1 and "other.db" in notices[0].get_body(("plain",)).get_content()
