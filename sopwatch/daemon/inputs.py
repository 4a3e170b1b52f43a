"""Reload the setup only when one of its files changed, and keep the last good one on error."""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sopwatch.collector import long_lived_load
from sopwatch.config.loader import Setup, load_setup
from sopwatch.errors import ProblemList, SopwatchError

log = logging.getLogger("sopwatch")

Fingerprint = tuple[tuple[str, int, int, int], ...]
# Files up to this size are also fingerprinted by content: an edit that keeps the size (a 2 becomes
# a 3) within the file system's timestamp granularity would otherwise go unnoticed. Larger files
# (a big register) are not read every tick.
CONTENT_CHECK_BYTES = 1024 * 1024


def _stat(path: Path) -> tuple[str, int, int, int]:
    try:
        info = path.stat()
        checksum = -1
        if info.st_size <= CONTENT_CHECK_BYTES and path.is_file():
            checksum = zlib.crc32(path.read_bytes())
    except OSError:
        return (str(path), -1, -1, -1)
    return (str(path), info.st_mtime_ns, info.st_size, checksum)


def watched_files(setup: Setup, config_path: Path) -> list[Path]:
    """Every file whose change should trigger a reload: config, rules, people, calendar, register, templates."""
    config = setup.loaded.config
    files = [config_path, *setup.rule_paths, setup.loaded.path(config.register_.path)]
    for relative in (config.people, config.calendar):
        if relative:
            files.append(setup.loaded.path(os.fspath(relative)))
    holidays = config.business_calendar.holidays
    if holidays is not None:
        files.extend(setup.loaded.path(ics) for ics in holidays.ics)
    for entry in config.rules:
        folder = setup.loaded.path(entry)
        if folder.is_dir():
            files.append(folder)  # a new rules file changes the folder's mtime
    if config.templates:
        folder = setup.loaded.path(config.templates)
        if folder.is_dir():
            files.append(folder)
            files.extend(sorted(folder.glob("*.j2")))
    return files


@dataclass
class SetupWatcher:
    """Holds the last good setup; ``current()`` reloads when a watched file changed."""

    config_path: Path
    on_rejected: Callable[[str], None] = lambda message: None
    loader: Callable[[Path], Setup] = load_setup

    def __post_init__(self) -> None:
        self.setup: Setup | None = None
        self.fingerprint: Fingerprint = ()
        self.rejected: Fingerprint = ()

    def current(self) -> Setup:
        before: Fingerprint = ()
        if self.setup is not None:
            before = tuple(_stat(p) for p in watched_files(self.setup, self.config_path))
            if before == self.fingerprint or before == self.rejected:
                return self.setup
        try:
            with long_lived_load():  # lives until the next reload: out of the collector's way
                setup = self.loader(self.config_path)
        except SopwatchError as exc:
            if self.setup is None:
                raise  # nothing good to keep: the daemon cannot start
            if _changed(before, tuple(_stat(p) for p in watched_files(self.setup, self.config_path))):
                log.warning("a file changed while it was read; reading it again at the next tick")
                return self.setup
            message = _describe(exc)
            self.rejected = before
            log.error("rejected the new configuration, keeping the last good one:\n%s", message)
            self.on_rejected(message)
            return self.setup
        after = tuple(_stat(p) for p in watched_files(setup, self.config_path))
        if self.setup is not None and _changed(before, after):
            # Written while it was read (a register still being saved): what was read may be half a
            # file. Keep the last good setup; the fingerprint still differs, so the next tick reads again.
            log.warning("a file changed while it was read; reading it again at the next tick")
            return self.setup
        if self.setup is not None:
            log.info("reloaded the configuration from %s", self.config_path)
        self.setup = setup
        self.fingerprint = after
        self.rejected = ()
        return setup


def _changed(before: Fingerprint, after: Fingerprint) -> bool:
    """Whether a file stat'ed in ``before`` looks different in ``after``."""
    earlier = {entry[0]: entry for entry in before}
    return any(entry[0] in earlier and earlier[entry[0]] != entry for entry in after)


def _describe(exc: SopwatchError) -> str:
    if isinstance(exc, ProblemList):
        return "\n".join(str(p) for p in exc.problems)
    return str(exc)
