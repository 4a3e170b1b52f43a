"""The SQLite state file: observations, episodes, silences and the outbox.

``commit`` writes an evaluation's state changes and its outbox rows in one transaction; the outbox
key is unique, so a crash between evaluation and commit never enqueues twice.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sopwatch.core.evaluate import Evaluation, Notification
from sopwatch.core.state import Episode, HoldRecord, Observation, Silence, State, StepRecord
from sopwatch.errors import Location, StateError

SCHEMA = """
CREATE TABLE IF NOT EXISTS observations (
    action TEXT PRIMARY KEY, status TEXT NOT NULL, status_since TEXT NOT NULL,
    owner TEXT, owner_since TEXT NOT NULL, first_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS episodes (
    id TEXT PRIMARY KEY, rule TEXT NOT NULL, action TEXT NOT NULL, number INTEGER NOT NULL,
    fired_at TEXT NOT NULL, opened_at TEXT NOT NULL, steps TEXT NOT NULL, holds TEXT NOT NULL,
    resolved_at TEXT, resolution TEXT
);
CREATE INDEX IF NOT EXISTS episodes_open ON episodes (rule, action) WHERE resolved_at IS NULL;
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY, rule TEXT, action TEXT, conditions TEXT, ends_at TEXT NOT NULL,
    author TEXT NOT NULL, reason TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, episode TEXT NOT NULL, step INTEGER NOT NULL,
    repeat INTEGER NOT NULL, kind TEXT NOT NULL, channel TEXT NOT NULL, rule TEXT NOT NULL,
    action TEXT NOT NULL, recipients TEXT NOT NULL, created_at TEXT NOT NULL, not_before TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, sent_at TEXT,
    notification TEXT NOT NULL,
    sender TEXT, pending_to TEXT, accepted TEXT NOT NULL DEFAULT '[]', refused TEXT NOT NULL DEFAULT '{}',
    next_attempt TEXT, message BLOB, subject TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, not_before);
CREATE INDEX IF NOT EXISTS outbox_action ON outbox (action);
CREATE TABLE IF NOT EXISTS digests_sent (
    digest TEXT NOT NULL, recipient TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (digest, recipient)
);
CREATE TABLE IF NOT EXISTS heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL, summary TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

PENDING = ("pending", "retry")


@dataclass(frozen=True, slots=True)
class Composed:
    """A ready message for the outbox: envelope and bytes, fixed at enqueue time."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    # Recipients taken out before sending (allowed_domains), with why; stored as refused.
    refused: tuple[tuple[str, str], ...] = ()
    error: str | None = None  # why a message has no recipient left: its row's last_error
    subject: str | None = None  # its Subject: the first one about an action that goes out is the thread's


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    key: str
    sender: str
    recipients: tuple[str, ...]  # still to deliver
    data: bytes
    attempts: int


def outbox_key(n: Notification) -> str:
    return n.key + "|" + ",".join(sorted(a.lower() for a in n.to))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _steps_json(steps: dict[int, StepRecord]) -> str:
    return json.dumps(
        {
            str(i): {
                "sends": s.sends,
                "last_sent": _iso(s.last_sent),
                "to": s.to,
                "cc": s.cc,
                "silenced": s.silenced,
            }
            for i, s in steps.items()
        }
    )


def _steps(text: str) -> dict[int, StepRecord]:
    return {
        int(i): StepRecord(d["sends"], _dt(d["last_sent"]), tuple(d["to"]), tuple(d["cc"]), d["silenced"])
        for i, d in json.loads(text).items()
    }


def _holds_json(holds: dict[int, HoldRecord]) -> str:
    return json.dumps(
        {
            str(i): {
                "uid": h.uid,
                "step": h.step,
                "sequence": h.sequence,
                "start": _iso(h.start),
                "end": _iso(h.end),
                "attendees": h.attendees,
            }
            for i, h in holds.items()
        }
    )


def _holds(text: str) -> dict[int, HoldRecord]:
    return {
        int(i): HoldRecord(
            d["uid"], d["step"], d["sequence"], _dt(d["start"]), _dt(d["end"]), tuple(d["attendees"])
        )  # type: ignore[arg-type]
        for i, d in json.loads(text).items()
    }


def notification_json(n: Notification) -> dict[str, Any]:
    """The ``--json`` line of SPEC §5, plus sopwatch's own fields."""
    data: dict[str, Any] = {
        "at": n.at.isoformat(),
        "rule": n.rule,
        "action": n.action,
        "step": n.step,
        "repeat": n.repeat,
        "channel": n.channel,
        "kind": n.kind,
        "to": list(n.to),
        "cc": list(n.cc),
        "not_before": n.not_before.isoformat(),
        "episode": n.episode,
        "severity": n.severity,
        "template": n.template,
        "fire_at": n.fire_at.isoformat(),
    }
    if n.notes:
        data["notes"] = list(n.notes)
    if n.silenced_by:
        data["silenced_by"] = n.silenced_by
    if n.hold is not None:
        data["hold"] = {
            "uid": n.hold.uid,
            "sequence": n.hold.sequence,
            "start": n.hold.start.isoformat(),
            "end": n.hold.end.isoformat(),
        }
    return data


# Resolution stops the escalation (SPEC §2), including what still waits in the outbox (say, for
# Monday's delivery window): it is withdrawn, and kept for the record.
WITHDRAWN_UNSENT = "withdrawn: the episode resolved before this went out"
WITHDRAWN_UNTOLD = "withdrawn: nobody received what this would cancel or close"


@dataclass(frozen=True, slots=True)
class QueuedSend:
    """An outbox row of a step send that has not gone out (see ``StateStore.queued_sends``)."""

    id: int
    rule: str
    action: str
    episode: str
    step: int
    repeat: int
    kind: str


def _write_episodes(db: sqlite3.Connection, episodes: Iterable[Episode]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                episode.id,
                episode.rule,
                episode.action,
                episode.number,
                _iso(episode.fired_at),
                _iso(episode.opened_at),
                _steps_json(dict(episode.steps)),
                _holds_json(dict(episode.holds)),
                _iso(episode.resolved_at),
                episode.resolution,
            )
            for episode in episodes
        ],
    )


def _told_before(db: sqlite3.Connection, n: Notification) -> bool:
    """Whether anyone received the hold this cancels, or (for any other notice about a resolved
    episode) any email of that episode: else the notice has nothing to cancel or close."""
    received = "(status = 'sent' OR accepted != '[]')"
    if n.hold is not None:
        query = (
            f"SELECT 1 FROM outbox WHERE episode = ? AND channel = 'calendar' AND {received}"
            " AND json_extract(notification, '$.hold.uid') = ? LIMIT 1"
        )
        return db.execute(query, (n.episode, n.hold.uid)).fetchone() is not None
    query = f"SELECT 1 FROM outbox WHERE episode = ? AND channel = 'email' AND {received} LIMIT 1"
    return db.execute(query, (n.episode,)).fetchone() is not None


def _refuse_a_foreign_database(db: sqlite3.Connection, path: str) -> bool:
    """A `state:` that names another database (the register's, say) is not read as an empty state,
    and must not get our tables added. True when the file already holds a state, False when it
    holds no table at all (new, empty, or a daemon creating it right now)."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "episodes" not in tables:
        listing = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StateError(
            f"not a sopwatch state file: a database with other tables ({listing}); "
            "give `state:` a file of its own",
            Location(path),
        )
    return bool(tables)


def stored_thread_subjects(path: Path, actions: Iterable[str]) -> dict[str, str]:
    """``StateStore.thread_subjects`` of the state file at ``path``, read-only; {} without one."""
    store = open_for_reading(path)
    if store is None:
        return {}
    try:
        return store.thread_subjects(actions)
    finally:
        store.close()


def open_for_reading(path: Path) -> StateStore | None:
    """The state file opened read-only, None when there is no state yet: no file, or a database
    without tables, as a daemon starting beside the command has just created it. A command that
    lists or evaluates reads that as an empty state rather than failing on a missing table."""
    if not path.exists():
        return None
    store = StateStore(path, readonly=True)
    if not store.holds_state:
        store.close()
        return None
    return store


def _create_schema(db: sqlite3.Connection) -> None:
    """The tables, in one transaction: a command reading beside a starting daemon sees all or none.

    Whether an older file needs a column is decided before that transaction (``executescript``
    commits whatever is open), so a second process may add it first: then this tries once more.
    """
    for attempt in (1, 2):
        try:
            db.executescript(f"BEGIN IMMEDIATE;\n{_migrations(db)}{SCHEMA}\nCOMMIT;")
            return
        except sqlite3.OperationalError as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if attempt == 2 or "duplicate column" not in str(exc):
                raise


def _migrations(db: sqlite3.Connection) -> str:
    """What brings an older state file's tables up to ``SCHEMA``, which only adds missing tables."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    return "ALTER TABLE outbox ADD COLUMN subject TEXT;\n" if columns and "subject" not in columns else ""


INSTANCE_KEY = "instance"


class StateStore:
    """Narrow interface over the state file: load the state, commit an evaluation, manage silences."""

    def __init__(self, path: Path | str, *, readonly: bool = False) -> None:
        self.path = str(path)
        try:
            if readonly:
                self.db = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, timeout=30, isolation_level=None
                )
                # Opening reads nothing: a file that is not a database must fail here, not mid-command.
                self.holds_state = _refuse_a_foreign_database(self.db, self.path)
            else:
                # `state: demo-out/state.db` in a fresh setup: SQLite creates the file, not its folder.
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                _refuse_a_foreign_database(self.db, self.path)
                self.db.execute("PRAGMA journal_mode=WAL")
                _create_schema(self.db)
                self.holds_state = True
            self.db.execute("PRAGMA busy_timeout=30000")
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StateError(f"cannot open the state file: {exc}", Location(self.path)) from None

    def close(self) -> None:
        self.db.close()

    def load(self) -> State:
        try:
            return self._load()
        except sqlite3.DatabaseError as exc:  # a database, but not a state file (e.g. the register's)
            raise StateError(f"cannot read the state file: {exc}", Location(self.path)) from None

    def _load(self) -> State:
        db = self.db
        observations = {
            row[0]: Observation(row[1], _dt(row[2]), row[3], _dt(row[4]), _dt(row[5]))  # type: ignore[arg-type]
            for row in db.execute(
                "SELECT action, status, status_since, owner, owner_since, first_seen FROM observations"
            )
        }
        episodes: dict[tuple[str, str], Episode] = {}
        for row in db.execute(
            "SELECT id, rule, action, number, fired_at, opened_at, steps, holds FROM episodes WHERE resolved_at IS NULL"
        ):
            episode = Episode(
                row[0], row[1], row[2], row[3], _dt(row[4]), _dt(row[5]), _steps(row[6]), _holds(row[7])
            )  # type: ignore[arg-type]
            episodes[episode.key] = episode
        counts = {
            (rule, action): number
            for rule, action, number in db.execute(
                "SELECT rule, action, MAX(number) FROM episodes GROUP BY rule, action"
            )
        }
        return State(observations, episodes, counts, tuple(self.silences()))

    def commit(self, evaluation: Evaluation, composed: Mapping[str, Composed] | None = None) -> int:
        """Write state changes and enqueue notifications atomically; returns rows enqueued.

        ``composed`` maps ``outbox_key`` to the message to deliver; notifications without one
        (digest items, silenced records) are stored for the record only.
        """
        composed = composed or {}
        db = self.db
        enqueued = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO observations VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (a, o.status, _iso(o.status_since), o.owner, _iso(o.owner_since), _iso(o.first_seen))
                    for a, o in evaluation.observations.items()
                ],
            )
            _write_episodes(db, (*evaluation.episodes, *evaluation.resolved))
            resolved = {episode.id for episode in evaluation.resolved}
            for episode_id in resolved:
                db.execute(
                    "UPDATE outbox SET status = 'withdrawn', last_error = ? WHERE episode = ? AND status IN (?, ?)",
                    (WITHDRAWN_UNSENT, episode_id, *PENDING),
                )
            for n in evaluation.notifications:
                key = outbox_key(n)
                message = composed.get(key)
                if n.silenced_by:
                    status = "silenced"
                elif n.episode in resolved and not _told_before(db, n):
                    status = "withdrawn"  # a cancel or resolved notice for something nobody received
                elif n.channel == "digest":
                    status = "digest"
                elif message is None or not message.recipients:
                    status = "failed"  # nobody to send to: kept, visible in `sopwatch outbox`
                else:
                    status = "pending"
                cursor = db.execute(
                    "INSERT OR IGNORE INTO outbox (key, episode, step, repeat, kind, channel, rule, action,"
                    " recipients, created_at, not_before, status, notification, sender, pending_to, message,"
                    " refused, last_error, subject)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        n.episode,
                        n.step,
                        n.repeat,
                        n.kind,
                        n.channel,
                        n.rule,
                        n.action,
                        json.dumps({"to": n.to, "cc": n.cc}),
                        _iso(n.at),
                        _iso(n.not_before),
                        status,
                        json.dumps(notification_json(n)),
                        message.sender if message else None,
                        json.dumps(message.recipients) if message else None,
                        message.data if message else None,
                        json.dumps(dict(message.refused)) if message else "{}",
                        WITHDRAWN_UNTOLD if status == "withdrawn" else message.error if message else None,
                        message.subject if message else None,
                    ),
                )
                enqueued += cursor.rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return enqueued

    def thread_subjects(self, actions: Iterable[str]) -> dict[str, str]:
        """The subject of the first message about each of ``actions`` that went out or still waits
        to: every later message about the action keeps it (SPEC §3). A withdrawn, silenced or
        failed first message sets nothing, since nobody received it."""
        wanted = sorted(set(actions))
        found: dict[str, str] = {}
        try:
            for start in range(0, len(wanted), 500):  # SQLite's limit on parameters
                chunk = wanted[start : start + 500]
                query = (
                    f"SELECT action, subject FROM outbox WHERE action IN ({', '.join('?' * len(chunk))})"
                    " AND subject IS NOT NULL AND status IN ('sent', 'pending', 'retry') ORDER BY id DESC"
                )
                found.update(self.db.execute(query, chunk).fetchall())  # the earliest row wins
        except sqlite3.OperationalError:  # a state file from before subjects, opened read-only
            return {}
        return found

    def enqueue(
        self, key: str, kind: str, message: Composed, now: datetime, notification: Mapping[str, Any]
    ) -> bool:
        """Enqueue a message that is not a rule notification (digest, admin notice); idempotent by key."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO outbox (key, episode, step, repeat, kind, channel, rule, action, recipients,"
            " created_at, not_before, status, notification, sender, pending_to, message)"
            " VALUES (?, '', 0, 0, ?, 'email', ?, '', ?, ?, ?, 'pending', ?, ?, ?, ?)",
            (
                key,
                kind,
                notification.get("rule", kind),
                json.dumps({"to": message.recipients, "cc": []}),
                _iso(now),
                _iso(now),
                json.dumps(dict(notification)),
                message.sender,
                json.dumps(message.recipients),
                message.data,
            ),
        )
        return cursor.rowcount > 0

    def queued_sends(self) -> list[QueuedSend]:
        """Step sends (reminders, escalations, holds) not yet gone out, in queue order."""
        return [
            QueuedSend(*row)
            for row in self.db.execute(
                "SELECT id, rule, action, episode, step, repeat, kind FROM outbox WHERE status IN (?, ?)"
                " AND kind IN ('reminder', 'escalation', 'hold') ORDER BY id",
                PENDING,
            )
        ]

    def silence_queued(self, silenced: Mapping[int, Silence], episodes: Iterable[Episode]) -> None:
        """Hold back queued rows a silence added after they were queued now covers, and store the
        ``episodes`` that no longer count those sends as made, in one transaction (SPEC §2: a
        silenced notification is recorded, not sent, and not sent later; the current step is
        notified when the silence ends, if it never was)."""
        with self.transaction():
            # The row gives up its key: the send after the silence ends has the same one.
            self.db.executemany(
                "UPDATE outbox SET status = 'silenced', last_error = ?, key = key || ?"
                " WHERE id = ? AND status IN (?, ?)",
                [
                    (
                        f"silenced by {s.id} ({s.reason}) before it went out",
                        f"|held back by {s.id}",
                        row,
                        *PENDING,
                    )
                    for row, s in silenced.items()
                ],
            )
            _write_episodes(self.db, episodes)

    def due(self, now: datetime, limit: int = 500) -> list[OutboxRow]:
        """Pending messages whose window has opened and whose retry time has come."""
        rows = self.db.execute(
            "SELECT id, key, sender, pending_to, message, attempts, not_before, next_attempt FROM outbox"
            " WHERE status IN ('pending', 'retry') ORDER BY id",
        ).fetchall()
        due = []
        for row in rows:
            # ISO strings with offsets do not sort as instants, so compare parsed values.
            if _dt(row[6]) > now or (row[7] and _dt(row[7]) > now):  # type: ignore[operator]
                continue
            due.append(OutboxRow(row[0], row[1], row[2], tuple(json.loads(row[3])), row[4], row[5]))
            if len(due) >= limit:
                break
        return due

    def record_delivery(
        self,
        row: OutboxRow,
        accepted: Iterable[str],
        refused: Mapping[str, str],
        retry: tuple[str, ...],
        error: str | None,
        now: datetime,
        next_attempt: datetime | None,
    ) -> str:
        """Store one message's outcome; returns its new status (sent, retry or failed)."""
        accepted = tuple(accepted)
        previous = self.db.execute("SELECT accepted, refused FROM outbox WHERE id = ?", (row.id,)).fetchone()
        all_accepted = json.loads(previous[0]) + list(accepted)
        all_refused = {**json.loads(previous[1]), **refused}
        if retry and next_attempt is not None:
            status = "retry"
        elif retry:
            status = "failed"  # out of attempts
            all_refused.update({r: error or "temporary failures exhausted the retries" for r in retry})
        else:
            status = "sent" if all_accepted else "failed"
        if not error and not refused and status != "retry" and all_refused:
            # Sent to some, refused for good by others on an earlier try: keep saying so.
            error = "refused: " + "; ".join(f"{k}: {v}" for k, v in all_refused.items())
        self.db.execute(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, accepted = ?, refused = ?, pending_to = ?,"
            " next_attempt = ?, last_error = ?, sent_at = COALESCE(sent_at, ?) WHERE id = ?",
            (
                status,
                json.dumps(all_accepted),
                json.dumps(all_refused),
                json.dumps(retry if status == "retry" else ()),
                _iso(next_attempt) if status == "retry" else None,
                error or ("; ".join(f"{k}: {v}" for k, v in refused.items()) or None),
                _iso(now) if accepted else None,
                row.id,
            ),
        )
        return status

    def digest_items(self) -> list[dict[str, Any]]:
        """Digest-channel notifications not yet listed in a digest."""
        return [
            {**json.loads(row[1]), "id": row[0]}
            for row in self.db.execute(
                "SELECT id, notification FROM outbox WHERE status = 'digest' ORDER BY id"
            )
        ]

    def mark_digested(self, ids: Iterable[int], now: datetime) -> None:
        self.db.executemany(
            "UPDATE outbox SET status = 'digested', sent_at = ? WHERE id = ?", [(_iso(now), i) for i in ids]
        )

    def last_digest(self, digest: str, recipient: str) -> datetime | None:
        row = self.db.execute(
            "SELECT at FROM digests_sent WHERE digest = ? AND recipient = ?", (digest, recipient)
        ).fetchone()
        return _dt(row[0]) if row else None

    def set_last_digest(self, digest: str, recipient: str, at: datetime) -> None:
        self.db.execute("INSERT OR REPLACE INTO digests_sent VALUES (?, ?, ?)", (digest, recipient, _iso(at)))

    def transaction(self):  # type: ignore[no-untyped-def]
        """``with store.transaction():`` groups writes atomically."""
        return _Transaction(self.db)

    def beat(self, now: datetime, summary: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO heartbeat VALUES (1, ?, ?)", (_iso(now), summary))

    def meta(self, key: str) -> str | None:
        """A small named value the daemon keeps across restarts (e.g. the register guard's count)."""
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # a read-only store of an older state file
            return None
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def instance(self) -> str:
        """A random token of this state file, made with it, that message ids and hold UIDs include.

        They are derived from episode numbers, which start again with a new state file: without
        it, a reset (or another installation) would reuse the ids of messages already sent, and
        mail systems drop a message whose id they have seen. A state file from before the token
        gets an empty one, so that the holds it sent keep their UIDs.
        """
        token = self.meta(INSTANCE_KEY)
        if token is None:
            used = self.db.execute("SELECT EXISTS (SELECT 1 FROM outbox) OR EXISTS (SELECT 1 FROM episodes)")
            token = "" if used.fetchone()[0] else secrets.token_hex(6)
            self.set_meta(INSTANCE_KEY, token)
        return token

    def last_beat(self) -> datetime | None:
        row = self.db.execute("SELECT at FROM heartbeat WHERE id = 1").fetchone()
        return _dt(row[0]) if row else None

    def outbox(self, status: str | None = None) -> list[dict[str, Any]]:
        query = (
            "SELECT id, key, status, attempts, not_before, sent_at, last_error, notification, accepted, refused"
            " FROM outbox"
        )
        args: Iterable[Any] = ()
        if status:
            query += " WHERE status = ?"
            args = (status,)
        rows = []
        for row in self.db.execute(query + " ORDER BY id", tuple(args)):
            data = json.loads(row[7])
            data.update(id=row[0], status=row[2], attempts=row[3], sent_at=row[5], last_error=row[6])
            data.update(accepted=json.loads(row[8]), refused=json.loads(row[9]))
            rows.append(data)
        return rows

    def silences(self) -> list[Silence]:
        return [
            Silence(
                id=row[0],
                rule=row[1],
                action=row[2],
                when=json.loads(row[3]) if row[3] else None,
                ends_at=_dt(row[4]),  # type: ignore[arg-type]
                author=row[5],
                reason=row[6],
                created_at=_dt(row[7]),
            )
            for row in self.db.execute(
                "SELECT id, rule, action, conditions, ends_at, author, reason, created_at FROM silences ORDER BY created_at"
            )
        ]

    def add_silence(self, silence: Silence) -> None:
        self.db.execute(
            "INSERT INTO silences VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                silence.id,
                silence.rule,
                silence.action,
                json.dumps(silence.when) if silence.when else None,
                _iso(silence.ends_at),
                silence.author,
                silence.reason,
                _iso(silence.created_at),
            ),
        )

    def expire_silence(self, silence_id: str, now: datetime) -> bool:
        cursor = self.db.execute("UPDATE silences SET ends_at = ? WHERE id = ?", (_iso(now), silence_id))
        return cursor.rowcount > 0


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
