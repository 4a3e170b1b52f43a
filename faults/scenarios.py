"""The fault scenarios, one function each, returning rows for the table (see faults/run.py).

Every function takes its sizes as arguments, so tests/test_faults.py runs the same code with the
``--quick`` sizes. A row's ``checks`` are the assertions; nothing here raises on a failed check,
so one broken guarantee does not hide the others.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import itertools
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import harness
from harness import (
    ADMIN,
    LEAD,
    PASSWORD,
    Result,
    TrackingHandler,
    connect,
    cpu_seconds,
    fast_forward,
    integrity,
    message_id_of,
    outbox_rows,
    sopwatch,
    spawn_daemon,
    statuses,
    stop,
    tick_lines,
    timed,
    wait_for,
    workdir,
)

from sopwatch.daemon.engine import DELIVERY_BATCH


@dataclass(frozen=True)
class Sizes:
    kills: int
    messages: int
    outage_seconds: float
    flaky_messages: int
    register_actions: int
    time_step_minutes: int
    cli_commands: int
    cli_actions: int
    churn_seconds: float


FULL = Sizes(
    kills=20,
    messages=2000,
    outage_seconds=150,
    flaky_messages=300,
    register_actions=200,
    time_step_minutes=15,
    cli_commands=40,
    cli_actions=3000,
    churn_seconds=140,
)
QUICK = Sizes(
    kills=3,
    messages=200,
    outage_seconds=4,
    flaky_messages=60,
    register_actions=40,
    time_step_minutes=60,
    cli_commands=6,
    cli_actions=800,
    churn_seconds=0,
)


# --- 1. crashes ---------------------------------------------------------------------------------


def crashes(kills: int, messages: int, seed: int = 1, delay: float = 0.004) -> Result:
    """``kill -9`` at seeded random points while ``messages`` go out; restart after each kill."""
    result = Result(
        "crash: kill -9",
        f"{kills} x kill -9 at seeded random points (seed {seed}) while {messages} messages go to a "
        f"STARTTLS+AUTH aiosmtpd ({delay * 1000:.0f} ms per message), restarting after each kill",
    )
    with timed(result), workdir("crash") as folder:
        certs = harness.make_certs(folder / "certs")
        handler = TrackingHandler(delay=delay)
        server = harness.tls_server(certs, handler).start()
        try:
            _crash_run(result, folder, server, handler, certs, kills, messages, seed)
        finally:
            server.stop()
    return result


def _crash_run(
    result: Result,
    folder: Path,
    server: Any,
    handler: TrackingHandler,
    certs: Any,
    kills: int,
    messages: int,
    seed: int,
) -> None:
    config = harness.write_smtp_setup(folder / "setup", server.port, certs.ca, messages)
    state = config.parent / "state.db"
    rng = random.Random(seed)
    # Kill points: most at a number of distinct messages received (spread over the run, so they
    # land mid-batch), some at a random delay after the start (evaluation, enqueue, first batch).
    targets = sorted(rng.sample(range(1, messages), kills))
    phases: Counter[str] = Counter()
    integrity_results: list[str] = []
    kill_log: list[dict[str, Any]] = []
    log_path = folder / "daemon.log"
    with open(log_path, "ab") as log:
        for target in targets:
            proc = spawn_daemon(config, log)
            try:
                before = handler.unique()
                if rng.random() < 0.3:
                    time.sleep(rng.uniform(0.1, 2.5))
                    how = "timed"
                else:
                    wait_for(lambda t=target, p=proc: handler.unique() >= t or p.poll() is not None, 120)
                    how = "count"
                after = handler.unique()
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=20)
            if after >= messages:
                phases["after all were delivered"] += 1
            elif after == before:
                phases[f"before its first delivery ({how})"] += 1
            else:
                phases[f"mid-delivery ({how})"] += 1
            # A kill before the state file exists leaves nothing to check (and nothing to lose).
            checked = integrity(state) if state.exists() else "ok (no state file yet)"
            integrity_results.append(checked)
            kill_log.append({"how": how, "distinct_at_kill": after, "integrity": checked})
        # The last restart runs until everything is out, then stops cleanly. It must have ticked
        # first: when the last kill came after every message was marked sent, "everything is out"
        # holds at once, and a SIGTERM before the daemon installs its handler ends it with -15.
        log.flush()
        ticks_before = len(harness.tick_lines(log_path))
        proc = spawn_daemon(config, log)
        try:
            done = wait_for(
                lambda: (
                    len(harness.tick_lines(log_path)) > ticks_before
                    and handler.unique() >= messages
                    and statuses(outbox_rows(state)).get("sent", 0) >= messages
                ),
                300,
                every=0.2,
            )
        finally:
            code = stop(proc)
    rows = outbox_rows(state)
    ids_by_action: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        ids_by_action[row["action"]].add(message_id_of(row["message"]) or "?")
    copies = handler.copies()
    received = sum(copies.values())
    duplicates = received - len(copies)
    expected_ids = {mid for ids in ids_by_action.values() for mid in ids}
    arrived_ids = {mid for mid, _ in copies}
    max_copies = max(copies.values(), default=0)
    result.check("integrity_check ok after every kill", all(r.startswith("ok") for r in integrity_results))
    result.check("integrity_check ok at the end", integrity(state) == "ok")
    result.check("the last restart delivered everything and stopped with 0", bool(done) and code == 0)
    result.check(
        f"one outbox row and one Message-ID per action ({messages})",
        len(rows) == messages
        and len(ids_by_action) == messages
        and all(len(v) == 1 for v in ids_by_action.values()),
    )
    result.check(
        "none lost: every expected Message-ID arrived",
        expected_ids == arrived_ids and len(expected_ids) == messages,
    )
    result.check("every outbox row is sent", statuses(rows) == {"sent": messages})
    result.check(
        f"duplicates <= kills x DELIVERY_BATCH ({kills} x {DELIVERY_BATCH})",
        duplicates <= kills * DELIVERY_BATCH,
    )
    result.check("no message more than 1 + kills copies", max_copies <= 1 + kills)
    result.check("at least one kill landed mid-delivery", any(k.startswith("mid") for k in phases))
    result.figures = {
        "kills": kills,
        "messages": messages,
        "received": received,
        "duplicates": duplicates,
        "duplicate_bound": kills * DELIVERY_BATCH,
        "max_copies_of_one_message": max_copies,
        "kill_phases": dict(phases),
        "restarts": kills,
        "kill_log": kill_log,
        "last_restart": {"done": bool(done), "exit": code},
    }
    result.held = (
        f"none lost ({len(arrived_ids)}/{messages} Message-IDs); {duplicates} duplicates, all with the "
        f"original Message-ID (bound {kills}x{DELIVERY_BATCH}); integrity_check ok after all {kills} kills"
    )


# --- 2. SMTP faults -----------------------------------------------------------------------------


def _snapshot(state: Path) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in outbox_rows(state)}


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def smtp_outage(actions: int, outage_seconds: float, rounds: int = 3) -> Result:
    """The server is down: backoff, no busy loop, backlog delivered once when it returns."""
    result = Result(
        "smtp: server down",
        f"{actions} messages while nobody listens on the SMTP port: the daemon in loop mode "
        f"(interval 1m) for {outage_seconds:.0f} s, then {rounds} `run --once` 1.5 s apart, then the "
        "server back: one run without fast-forward, one after (backoff fast-forwarded)",
    )
    with timed(result), workdir("outage") as folder:
        certs = harness.make_certs(folder / "certs")
        handler = TrackingHandler()
        server = harness.tls_server(certs, handler).start()
        server.stop()  # the port is known; nobody listens on it
        try:
            _outage_run(result, folder, server, handler, certs, actions, outage_seconds, rounds)
        finally:
            server.stop()
    return result


def _outage_run(
    result: Result,
    folder: Path,
    server: Any,
    handler: TrackingHandler,
    certs: Any,
    actions: int,
    outage_seconds: float,
    rounds: int,
) -> None:
    config = harness.write_smtp_setup(folder / "setup", server.port, certs.ca, actions)
    state = config.parent / "state.db"
    log_path = folder / "daemon.log"
    early: list[str] = []  # retries seen before their next_attempt
    with open(log_path, "wb") as log:
        spawned = time.monotonic()
        proc = spawn_daemon(config, log)
        try:
            ticked = wait_for(lambda: tick_lines(log_path) or proc.poll() is not None, 60)
            cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
            startup_cpu = cpu0
            previous = _snapshot(state)
            # Poll the outbox through the outage: any attempt counted before the row's
            # next_attempt had come is a retry that did not honour the backoff.
            while time.monotonic() - wall0 < outage_seconds and proc.poll() is None:
                time.sleep(0.25)
                seen_at = dt.datetime.now(dt.UTC)
                current = _snapshot(state)
                for row_id, row in current.items():
                    before = previous.get(row_id)
                    if before is None or row["attempts"] == before["attempts"]:
                        continue
                    due = _when(before["next_attempt"])
                    if due is not None and due > seen_at:
                        early.append(f"row {row_id}: retried before {due.isoformat()}")
                previous = current
            cpu1, wall1 = cpu_seconds(proc.pid), time.monotonic()
            alive = proc.poll() is None
        finally:
            code = stop(proc)
    outage_rows = outbox_rows(state)
    ticks_in_window = len(tick_lines(log_path)) - 1
    cpu, wall = cpu1 - cpu0, wall1 - wall0
    result.check(
        "the daemon ticked, stayed up through the outage and stopped with 0 on SIGTERM",
        bool(ticked) and alive and code == 0,
    )
    result.check(
        "every message waits as retry with next_attempt and a connection error",
        len(outage_rows) == actions
        and all(
            r["status"] == "retry" and r["next_attempt"] and "connect" in (r["last_error"] or "").lower()
            for r in outage_rows
        ),
    )
    result.check("no busy loop: daemon CPU < 5% of the outage's wall time", cpu < 0.05 * wall)
    result.check("loop mode: no retry seen before its next_attempt", not early)

    # Run by run: exactly the rows whose next_attempt has come are tried, the others wait.
    violations: list[str] = []
    tried_per_round: list[int] = []
    for _ in range(rounds):
        time.sleep(1.5)
        before = _snapshot(state)
        start = dt.datetime.now(dt.UTC)
        run = sopwatch(config, "run", "--once")
        end = dt.datetime.now(dt.UTC)
        after = _snapshot(state)
        tried = 0
        for row_id, row in after.items():
            was = before[row_id]
            due = _when(was["next_attempt"])
            if row["attempts"] > was["attempts"]:
                tried += 1
                if due is not None and due > end:
                    violations.append(f"row {row_id} retried before its next_attempt")
                if row["status"] == "retry" and (_when(row["next_attempt"]) or start) <= start:
                    violations.append(f"row {row_id} got a next_attempt that is not in the future")
            elif due is not None and due <= start:
                violations.append(f"row {row_id} was due and not retried")
        if run.returncode != 0:
            violations.append(f"run --once exited {run.returncode}: {run.stderr[-300:]}")
        tried_per_round.append(tried)
    result.check("run --once: due rows retried, the others left for later", not violations)

    # The server is back: first the rows whose backoff is over, then (fast-forwarded) the rest.
    server.start()
    before = _snapshot(state)
    start = dt.datetime.now(dt.UTC)
    first = sopwatch(config, "run", "--once")
    end = dt.datetime.now(dt.UTC)
    after = _snapshot(state)
    early_sent = [
        r
        for r in after.values()
        if r["status"] == "sent" and (_when(before[r["id"]]["next_attempt"]) or start) > end
    ]
    late_kept = [
        r
        for r in after.values()
        if r["status"] == "retry" and (_when(before[r["id"]]["next_attempt"]) or end) <= start
    ]
    sent_without_wait = sum(1 for r in after.values() if r["status"] == "sent")
    forwarded = fast_forward(state)
    second = sopwatch(config, "run", "--once")
    rows = outbox_rows(state)
    copies = handler.copies()
    expected = {message_id_of(r["message"]) for r in rows}
    result.check(
        "server back: only rows past their backoff went out before the fast-forward",
        first.returncode == 0 and not early_sent and not late_kept,
    )
    result.check(
        "backlog delivered: every row sent, each Message-ID exactly once, over TLS with AUTH",
        second.returncode == 0
        and statuses(rows) == {"sent": actions}
        and {mid for mid, _ in copies} == expected
        and len(expected) == actions
        and all(n == 1 for n in copies.values())
        and all(m.tls and m.user == harness.USER for m in handler.messages),
    )
    result.figures = {
        "outage_wall_s": round(wall, 1),
        "daemon_cpu_s_in_outage": round(cpu, 3),
        "cpu_share": f"{100 * cpu / wall:.2f}%",
        "daemon_startup_plus_first_tick_cpu_s": round(startup_cpu, 2),
        "ticks_in_outage_window": ticks_in_window,
        "attempts_per_row_after_outage": dict(Counter(r["attempts"] for r in outage_rows)),
        "rows_tried_per_run_once": tried_per_round,
        "sent_when_back_without_fast_forward": sent_without_wait,
        "fast_forwarded_rows": forwarded,
        "spawn_to_first_tick_s": round(wall0 - spawned, 1),
    }
    result.held = (
        f"daemon CPU {cpu:.2f} s over {wall:.0f} s of outage ({100 * cpu / wall:.1f}%); retries only after "
        f"next_attempt; {sent_without_wait} sent at once when the server returned, the other "
        f"{actions - sent_without_wait} after their backoff (fast-forwarded); each Message-ID once"
    )


def _engine(config: Path) -> Any:
    from sopwatch.daemon.engine import Engine

    return Engine(config, environ=harness.ENV)


def smtp_flaky(messages: int, seed: int = 7, refuse: float = 0.2, max_rounds: int = 60) -> Result:
    """451 on ~20% of MAIL/RCPT/DATA, some 421 + hang-up: everything arrives once per Message-ID."""
    result = Result(
        "smtp: 421/451 at random",
        f"{messages} messages to owner + cc {LEAD}; the server answers {refuse:.0%} of MAIL/RCPT/DATA "
        "with 451, a quarter of those as 421 and hangs up; ticks 2 h apart in process (backoff elapses "
        "on the engine's clock)",
    )
    with timed(result), workdir("flaky") as folder:
        certs = harness.make_certs(folder / "certs")
        handler = TrackingHandler(flaky=refuse, seed=seed)
        server = harness.tls_server(certs, handler).start()
        try:
            config = harness.write_smtp_setup(folder / "setup", server.port, certs.ca, messages, cc=True)
            state = config.parent / "state.db"
            engine = _engine(config)
            now = dt.datetime.now(dt.UTC)
            rounds = 0
            try:
                while rounds < max_rounds:
                    engine.tick(now)
                    rounds += 1
                    if not any(r["status"] in ("pending", "retry") for r in outbox_rows(state)):
                        break
                    now += dt.timedelta(hours=2)  # past the largest backoff (1 h)
            finally:
                engine.close()
            rows = outbox_rows(state)
            copies = handler.copies()
            expected = {(message_id_of(r["message"]), rcpt) for r in rows for rcpt in harness.intended(r)}
            partial = sum(
                1 for r in rows if r["attempts"] > 1 and len(json.loads(r["accepted"] or "[]")) == 2
            )
            result.check("every row sent", statuses(rows) == {"sent": messages})
            result.check(
                "every (Message-ID, recipient) arrived exactly once",
                set(copies) == expected
                and len(expected) == 2 * messages
                and all(n == 1 for n in copies.values()),
            )
            result.check(
                "no command sent on a channel after the server's 421 (closing transmission channel)",
                handler.after_421 == 0,
            )
            result.check(
                "the server did refuse: 451s and 421s happened",
                handler.refusals["421"] > 0 and sum(handler.refusals.values()) > handler.refusals["421"],
            )
            result.figures = {
                "ticks_to_drain": rounds,
                "refusals": dict(handler.refusals),
                "attempts_max": max(r["attempts"] for r in rows),
                "attempts_mean": round(sum(r["attempts"] for r in rows) / len(rows), 2),
                "rows_retried": sum(1 for r in rows if r["attempts"] > 1),
                "rows_needing_more_than_one_try_with_both_recipients": partial,
                "copies_received": sum(copies.values()),
                "commands_after_421": handler.after_421,
            }
            result.held = (
                f"all {messages} delivered to both recipients in {rounds} ticks, each (Message-ID, recipient) "
                f"once, after {sum(handler.refusals.values())} refusals"
            )
        finally:
            server.stop()
    return result


def smtp_size(messages: int, refused_every: int = 7, ticks: int = 4) -> Result:
    """552 to DATA for some actions: failed at once, reported to the admin, never retried."""
    refused = frozenset(f"A-{i:04d}" for i in range(0, messages, refused_every))
    result = Result(
        "smtp: 552 size refusal",
        f"{messages} messages, DATA of {len(refused)} of them answered `552 5.3.4 message size exceeds "
        f"fixed maximum`; {ticks} ticks 2 h apart in process (past any backoff)",
    )
    with timed(result), workdir("size") as folder:
        certs = harness.make_certs(folder / "certs")
        handler = TrackingHandler(size_refused=refused)
        server = harness.tls_server(certs, handler).start()
        try:
            config = harness.write_smtp_setup(folder / "setup", server.port, certs.ca, messages, admin=ADMIN)
            state = config.parent / "state.db"
            engine = _engine(config)
            now = dt.datetime.now(dt.UTC)
            try:
                for _ in range(ticks):
                    engine.tick(now)
                    now += dt.timedelta(hours=2)
            finally:
                engine.close()
            rows = outbox_rows(state)
            by_action = {r["action"]: r for r in rows if r["kind"] != "admin"}
            admin_rows = [r for r in rows if r["kind"] == "admin"]
            admin_mail = [m for m in handler.messages if ADMIN in m.rcpt_tos]
            admin_text = b"\n".join(m.content for m in admin_mail)
            result.check(
                "refused rows failed after exactly one attempt, with the 552 as last_error",
                all(
                    by_action[a]["status"] == "failed"
                    and by_action[a]["attempts"] == 1
                    and "552" in (by_action[a]["last_error"] or "")
                    for a in refused
                ),
            )
            result.check(
                "the other rows were sent",
                all(r["status"] == "sent" for a, r in by_action.items() if a not in refused)
                and len(by_action) == messages,
            )
            result.check(
                "the server saw each refused message once (never retried)",
                handler.refusals["552"] == len(refused),
            )
            result.check(
                "the admin got one notice per refused message, naming the 552",
                len(admin_rows) == len(refused)
                and all(r["status"] == "sent" for r in admin_rows)
                and len(admin_mail) == len(refused)
                and admin_text.count(b"552") >= len(refused),
            )
            result.figures = {
                "refused": len(refused),
                "server_552_replies": handler.refusals["552"],
                "admin_notices": len(admin_mail),
                "attempts_of_refused": sorted({by_action[a]["attempts"] for a in refused}),
            }
            result.held = (
                f"{len(refused)} refused rows failed at the first attempt and were never retried over "
                f"{ticks} ticks; the admin got {len(admin_mail)} notices naming the 552"
            )
        finally:
            server.stop()
    return result


def smtp_tls(attempts: int = 3) -> list[Result]:
    """TLS that cannot be set up or verified: refused, reported in last_error, nothing in clear text."""
    return [_tls_case(case, attempts) for case in TLS_CASES]


TLS_CASES = (
    ("no STARTTLS offered (stripped)", "plain", "starttls"),
    ("STARTTLS handshake fails (garbage instead of TLS)", "broken-tls", "starttls"),
    ("implicit TLS to a plain-text server", "plain", "tls"),
    ("certificate from an untrusted CA", "other-ca", "starttls"),
    ("certificate for another host name", "wrong-name", "starttls"),
)

_IN_CLEAR = (b"AUTH", b"MAIL FROM", b"RCPT TO", b"Message-ID", b"Subject:", PASSWORD.encode())


def _tls_case(case: tuple[str, str, str], attempts: int) -> Result:
    title, server_kind, mode = case
    result = Result(
        f"smtp: TLS - {title}",
        f"`{mode}: true` with AUTH and ca_file; {attempts} ticks 2 h apart in process",
    )
    with timed(result), workdir("tls") as folder:
        certs = harness.make_certs(folder / "certs")
        with contextlib.ExitStack() as stack:
            raw = None
            aio = None
            if server_kind in ("plain", "broken-tls"):
                raw = stack.enter_context(harness.RawSmtpServer(server_kind))
                port = raw.port
            else:
                names = ["mail.example.org"] if server_kind == "wrong-name" else ["127.0.0.1", "localhost"]
                other_ca, cert = harness.make_leaf(folder / "other", folder / "certs", names)
                server_certs = harness.smtp_server.Certs(other_ca, cert, folder / "other" / "server.key")
                aio = harness.tls_server(server_certs, TrackingHandler()).start()
                stack.callback(aio.stop)
                port = aio.port
            # wrong-name: the CA that signed the certificate is trusted, the name is not ours.
            ca = folder / "other" / "ca.pem" if server_kind == "wrong-name" else certs.ca
            config = harness.write_smtp_setup(
                folder / "setup", port, ca, 3, admin=ADMIN, starttls=mode == "starttls", tls=mode == "tls"
            )
            state = config.parent / "state.db"
            engine = _engine(config)
            now = dt.datetime.now(dt.UTC)
            try:
                for _ in range(attempts):
                    engine.tick(now)
                    now += dt.timedelta(hours=2)
            finally:
                engine.close()
            rows = outbox_rows(state)
            errors = sorted({r["last_error"] or "" for r in rows})
            if raw is not None:
                with raw.lock:
                    received = bytes(raw.received)
                connections = raw.connections
                leaked = [marker.decode() for marker in _IN_CLEAR if marker in received]
                leaked += ["AUTH PLAIN credentials"] if _auth_blob() in received else []
                delivered = 0
            else:
                assert aio is not None
                connections = aio.handler.connections
                leaked = []
                delivered = len(aio.handler.messages)
            expect = "certificate" if server_kind in ("other-ca", "wrong-name") else ""
            result.check("the server was contacted", connections >= attempts)
            result.check("no message delivered", delivered == 0 and all(r["status"] != "sent" for r in rows))
            result.check("nothing sent in clear text (no AUTH, MAIL, RCPT, message, password)", not leaked)
            result.check(
                f"every row waits as retry with the reason in last_error{' (certificate)' if expect else ''}",
                bool(rows)
                and all(
                    r["status"] == "retry" and r["last_error"] and expect in r["last_error"].lower()
                    for r in rows
                    if r["kind"] != "admin"
                ),
            )
            result.figures = {
                "connections": connections,
                "rows": statuses(rows),
                "clear_text_seen": leaked,
            }
            reason = errors[0].split(": ", 1)[-1][:110] if errors else "-"
            result.held = f"not sent, nothing in clear text, rows wait as retry; last_error: {reason}"
    return result


def _auth_blob() -> bytes:
    import base64

    return base64.b64encode(f"\0{harness.USER}\0{PASSWORD}".encode())


def smtp_tls_exhausted() -> Result:
    """A certificate that stays wrong: the retries run out, the row fails, the admin is told."""
    from sopwatch.delivery.retry import MAX_ATTEMPTS

    result = Result(
        "smtp: TLS refused until retries run out",
        f"certificate from an untrusted CA for good; {MAX_ATTEMPTS + 1} ticks 2 h apart in process",
    )
    with timed(result), workdir("tls-exhausted") as folder:
        certs = harness.make_certs(folder / "certs")
        other_ca, cert = harness.make_leaf(folder / "other", folder / "certs", ["127.0.0.1"])
        server_certs = harness.smtp_server.Certs(other_ca, cert, folder / "other" / "server.key")
        server = harness.tls_server(server_certs, TrackingHandler()).start()
        try:
            config = harness.write_smtp_setup(folder / "setup", server.port, certs.ca, 2, admin=ADMIN)
            state = config.parent / "state.db"
            engine = _engine(config)
            now = dt.datetime.now(dt.UTC)
            try:
                for _ in range(MAX_ATTEMPTS + 1):
                    engine.tick(now)
                    now += dt.timedelta(hours=2)
            finally:
                engine.close()
            rows = outbox_rows(state)
            notices = [r for r in rows if r["kind"] == "admin"]
            work = [r for r in rows if r["kind"] != "admin"]
            result.check(
                f"the rows failed after {MAX_ATTEMPTS} attempts with the certificate error",
                len(work) == 2
                and all(
                    r["status"] == "failed"
                    and r["attempts"] == MAX_ATTEMPTS
                    and "certificate" in (r["last_error"] or "")
                    for r in work
                ),
            )
            result.check("an admin notice was enqueued for each", len(notices) == len(work))
            result.check("nothing delivered", not server.handler.messages)
            result.figures = {
                "attempts": sorted({r["attempts"] for r in work}),
                "admin_notices": statuses(notices),
            }
            result.held = (
                f"failed after {MAX_ATTEMPTS} attempts; the admin notices are queued "
                f"({', '.join(f'{v} {k}' for k, v in statuses(notices).items())}) behind the same broken TLS"
            )
            result.known_gap = (
                "the admin notice about a broken SMTP path goes out over that same path, so it waits "
                "with the rest; the log and `sopwatch outbox --status failed` show it"
            )
        finally:
            server.stop()
    return result


# --- 3. register faults -------------------------------------------------------------------------

# The hold lies a week after fire_at: still to come when the register is damaged, so a cancel
# sent then would be a real one (a hold already past is never cancelled).
REGISTER_RULES = """\
rules:
  - id: late
    when: {status: open}
    fire_at: due
    escalation:
      - notify: [owner]
        calendar_hold: {start: "fire_at + 7 days", duration: 30m}
    repeat: 1 day
    notify_resolved: true
"""


def _register_setup(folder: Path, actions: int, kind: str) -> tuple[Path, bytes]:
    """A maildir setup whose register is CSV or XLSX; returns the config and the register's bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    harness.write_people(folder)
    (folder / "rules.yaml").write_text(REGISTER_RULES, encoding="utf-8")
    header = ["id", "title", "status", "owner", "due"]
    rows = [
        [f"A-{i:04d}", f"Action {i}", "open", f"p{i % harness.PEOPLE:02d}", "2026-12-01"]
        for i in range(actions)
    ]
    path = folder / f"register.{kind}"
    if kind == "csv":
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    else:
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        sheet.append(header)
        for row in rows:
            sheet.append(row)
        book.save(path)
    (folder / "config.yaml").write_text(
        "timezone: UTC\n"
        f"register: {{type: {kind}, path: register.{kind}}}\n"
        "people: people.yaml\n"
        'business_calendar: {workdays: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}\n'
        f"admin: {ADMIN}\n"
        "rules: [rules.yaml]\n"
        "state: state.db\n"
        "max_messages_per_tick: 5000\n"
        'delivery: {type: maildir, path: maildir, from: "sopwatch <sopwatch@example.com>"}\n',
        encoding="utf-8",
    )
    return folder / "config.yaml", path.read_bytes()


def _cut_mid_row(data: bytes, fraction: float, column: int = 1) -> bytes:
    """The file cut two characters into ``column`` of the row at ``fraction`` of the rows."""
    lines = data.splitlines(keepends=True)
    index = max(1, int(len(lines) * fraction))
    start = sum(len(line) for line in lines[:index])
    fields = lines[index].split(b",")
    offset = sum(len(f) + 1 for f in fields[:column])
    return data[: start + offset + 2]


def _keep_rows(data: bytes, fraction: float) -> bytes:
    lines = data.splitlines(keepends=True)
    keep = max(1, int((len(lines) - 1) * fraction))
    return b"".join(lines[: 1 + keep])


def _xlsx_header_only() -> bytes:
    import io

    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["id", "title", "status", "owner", "due"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# (title, register type, what happens to the file: bytes -> bytes, or None to delete it,
#  whether the shrink guard is expected to refuse it)
REGISTER_CASES: tuple[tuple[str, str, Any, bool], ...] = (
    ("CSV cut mid-row at 60% of its rows, inside the title", "csv", lambda d: _cut_mid_row(d, 0.6, 1), True),
    (
        "CSV cut mid-row at 60% of its rows, inside the last column",
        "csv",
        lambda d: _cut_mid_row(d, 0.6, 4),
        True,
    ),
    ("CSV truncated at a line break to 30% of its rows", "csv", lambda d: _keep_rows(d, 0.3), True),
    ("CSV truncated to its header row", "csv", lambda d: _keep_rows(d, 0.0)[: d.index(b"\n") + 1], True),
    ("CSV emptied (0 bytes)", "csv", lambda d: b"", True),
    ("CSV deleted (an editor saving by rename)", "csv", None, True),
    ("XLSX overwritten with random bytes", "xlsx", lambda d: random.Random(3).randbytes(len(d)), True),
    ("XLSX emptied (0 bytes)", "xlsx", lambda d: b"", True),
    ("XLSX truncated (first half of the zip)", "xlsx", lambda d: d[: len(d) // 2], True),
    ("XLSX saved with the header row only", "xlsx", lambda d: _xlsx_header_only(), True),
    (
        "CSV truncated at a line break to 70% of its rows (within max_shrink 0.5)",
        "csv",
        lambda d: _keep_rows(d, 0.7),
        False,
    ),
)


def _episode_figures(state: Path) -> dict[str, int]:
    with contextlib.closing(connect(state)) as db:
        resolved = db.execute("SELECT COUNT(*) FROM episodes WHERE resolved_at IS NOT NULL").fetchone()[0]
        reopened = db.execute("SELECT COUNT(*) FROM episodes WHERE number > 1").fetchone()[0]
        kinds = dict(db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind").fetchall())
    return {
        "resolved_episodes": resolved,
        "reopened_episodes": reopened,
        "cancel_messages": kinds.get("cancel", 0),
        "resolved_notices": kinds.get("resolved", 0),
        "admin_notices": kinds.get("admin", 0),
        "reminders": kinds.get("reminder", 0),
    }


def _guard_present() -> bool:
    from sopwatch.config.schema import RegisterConfig

    return "max_shrink" in RegisterConfig.model_fields


def register_faults(actions: int) -> list[Result]:
    rows = [_register_case(case, actions) for case in REGISTER_CASES]
    rows.append(register_half_written_while_read(actions))
    return rows


def _register_case(case: tuple[str, str, Any, bool], actions: int) -> Result:
    title, kind, damage, refuse = case
    guard = _guard_present()
    result = Result(
        f"register: {title}", f"damaged between two ticks over {actions} open episodes, then restored"
    )
    with timed(result), workdir("register") as folder:
        config, good = _register_setup(folder / "setup", actions, kind)
        register = config.parent / f"register.{kind}"
        state = config.parent / "state.db"
        engine = _engine_at(config)
        t0 = dt.datetime(2026, 12, 3, 10, tzinfo=dt.UTC)
        error: str | None = None
        try:
            engine.tick(t0)
            before = _episode_figures(state)
            if damage is None:
                register.unlink()
            else:
                register.write_bytes(damage(good))
            try:
                report = engine.tick(t0 + dt.timedelta(hours=1))
                seen = report.actions
            except Exception as exc:
                error, seen = f"{type(exc).__name__}: {exc}", -1
            damaged = _episode_figures(state)
            register.write_bytes(good)
            os.utime(register)  # a restore within the same clock tick must still look changed
            restored_report = engine.tick(t0 + dt.timedelta(hours=2))
            after = _episode_figures(state)
        finally:
            engine.close()
        resolved = damaged["resolved_episodes"] - before["resolved_episodes"]
        cancels = damaged["cancel_messages"] - before["cancel_messages"]
        resent = after["reopened_episodes"]
        result.check("the tick on the damaged register did not raise", error is None)
        result.check(
            f"the restored register is read again ({actions} actions)", restored_report.actions == actions
        )
        if guard and refuse:
            result.check(
                "no episode resolved, no hold cancelled while damaged", resolved == 0 and cancels == 0
            )
            result.check("no reminder re-sent as a new episode after the restore", resent == 0)
            result.check("the admin was told", damaged["admin_notices"] > before["admin_notices"])
        elif guard:
            removed = actions - int(actions * 0.7)
            result.check(
                f"within max_shrink the smaller register is believed: {removed} episodes resolved",
                resolved == removed,
            )
            result.known_gap = (
                "by design: a loss within register.max_shrink is taken as real, so those episodes "
                "resolve, their holds are cancelled and they start again as new episodes on the restore"
            )
        elif resolved or cancels:
            result.known_gap = "no shrink guard: the damaged register resolved episodes and cancelled holds"
        admin = damaged["admin_notices"] - before["admin_notices"]
        result.figures = {
            "evaluated": seen,
            "resolved": resolved,
            "holds cancelled": cancels,
            "admin notices": admin,
            "new episodes after restore": resent,
        }
        result.details = {
            "guard": guard,
            "error": error,
            "resolved_notices": damaged["resolved_notices"] - before["resolved_notices"],
            "episodes_resolved": resolved,
            "holds_cancelled": cancels,
        }
        if error is not None:
            result.held = f"the tick raised {error}"
        elif resolved == 0 and cancels == 0 and seen == actions:
            told = "the admin was told" if admin else "the admin was NOT told"
            result.held = f"no crash; the last good register was kept ({actions} actions); {told}"
        else:
            result.held = (
                f"no crash, but the damaged register was believed: {resolved} episodes resolved, their holds "
                "cancelled, and restarted as new episodes after the restore"
            )
    return result


def _engine_at(config: Path, loader: Any = None) -> Any:
    from sopwatch.daemon.engine import Engine

    if loader is None:
        return Engine(config, environ={})
    return Engine(config, environ={}, loader=loader)


def register_half_written_while_read(actions: int) -> Result:
    """The reader opens the CSV while a writer is half-way; the writer finishes before the next tick."""
    from sopwatch.config.loader import load_setup

    guard = _guard_present()
    result = Result(
        "register: CSV half-written while read",
        "the loader reads the CSV while it holds 85% of its rows (cut inside the last column); the writer completes "
        "the file right after the read; two more ticks without any further change",
    )
    with timed(result), workdir("register-race") as folder:
        config, good = _register_setup(folder / "setup", actions, "csv")
        register = config.parent / "register.csv"
        state = config.parent / "state.db"
        armed = [False]

        def loader(path: Path) -> Any:
            if not armed[0]:
                return load_setup(path)
            armed[0] = False
            register.write_bytes(_cut_mid_row(good, 0.85, 4))
            try:
                return load_setup(path)
            finally:
                register.write_bytes(good)  # the writer finishes while the reader is still busy

        engine = _engine_at(config, loader)
        t0 = dt.datetime(2026, 12, 3, 10, tzinfo=dt.UTC)
        try:
            engine.tick(t0)
            before = _episode_figures(state)
            # Something changes, so the next tick reloads (the register's own edit).
            time.sleep(0.01)
            os.utime(register)
            armed[0] = True
            first = engine.tick(t0 + dt.timedelta(hours=1))
            damaged = _episode_figures(state)
            second = engine.tick(t0 + dt.timedelta(hours=2))
            third = engine.tick(t0 + dt.timedelta(hours=3))
            after = _episode_figures(state)
        finally:
            engine.close()
        resolved = damaged["resolved_episodes"] - before["resolved_episodes"]
        cancels = damaged["cancel_messages"] - before["cancel_messages"]
        result.check(
            f"the complete file is read again at the next tick ({actions} actions)",
            second.actions == actions and third.actions == actions,
        )
        if guard:
            result.check(
                "no episode resolved, no hold cancelled by the half-read file", resolved == 0 and cancels == 0
            )
            result.check("no reminder re-sent as a new episode", after["reopened_episodes"] == 0)
        result.figures = {"actions per tick": [first.actions, second.actions, third.actions]}
        result.details = {
            "guard": guard,
            "actions_per_tick": [first.actions, second.actions, third.actions],
            "episodes_resolved": resolved,
            "holds_cancelled": cancels,
            "new_episodes_after": after["reopened_episodes"],
        }
        result.held = (
            f"actions evaluated per tick {first.actions} -> {second.actions} -> {third.actions}; {resolved} "
            f"episodes resolved, {cancels} holds cancelled, {after['reopened_episodes']} new episodes"
        )
    return result


# --- 4. time faults -----------------------------------------------------------------------------

TIME_PEOPLE = """\
people:
  - {id: ann, name: Ann Berlin, email: ann@example.com, timezone: Europe/Berlin, manager: carl}
  - {id: nick, name: Nick York, email: nick@example.com, timezone: America/New_York, manager: nora}
  - {id: carl, name: Carl Boss, email: carl@example.com, timezone: Europe/Berlin}
  - {id: nora, name: Nora Boss, email: nora@example.com, timezone: America/New_York}
"""

TIME_RULES = """\
rules:
  - id: late
    when: {status: open}
    fire_at: due
    escalation:
      - notify: [owner]
      - after: 1 business day
        notify: ["manager(owner)"]
        cc: [owner]
      - after: 3 business days
        notify: ["manager(owner)"]
        calendar_hold: {start: "fire_at + 4 business days", duration: 30m}
    repeat: 4 hours
    notify_resolved: true
  - id: approval-wait
    when: {kind: approval, status: pending_approval}
    fire_at: due + 2h
    escalation:
      - notify: [approver]
      - after: 6 hours
        notify: ["manager(approver)"]
    repeat: 1 day
"""

REPEATS = {"late": dt.timedelta(hours=4), "approval-wait": dt.timedelta(days=1)}


def _time_setup(folder: Path, tz: str, pivot: dt.date) -> Path:
    """Open work due around ``pivot``: dates, and local times in the small hours of the pivot day
    (02:30 does not exist on a spring-forward day and happens twice on a fall-back day)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "people.yaml").write_text(TIME_PEOPLE, encoding="utf-8")
    (folder / "rules.yaml").write_text(TIME_RULES, encoding="utf-8")
    rows = [["id", "kind", "title", "status", "owner", "approver", "due"]]
    owners = ["ann", "nick"]
    for offset in range(-3, 4):
        day = pivot + dt.timedelta(days=offset)
        for owner in owners:
            rows.append(
                [f"D{offset + 3}-{owner}", "action", f"Due {day}", "open", owner, "", day.isoformat()]
            )
    for hour in ("01:30", "02:30", "03:30"):
        for owner in owners:
            rows.append(
                [f"T{hour[:2]}-{owner}", "action", f"Due {hour}", "open", owner, "", f"{pivot}T{hour}"]
            )
            rows.append(
                [
                    f"P{hour[:2]}-{owner}",
                    "approval",
                    f"Approve {hour}",
                    "pending_approval",
                    owner,
                    owner,
                    f"{pivot}T{hour}",
                ]
            )
    with (folder / "register.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    (folder / "config.yaml").write_text(
        f"timezone: {tz}\n"
        "register: {type: csv, path: register.csv}\n"
        "people: people.yaml\n"
        'business_calendar: {hours: "08:00-18:00"}\n'
        "rules: [rules.yaml]\n"
        "state: state.db\n"
        "max_messages_per_tick: 5000\n"
        'delivery: {type: maildir, path: maildir, from: "sopwatch <sopwatch@example.com>"}\n',
        encoding="utf-8",
    )
    return folder / "config.yaml"


def _steady(start: dt.datetime, end: dt.datetime, step: dt.timedelta) -> list[dt.datetime]:
    ticks = []
    while start <= end:
        ticks.append(start)
        start += step
    return ticks


def _wall_clock(tz: ZoneInfo, start: dt.datetime, end: dt.datetime, step: dt.timedelta) -> list[dt.datetime]:
    """A clock read as naive local wall time and taken at face value (fold=0): across a DST change
    it repeats an hour (spring, the non-existent hour maps back) or skips one (autumn)."""
    ticks = []
    wall = start
    while wall <= end:
        ticks.append(wall.replace(tzinfo=tz).astimezone(dt.UTC))
        wall += step
    return ticks


# In a tick list: the daemon restarts here (a fresh Engine on the same state file).
RESTART = dt.datetime.min.replace(tzinfo=dt.UTC)


def time_cases(step_minutes: int) -> list[tuple[str, str, dt.date, list[dt.datetime]]]:
    step = dt.timedelta(minutes=step_minutes)
    hour = dt.timedelta(hours=1)
    mid = dt.date(2026, 6, 10)  # a Wednesday with no DST change anywhere
    base = dt.datetime(2026, 6, 9, 0, tzinfo=dt.UTC)
    # Back from 01:00Z on 11 June to 20:00Z on 10 June: across 22:00Z, when work due on 10 June
    # (a date: the end of that day in Berlin) fired.
    back = _steady(base, base + dt.timedelta(hours=49), step)
    cut = len(back)
    back += _steady(back[-1] - dt.timedelta(hours=5), base + dt.timedelta(days=4), step)
    forward = _steady(base, base + dt.timedelta(hours=36), step)
    forward += _steady(forward[-1] + dt.timedelta(hours=9), base + dt.timedelta(days=4), step)
    week: list[dt.datetime] = _steady(base, base + dt.timedelta(days=2), hour)
    week += [RESTART, *_steady(week[-1] + dt.timedelta(days=7), week[-1] + dt.timedelta(days=8), hour)]
    cases = [
        ("clock stepped back 5 h", "Europe/Berlin", mid, back),
        (
            "clock stepped back 5 h across a restart",
            "Europe/Berlin",
            mid,
            [*back[:cut], RESTART, *back[cut:]],
        ),
        ("clock stepped forward 9 h", "America/New_York", mid, forward),
        ("daemon stopped for a week, then restarted", "Europe/Berlin", mid, week),
    ]
    for label, tz, day in (
        ("DST Europe spring 2026-03-29", "Europe/Berlin", dt.date(2026, 3, 29)),
        ("DST Europe autumn 2026-10-25", "Europe/Berlin", dt.date(2026, 10, 25)),
        ("DST US spring 2026-03-08", "America/New_York", dt.date(2026, 3, 8)),
        ("DST US autumn 2026-11-01", "America/New_York", dt.date(2026, 11, 1)),
    ):
        start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(0))
        ticks = _wall_clock(ZoneInfo(tz), start, start + dt.timedelta(days=3), step)
        cases.append((f"{label} (naive wall clock, fold=0)", tz, day, ticks))
    return cases


def time_faults(step_minutes: int) -> list[Result]:
    return [_time_case(case) for case in time_cases(step_minutes)]


def _time_case(case: tuple[str, str, dt.date, list[dt.datetime]]) -> Result:
    label, tz, pivot, plan = case
    ticks = [t for t in plan if t is not RESTART]
    restarts = len(plan) - len(ticks)
    result = Result(
        f"time: {label}",
        f"{len(ticks)} ticks {ticks[0]:%m-%d %H:%M}Z..{max(ticks):%m-%d %H:%M}Z, org {tz}"
        + (f", {restarts} restart" if restarts else ""),
    )
    with timed(result), workdir("time") as folder:
        config = _time_setup(folder / "setup", tz, pivot)
        state = config.parent / "state.db"
        engine = _engine_at(config)
        behind: list[str] = []  # notifications made while the clock was behind its furthest point
        furthest: dt.datetime | None = None
        gap_after: dt.datetime | None = None  # the first tick after the long stop
        previous: dt.datetime | None = None
        try:
            for now in plan:
                if now is RESTART:
                    engine.close()
                    engine = _engine_at(config)
                    continue
                if previous is not None and now - previous > dt.timedelta(days=2):
                    gap_after = now
                previous = now
                report = engine.tick(now)
                if furthest is not None and now < furthest and report.notifications:
                    behind.append(f"{now.isoformat()}: {report.notifications}")
                furthest = now if furthest is None else max(furthest, now)
        finally:
            engine.close()
        with contextlib.closing(connect(state)) as db:
            rows = [dict(r) for r in db.execute("SELECT * FROM outbox WHERE status != 'silenced'")]
            episodes = [dict(r) for r in db.execute("SELECT * FROM episodes")]
        sends = Counter((r["episode"], r["step"], r["repeat"], r["kind"]) for r in rows)
        steps_per_tick = Counter(
            (r["episode"], r["created_at"]) for r in rows if r["kind"] in ("reminder", "escalation")
        )
        per_pair = Counter((e["rule"], e["action"]) for e in episodes)
        spacing: list[str] = []
        by_step: dict[tuple[str, int], list[dt.datetime]] = defaultdict(list)
        for r in rows:
            if r["kind"] in ("reminder", "escalation"):
                by_step[(r["episode"], r["step"])].append(dt.datetime.fromisoformat(r["not_before"]))
        for (episode, step), times in by_step.items():
            times.sort()
            rule = episode.split("/")[0]
            for a, b in itertools.pairwise(times):
                if b - a < REPEATS[rule]:
                    spacing.append(f"{episode} step {step}: {a.isoformat()} -> {b.isoformat()}")
        result.check(
            "each (episode, step, repeat, kind) sent at most once", all(n == 1 for n in sends.values())
        )
        result.check("no tick sends two steps of one episode", all(n == 1 for n in steps_per_tick.values()))
        result.check(
            "no spurious resolution: one episode per (rule, action), none resolved",
            all(n == 1 for n in per_pair.values()) and not any(e["resolved_at"] for e in episodes),
        )
        result.check("nothing new while the clock is behind a time it already saw", not behind)
        result.check("repeats at least `repeat` apart in real time", not spacing)
        burst = 0
        if gap_after is not None:
            at_restart = [r for r in rows if dt.datetime.fromisoformat(r["created_at"]) == gap_after]
            per_episode = Counter(r["episode"] for r in at_restart if r["kind"] in ("reminder", "escalation"))
            burst = max(per_episode.values(), default=0)
            highest = _highest_steps(rows)
            result.check(
                "after the week-long stop: at most one step per episode, the current (highest) one",
                burst <= 1
                and bool(per_episode)
                and all(
                    r["step"] == highest[r["episode"]]
                    for r in at_restart
                    if r["kind"] in ("reminder", "escalation")
                ),
            )
        result.figures = {"kinds": dict(Counter(r["kind"] for r in rows))}
        result.details = {
            "ticks": len(ticks),
            "messages": len(rows),
            "episodes": len(episodes),
            "resolved_episodes": sum(1 for e in episodes if e["resolved_at"]),
            "max_copies_of_a_send": max(sends.values(), default=0),
            "sends_while_behind": len(behind),
            "repeat_spacing_violations": len(spacing),
        }
        if gap_after is not None:
            result.details["max_steps_per_episode_at_restart"] = burst
        problems = [*behind[:2], *spacing[:2]]
        result.held = (
            f"{len(rows)} messages, {len(episodes)} episodes, {result.details['resolved_episodes']} resolved; "
            f"max copies of one send {result.details['max_copies_of_a_send']}"
            + (f"; {burst} step per episode at the restart" if gap_after is not None else "")
            + (f"; e.g. {problems}" if problems else "")
        )
    return result


def _highest_steps(rows: list[dict[str, Any]]) -> dict[str, int]:
    highest: dict[str, int] = {}
    for r in rows:
        if r["kind"] in ("reminder", "escalation"):
            highest[r["episode"]] = max(highest.get(r["episode"], 0), r["step"])
    return highest


# --- 5. concurrency -----------------------------------------------------------------------------


def concurrency(actions: int, commands: int, churn_seconds: float) -> list[Result]:
    """CLI commands against the state file of a running daemon; a second daemon on the same state."""
    result = Result(
        "concurrency: CLI while the daemon runs",
        f"`sopwatch run` (loop mode, interval 1m, the shortest the config allows) over {actions} actions; "
        f"{commands} `silence add` / `outbox --json` / `silence list` in 2 parallel streams from the "
        "daemon's start (its first tick composes and commits every message)"
        + (
            f", spread over {churn_seconds:.0f} s while the register is rewritten every 2 s (repeat: 1 minute),"
            " so every tick writes"
            if churn_seconds
            else ""
        ),
    )
    second = Result(
        "concurrency: a second daemon",
        "`sopwatch run` and `sopwatch run --once` started on the state file of a running daemon",
    )
    with timed(result), workdir("concurrency") as folder:
        config = harness.write_maildir_setup(folder / "setup", actions, repeat="1 minute")
        state = config.parent / "state.db"
        log_path = folder / "daemon.log"
        outcomes: list[tuple[str, float, float, subprocess.CompletedProcess[str]]] = []
        lock = threading.Lock()
        stop_churn = threading.Event()

        pause = churn_seconds / max(1, commands // 2) if churn_seconds else 0.0

        def stream(kinds: list[str]) -> None:
            for i, kind in enumerate(kinds):
                if i and pause:
                    time.sleep(pause)  # spread over the churn window, so later ticks meet them too
                started = time.monotonic()
                if kind == "silence":
                    args = [
                        "silence",
                        "add",
                        "--action",
                        f"A-{i:04d}",
                        "--until",
                        "2030-01-01",
                        "--author",
                        "faults",
                        "--reason",
                        "concurrency",
                    ]
                elif kind == "outbox":
                    args = ["outbox", "--json"]
                else:
                    args = ["silence", "list"]
                done = sopwatch(config, *args)
                with lock:
                    outcomes.append((kind, started, time.monotonic(), done))

        def churn() -> None:
            rng = random.Random(5)
            register = config.parent / "register.csv"
            lines = register.read_text("utf-8").splitlines()
            while not stop_churn.wait(2.0):
                body = [
                    line.replace(",open,", ",done,") if rng.random() < 0.1 else line for line in lines[1:]
                ]
                tmp = register.with_suffix(".tmp")
                tmp.write_text("\n".join([lines[0], *body]) + "\n", encoding="utf-8")
                os.replace(tmp, register)

        kinds = ["silence", "outbox", "list"] * (commands // 3 + 1)
        kinds = kinds[:commands]
        with open(log_path, "wb") as log:
            spawned = time.monotonic()
            proc = spawn_daemon(config, log)
            try:
                threads = [threading.Thread(target=stream, args=(kinds[i::2],)) for i in range(2)]
                churner = threading.Thread(target=churn)
                if churn_seconds:
                    churner.start()
                for thread in threads:
                    thread.start()
                first_tick = wait_for(lambda: tick_lines(log_path) or proc.poll() is not None, 120)
                first_tick_at = time.monotonic()
                for thread in threads:
                    thread.join(timeout=600)
                if churn_seconds:
                    deadline = spawned + churn_seconds
                    while time.monotonic() < deadline and proc.poll() is None:
                        time.sleep(0.5)
                    stop_churn.set()
                    churner.join(timeout=10)
                # -- the second daemon, while the first is alive --
                with timed(second):
                    again = sopwatch(config, "run", "--once")
                    with open(folder / "second.log", "wb") as second_log:
                        loop = spawn_daemon(config, second_log)
                        try:
                            loop_code = loop.wait(timeout=60)
                        finally:
                            stop(loop)
                    loop_log = (folder / "second.log").read_text("utf-8", errors="replace")
                    clear = f"another sopwatch daemon (pid {proc.pid}) is running"
                    second.check(
                        "`run --once` exits 1 naming the running daemon's pid",
                        again.returncode == 1 and clear in again.stderr,
                    )
                    second.check(
                        "`run` (loop) exits 1 naming the running daemon's pid",
                        loop_code == 1 and clear in loop_log,
                    )
                    second.check("no traceback", "Traceback" not in again.stderr + loop_log)
                    second.check("the running daemon is unaffected", proc.poll() is None)
                    second.figures = {
                        "message": again.stderr.strip().splitlines()[-1] if again.stderr.strip() else ""
                    }
                    second.held = f"refused, exit 1: {second.figures['message']}"
                alive = proc.poll() is None
            finally:
                stop_churn.set()
                code = stop(proc)
        text = log_path.read_text("utf-8", errors="replace")
        ticks = tick_lines(log_path)
        failures = [o for o in outcomes if o[3].returncode != 0]
        locked = [o for o in outcomes if "locked" in (o[3].stderr + o[3].stdout).lower()]
        during_first_tick = sum(1 for _, start, _, _ in outcomes if start < first_tick_at)
        durations = sorted(end - start for _, start, end, _ in outcomes)
        with contextlib.closing(connect(state)) as db:
            silences = db.execute("SELECT COUNT(*) FROM silences").fetchone()[0]
        outbox_ok = all(
            all(json.loads(line) for line in o[3].stdout.splitlines()) for o in outcomes if o[0] == "outbox"
        )
        result.check("every CLI command exited 0", not failures)
        result.check("no `database is locked`", not locked and "locked" not in text.lower())
        result.check("every silence added is stored", silences == kinds.count("silence"))
        result.check("`outbox --json` printed valid JSON lines", outbox_ok)
        result.check(
            "some commands ran while the first tick was in progress",
            during_first_tick > 0 and bool(first_tick),
        )
        result.check(
            "the daemon never failed a tick and stopped with 0",
            alive and code == 0 and "failed; retrying" not in text,
        )
        result.check("integrity_check ok", integrity(state) == "ok")
        result.figures = {
            "commands": len(outcomes),
            "started_before_the_first_tick_ended": during_first_tick,
            "first_tick_s_after_spawn": round(first_tick_at - spawned, 1),
            "command_s_median": round(durations[len(durations) // 2], 2) if durations else None,
            "command_s_max": round(durations[-1], 2) if durations else None,
            "daemon_ticks": len(ticks),
            "failures": [f"{o[0]}: {o[3].stderr.strip()[-200:]}" for o in failures][:3],
        }
        result.held = (
            f"{len(outcomes) - len(failures)}/{len(outcomes)} commands exited 0 ({during_first_tick} started "
            f"before the first tick ended), slowest {result.figures['command_s_max']} s; "
            f"{len(ticks)} daemon ticks, none failed"
        )
    return [result, second]
