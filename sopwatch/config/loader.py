"""Load a whole setup from ``config.yaml``: config, people, calendars, register and rules.

``load_setup`` collects every problem it can before giving up, so ``validate`` lists them all.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from zoneinfo import ZoneInfo

from sopwatch.adapters.business_calendar import build_business_calendar
from sopwatch.adapters.cycles import load_cycle_calendar
from sopwatch.adapters.people import load_directory
from sopwatch.adapters.public_holidays import default_holiday_cache
from sopwatch.adapters.register import RegisterRead, read_register, register_config_problems, text_date_parser
from sopwatch.collector import collector_paused
from sopwatch.config.rules_loader import RuleCompiler, rule_files
from sopwatch.config.schema import Config
from sopwatch.config.validation import require_mapping, validate_model
from sopwatch.config.yamlsource import LocatedDocument, load_yaml_file
from sopwatch.core.conditions import ConditionError, compile_condition
from sopwatch.core.digest import ScheduleError, parse_schedule
from sopwatch.core.evaluate import Environment
from sopwatch.core.model import CANONICAL_FIELDS, DEFAULT_TERMINAL, OBSERVED_FIELDS, STATUSES, Snapshot
from sopwatch.core.recipients import RecipientError, parse_recipient
from sopwatch.core.rules import RuleSet
from sopwatch.core.state import State
from sopwatch.core.timeexpr import Clock, Duration, ExpressionError, parse_duration
from sopwatch.errors import ConfigError, ProblemList, SopwatchError
from sopwatch.messages.names import available_templates
from sopwatch.timeparse import interval_seconds

log = logging.getLogger("sopwatch")

# csv's default cell limit (128 KiB) made one oversized cell (a pasted document in a title) fail
# the whole register as "malformed CSV". Cells up to 256 MiB are read; the register stays usable.
# (Process-wide; it belongs next to the CSV reader in adapters/register.py.)
CSV_FIELD_LIMIT = 256 * 1024 * 1024
csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    document: LocatedDocument
    base_dir: Path
    tz: ZoneInfo
    interval: Duration

    def path(self, relative: str) -> Path:
        return (self.base_dir / relative).resolve()

    @property
    def state_path(self) -> Path:
        """The state file ``state:`` names (every command and the daemon open this one)."""
        return self.path(self.config.state)


@dataclass(frozen=True)
class Setup:
    """Everything a command needs; ``problems`` are non-fatal (skipped register rows)."""

    loaded: LoadedConfig
    environment: Environment
    register: RegisterRead
    rules: RuleSet
    rule_paths: tuple[Path, ...]

    @property
    def snapshot(self) -> Snapshot:
        return self.register.snapshot

    @property
    def problems(self) -> tuple[SopwatchError, ...]:
        return self.register.problems


def load_config(path: Path) -> LoadedConfig:
    document = load_yaml_file(path)
    require_mapping(document, "the config file")
    config = validate_model(document, Config)
    try:
        interval = parse_duration(config.interval)
        if interval_seconds(interval) <= 0:
            raise ExpressionError("the interval must be longer than zero")
    except ExpressionError as exc:
        raise document.error(("interval",), str(exc)) from None
    for index, digest in enumerate(config.digests):
        try:
            parse_schedule(digest.schedule)
        except ScheduleError as exc:
            raise document.error(("digests", index, "schedule"), str(exc)) from None
    if config.terminal_statuses is not None:
        for index, status in enumerate(config.terminal_statuses):
            if status not in STATUSES:
                raise document.error(("terminal_statuses", index), f"unknown status {status!r}")
    return LoadedConfig(config, document, path.resolve().parent, ZoneInfo(config.timezone), interval)


def load_setup(config_path: Path, *, every_cell: bool = False) -> Setup:
    """Load and cross-check everything; raises ProblemList with every problem found.

    Closed rows of the register are checked for id, title, status and kind, and read further only
    when used; ``every_cell`` checks every cell of every row (``validate``).
    """
    with collector_paused():
        return _load_setup(config_path, every_cell)


def _load_setup(config_path: Path, every_cell: bool) -> Setup:
    loaded = load_config(config_path)
    config, document = loaded.config, loaded.document
    terminal = frozenset(config.terminal_statuses) if config.terminal_statuses else DEFAULT_TERMINAL
    problems: list[SopwatchError] = []

    def attempt(func, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return func(*args, **kwargs)
        except ProblemList as exc:
            problems.extend(exc.problems)
        except SopwatchError as exc:
            if exc.location is None and isinstance(exc, ConfigError):
                exc.location = document.location(())
            problems.append(exc)
        return None

    business = attempt(_business, loaded)
    attempt(_check_ca_file, loaded)
    directory = attempt(
        load_directory,
        loaded.path(config.people) if config.people else None,
        dict(config.roles),
        loaded.tz,
        document,
    )
    cycles = (
        attempt(
            load_cycle_calendar,
            config.calendar,
            loaded.tz,
            business,
            base_dir=loaded.base_dir,
            document=document,
        )
        if business
        else None
    )
    register = None
    mapping_problems = register_config_problems(config.register_)
    for path, message in mapping_problems:
        problems.append(document.error(path, message))
    if not mapping_problems:
        closed = frozenset() if every_cell else terminal
        register = attempt(read_register, config.register_, loaded.base_dir, loaded.tz, closed=closed)
    paths = attempt(_rule_paths, loaded)
    if paths is None and not problems:
        problems.append(document.error(("rules",), "cannot find the rules"))
    fields = condition_fields(register.snapshot.columns if register is not None else ())
    roles = set(directory.roles) if directory is not None else set(config.roles)
    fallback = None
    if config.fallback_recipient:
        try:
            fallback = parse_recipient(config.fallback_recipient, fields, roles)
        except RecipientError as exc:
            problems.append(document.error(("fallback_recipient",), str(exc)))
    rules = None
    if paths is not None and cycles is not None:
        parse_date = text_date_parser(config.register_, loaded.tz)
        templates = available_templates(loaded.path(config.templates) if config.templates else None)
        compiler = RuleCompiler(fields, roles, cycles, loaded.tz, parse_date, templates, terminal)
        rules = attempt(compiler.load, paths)
    if problems or rules is None:
        raise ProblemList(problems)
    environment = Environment(
        clock=Clock(loaded.tz, business),
        directory=directory,
        cycles=cycles,
        terminal=terminal,
        fallback=fallback,
        start_date=config.start_date,
        max_messages_per_tick=config.max_messages_per_tick,
    )
    return Setup(loaded, environment, register, rules, paths)


def _check_ca_file(loaded: LoadedConfig) -> None:
    """The SMTP CA file loads now, where ``validate`` reports it at its key, not at the first send."""
    delivery = loaded.config.delivery
    if delivery.type != "smtp" or delivery.ca_file is None:
        return
    from sopwatch.delivery import trusting  # only an SMTP setup with its own CA pays for it

    try:
        trusting(loaded.path(delivery.ca_file))
    except ValueError as exc:
        raise loaded.document.error(("delivery", "ca_file"), str(exc)) from None


def _rule_paths(loaded: LoadedConfig) -> tuple[Path, ...]:
    """The rules files, a missing entry located at its place under ``rules:`` in the config."""
    files: list[Path] = []
    for index, entry in enumerate(loaded.config.rules):
        try:
            files.extend(rule_files([entry], loaded.base_dir))
        except ConfigError as exc:
            if exc.location is None:
                exc.location = loaded.document.location(("rules", index))
            raise
    return tuple(files)


def _business(loaded: LoadedConfig):  # type: ignore[no-untyped-def]
    try:
        return build_business_calendar(
            loaded.config.business_calendar,
            loaded.base_dir,
            tz=loaded.tz,
            holiday_cache=default_holiday_cache(),
        )
    except ConfigError as exc:
        if exc.location is None:
            exc.location = loaded.document.location(("business_calendar", "holidays"))
        raise


def condition_fields(columns: Iterable[str] = ()) -> set[str]:
    """The names a rule or silence condition may use: canonical fields, observed instants and the
    register's own columns."""
    return {*CANONICAL_FIELDS, *OBSERVED_FIELDS, *columns}


def compile_silence_matcher(when: dict, setup: Setup):  # type: ignore[no-untyped-def]
    """The matcher of a silence's field conditions (``--where``) over this setup's register."""
    try:
        loaded = setup.loaded
        parse_date = text_date_parser(loaded.config.register_, loaded.tz)
        return compile_condition(when, condition_fields(setup.snapshot.columns), loaded.tz, parse_date)
    except ConditionError as exc:
        raise ConfigError(f"silence condition: {exc}") from None


def with_silence_matchers(state: State, setup: Setup) -> State:
    """The state with a compiled matcher on each silence stored with field conditions (``--where``).

    Without it a field-scoped silence would match every notification. A silence whose condition no
    longer compiles (a column was renamed) is logged and ignored rather than failing the load.
    """
    if not any(s.when for s in state.silences):
        return state
    silences = []
    for silence in state.silences:
        if silence.when:
            try:
                silence = replace(silence, matcher=compile_silence_matcher(dict(silence.when), setup))
            except ConfigError as exc:
                log.error("silence %s is ignored: %s", silence.id, exc)
                continue
        silences.append(silence)
    return replace(state, silences=tuple(silences))
