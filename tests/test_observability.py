"""Observability: Prometheus metrics scraped from a running daemon, ``sopwatch health``, JSON logs.

The daemon runs on the real clock as ``python -m sopwatch run``, with maildir delivery, a business
calendar open around the clock and every action due three days ago, so its first tick fires and
delivers everything.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import CliRunner
from overdue_setup import write_overdue_setup
from prometheus_client.parser import text_string_to_metric_families

from sopwatch.adapters.state_store import Composed, StateStore
from sopwatch.observability import JsonFormatter, PrometheusMetrics, human_seconds, parse_age

ACTIONS = 3
ENV = {**os.environ, "PYTHONIOENCODING": "utf-8"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_setup(folder: Path, *, metrics_port: int | None = None, interval: str = "1m") -> Path:
    people = [("ann", "Ann", "ann@example.com", "bob"), ("bob", "Bob", "bob@example.com", None)]
    config = (
        f"interval: {interval}\n"
        "state: state.db\n"
        "delivery: {type: maildir, path: outbox/, from: sopwatch <sopwatch@example.com>}\n"
        + (f"metrics: {{port: {metrics_port}, host: 127.0.0.1}}\n" if metrics_port else "")
    )
    return write_overdue_setup(folder, people, ["ann"] * ACTIONS, config)


def start_daemon(
    config: Path, log: Path, daemons: list[subprocess.Popen[bytes]], *args: str
) -> subprocess.Popen[bytes]:
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sopwatch", "run", "--config", str(config), *args],
            stdout=subprocess.DEVNULL,
            stderr=handle,
            env=ENV,
        )
    daemons.append(proc)
    return proc


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    """Every sample as {(name, sorted labels): value}; None while the endpoint is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode("utf-8")
    except OSError:
        return None
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


def test_metrics_health_and_json_logs_of_a_running_daemon(
    tmp_path: Path, daemons: list[subprocess.Popen[bytes]], run_sopwatch: CliRunner
) -> None:
    port = free_port()
    config = write_setup(tmp_path / "setup", metrics_port=port)
    log = tmp_path / "daemon.log"
    before = time.time()
    proc = start_daemon(config, log, daemons, "--log-format", "json")

    def ticked() -> dict | None:
        samples = scrape(port)
        if samples and samples.get(("sopwatch_last_successful_tick_timestamp_seconds", ()), 0) > 0:
            return samples
        assert proc.poll() is None, log.read_text(encoding="utf-8")
        return None

    samples = wait_for(ticked, 30, "the first tick in the metrics")
    last_tick = samples[("sopwatch_last_successful_tick_timestamp_seconds", ())]
    assert before - 1 <= last_tick <= time.time() + 1
    labels = (("channel", "email"), ("result", "enqueued"), ("rule", "overdue"))
    assert samples[("sopwatch_notifications_total", labels)] == ACTIONS
    sent = (("channel", "email"), ("result", "sent"), ("rule", "overdue"))
    assert samples[("sopwatch_notifications_total", sent)] == ACTIONS
    assert samples[("sopwatch_ticks_total", (("result", "ok"),))] >= 1
    assert samples[("sopwatch_ticks_total", (("result", "failed"),))] == 0
    assert samples[("sopwatch_outbox_depth", ())] == 0
    assert samples[("sopwatch_outbox_oldest_pending_age_seconds", ())] == 0
    assert samples[("sopwatch_evaluation_duration_seconds_count", ())] >= 1
    assert len(list((tmp_path / "setup" / "outbox" / "new").iterdir())) == ACTIONS

    # health reads the heartbeat while the daemon holds its lock
    healthy = run_sopwatch("health", "--config", str(config))
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.startswith("ok: the last tick was")

    stop(proc)
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert records, "the daemon logged nothing"
    for record in records:
        assert {"time", "level", "message"} <= set(record)
        assert datetime.fromisoformat(record["time"]).tzinfo is not None
    ticks = [r for r in records if r["message"].startswith("tick ")]
    assert ticks and ticks[0]["level"] == "INFO"
    assert f"{ACTIONS} sent" in ticks[0]["message"]


def set_beat(state: Path, at: datetime | None) -> None:
    with sqlite3.connect(state) as db:
        if at is None:
            db.execute("DELETE FROM heartbeat")
        else:
            db.execute("UPDATE heartbeat SET at = ? WHERE id = 1", (at.isoformat(),))
    db.close()


def test_health_after_a_tick_when_stale_and_when_absent(tmp_path: Path, run_sopwatch: CliRunner) -> None:
    config = write_setup(tmp_path / "setup", interval="5m")
    state = tmp_path / "setup" / "state.db"

    absent = run_sopwatch("health", "--config", str(config))
    assert absent.returncode == 1
    assert "no completed tick" in absent.stderr and "Traceback" not in absent.stderr

    once = run_sopwatch("run", "--once", "--config", str(config))
    assert once.returncode == 0, once.stderr
    assert run_sopwatch("health", "--config", str(config)).returncode == 0

    set_beat(state, datetime.now(UTC) - timedelta(minutes=20))
    stale = run_sopwatch("health", "--config", str(config))  # default: 3 x 5m
    assert stale.returncode == 1
    assert "unhealthy: the last tick was 20m" in stale.stderr and "15m" in stale.stderr
    assert run_sopwatch("health", "--max-age", "30m", "--config", str(config)).returncode == 0
    assert run_sopwatch("health", "--max-age", "900s", "--config", str(config)).returncode == 1

    # A beat ahead of the clock is no proof of life: a clock set back, or a demo's simulated month.
    set_beat(state, datetime.now(UTC) + timedelta(days=30))
    future = run_sopwatch("health", "--config", str(config))
    assert future.returncode == 1 and "in the future" in future.stderr, future.stderr
    set_beat(state, datetime.now(UTC) + timedelta(seconds=30))  # another host's clock, a little ahead
    assert run_sopwatch("health", "--config", str(config)).returncode == 0

    set_beat(state, None)
    gone = run_sopwatch("health", "--config", str(config))
    assert gone.returncode == 1 and "no completed tick" in gone.stderr

    bad = run_sopwatch("health", "--max-age", "soon", "--config", str(config))
    assert bad.returncode == 2 and "--max-age" in bad.stderr


def test_a_metrics_port_in_use_is_a_clear_error(tmp_path: Path, run_sopwatch: CliRunner) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = write_setup(tmp_path / "setup", metrics_port=busy.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "sopwatch", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert "cannot serve metrics on 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_use_their_own_registry_and_measure_the_outbox(tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    first, second = PrometheusMetrics(), PrometheusMetrics()  # no duplicate-timeseries error
    assert first.registry is not REGISTRY and first.registry is not second.registry
    assert REGISTRY.get_sample_value("sopwatch_outbox_depth") is None

    store = StateStore(tmp_path / "state.db")
    now = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)
    message = Composed("sopwatch@example.com", ("ann@example.com",), b"Subject: x\r\n\r\nx\r\n")
    store.enqueue("a", "admin", message, now - timedelta(minutes=10), {"rule": "admin"})
    store.enqueue("b", "admin", message, now + timedelta(hours=1), {"rule": "admin"})  # window not open
    first.ticked(store, now)
    store.close()
    value = first.registry.get_sample_value
    assert value("sopwatch_outbox_depth") == 2
    assert value("sopwatch_outbox_oldest_pending_age_seconds") == 600
    assert value("sopwatch_last_successful_tick_timestamp_seconds") == now.timestamp()
    assert value("sopwatch_ticks_total", {"result": "ok"}) == 1
    first.tick_failed()
    assert value("sopwatch_ticks_total", {"result": "failed"}) == 1


def test_json_log_lines_carry_extras_and_exceptions() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("sopwatch", logging.WARNING, __file__, 1, "sent %d", (3,), None)
    record.rule = "overdue"
    data = json.loads(formatter.format(record))
    assert data["level"] == "WARNING" and data["message"] == "sent 3" and data["rule"] == "overdue"
    assert datetime.fromisoformat(data["time"]).tzinfo is not None
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("sopwatch", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    data = json.loads(formatter.format(record))
    assert "ValueError: boom" in data["exception"] and "\n" not in formatter.format(record)


def test_run_once_logs_text_lines_by_default(tmp_path: Path, run_sopwatch: CliRunner) -> None:
    config = write_setup(tmp_path / "setup")
    result = run_sopwatch("run", "--once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    tick = [line for line in result.stderr.splitlines() if " INFO tick " in line]
    assert tick and not tick[0].startswith("{")


def test_max_age_and_durations() -> None:
    assert parse_age("15m") == 900 and parse_age("900s") == 900 and parse_age("90") == 90
    assert parse_age("2 hours") == 7200
    for bad in ("0", "soon", "2 business days"):
        with pytest.raises(ValueError):
            parse_age(bad)
    assert human_seconds(3725) == "1h 2m 5s" and human_seconds(0) == "0s"


def test_a_stop_while_the_setup_loads_ends_the_daemon_cleanly(
    tmp_path: Path, daemons: list[subprocess.Popen[bytes]]
) -> None:
    """SIGTERM during start-up (loading 200k rows takes seconds): exit 0, no tick, nothing sent."""
    config = write_setup(tmp_path / "s")
    due = (date.today() - timedelta(days=3)).isoformat()
    with (config.parent / "register.csv").open("w", encoding="utf-8") as handle:
        handle.write("id,title,status,owner,due\n")
        handle.writelines(f"A-{i},Action {i},open,ann,{due}\n" for i in range(200_000))
    log = tmp_path / "daemon.log"
    proc = start_daemon(config, log, daemons)
    wait_for(lambda: "loading the setup" in log.read_text("utf-8"), 60, "the daemon to start loading")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    text = log.read_text("utf-8")
    assert "received SIGTERM" in text
    assert "stopped before its first tick" in text, text
    assert " tick " not in text.replace("first tick", "")
    assert not (config.parent / "outbox" / "new").exists() or not any(
        (config.parent / "outbox" / "new").iterdir()
    )
