"""Load rules files and compile them against the register's fields, the directory and the calendar."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sopwatch.config.schema import RulesFile, RuleSpec, StepSpec
from sopwatch.config.validation import require_mapping, validate_model
from sopwatch.config.yamlsource import LocatedDocument, Path_, load_yaml_file
from sopwatch.core.conditions import (
    ConditionError,
    DateParser,
    compile_condition,
    parse_iso_time,
    pinned_values,
)
from sopwatch.core.model import TIME_FIELDS, CycleCalendar, name_of_header
from sopwatch.core.recipients import RecipientError, RecipientExpr, parse_recipient
from sopwatch.core.rules import AnchorGetter, CalendarHold, CompiledTime, Rule, RuleSet, Step
from sopwatch.core.timeexpr import ExpressionError, parse_duration, parse_time_expression
from sopwatch.errors import ConfigError, ProblemList, RuleError, SopwatchError

PHASE_ATTRIBUTES = ("start", "end", "meeting")


def rule_files(entries: Collection[str], base_dir: Path) -> list[Path]:
    """The ``*.yaml``/``*.yml`` files named by ``rules:``, folders expanded in name order."""
    files: list[Path] = []
    for entry in entries:
        path = (base_dir / entry).resolve()
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        elif path.exists():
            files.append(path)
        else:
            raise ConfigError(f"rules: {entry!r} does not exist")
    return files


class RuleCompiler:
    """Compiles RuleSpecs; knows which fields, roles and phases exist so it can reject typos."""

    def __init__(
        self,
        fields: Collection[str],
        roles: Collection[str] | None,
        cycles: CycleCalendar,
        tz: ZoneInfo,
        parse_date: DateParser | None = None,
        templates: Collection[str] | None = None,
        terminal: Collection[str] | None = None,
    ) -> None:
        """``parse_date`` reads a date from a register cell's text as the register does (its
        ``date_format``), for other columns used as dates; ISO 8601 when None. ``templates`` are
        the names a step may use (``messages.names.available_templates``); None checks none.
        ``terminal`` are the terminal statuses: a rule that asks only for those is refused."""
        self.fields = frozenset(fields)
        self.roles = roles
        self.phases = cycles.phase_ids
        self.tz = tz
        self.parse_date = parse_date or parse_iso_time
        self.templates = frozenset(templates) if templates is not None else None
        self.terminal = frozenset(terminal) if terminal is not None else None

    def load(self, paths: Collection[Path]) -> RuleSet:
        problems: list[SopwatchError] = []
        rules: list[Rule] = []
        seen: dict[str, str] = {}
        for path in paths:
            try:
                doc = load_yaml_file(path)
                require_mapping(doc, "a rules file")
                parsed = validate_model(doc, RulesFile)
            except ProblemList as exc:
                problems.extend(exc.problems)
                continue
            except SopwatchError as exc:
                problems.append(exc)
                continue
            for index, spec in enumerate(parsed.rules):
                base: Path_ = ("rules", index)
                if spec.id in seen:
                    problems.append(
                        RuleError(
                            f"duplicate rule id {spec.id!r} (first in {seen[spec.id]})",
                            doc.location((*base, "id")),
                        )
                    )
                    continue
                seen[spec.id] = str(doc.location(base))
                try:
                    rules.append(self.compile(spec, doc, base))
                except ProblemList as exc:
                    problems.extend(exc.problems)
        if problems:
            raise ProblemList(problems)
        return RuleSet(tuple(rules))

    def compile(self, spec: RuleSpec, doc: LocatedDocument, base: Path_) -> Rule:
        problems: list[SopwatchError] = []

        def attempt(func: Any, *args: Any) -> Any:
            try:
                return func(*args)
            except RuleError as exc:
                problems.append(exc)
                return None

        def condition() -> Any:
            try:
                return compile_condition(spec.when, self.fields, self.tz, self.parse_date)
            except ConditionError as exc:
                raise RuleError(str(exc), doc.location((*base, "when", *exc.path), key=exc.key)) from None

        when = attempt(condition)
        if when is not None and self.terminal is not None:
            statuses = pinned_values(when).get("status")
            if statuses is not None and statuses <= self.terminal:
                # Only non-terminal actions are considered (SPEC §2): such a rule is dead.
                listing = ", ".join(sorted(statuses)) or "none"
                problems.append(
                    RuleError(
                        f"this rule can never fire: it asks for status {listing}, and terminal actions are "
                        "never considered (terminal_statuses)",
                        doc.location((*base, "when")),
                    )
                )
        fire_at = attempt(self._time, spec.fire_at, doc, (*base, "fire_at"), False) if spec.fire_at else None
        repeat = attempt(self._duration, spec.repeat, doc, (*base, "repeat")) if spec.repeat else None
        if repeat is not None and repeat.amount <= 0:  # would re-send on every tick of the daemon
            problems.append(
                RuleError(
                    f"repeat must be longer than zero, got {spec.repeat!r}", doc.location((*base, "repeat"))
                )
            )
            repeat = None
        steps = tuple(
            attempt(self._step, step, index, doc, (*base, "escalation", index))
            for index, step in enumerate(spec.escalation)
        )
        previous = None
        for index, step in enumerate(steps):
            if step is None:
                continue
            minutes = _rough_minutes(step.after)
            if previous is not None and minutes < previous:
                problems.append(
                    RuleError(
                        "escalation steps must be in increasing order of 'after'",
                        doc.location((*base, "escalation", index, "after")),
                    )
                )
            previous = minutes
        if problems:
            raise ProblemList(problems)
        return Rule(
            id=spec.id,
            description=spec.description,
            severity=spec.severity,
            when=when,
            fire_at=fire_at,
            steps=steps,  # type: ignore[arg-type]
            repeat=repeat,
            notify_resolved=spec.notify_resolved,
            source=str(doc.location(base)),
        )

    def _step(self, spec: StepSpec, index: int, doc: LocatedDocument, path: Path_) -> Step:
        after = self._duration(spec.after, doc, (*path, "after")) if spec.after else None
        notify = tuple(self._recipient(r, doc, (*path, "notify", i)) for i, r in enumerate(spec.notify))
        cc = tuple(self._recipient(r, doc, (*path, "cc", i)) for i, r in enumerate(spec.cc))
        hold = None
        if spec.calendar_hold is not None:
            hold_path = (*path, "calendar_hold")
            if spec.via == "digest":
                raise RuleError("a digest step cannot carry a calendar hold", doc.location(hold_path))
            hold = CalendarHold(
                start=self._time(spec.calendar_hold.start, doc, (*hold_path, "start"), True),
                duration=self._duration(spec.calendar_hold.duration, doc, (*hold_path, "duration")),
                busy=spec.calendar_hold.busy,
                title=spec.calendar_hold.title,
            )
        if spec.template is not None and self.templates is not None and spec.template not in self.templates:
            # Else every message of the step would fall back to the built-in and alarm the admin.
            hint = difflib.get_close_matches(spec.template, sorted(self.templates), n=1)
            known = f"did you mean {hint[0]!r}?" if hint else f"known: {', '.join(sorted(self.templates))}"
            raise RuleError(
                f"unknown template {spec.template!r} (no {spec.template}.txt.j2 in the templates folder; {known})",
                doc.location((*path, "template")),
            )
        template = spec.template or ("reminder" if index == 0 else "escalation")
        return Step(index, after, notify, cc, template, spec.via, hold)

    def _recipient(self, text: str, doc: LocatedDocument, path: Path_) -> RecipientExpr:
        try:
            return parse_recipient(text, self.fields, self.roles)
        except RecipientError as exc:
            raise RuleError(str(exc), doc.location(path)) from None

    def _duration(self, text: str, doc: LocatedDocument, path: Path_):  # type: ignore[no-untyped-def]
        try:
            return parse_duration(text)
        except ExpressionError as exc:
            raise RuleError(str(exc), doc.location(path)) from None

    def _time(self, text: str, doc: LocatedDocument, path: Path_, in_step: bool) -> CompiledTime:
        try:
            expression = parse_time_expression(text)
            getter = self._anchor(expression.anchor, in_step)
        except ExpressionError as exc:
            raise RuleError(str(exc), doc.location(path)) from None
        return CompiledTime(expression, getter)

    def _anchor(self, anchor: str, in_step: bool) -> AnchorGetter:
        if anchor == "now":
            return lambda record, cycles, now, fire_at: now
        if anchor == "fire_at":
            if not in_step:
                raise ExpressionError("'fire_at' can only be used inside an escalation step")
            return lambda record, cycles, now, fire_at: fire_at
        parts = anchor.split(".")
        if parts[0] == "cycle":
            if len(parts) != 3 or parts[2] not in PHASE_ATTRIBUTES:
                raise ExpressionError(f"expected cycle.<phase>.start|end|meeting, got {anchor!r}")
            phase_id, attribute = parts[1], parts[2]
            if self.phases and phase_id not in self.phases:
                known = ", ".join(sorted(self.phases))
                raise ExpressionError(f"unknown phase {phase_id!r} in {anchor!r} (calendar phases: {known})")
            return _phase_getter(phase_id, attribute)
        if len(parts) != 1:
            raise ExpressionError(f"unknown anchor {anchor!r}")
        if anchor in TIME_FIELDS:
            return lambda record, cycles, now, fire_at: record.get(anchor)
        field = anchor if anchor in self.fields else self._column_spelled(anchor)
        if field is None:
            raise ExpressionError(f"unknown anchor {anchor!r}: not a field of the register")
        return _text_date_getter(field, self.parse_date)

    def _column_spelled(self, anchor: str) -> str | None:
        """The register column an anchor names in lower case with underscores: ``review_date`` for
        a header ``Review date``, which a time expression cannot spell as it is."""
        found = [f for f in self.fields if name_of_header(f) == anchor.lower()]
        return found[0] if len(found) == 1 else None


def _phase_getter(phase_id: str, attribute: str) -> AnchorGetter:
    def get(record: Mapping[str, Any], cycles: CycleCalendar, now: datetime, fire_at: datetime | None) -> Any:
        cycle = cycles.cycles.get(record.get("cycle") or "")
        phase = cycle.phases.get(phase_id) if cycle else None
        return getattr(phase, attribute) if phase else None

    return get


def _text_date_getter(field: str, parse: DateParser) -> AnchorGetter:
    """Extra columns arrive as text, read as the register reads dates; unparseable counts as empty."""

    def get(record: Mapping[str, Any], cycles: CycleCalendar, now: datetime, fire_at: datetime | None) -> Any:
        value = record.get(field)
        if value is None or isinstance(value, (date, datetime)):
            return value
        return parse(str(value).strip())

    return get


def _rough_minutes(duration: Any) -> float:
    """Order of magnitude of a duration, only to check that steps increase."""
    if duration is None:
        return 0
    scale = {"minutes": 1, "hours": 60, "days": 1440, "weeks": 10080, "business days": 1440 * 7 / 5}
    return duration.amount * scale[duration.unit]


def roles_known(config_roles: Mapping[str, Any], people_roles: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(config_roles) | frozenset(people_roles)
