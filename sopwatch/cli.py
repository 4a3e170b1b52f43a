"""The command line: a thin client of the library. Errors become ``file:line:col: message``, exit 1."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from sopwatch import __version__
from sopwatch.adapters.cycles import describe_cycles
from sopwatch.adapters.state_store import (
    StateStore,
    notification_json,
    open_for_reading,
    stored_thread_subjects,
)
from sopwatch.collector import collector_paused, settle_long_lived
from sopwatch.config.loader import Setup, load_setup, with_silence_matchers
from sopwatch.core.evaluate import Notification, evaluate
from sopwatch.core.model import CycleCalendar
from sopwatch.core.state import State
from sopwatch.errors import ProblemList, SopwatchError
from sopwatch.timeparse import parse_instant, parse_step

if TYPE_CHECKING:
    from sopwatch.core.explain import StepView
    from sopwatch.daemon.policy import Filtered
    from sopwatch.messages.notification import ThreadSubjects


@dataclass
class Context:
    """The one object every command shares: where the config is, and the loaded setup."""

    config_path: Path = Path("config.yaml")
    every_cell: bool = False  # validate: check every cell of every register row
    _setup: Setup | None = field(default=None, repr=False)

    @property
    def setup(self) -> Setup:
        if self._setup is None:
            with collector_paused():
                self._setup = load_setup(self.config_path, every_cell=self.every_cell)
                # The setup lives as long as this command. Frozen before the collector resumes,
                # or its first collection would scan every object the load made, once more.
                settle_long_lived()
        return self._setup

    def instant(self, text: str | None) -> datetime:
        tz = self.setup.loaded.tz
        if text is None:
            return datetime.now(UTC).astimezone(tz)
        try:
            return parse_instant(text, tz)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None


def with_config(command: Callable[..., Any]) -> Callable[..., Any]:
    """Every command takes ``--config`` (SPEC §5); it lands on the shared Context."""

    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=Path("config.yaml"),
        show_default=True,
        help="The config file.",
    )
    @click.pass_context
    @wraps(command)
    def wrapper(ctx: click.Context, config_path: Path, **kwargs: Any) -> Any:
        obj = ctx.ensure_object(Context)
        obj.config_path = config_path
        return ctx.invoke(command, obj, **kwargs)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sopwatch")
def cli() -> None:
    """sopwatch keeps S&OP decisions moving: rules over the action register, reminders, escalations."""


def warn_problems(setup: Setup) -> None:
    for problem in setup.problems:
        click.echo(f"warning: {problem} (row skipped)", err=True)


def _load_state(setup: Setup) -> State:
    """The stored state, read without changing anything; a fresh state when there is none yet."""
    store = open_for_reading(setup.loaded.state_path)
    if store is None:
        return State()
    try:
        return with_silence_matchers(store.load(), setup)
    finally:
        store.close()


@cli.command()
@with_config
def validate(obj: Context) -> None:
    """Check config, rules, directory, calendar and register; list every problem."""
    obj.every_cell = True
    setup = obj.setup
    from sopwatch.daemon.policy import domain_problems

    problems = [*setup.problems, *domain_problems(setup), *_template_problems(setup)]
    for problem in problems:
        click.echo(str(problem))
    env = setup.environment
    summary = (
        f"{len(setup.rules)} rules in {len(setup.rule_paths)} files, {len(setup.snapshot)} actions, "
        f"{len(env.directory.people)} people, {len(env.cycles.cycles)} cycles"
    )
    for line in describe_cycles(env.cycles, setup.loaded.tz):
        click.echo(f"cycle {line}")
    if problems:
        click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}; {summary}")
        sys.exit(1)
    click.echo(f"ok: {summary}")


def _template_problems(setup: Setup) -> list[SopwatchError]:
    """Template overrides that do not compile or do not render with a realistic context."""
    from sopwatch.messages.context import sample_context
    from sopwatch.messages.templates import TemplateSet

    config = setup.loaded.config
    if not config.templates:
        return []
    folder = setup.loaded.path(config.templates)
    now = datetime(2026, 12, 9, 10, 0, tzinfo=setup.loaded.tz)  # a fixed sample instant
    return TemplateSet(folder).validate(sample_context(org_name="sopwatch", org_tz=setup.loaded.tz, now=now))


@cli.command()
@click.option("--at", "at_text", metavar="T", help="Evaluate at this instant (default: now).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_config
def check(obj: Context, at_text: str | None, as_json: bool) -> None:
    """One evaluation against the stored state: prints what would be sent; changes nothing."""
    setup = obj.setup
    warn_problems(setup)
    now = obj.instant(at_text)
    state = _load_state(setup)
    result = evaluate(setup.snapshot, setup.rules, setup.environment, state, now, plan_ahead=False)
    _print_notifications(setup, _as_sent(setup, result.notifications), as_json, stored_threads=True)
    if result.deferred:
        click.echo(f"note: {result.deferred} more wait for the next tick (max_messages_per_tick)", err=True)


@cli.command(name="simulate")
@click.option("--from", "start_text", required=True, metavar="T", help="First instant.")
@click.option("--to", "end_text", required=True, metavar="T", help="Last instant (inclusive).")
@click.option("--every", default="1h", show_default=True, help="Step between evaluations.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_config
def simulate_command(obj: Context, start_text: str, end_text: str, every: str, as_json: bool) -> None:
    """Replay time from a fresh state with the register as it is; prints every notification."""
    from sopwatch.core.simulate import simulate  # only this command replays time

    setup = obj.setup
    try:
        step = parse_step(every)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--every") from None
    start, end = obj.instant(start_text), obj.instant(end_text)
    if end < start:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    warn_problems(setup)
    sent: list[Notification] = []
    capped = 0  # ticks at which max_messages_per_tick held sends back to a later tick
    for evaluation in simulate(setup.snapshot, setup.rules, setup.environment, start, end, step):
        sent.extend(evaluation.notifications)
        capped += evaluation.deferred > 0
    as_sent = _as_sent(setup, sent)
    _print_notifications(setup, as_sent, as_json, stored_threads=False)  # a fresh state
    if not as_json:
        _print_summary([filtered.notification for _original, filtered in as_sent])
    if capped:
        cap = setup.loaded.config.max_messages_per_tick
        click.echo(
            f"note: at {capped} tick(s) max_messages_per_tick ({cap}) held sends back to a later tick",
            err=True,
        )


@cli.command(name="explain")
@click.argument("action_id", metavar="ACTION")
@click.option("--at", "at_text", metavar="T", help="Explain at this instant (default: now).")
@with_config
def explain_command(obj: Context, action_id: str, at_text: str | None) -> None:
    """Per rule: matched or why not, fire_at, current and next step, silences, recipients."""
    from sopwatch.core.explain import explain  # only this command explains

    setup = obj.setup
    if action_id not in setup.snapshot.actions:
        raise SopwatchError(f"no action {action_id!r} in the register")
    now = obj.instant(at_text)
    tz = setup.loaded.tz
    action = setup.snapshot.actions[action_id]
    click.echo(f"{action_id}: {action.title}  [{action.status}] at {_local(now, tz)}")
    cycle = setup.environment.cycles.cycles.get(action.fields.get("cycle") or "")
    if cycle is not None:
        click.echo("cycle " + describe_cycles(CycleCalendar({cycle.id: cycle}), tz)[0])
    for view in explain(action_id, setup.snapshot, setup.rules, setup.environment, _load_state(setup), now):
        verdict = "FIRES" if view.matched else "no"
        click.echo(f"\n{view.rule} ({view.severity}): {verdict}")
        if view.reason:
            click.echo(f"  why not: {view.reason}")
        if view.fire_at is not None:
            click.echo(f"  fire_at: {_local(view.fire_at, tz)}")
        if view.episode:
            click.echo(f"  episode: {view.episode}")
        if view.current is not None:
            click.echo(f"  current step: {_step_line(view.current, tz)}")
        if view.next is not None:
            click.echo(f"  next step:    {_step_line(view.next, tz)}")
        if view.next_repeat is not None:
            click.echo(f"  next repeat:  {_local(view.next_repeat, tz)}")
        for silence in view.silences:
            click.echo(f"  silenced by {silence}")
        for step in view.steps:
            click.echo(f"  step {step.index} recipients: {_recipients(step.to, step.cc)}")
            for note in step.notes:
                click.echo(f"    note: {note}")


def _step_line(step: StepView, tz: Any) -> str:
    due = _local(step.due, tz) if step.due else "-"
    return f"{step.index} due {due} via {step.via} (sent {step.sends}x)"


def _local(instant: datetime, tz: Any) -> str:
    return instant.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _recipients(to: Iterable[str], cc: Iterable[str]) -> str:
    text = ", ".join(to) or "(nobody)"
    cc_text = ", ".join(cc)
    return f"{text}  cc {cc_text}" if cc_text else text


def _as_sent(setup: Setup, notifications: Iterable[Notification]) -> list[tuple[Notification, Filtered]]:
    """Each notification beside what the daemon would send: no recipient outside ``allowed_domains``."""
    from sopwatch.daemon.policy import filter_notification  # the daemon's small filter (no engine)

    allowed = setup.loaded.config.allowed_domains
    return [(n, filter_notification(n, allowed)) for n in notifications]


def _print_notifications(
    setup: Setup, sent: list[tuple[Notification, Filtered]], as_json: bool, *, stored_threads: bool
) -> None:
    subject_of = None  # only --json prints subjects
    if as_json:
        from sopwatch.messages.notification import ThreadSubjects  # jinja2 only for --json

        actions = {n.action for n, _ in sent}
        stored = stored_thread_subjects(setup.loaded.state_path, actions) if stored_threads else {}
        subject_of = _subjects(setup, ThreadSubjects(stored))
    tz = setup.loaded.tz
    for original, filtered in sent:
        n, refused = filtered.notification, list(filtered.refused)
        if subject_of is not None:
            data = notification_json(n)
            # With nobody left the daemon sends nothing; the subject is that of the unfiltered message.
            goes_out = bool(n.to or n.cc) and n.silenced_by is None
            data["subject"] = subject_of(n if n.to or n.cc else original, goes_out)
            if refused:
                data["refused"] = refused
            click.echo(json.dumps(data, ensure_ascii=False))
            continue
        when = _local(n.at, tz)
        wait = f" (sends {_local(n.not_before, tz)})" if n.not_before != n.at else ""
        silenced = f" [silenced by {n.silenced_by}]" if n.silenced_by else ""
        kind = n.kind if n.channel == "email" else f"{n.kind} ({n.channel})"
        click.echo(
            f"{when}{wait}  {n.rule:<24} {n.action:<8} step {n.step} rep {n.repeat}  {kind:<20} "
            f"-> {_recipients(n.to, n.cc)}{silenced}"
        )
        notes = list(n.notes)
        if refused:
            notes.append(f"not sent to {', '.join(refused)}: outside allowed_domains")
        for note in notes:
            click.echo(f"{'':>19}note: {note}")


def _subjects(setup: Setup, threads: ThreadSubjects) -> Callable[[Notification, bool], str]:
    """The subject each notification's email carries: the daemon's templates, context and instant,
    and, as the daemon does, the subject of the first message about an action for every later one
    (``threads``: from the state file, else from the first one in this output that goes out)."""
    # Imported here, so a check without --json never loads jinja2.
    from sopwatch.messages.notification import MessageSetup, rendered_at, template_names, templates_folder
    from sopwatch.messages.templates import TemplateSet

    templates = TemplateSet(templates_folder(setup))
    messages = MessageSetup.of(setup)
    actions = setup.snapshot.actions

    def subject_of(n: Notification, goes_out: bool) -> str:
        pinned = threads.of(n.action) if n.channel != "digest" else None
        if pinned is not None:
            return pinned
        name, builtin = template_names(n)
        context = messages.context(n, actions.get(n.action), rendered_at(n, n.at))
        subject = templates.subject(name, context, builtin=builtin)
        if goes_out and n.channel != "digest":
            threads.going_out(n.action, subject)
        return subject

    return subject_of


def _print_summary(notifications: list[Notification]) -> None:
    by_rule = Counter(n.rule for n in notifications)
    by_kind = Counter(n.kind for n in notifications)
    recipients = Counter(address for n in notifications for address in n.to)
    click.echo(f"\n{len(notifications)} notifications")
    click.echo("by rule:      " + ", ".join(f"{k} {v}" for k, v in sorted(by_rule.items())))
    click.echo("by kind:      " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))
    click.echo("by recipient: " + ", ".join(f"{k} {v}" for k, v in recipients.most_common()))


def _open_store(obj: Context) -> StateStore:
    return StateStore(obj.setup.loaded.state_path)


def _read_store(obj: Context) -> StateStore | None:
    """The state file opened for reading, None if there is none yet: listing creates nothing (a
    mistyped ``state:`` path says so instead of leaving an empty state file behind)."""
    path = obj.setup.loaded.state_path
    store = open_for_reading(path)
    if store is None:
        click.echo(f"note: no state file at {path} yet", err=True)
    return store


@cli.command()
@click.option("--once", is_flag=True, help="One tick, then exit (for cron or systemd timers).")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="Readable lines, or one JSON object per line (time, level, logger, message, extras).",
)
@with_config
def run(obj: Context, once: bool, log_level: str, log_format: str) -> None:
    """The daemon: evaluate every interval, deliver the outbox, send digests on schedule."""
    from sopwatch.daemon.engine import Engine
    from sopwatch.daemon.runner import Daemon, StopSignals
    from sopwatch.observability import configure_logging

    configure_logging(log_level, log_format)
    # Signals first: a stop while a large setup loads ends the daemon cleanly too.
    with StopSignals() as signals:
        logging.getLogger("sopwatch").info("loading the setup from %s", obj.config_path)
        engine = Engine(obj.config_path, environ=os.environ)
        try:
            Daemon(engine, signals=signals).run(once=once)
        finally:
            engine.close()


@cli.group()
def silence() -> None:
    """Manage silences: matching notifications are recorded, not sent."""


@silence.command("add")
@click.option("--rule", help="Only this rule.")
@click.option("--action", "action_id", help="Only this action.")
@click.option("--where", "where", multiple=True, metavar="FIELD=VALUE", help="Field condition (repeatable).")
@click.option("--until", "until", required=True, metavar="T", help="When the silence ends.")
@click.option("--author", required=True)
@click.option("--reason", required=True)
@with_config
def silence_add(
    obj: Context,
    rule: str | None,
    action_id: str | None,
    where: tuple[str, ...],
    until: str,
    author: str,
    reason: str,
) -> None:
    """Add a silence."""
    import uuid

    from sopwatch.core.state import Silence
    from sopwatch.messages.render import one_line

    if not (rule or action_id or where):
        raise click.UsageError("a silence needs at least one of --rule, --action, --where")
    # Who silenced what, and why, is what `silence list` shows the next person: never blank.
    for value, hint in ((author, "--author"), (reason, "--reason")):
        if not value.strip():
            raise click.BadParameter("must not be empty", param_hint=hint)
    author, reason = one_line(author, limit=200), one_line(reason, limit=500)
    setup = obj.setup
    if rule and setup.rules.get(rule) is None:
        raise SopwatchError(f"no rule {rule!r} (rules: {', '.join(r.id for r in setup.rules)})")
    conditions: dict[str, str] = {}
    for item in where:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected FIELD=VALUE, got {item!r}", param_hint="--where")
        conditions[name.strip()] = value.strip()
    if conditions:
        from sopwatch.config.loader import compile_silence_matcher

        compile_silence_matcher(conditions, setup)
    now = obj.instant(None)
    ends = obj.instant(until)
    if ends <= now:
        raise click.BadParameter("--until must be in the future", param_hint="--until")
    entry = Silence(
        id=uuid.uuid4().hex[:8],
        ends_at=ends,
        author=author,
        reason=reason,
        rule=rule,
        action=action_id,
        when=conditions or None,
        created_at=now,
    )
    store = _open_store(obj)
    try:
        store.add_silence(entry)
    finally:
        store.close()
    click.echo(f"silence {entry.id} added until {_local(ends, setup.loaded.tz)}")


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@with_config
def silence_list(obj: Context, show_all: bool) -> None:
    """List silences."""
    now = obj.instant(None)
    store = _read_store(obj)
    try:
        silences = store.silences() if store is not None else []
    finally:
        if store is not None:
            store.close()
    tz = obj.setup.loaded.tz
    for s in silences:
        if not show_all and s.ends_at <= now:
            continue
        scope = ", ".join(
            part
            for part in (
                f"rule={s.rule}" if s.rule else "",
                f"action={s.action}" if s.action else "",
                " ".join(f"{k}={v}" for k, v in (s.when or {}).items()),
            )
            if part
        )
        state = "active" if s.ends_at > now else "expired"
        click.echo(f"{s.id}  {state:<7} until {_local(s.ends_at, tz)}  {scope}  by {s.author}: {s.reason}")


@silence.command("expire")
@click.argument("silence_id")
@with_config
def silence_expire(obj: Context, silence_id: str) -> None:
    """End a silence now."""
    path = obj.setup.loaded.state_path
    if not path.exists():
        raise SopwatchError(f"no silence {silence_id!r} (no state file at {path})")
    store = _open_store(obj)
    try:
        found = store.expire_silence(silence_id, obj.instant(None))
    finally:
        store.close()
    if not found:
        raise SopwatchError(f"no silence {silence_id!r}")
    click.echo(f"silence {silence_id} expired")


@cli.command()
@click.option(
    "--status",
    type=click.Choice(["pending", "retry", "sent", "failed", "silenced", "withdrawn", "digest", "digested"]),
    help="Only rows with this status.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_config
def outbox(obj: Context, status: str | None, as_json: bool) -> None:
    """What was sent, is pending, or failed."""
    store = _read_store(obj)
    try:
        rows = store.outbox(status) if store is not None else []
    finally:
        if store is not None:
            store.close()
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
            continue
        sent = f" sent {row['sent_at']}" if row.get("sent_at") else ""
        refused = row.get("refused") or {}
        if row["status"] == "sent" and refused:
            sent += f" (refused for {', '.join(refused)})"  # accepted by the others
        error = f" error: {row['last_error']}" if row.get("last_error") else ""
        click.echo(
            f"{row['id']:>5} {row['status']:<9} {row.get('rule', ''):<24} {row.get('action', ''):<8} "
            f"{row.get('kind', '')} -> {', '.join(row.get('to', []))}{sent}{error}"
        )
    counts = Counter(row["status"] for row in rows)
    if not as_json:
        click.echo(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "the outbox is empty")


@cli.command()
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
)
@click.option("--from", "start_text", default="2026-12-01T00:00", show_default=True, metavar="T")
@click.option("--to", "end_text", default="2026-12-31T23:00", show_default=True, metavar="T")
@click.option("--every", default="1h", show_default=True, help="Simulated time per tick.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("config.example.yaml"),
    show_default=True,
)
def demo(out: Path, start_text: str, end_text: str, every: str, config_path: Path) -> None:
    """Run a simulated month of the bundled example through the daemon's code path into a maildir."""
    from sopwatch.daemon.demo import run_demo

    tz = load_setup(config_path).loaded.tz
    try:
        start, end, step = parse_instant(start_text, tz), parse_instant(end_text, tz), parse_step(every)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    result = run_demo(config_path, out, start, end, step)
    click.echo(f"{len(result.eml)} emails in {result.out / 'eml'} (maildir: {result.out / 'maildir'})")
    click.echo(f"{len(result.ics)} calendar files in {result.out / 'ics'}")
    click.echo(f"{result.repeats} of the reminders and escalations are repeats")
    click.echo("\nmessages by kind:")
    for kind, count in sorted(result.by_kind.items()):
        click.echo(f"  {kind:<14} {count:>4}")
    click.echo("messages by rule:")
    for rule, count in sorted(result.by_rule.items()):
        click.echo(f"  {rule:<28} {count:>4}")
    click.echo("messages by recipient:")
    for address, count in result.by_recipient.most_common():
        click.echo(f"  {address:<44} {count:>4}")


@cli.command(name="preview")
@click.argument("name")
@click.option("--action", "action_id", required=True, metavar="ID", help="The action to render it for.")
@click.option("--step", default=0, show_default=True, help="The escalation step.")
@click.option("--rule", "rule_id", help="The rule (default: the first rule using NAME).")
@click.option("--at", "at_text", metavar="T", help="Render as of this instant (default: now).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="Write an .eml file.")
@with_config
def preview_command(
    obj: Context,
    name: str,
    action_id: str,
    step: int,
    rule_id: str | None,
    at_text: str | None,
    out: Path | None,
) -> None:
    """Render one message (NAME: reminder, escalation, resolved, hold, cancel or an override)."""
    from sopwatch.preview import preview

    result = preview(obj.setup, name, action_id, step, obj.instant(at_text), rule_id)
    if result.fallback_reason:
        click.echo(f"warning: template failed, the built-in was used: {result.fallback_reason}", err=True)
    data = result.message.as_bytes()
    if out is None:
        click.echo(data.decode("utf-8", "replace"))
    else:
        out.write_bytes(data)
        click.echo(f"wrote {out}")


@cli.command(name="schema")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for config.schema.json and rules.schema.json  [default: schema/ beside the config]",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("config.yaml"),
    show_default=True,
    help="The config file, whose folder gets schema/ (the file need not exist).",
)
def schema_command(out: Path | None, config_path: Path) -> None:
    """Write JSON Schema for the config file and rules files, for editor completion and checks."""
    from sopwatch.schema_export import write_schemas

    if out is None:  # where `init` put them, and where its yaml-language-server line points
        out = config_path.parent / "schema"
    for path in write_schemas(out):
        click.echo(f"wrote {path}")
    click.echo(
        "point a YAML file at them with a first line such as\n"
        "  # yaml-language-server: $schema=./schema/config.schema.json\n"
        "(the path is relative to the YAML file; rules files use rules.schema.json)"
    )


@cli.command(name="init")
@click.argument("folder", metavar="[DIR]", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--force", is_flag=True, help="Write into a non-empty DIR, overwriting files of the same names."
)
@click.option("--timezone", default="UTC", show_default=True, help="The organisation's IANA timezone.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The config file to write (its folder is DIR)  [default: DIR/config.yaml]",
)
def init_command(folder: Path | None, force: bool, timezone: str, config_path: Path | None) -> None:
    """Scaffold a working setup in DIR: config, people, register, calendar, rules, templates, schema."""
    from sopwatch.scaffold import scaffold

    if folder is None and config_path is None:
        raise click.UsageError("say where: sopwatch init DIR (or --config DIR/config.yaml)")
    if config_path is None:
        assert folder is not None
        config_path = folder / "config.yaml"
    elif folder is None:
        folder = config_path.parent
    elif config_path.parent.resolve() != folder.resolve():
        raise click.BadParameter(f"must lie in DIR ({folder})", param_hint="--config")
    result = scaffold(folder, force=force, timezone=timezone, config_name=config_path.name)
    click.echo(f"wrote {len(result.files)} files in {folder}:")
    for path in result.files:
        click.echo(f"  {path.relative_to(folder).as_posix()}")
    config = config_path.as_posix()
    click.echo(
        "\nnext:\n"
        f"  sopwatch validate --config {config}    check everything\n"
        f"  sopwatch check --config {config}       what would be sent now (sends nothing)\n"
        f"  sopwatch run --once --config {config}  one tick: mail lands in {folder.as_posix()}/outbox/\n"
        "then replace the example people, register rows and addresses with your own."
    )


FUTURE_BEAT_SLACK = 60  # seconds a heartbeat may lie ahead of this clock (another host's clock)


@cli.command()
@click.option(
    "--max-age",
    "max_age",
    metavar="DURATION",
    help="Oldest acceptable last tick, e.g. 15m or 900s (default: 3 x interval).",
)
@with_config
def health(obj: Context, max_age: str | None) -> None:
    """Exit 0 if the daemon completed a tick recently, else 1 (for watchdogs and container probes)."""
    from sopwatch.config.loader import load_config
    from sopwatch.observability import human_seconds, last_heartbeat, parse_age
    from sopwatch.timeparse import interval_seconds

    loaded = load_config(obj.config_path)  # the config only: no register read, no daemon lock
    if max_age is None:
        limit = 3 * interval_seconds(loaded.interval)
    else:
        try:
            limit = parse_age(max_age)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--max-age") from None
    state = loaded.state_path
    beat = last_heartbeat(state)
    if beat is None:
        raise SopwatchError(f"unhealthy: no completed tick recorded in {state} (is `sopwatch run` running?)")
    age = (datetime.now(UTC) - beat).total_seconds()
    when = beat.astimezone(loaded.tz).isoformat(timespec="seconds")
    if age < -FUTURE_BEAT_SLACK:
        # Not a fresh tick: a clock set back, or a state file that a simulation wrote (`demo`).
        raise SopwatchError(
            f"unhealthy: the last tick is recorded at {when}, {human_seconds(-age)} in the future; "
            "the clock was set back, or this state file was written by a simulation (sopwatch demo)"
        )
    if age > limit:
        raise SopwatchError(
            f"unhealthy: the last tick was {human_seconds(age)} ago (at {when}), "
            f"more than the allowed {human_seconds(limit)}"
        )
    click.echo(f"ok: the last tick was {human_seconds(age)} ago (at {when})")


def invoke(argv: list[str] | None = None, context: Context | None = None) -> int:
    """Run one command and return its exit status: user errors print as messages (1), usage errors 2.

    ``context`` is the shared Context to use, one per call (a new one by default).
    """
    try:
        status = cli.main(args=argv, prog_name="sopwatch", standalone_mode=False, obj=context)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except ProblemList as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(exc.problems)} problem(s) found", err=True)
        return 1
    except SopwatchError as exc:
        click.echo(str(exc), err=True)
        return 1
    except BrokenPipeError:
        return 0
    except SystemExit as exc:  # a command that ends with sys.exit(status), as the interpreter reads it
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        click.echo(str(exc.code), err=True)
        return 1
    return status if isinstance(status, int) else 0  # click returns ctx.exit(n)'s n


def main(argv: list[str] | None = None) -> NoReturn:
    """The ``sopwatch`` command: :func:`invoke`, then exit without freeing what the command built.

    A command's setup is millions of small objects for a large register (2 million at 100k rows);
    freeing them one by one takes ~0.1 s at 100k, for memory the OS takes back at once. So the
    Context holding the setup outlives the command, and the process ends without an interpreter
    exit. Every command has closed what it opened by the time it returns (the daemon closes its
    engine, SQLite commits are durable), so what is left is logging's handlers and buffered output:
    both are flushed here. mypy exits the same way.
    """
    context = Context()
    status = invoke(argv, context)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # None when the descriptor was closed (``>&-``); a reader may have gone away (``| head``).
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    os._exit(status)
