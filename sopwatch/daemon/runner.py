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
from typing import IO, Any

import schedule

from sopwatch.daemon.engine import Engine
from sopwatch.errors import SopwatchError, StateError
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


class StopSignals:
    """SIGTERM and SIGINT turned into a request to stop after the current tick.

    The command installs them before the setup loads (a large register takes seconds), so a stop
    during start-up also ends the daemon cleanly, with exit status 0, instead of by the signals'
    default action.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s: stopping after the current tick", signal.Signals(signum).name)
        self.requested = True


class Daemon:
    """Ticks ``engine`` every interval until ``signals`` asks it to stop (entered by the caller
    before the engine loaded its setup, so a stop during start-up counts too)."""

    def __init__(
        self,
        engine: Engine,
        signals: StopSignals,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.signals = signals
        self.clock = clock
        self.scheduler = schedule.Scheduler()
        self.every = 0  # seconds between ticks as scheduled; 0 until the loop starts

    def tick(self) -> bool:
        """One tick; an error is logged and the daemon goes on (the next tick may succeed).

        Returns whether the tick completed.
        """
        now = self.clock().astimezone(self.engine.setup.loaded.tz)
        try:
            report = self.engine.tick(now)
        except Exception:
            log.exception("tick at %s failed; retrying at the next interval", now.isoformat())
            self.engine.metrics.tick_failed()
            return False
        self.engine.metrics.ticked(self.engine.store, now)
        log.info(report.line())
        if self.every:  # the loop runs (not `run --once`)
            self.schedule_ticks()
        return True

    def schedule_ticks(self) -> None:
        """Tick every ``interval:`` of the current setup: at the start of the loop, and after each
        tick, so that a reloaded interval takes effect from the next tick."""
        seconds = max(1, int(interval_seconds(self.engine.setup.loaded.interval)))
        if seconds == self.every:
            return
        if self.every:
            log.info("interval changed: now every %ss (was %ss)", seconds, self.every)
        self.scheduler.clear()
        self.scheduler.every(seconds).seconds.do(self.tick)
        self.every = seconds

    def run(self, once: bool = False) -> None:
        if self.signals.requested:
            log.info("sopwatch daemon stopped before its first tick")
            return
        loaded = self.engine.setup.loaded
        with StateLock(loaded.state_path):
            if once:
                if not self.tick():  # cron and systemd timers see the failure in the exit status
                    raise SopwatchError("the tick failed (see the log above); nothing was lost")
                return
            metrics = serve_metrics(loaded.config.metrics)  # None unless `metrics:` is configured
            if metrics is not None:
                self.engine.metrics = metrics
            self.schedule_ticks()
            log.info("sopwatch daemon started: every %ss, state %s", self.every, loaded.config.state)
            try:
                self.tick()
                while not self.signals.requested:
                    self.scheduler.run_pending()
                    idle = self.scheduler.idle_seconds
                    time.sleep(max(0.05, min(1.0, idle if idle is not None else 1.0)))
            finally:
                if metrics is not None:
                    metrics.close()
                log.info("sopwatch daemon stopped")
