"""``sopwatch demo``: the daemon's code path over a simulated month on the bundled example.

The clock is accelerated (one tick per simulated hour), delivery goes to a maildir under the output
folder, and scripted register edits show resolutions, hold updates and cancellations.
"""

from __future__ import annotations

import email
import email.policy
import shutil
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sopwatch.adapters.state_store import INSTANCE_KEY, StateStore
from sopwatch.config.loader import Setup, load_setup
from sopwatch.config.yamlsource import load_yaml_file
from sopwatch.core.model import Action, Snapshot
from sopwatch.core.simulate import ticks
from sopwatch.daemon.engine import Engine
from sopwatch.errors import ConfigError, SopwatchError
from sopwatch.timeparse import parse_instant


@dataclass(frozen=True)
class Change:
    at: datetime
    action: str
    fields: dict[str, Any]


@dataclass
class DemoResult:
    out: Path
    eml: list[Path] = field(default_factory=list)
    ics: list[Path] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    by_recipient: Counter[str] = field(default_factory=Counter)
    repeats: int = 0


def load_changes(path: Path | None, setup: Setup) -> list[Change]:
    if path is None or not path.exists():
        return []
    doc = load_yaml_file(path)
    changes = []
    for index, entry in enumerate(doc.data.get("changes", []) if isinstance(doc.data, dict) else []):
        try:
            at = parse_instant(str(entry["at"]), setup.loaded.tz)
            changes.append(Change(at, str(entry["action"]), dict(entry["set"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise doc.error(("changes", index), f"a change needs at, action and set ({exc})") from None
    return sorted(changes, key=lambda c: c.at)


def _play(changes: list[Change], setup: Setup):  # type: ignore[no-untyped-def]
    """A snapshot hook applying every change whose instant has come."""
    tz = setup.loaded.tz

    def hook(snapshot: Snapshot, now: datetime) -> Snapshot:
        due = [c for c in changes if c.at <= now]
        if not due:
            return snapshot
        actions = dict(snapshot.actions)
        for change in due:
            action = actions.get(change.action)
            if action is None:
                continue
            fields = dict(action.fields)
            for name, value in change.fields.items():
                if name in ("status_changed_at", "due") and isinstance(value, str):
                    value = parse_instant(value, tz) if "T" in value else datetime.fromisoformat(value).date()
                fields[name] = value
            actions[change.action] = Action(action.id, fields, action.row)
        return replace(snapshot, actions=actions)

    return hook


# A demo replaces a non-empty --out folder only if an earlier demo wrote it (this file in it), so
# that `--out .`, `--out ~` or a production state folder cannot be wiped.
DEMO_MARKER = ".sopwatch-demo"


def run_demo(config_path: Path, out: Path, start: datetime, end: datetime, every: timedelta) -> DemoResult:
    if out.exists():
        if not out.is_dir():
            raise SopwatchError(f"{out}: --out must be a folder")
        if any(out.iterdir()) and not (out / DEMO_MARKER).is_file():
            raise SopwatchError(
                f"{out}: not empty and not the output of an earlier demo; choose a new or empty folder"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / DEMO_MARKER).write_text("written by `sopwatch demo`, which may replace this folder\n")
    maildir = out / "maildir"

    def loader(path: Path) -> Setup:
        setup = load_setup(path)
        config = setup.loaded.config
        delivery = config.delivery.model_copy(update={"type": "maildir", "path": str(maildir.resolve())})
        config = config.model_copy(update={"delivery": delivery, "state": str((out / "state.db").resolve())})
        return replace(setup, loaded=replace(setup.loaded, config=config))

    setup = loader(config_path)
    changes = load_changes(config_path.parent / "example" / "demo-changes.yaml", setup)
    # A fixed token instead of a random one: the same demo gives the same message ids every run.
    store = StateStore(out / "state.db")
    try:
        store.set_meta(INSTANCE_KEY, "demo")
    finally:
        store.close()
    engine = Engine(config_path, environ={}, snapshot_hook=_play(changes, setup), loader=loader)
    try:
        for now in ticks(start, end, every):
            engine.tick(now)
    finally:
        engine.close()
    return _export(maildir, out)


def _export(maildir: Path, out: Path) -> DemoResult:
    """Copy every delivered message to ``eml/`` and every calendar part to ``ics/``, and count them."""
    result = DemoResult(out)
    (out / "eml").mkdir()
    (out / "ics").mkdir()
    files = sorted((maildir / "new").iterdir()) if (maildir / "new").exists() else []
    if not files:
        raise ConfigError("the demo delivered no messages", None)
    messages = []
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        # Message-IDs are derived from the notification, unlike maildir file names: the same demo
        # numbers its files the same way on every run.
        messages.append((message["Date"].datetime, str(message["Message-ID"]), path.name, message))
    messages.sort(key=lambda m: m[:3])
    for number, (_date, _id, _name, message) in enumerate(messages, 1):
        kind = message.get("X-Sopwatch-Kind", "message")
        action = message.get("X-Sopwatch-Action", "") or "digest"
        stem = f"{number:04d}-{kind}-{action}".replace("/", "_")
        eml = out / "eml" / f"{stem}.eml"
        eml.write_bytes(message.as_bytes())
        result.eml.append(eml)
        result.by_kind[kind] += 1
        result.by_rule[message.get("X-Sopwatch-Rule", "(digest)")] += 1
        if int(message.get("X-Sopwatch-Repeat", "0")) > 0:
            result.repeats += 1
        for address in message["To"].addresses if message["To"] else ():
            result.by_recipient[address.addr_spec] += 1
        for part in message.walk():
            if part.get_content_type() == "text/calendar" and part.get_filename() is None:
                ics = out / "ics" / f"{stem}.ics"
                ics.write_bytes(part.get_payload(decode=True))
                result.ics.append(ics)
    return result
