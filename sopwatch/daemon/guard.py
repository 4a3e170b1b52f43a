"""The register shrink guard: a register that suddenly lost most of its rows is not believed.

An action that leaves the register resolves its episodes and cancels their calendar holds. A
register truncated by a failed export, a half-written file or a wrong sheet would therefore close
every open episode and cancel every hold at once. The guard compares each newly loaded snapshot with
the last accepted one and refuses it when its action count dropped by more than
``register.max_shrink`` (an empty register after a non-empty one included), or when a CSV register
ends in the middle of a row (a writer still at work). While refusing, the daemon keeps evaluating the
last accepted setup as a whole (register, config, rules); the admin hears about it once, and once more
when a snapshot within bounds is accepted again.

The last accepted count is kept in the state file, so a restarted daemon (or ``run --once`` from
cron) compares with what it saw before the restart. A register that fails to read at all (a corrupt
or locked XLSX, an undecodable CSV) never gets this far: the setup watcher keeps the last good setup.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from pathlib import Path

from sopwatch.adapters.state_store import StateStore
from sopwatch.config.loader import Setup

log = logging.getLogger("sopwatch")

COUNT_KEY = "register_guard.actions"


class RegisterGuard:
    """``admit(setup)`` gives the setup to evaluate: the new one, or the last accepted one."""

    def __init__(self, store: StateStore, notify: Callable[[str, str], None]) -> None:
        self.store = store
        self.notify = notify
        self.accepted: Setup | None = None
        self.refused: Setup | None = None  # the last setup refused, judged once
        self.refusing = False
        saved = store.meta(COUNT_KEY)
        self.baseline: int | None = int(saved) if saved is not None and saved.isdigit() else None

    def admit(self, setup: Setup) -> Setup | None:
        """``setup`` if its register is believable, else the last accepted setup (None when this
        process has accepted none yet: nothing should be evaluated then)."""
        if setup is self.accepted:
            return setup
        if setup is self.refused:
            return self.accepted
        reason = self.judge(setup)
        if reason is None:
            self._accept(setup)
            return setup
        self.refused = setup
        self._refuse(reason)
        return self.accepted

    def previous_count(self) -> int | None:
        return len(self.accepted.snapshot) if self.accepted is not None else self.baseline

    def judge(self, setup: Setup) -> str | None:
        """Why the setup's register snapshot is refused, or None."""
        previous = self.previous_count()
        if previous is None:
            return None  # the first snapshot this state file sees: nothing to compare with
        cut = half_written(setup)
        if cut is not None:
            return cut
        limit = setup.loaded.config.register_.max_shrink
        count = len(setup.snapshot)
        if previous == 0 or count >= previous or limit >= 1:
            return None
        if count == 0:
            return f"the register has no actions, after {previous} in the last accepted snapshot"
        dropped = (previous - count) / previous
        if dropped <= limit:
            return None
        return (
            f"the register has {count} actions, {dropped:.0%} fewer than the {previous} of the last "
            f"accepted snapshot (register.max_shrink: {limit:g})"
        )

    def _accept(self, setup: Setup) -> None:
        count = len(setup.snapshot)
        if self.refusing:
            log.warning("register snapshot accepted again: %d actions", count)
            self.notify(
                "register accepted again",
                f"The register is back within bounds ({count} actions) and is evaluated again, "
                "with the configuration and rules as they are now.",
            )
        self.refusing = False
        self.refused = None
        self.accepted = setup
        if count != self.baseline:
            self.store.set_meta(COUNT_KEY, str(count))
            self.baseline = count

    def _refuse(self, reason: str) -> None:
        if self.accepted is not None:
            kept = (
                f"sopwatch keeps evaluating the last accepted setup ({len(self.accepted.snapshot)} "
                "actions, with the configuration and rules of that moment): no episode is resolved and "
                "no calendar hold is cancelled because of the missing rows. Edits to the config, rules, "
                "people or templates made since take effect once the register is accepted again."
            )
        else:
            kept = (
                "No register has been accepted since the daemon started, so nothing is evaluated until "
                "one is; mail already in the outbox is still delivered."
            )
        log.error("refused the new register snapshot: %s; keeping the last accepted one", reason)
        if self.refusing:
            return  # the admin already knows; a fix or a recovery is what they hear about next
        self.refusing = True
        self.notify(
            "register snapshot refused, keeping the last accepted one",
            f"Refused the new register snapshot: {reason}.\n\n{kept}\n\n"
            "It is accepted again as soon as a snapshot is back within bounds. If the register "
            "really shrank, set register.max_shrink: 1 in the config until it has been read once, "
            "then set it back.",
        )


def half_written(setup: Setup) -> str | None:
    """Why a CSV register looks cut off mid-write, or None.

    A writer still at work leaves a file that ends without a line break, inside a quoted value or
    with a last row shorter than the header. Only then is the file parsed again, so the usual case
    (a complete file) costs one read of its last byte.
    """
    cfg = setup.loaded.config.register_
    if cfg.type != "csv":
        return None
    path = Path(setup.loaded.base_dir) / cfg.path
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            if handle.tell() == 0:
                return None
            handle.seek(-1, 2)
            if handle.read(1) in (b"\n", b"\r"):
                return None
        with path.open(encoding=cfg.encoding, newline="") as text:
            content = text.read()
    except (OSError, UnicodeDecodeError, LookupError):
        return None  # the loader reports what it cannot read
    try:
        for _row in csv.reader(io.StringIO(content), delimiter=cfg.delimiter, strict=True):
            pass
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            return f"{path} ends inside a quoted value without a line break: it looks half-written"
    try:
        every_row = list(csv.reader(io.StringIO(content), delimiter=cfg.delimiter))
    except csv.Error:
        return None  # malformed, not cut off: the loader reports it
    rows = [row for row in every_row if row]
    if len(rows) >= 2 and len(rows[-1]) < len(rows[0]):
        return (
            f"{path} ends without a line break in a row with {len(rows[-1])} of {len(rows[0])} "
            "columns: it looks half-written (if it is complete, end it with a line break)"
        )
    # Cut inside its last column: every column is there but the last row does not load.
    last = len(every_row)
    if any(problem.location is not None and problem.location.row == last for problem in setup.problems):
        return (
            f"{path} ends without a line break in a row that does not load: it looks half-written "
            "(if it is complete, end it with a line break)"
        )
    return None
