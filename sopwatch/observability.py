"""Observability: Prometheus metrics, the heartbeat check behind ``sopwatch health``, JSON logs.

The metrics live in a dedicated ``CollectorRegistry`` (never prometheus_client's global one), so
tests and embedding applications can run several engines in one process. The engine calls the
hooks of ``EngineMetrics``; without ``metrics:`` in the config it has the no-op ``NULL_METRICS``.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sopwatch import __version__
from sopwatch.core.timeexpr import ExpressionError, parse_duration
from sopwatch.errors import SopwatchError
from sopwatch.timeparse import interval_seconds

if TYPE_CHECKING:
    from sopwatch.adapters.state_store import StateStore
    from sopwatch.config.schema import MetricsConfig
    from sopwatch.core.evaluate import Evaluation

log = logging.getLogger("sopwatch")

F = TypeVar("F", bound=Callable[..., Any])

# Seconds; a tick's evaluation takes milliseconds on small registers and seconds on 100k actions.
EVALUATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class EngineMetrics:
    """The hooks the engine and the daemon loop call; this base class records nothing."""

    def evaluated(self, evaluation: Evaluation, seconds: float) -> None:
        """An evaluation was committed: its notifications were enqueued (or recorded as silenced)."""

    def delivered(self, store: StateStore, row_id: int, status: str) -> None:
        """One outbox row was tried: ``status`` is sent, retry or failed."""

    def ticked(self, store: StateStore, now: datetime) -> None:
        """A tick completed."""

    def tick_failed(self) -> None:
        """A tick raised; the daemon goes on."""


NULL_METRICS = EngineMetrics()


def _never_raises(method: F) -> F:
    """A metrics bug must never cost a tick or a delivery: log it and go on."""

    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception:
            log.warning("updating the metrics failed", exc_info=True)
            return None

    return wrapper  # type: ignore[return-value]


class PrometheusMetrics(EngineMetrics):
    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            Info,
            disable_created_metrics,
        )

        disable_created_metrics()  # the *_created series only double the scrape for a daemon
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.notifications = Counter(
            "sopwatch_notifications",
            "Notifications by rule, channel and result (enqueued, silenced, sent, retry, failed).",
            ["rule", "channel", "result"],
            registry=r,
        )
        self.ticks = Counter("sopwatch_ticks", "Daemon ticks by result (ok, failed).", ["result"], registry=r)
        self.outbox_depth = Gauge(
            "sopwatch_outbox_depth", "Outbox rows still to deliver (pending and retry).", registry=r
        )
        self.oldest_pending_age = Gauge(
            "sopwatch_outbox_oldest_pending_age_seconds",
            "How long the oldest deliverable outbox row has waited since its delivery window opened "
            "(0 when nothing is overdue for delivery).",
            registry=r,
        )
        self.evaluation_duration = Histogram(
            "sopwatch_evaluation_duration_seconds",
            "Time to evaluate the rules over the register in one tick.",
            buckets=EVALUATION_BUCKETS,
            registry=r,
        )
        self.last_tick = Gauge(
            "sopwatch_last_successful_tick_timestamp_seconds",
            "Unix time of the last tick that completed.",
            registry=r,
        )
        Info("sopwatch_build", "sopwatch's version.", registry=r).info({"version": __version__})
        for result in ("ok", "failed"):
            self.ticks.labels(result)  # present from the first scrape, at 0
        self.server: Any = None

    @_never_raises
    def evaluated(self, evaluation: Evaluation, seconds: float) -> None:
        self.evaluation_duration.observe(seconds)
        for n in evaluation.notifications:
            result = "silenced" if n.silenced_by else "enqueued"
            self.notifications.labels(n.rule, n.channel, result).inc()

    @_never_raises
    def delivered(self, store: StateStore, row_id: int, status: str) -> None:
        row = store.db.execute("SELECT rule, channel FROM outbox WHERE id = ?", (row_id,)).fetchone()
        rule, channel = row if row else ("unknown", "email")
        self.notifications.labels(rule, channel, status).inc()

    @_never_raises
    def ticked(self, store: StateStore, now: datetime) -> None:
        self.ticks.labels("ok").inc()
        self.last_tick.set(now.timestamp())
        rows = store.db.execute(
            "SELECT not_before FROM outbox WHERE status IN ('pending', 'retry')"
        ).fetchall()
        self.outbox_depth.set(len(rows))
        opened = [datetime.fromisoformat(r[0]) for r in rows if r[0]]
        overdue = [now - at for at in opened if at <= now]
        self.oldest_pending_age.set(max(overdue).total_seconds() if overdue else 0)

    @_never_raises
    def tick_failed(self) -> None:
        self.ticks.labels("failed").inc()

    def serve(self, port: int, host: str) -> None:
        from prometheus_client import start_http_server

        try:
            result = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise SopwatchError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
        self.server = result[0] if isinstance(result, tuple) else None
        log.info("metrics on http://%s:%s/metrics", host, port)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def serve_metrics(config: MetricsConfig | None) -> PrometheusMetrics | None:
    """Start the /metrics endpoint when the config asks for it."""
    if config is None:
        return None
    metrics = PrometheusMetrics()
    metrics.serve(config.port, config.host)
    return metrics


# -- health ---------------------------------------------------------------------------------


def parse_age(text: str) -> float:
    """``--max-age``: a duration such as ``15m``, ``1h`` or ``2 hours``, or seconds (``90s``, ``90``)."""
    seconds_only = re.fullmatch(r"(\d+)\s*(s|secs?|seconds?)?", text.strip().lower())
    if seconds_only:
        seconds = float(seconds_only.group(1))
    else:
        try:
            seconds = interval_seconds(parse_duration(text))
        except ExpressionError as exc:
            raise ValueError(f"{exc}; seconds work too, e.g. 900s") from None
    if seconds <= 0:
        raise ValueError("the maximum age must be longer than zero")
    return seconds


def last_heartbeat(state_path: Path) -> datetime | None:
    """The daemon's last completed tick, read without a lock and without writing; None if none."""
    from sopwatch.adapters.state_store import open_for_reading

    store = open_for_reading(state_path)  # raises StateError when it cannot be read
    if store is None:
        return None
    try:
        return store.last_beat()
    except sqlite3.OperationalError:  # a state file written before the heartbeat table existed
        return None
    finally:
        store.close()


def human_seconds(seconds: float) -> str:
    """``3725`` -> ``1h 2m 5s``."""
    whole = round(max(0.0, seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    if secs or not parts:
        parts.append(f"{secs}s")
    return " ".join(parts)


# -- logs -----------------------------------------------------------------------------------

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, and any extra."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key not in data:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def configure_logging(level: str, log_format: str = "text") -> None:
    """Readable lines (the default) or JSON lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
