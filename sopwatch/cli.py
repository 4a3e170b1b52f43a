"""The command line: a thin client of the library. Errors become ``file:line:col: message``, exit 1."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any

import click

from sopwatch import __version__
from sopwatch.adapters.state_store import StateStore, notification_json
from sopwatch.config.loader import Setup, load_setup
from sopwatch.core.evaluate import Notification, evaluate
from sopwatch.core.explain import StepView, explain
from sopwatch.core.simulate import simulate
from sopwatch.core.state import State
from sopwatch.errors import ProblemList, SopwatchError
from sopwatch.messages.render import Renderer
from sopwatch.timeparse import parse_instant, parse_step


@dataclass
class Context:
    """The one object every command shares: where the config is, and the loaded setup."""

    config_path: Path = Path("config.yaml")
    _setup: Setup | None = field(default=None, repr=False)

    @property
    def setup(self) -> Setup:
        if self._setup is None:
            self._setup = load_setup(self.config_path)
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
    path = setup.loaded.path(setup.loaded.config.state)
    if not path.exists():
        return State()
    store = StateStore(path)
    try:
        return store.load()
    finally:
        store.close()


@cli.command()
@with_config
def validate(obj: Context) -> None:
    """Check config, rules, directory, calendar and register; list every problem."""
    setup = obj.setup
    for problem in setup.problems:
        click.echo(str(problem))
    env = setup.environment
    summary = (
        f"{len(setup.rules)} rules in {len(setup.rule_paths)} files, {len(setup.snapshot)} actions, "
        f"{len(env.directory.people)} people, {len(env.cycles.cycles)} cycles"
    )
    if setup.problems:
        click.echo(f"{len(setup.problems)} problems; {summary}")
        sys.exit(1)
    click.echo(f"ok: {summary}")


@cli.command()
@click.option("--at", "at_text", metavar="T", help="Evaluate at this instant (default: now).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_config
def check(obj: Context, at_text: str | None, as_json: bool) -> None:
    """One evaluation against the stored state: prints what would be sent; changes nothing."""
    setup = obj.setup
    warn_problems(setup)
    now = obj.instant(at_text)
    result = evaluate(setup.snapshot, setup.rules, setup.environment, _load_state(setup), now)
    _print_notifications(setup, result.notifications, as_json)
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
    for evaluation in simulate(setup.snapshot, setup.rules, setup.environment, start, end, step):
        sent.extend(evaluation.notifications)
    _print_notifications(setup, sent, as_json)
    if not as_json:
        _print_summary(sent)


@cli.command(name="explain")
@click.argument("action_id", metavar="ACTION")
@click.option("--at", "at_text", metavar="T", help="Explain at this instant (default: now).")
@with_config
def explain_command(obj: Context, action_id: str, at_text: str | None) -> None:
    """Per rule: matched or why not, fire_at, current and next step, silences, recipients."""
    setup = obj.setup
    if action_id not in setup.snapshot.actions:
        raise SopwatchError(f"no action {action_id!r} in the register")
    now = obj.instant(at_text)
    tz = setup.loaded.tz
    action = setup.snapshot.actions[action_id]
    click.echo(f"{action_id}: {action.title}  [{action.status}] at {_local(now, tz)}")
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


def _print_notifications(setup: Setup, notifications: Iterable[Notification], as_json: bool) -> None:
    renderer = Renderer()
    actions = setup.snapshot.actions
    tz = setup.loaded.tz
    for n in notifications:
        subject = renderer.subject(actions.get(n.action), n.action)
        if as_json:
            data = notification_json(n)
            data["subject"] = subject
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
        for note in n.notes:
            click.echo(f"{'':>19}note: {note}")


def _print_summary(notifications: list[Notification]) -> None:
    by_rule = Counter(n.rule for n in notifications)
    by_kind = Counter(n.kind for n in notifications)
    recipients = Counter(address for n in notifications for address in n.to)
    click.echo(f"\n{len(notifications)} notifications")
    click.echo("by rule:      " + ", ".join(f"{k} {v}" for k, v in sorted(by_rule.items())))
    click.echo("by kind:      " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))
    click.echo("by recipient: " + ", ".join(f"{k} {v}" for k, v in recipients.most_common()))


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print as messages with exit 1, usage errors exit 2."""
    try:
        cli.main(args=argv, prog_name="sopwatch", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ProblemList as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(exc.problems)} problem(s) found", err=True)
        sys.exit(1)
    except SopwatchError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(0)
