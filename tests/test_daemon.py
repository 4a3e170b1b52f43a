"""The daemon as a real subprocess (``python -m sopwatch run``) against real SMTP servers.

Every setup delivers over STARTTLS + AUTH to an aiosmtpd server whose certificate is signed by a
throwaway CA, trusted through ``delivery.ca_file``; the password comes from the environment
variable named by ``delivery.password_env``. The business calendar is open around the clock and
every action is overdue by the real clock, so the first tick sends everything.

The retry backoff is real (up to 30 s for the first retry); instead of waiting, the tests move
``next_attempt`` of the ``retry`` rows into the past directly in the SQLite state file, which is
exactly the condition the daemon checks when the backoff has elapsed.
"""

from __future__ import annotations

import asyncio
import email
import fcntl
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import IO, Any

import pytest
import smtp_server
from aiosmtpd.smtp import SMTP as SMTPServerProtocol
from aiosmtpd.smtp import Envelope, Session
from overdue_setup import write_overdue_setup
from smtp_server import Certs, Received, RecordingHandler, SmtpServer

from sopwatch.config.schema import DeliveryConfig
from sopwatch.daemon.engine import DELIVERY_BATCH
from sopwatch.delivery import OutgoingMessage, make_transport
from sopwatch.errors import ConfigError

certs = smtp_server.certs  # the session-scoped test CA and server certificate

USER, PASSWORD, PASSWORD_ENV = "u", "daemon-Pa55", "SOPWATCH_TEST_PW"
ADMIN = "admin@example.com"
PEOPLE = 20
ENV = {**os.environ, PASSWORD_ENV: PASSWORD, "PYTHONIOENCODING": "utf-8"}
TICK_LINE = re.compile(r"INFO tick \d{4}-\d\d-\d\dT\S+: (?P<actions>\d+) actions, .*")


# --- the setup ----------------------------------------------------------------------------------


def person(i: int) -> str:
    return f"p{i:02d}@example.com"


def write_setup(folder: Path, port: int, certs: Certs, actions: int, *, admin: str | None = None) -> Path:
    """config.yaml, 20 people and ``actions`` open actions all due three days ago; returns the config."""
    people = [(f"p{i:02d}", f"Person {i}", person(i), None) for i in range(PEOPLE)]
    owners = [f"p{i % PEOPLE:02d}" for i in range(actions)]
    config = (
        "interval: 1m\n"
        "max_messages_per_tick: 5000\n"
        "state: state.db\n" + (f"admin: {admin}\n" if admin else "") + "delivery:\n"
        "  type: smtp\n"
        "  from: sopwatch <sopwatch@example.com>\n"
        "  host: 127.0.0.1\n"
        f"  port: {port}\n"
        "  starttls: true\n"
        f"  user: {USER}\n"
        f"  password_env: {PASSWORD_ENV}\n"
        f"  ca_file: {certs.ca}\n"
    )
    return write_overdue_setup(folder, people, owners, config, id_format="A-{i:04d}")


def server(certs: Certs, handler: RecordingHandler | None = None) -> SmtpServer:
    """STARTTLS required, AUTH required (over TLS only): what a production relay looks like."""
    return SmtpServer(handler, mode="starttls", certs=certs, auth=(USER, PASSWORD))


@dataclass
class Setup:
    config: Path
    server: SmtpServer

    @property
    def state(self) -> Path:
        return self.config.parent / "state.db"

    @property
    def handler(self) -> RecordingHandler:
        return self.server.handler


@pytest.fixture
def make_setup(tmp_path: Path, certs: Certs) -> Iterator[Callable[..., Setup]]:
    """Builds a setup with a started server; every server and daemon is stopped at teardown."""
    servers: list[SmtpServer] = []

    def make(actions: int, handler: RecordingHandler | None = None, admin: str | None = None) -> Setup:
        smtp = server(certs, handler).start()
        servers.append(smtp)
        return Setup(write_setup(tmp_path / "setup", smtp.port, certs, actions, admin=admin), smtp)

    yield make
    for smtp in servers:
        smtp.stop()


# --- running sopwatch ---------------------------------------------------------------------------


def sopwatch(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sopwatch", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=ENV,
        timeout=timeout,
        check=False,
    )


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    result = sopwatch(config, "run", "--once")
    assert result.returncode == 0, result.stderr
    return result


def start_daemon(
    config: Path, log: IO[bytes], daemons: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    """``sopwatch run`` in the background; stderr (the log) goes to a file, so no pipe can fill up."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sopwatch", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=ENV,
    )
    daemons.append(proc)
    return proc


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def tick_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if TICK_LINE.search(line)]


# --- reading the results ------------------------------------------------------------------------


def parsed(received: Received) -> email.message.EmailMessage:
    message = email.message_from_bytes(received.content, policy=policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def by_message_id(handler: RecordingHandler) -> dict[str, list[str]]:
    """Message-ID -> the action of every copy that arrived with it."""
    with handler.lock:
        messages = list(handler.messages)
    copies: dict[str, list[str]] = defaultdict(list)
    for received in messages:
        message = parsed(received)
        copies[str(message["Message-ID"])].append(str(message["X-Sopwatch-Action"]))
    return copies


def received_count(handler: RecordingHandler) -> int:
    with handler.lock:
        return len(handler.messages)


def outbox_rows(state: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(state)
    db.row_factory = sqlite3.Row
    try:
        return [
            dict(row)
            for row in db.execute(
                "SELECT id, key, action, status, attempts, next_attempt, last_error, accepted, refused"
                " FROM outbox ORDER BY id"
            )
        ]
    finally:
        db.close()


def statuses(state: Path) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for row in outbox_rows(state):
        counts[row["status"]] += 1
    return dict(counts)


def backoff_elapsed(state: Path) -> int:
    """Move every retry row's next_attempt into the past: what waiting out the backoff would do."""
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    db = sqlite3.connect(state)
    try:
        with db:
            return db.execute("UPDATE outbox SET next_attempt = ? WHERE status = 'retry'", (past,)).rowcount
    finally:
        db.close()


class SlowHandler(RecordingHandler):
    """Takes a few milliseconds per message, so a kill lands in the middle of a delivery."""

    delay = 0.02

    async def handle_DATA(self, server: SMTPServerProtocol, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


# --- delivery.ca_file -----------------------------------------------------------------------------


def test_ca_file_is_what_lets_the_daemon_trust_an_internal_ca(certs: Certs, tmp_path: Path) -> None:
    """The library path the daemon takes: make_transport from the delivery config."""
    sample = OutgoingMessage(1, "sopwatch@example.com", (person(1),), b"Subject: hi\r\n\r\nhello\r\n")

    def send(ca_file: str | None) -> Any:
        config = DeliveryConfig.model_validate(
            {
                "type": "smtp",
                "host": "127.0.0.1",
                "port": smtp.port,
                "starttls": True,
                "user": USER,
                "password_env": PASSWORD_ENV,
                "ca_file": ca_file,
            }
        )
        transport = make_transport(config, tmp_path, ENV)

        async def go() -> Any:
            try:
                return await transport.send_batch([sample])
            finally:
                await transport.close()

        return asyncio.run(asyncio.wait_for(go(), 20))[0]

    with server(certs) as smtp:
        untrusted = send(None)  # the system CAs do not know the test CA
        assert untrusted.error and "certificate" in untrusted.error.lower()
        assert received_count(smtp.handler) == 0
        trusted = send(str(certs.ca))  # absolute; relative paths are tested below
        assert trusted.error is None and trusted.accepted == (person(1),)
        (tmp_path / "ca.pem").write_bytes(certs.ca.read_bytes())
        assert send("ca.pem").accepted == (person(1),)
        assert received_count(smtp.handler) == 2
        with pytest.raises(ConfigError, match=r"delivery.ca_file .*missing.pem"):
            send("missing.pem")


# --- crash safety -------------------------------------------------------------------------------


def test_kill_9_mid_delivery_loses_nothing_and_duplicates_only_the_batch_in_flight(
    make_setup: Callable[..., Setup], daemons: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    actions = 300
    setup = make_setup(actions, SlowHandler())
    # Kill only once more than one delivery batch has arrived: if the daemon recorded results
    # only at the end of the whole delivery, every message so far would go out twice.
    kill_after = DELIVERY_BATCH * 2 + 10
    assert kill_after < actions
    with open(tmp_path / "daemon.log", "wb") as log:
        proc = start_daemon(setup.config, log, daemons)
        wait_for(lambda: received_count(setup.handler) >= kill_after, 60, f"{kill_after} messages")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    at_kill = received_count(setup.handler)
    assert at_kill < actions, "the delivery finished before the kill: nothing was tested"

    result = run_once(setup.config)  # the restart
    assert len(tick_lines(result.stderr)) == 1

    copies = by_message_id(setup.handler)
    # Every action's message arrived at least once...
    delivered = {action for actions_ in copies.values() for action in actions_}
    assert delivered == {f"A-{i:04d}" for i in range(actions)}
    # ...a re-sent message carries the Message-ID of its first copy (one id per action)...
    assert len(copies) == actions
    assert all(len(set(actions_)) == 1 for actions_ in copies.values())
    # ...and only what was in flight at the kill went out twice.
    duplicates = sum(len(actions_) - 1 for actions_ in copies.values())
    total = received_count(setup.handler)
    assert total == actions + duplicates
    assert duplicates <= DELIVERY_BATCH, f"{duplicates} duplicates after a kill at {at_kill} messages"
    print(f"\nkill -9 at {at_kill} received; after restart {total} messages, {duplicates} duplicates")

    db = sqlite3.connect(setup.state)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
    rows = outbox_rows(setup.state)
    assert len(rows) == actions  # the restart enqueued nothing twice
    assert {row["status"] for row in rows} == {"sent"}
    # The CLI agrees: nothing left pending.
    pending = sopwatch(setup.config, "outbox", "--status", "pending", "--json")
    assert pending.returncode == 0 and pending.stdout.strip() == "", pending.stdout + pending.stderr


# --- the SMTP server is down --------------------------------------------------------------------


def test_server_down_keeps_everything_for_retry_then_delivers_once(make_setup: Callable[..., Setup]) -> None:
    actions = 40
    setup = make_setup(actions)
    setup.server.stop()  # the port stays reserved for the restart, nobody listens on it

    first = run_once(setup.config)
    rows = outbox_rows(setup.state)
    assert len(rows) == actions
    assert {row["status"] for row in rows} == {"retry"}, statuses(setup.state)
    for row in rows:
        assert row["attempts"] == 1
        assert row["next_attempt"] is not None
        assert datetime.fromisoformat(row["next_attempt"]) > datetime.now(UTC) - timedelta(minutes=5)
        error = row["last_error"] or ""
        assert f"127.0.0.1:{setup.server.port}" in error and "connect" in error.lower(), error
    assert re.search(rf"{actions} enqueued, 0 digests, 0 sent, {actions} to retry", first.stderr)
    scheduled = {row["id"]: datetime.fromisoformat(row["next_attempt"]) for row in rows}

    # With the server back, a run sends exactly the rows whose (jittered, 0-30 s) backoff is over.
    setup.server.start()
    before = datetime.now(UTC)
    run_once(setup.config)
    after = datetime.now(UTC)
    rows = outbox_rows(setup.state)
    for row in rows:
        if scheduled[row["id"]] < before:
            assert row["status"] == "sent", row
        elif scheduled[row["id"]] > after:
            assert row["status"] == "retry", row
    early = sum(1 for row in rows if row["status"] == "sent")
    assert received_count(setup.handler) == early
    waiting = actions - early

    assert backoff_elapsed(setup.state) == waiting
    second = run_once(setup.config)
    assert re.search(rf"0 enqueued, 0 digests, {waiting} sent, 0 to retry, 0 failed", second.stderr)
    assert statuses(setup.state) == {"sent": actions}
    copies = by_message_id(setup.handler)
    assert len(copies) == actions and received_count(setup.handler) == actions  # no duplicates
    assert all(m.tls and m.user == USER for m in setup.handler.messages)


# --- per-recipient refusals ---------------------------------------------------------------------


def test_refused_recipients_fail_alone_report_to_admin_and_temporary_ones_retry(
    make_setup: Callable[..., Setup],
) -> None:
    handler = RecordingHandler(
        refuse={person(3): "550 5.1.1 no such user here", person(7): "451 4.3.0 mailbox busy, try later"}
    )
    setup = make_setup(PEOPLE, handler, admin=ADMIN)  # one action per person

    first = run_once(setup.config)
    rows = {row["action"]: row for row in outbox_rows(setup.state) if row["action"]}
    assert len(rows) == PEOPLE
    refused = rows["A-0003"]
    assert refused["status"] == "failed"
    assert "550 5.1.1" in json.loads(refused["refused"])[person(3)]
    busy = rows["A-0007"]
    assert busy["status"] == "retry" and busy["next_attempt"] is not None
    assert "451" in (busy["last_error"] or "")
    assert {a for a, row in rows.items() if row["status"] == "sent"} == {
        f"A-{i:04d}" for i in range(PEOPLE) if i not in (3, 7)
    }
    assert "delivery failed" in first.stderr

    # The admin hears about the permanent refusal (and only about it).
    admin_mail = [m for m in handler.messages if ADMIN in m.rcpt_tos]
    assert len(admin_mail) == 1, [m.rcpt_tos for m in handler.messages]
    body = parsed(admin_mail[0]).get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert person(3) in text and "550 5.1.1" in text and person(7) not in text
    delivered = {r for m in handler.messages for r in m.rcpt_tos}
    assert person(3) not in delivered and person(7) not in delivered

    # The mailbox is free again; once the backoff has elapsed the 451 recipient gets its message.
    del handler.refuse[person(7)]
    assert backoff_elapsed(setup.state) == 1
    run_once(setup.config)
    rows = {row["action"]: row for row in outbox_rows(setup.state) if row["action"]}
    assert rows["A-0007"]["status"] == "sent" and rows["A-0003"]["status"] == "failed"
    received = [r for m in handler.messages for r in m.rcpt_tos]
    assert received.count(person(7)) == 1
    assert received.count(person(3)) == 0
    assert len(received) == PEOPLE - 1 + 1  # everyone but p03 once, plus the admin once


# --- lifecycle ----------------------------------------------------------------------------------


def test_sigterm_stops_the_daemon_cleanly(
    make_setup: Callable[..., Setup], daemons: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    setup = make_setup(5)
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        proc = start_daemon(setup.config, log, daemons)
        wait_for(lambda: tick_lines(log_path.read_text("utf-8")), 60, "the first tick line")
        assert proc.poll() is None  # long-running: still there after its first tick
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    text = log_path.read_text("utf-8")
    assert "received SIGTERM" in text
    assert "sopwatch daemon stopped" in text
    assert len(tick_lines(text)) == 1
    assert received_count(setup.handler) == 5
    assert not setup.state.with_name("state.db.lock").exists() or _lock_is_free(setup.state)


def _lock_is_free(state: Path) -> bool:
    with open(state.with_name(state.name + ".lock"), "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def test_a_second_daemon_on_the_same_state_refuses_to_start(
    make_setup: Callable[..., Setup], daemons: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    setup = make_setup(3)
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        first = start_daemon(setup.config, log, daemons)
        wait_for(lambda: tick_lines(log_path.read_text("utf-8")), 60, "the first tick line")

        second = sopwatch(setup.config, "run", "--once")
        assert second.returncode == 1
        assert "another sopwatch daemon" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None  # the running daemon is unaffected

        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=15) == 0
    assert received_count(setup.handler) == 3  # the refused daemon sent nothing


def test_each_tick_logs_one_line_with_its_counts(make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(7)
    result = run_once(setup.config)
    lines = tick_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert re.search(
        r"tick \S+: 7 actions, 1 rules, 7 notifications \(0 silenced, 0 deferred\), 7 enqueued, "
        r"0 digests, 7 sent, 0 to retry, 0 failed, 0 skipped rows",
        lines[0],
    ), lines[0]
    # A second tick finds nothing new to send and says so.
    again = tick_lines(run_once(setup.config).stderr)
    assert len(again) == 1 and re.search(r"0 enqueued, 0 digests, 0 sent", again[0]), again
    assert received_count(setup.handler) == 7
