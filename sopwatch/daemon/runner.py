"""The daemon loop: evaluate every ``interval``, catching and logging per tick; stop cleanly on signals."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO

import schedule

from sopwatch.daemon.engine import Engine
from sopwatch.errors import StateError
from sopwatch.observability import serve_metrics
from sopwatch.timeparse import interval_seconds

log = logging.getLogger("sopwatch")


class StateLock:
    """One daemon per state file: a second one refuses to start with a clear message."""

    def __init__(self, state_path: Path) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        self.handle: IO[str] | None = None

    def __enter__(self) -> StateLock:
        self.handle = open(self.path, "a+")  # held for the daemon's lifetime
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            owner = self.handle.read().strip() or "unknown"
            self.handle.close()
            raise StateError(
                f"another sopwatch daemon (pid {owner}) is running on {self.path.with_suffix('')}"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


class Daemon:
    def __init__(self, engine: Engine, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.clock = clock
        self.stopping = False

    def tick(self) -> None:
        """One tick; an error is logged and the daemon goes on (the next tick may succeed)."""
        now = self.clock().astimezone(self.engine.setup.loaded.tz)
        try:
            report = self.engine.tick(now)
        except Exception:
            log.exception("tick at %s failed; retrying at the next interval", now.isoformat())
            self.engine.metrics.tick_failed()
            return
        self.engine.metrics.ticked(self.engine.store, now)
        log.info(report.line())

    def stop(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s: stopping after the current tick", signal.Signals(signum).name)
        self.stopping = True

    def run(self, once: bool = False) -> None:
        loaded = self.engine.setup.loaded
        with StateLock(loaded.path(loaded.config.state)):
            if once:
                self.tick()
                return
            metrics = serve_metrics(loaded.config.metrics)  # None unless `metrics:` is configured
            if metrics is not None:
                self.engine.metrics = metrics
            previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
            scheduler = schedule.Scheduler()
            seconds = max(1, int(interval_seconds(loaded.interval)))
            scheduler.every(seconds).seconds.do(self.tick)
            log.info("sopwatch daemon started: every %ss, state %s", seconds, loaded.config.state)
            try:
                self.tick()
                while not self.stopping:
                    scheduler.run_pending()
                    idle = scheduler.idle_seconds
                    time.sleep(max(0.05, min(1.0, idle if idle is not None else 1.0)))
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                if metrics is not None:
                    metrics.close()
                log.info("sopwatch daemon stopped")
