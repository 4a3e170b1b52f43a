"""Rule conditions (``when``), compiled once into small predicate objects.

Each node answers ``test(record)`` on the hot path and ``failure(record)`` for ``explain``, which
names the first condition that did not hold.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sopwatch.core.model import CANONICAL_FIELDS, KINDS, STATUSES, TIME_FIELDS

Record = Mapping[str, Any]
OPS = ("eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "empty", "regex", "contains")
COMBINATORS = ("all", "any", "not")


class ConditionError(ValueError):
    """A malformed condition; ``path`` is relative to the ``when`` mapping."""

    def __init__(self, message: str, path: tuple[str | int, ...] = (), *, key: bool = False) -> None:
        super().__init__(message)
        self.path = path
        self.key = key


class Condition:
    def test(self, record: Record) -> bool:
        raise NotImplementedError

    def failure(self, record: Record) -> str | None:
        """Why the condition does not hold for ``record``, or None when it does."""
        raise NotImplementedError


class Always(Condition):
    def test(self, record: Record) -> bool:
        return True

    def failure(self, record: Record) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class AllOf(Condition):
    parts: tuple[Condition, ...]

    def test(self, record: Record) -> bool:
        return all(part.test(record) for part in self.parts)

    def failure(self, record: Record) -> str | None:
        for part in self.parts:
            reason = part.failure(record)
            if reason:
                return reason
        return None


@dataclass(frozen=True, slots=True)
class AnyOf(Condition):
    parts: tuple[Condition, ...]

    def test(self, record: Record) -> bool:
        return any(part.test(record) for part in self.parts)

    def failure(self, record: Record) -> str | None:
        reasons = [part.failure(record) for part in self.parts]
        if any(reason is None for reason in reasons):
            return None
        return "none of: " + "; ".join(r for r in reasons if r)


@dataclass(frozen=True, slots=True)
class NotOf(Condition):
    part: Condition
    text: str

    def test(self, record: Record) -> bool:
        return not self.part.test(record)

    def failure(self, record: Record) -> str | None:
        return f"not ({self.text}) failed" if self.part.test(record) else None


@dataclass(frozen=True, slots=True)
class FieldTest(Condition):
    field: str
    text: str  # e.g. "status in ['open', 'blocked']", for explain
    check: Callable[[Any], bool]
    # For eq/in on plain text: the values that can match, so evaluation can pick candidates by index.
    values: frozenset[str] | None = None

    def test(self, record: Record) -> bool:
        return self.check(record.get(self.field))

    def failure(self, record: Record) -> str | None:
        if self.check(record.get(self.field)):
            return None
        return f"{self.text} failed ({self.field} is {_show(record.get(self.field))})"


def _show(value: Any) -> str:
    if value is None or value == "" or value == ():
        return "empty"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return repr(value)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == ()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


# The text a register cell holds, read as a date the way the register reads its date columns.
DateParser = Callable[[str], "date | datetime | None"]

_ISO_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}")


def _check_choices(field: str, operand: Any, path: tuple[str | int, ...]) -> None:
    """A status or kind a rule names must be a canonical one: the register's own spellings are
    mapped to these (status_map, kind_map), so any other could never match."""
    choices = _CHOICES[field]
    members = list(enumerate(operand)) if isinstance(operand, list) else [(None, operand)]
    for index, value in members:
        if value is None or value in choices:
            continue
        hint = difflib.get_close_matches(str(value), choices, n=1)
        known = f"did you mean {hint[0]!r}?" if hint else f"known: {', '.join(choices)}"
        where = path if index is None else (*path, index)
        raise ConditionError(f"unknown {field} {value!r} ({known})", where)


def _is_time_operand(operand: Any) -> bool:
    """A date or an ISO date-time in a rule: the column it tests is compared as dates."""
    if isinstance(operand, list):
        return bool(operand) and all(_is_time_operand(item) for item in operand)
    if isinstance(operand, (date, datetime)):
        return True
    return (
        isinstance(operand, str)
        and _ISO_DATE_START.match(operand) is not None
        and parse_iso_time(operand) is not None
    )


_NOT_A_TIME = -2  # what _time_key says of a value that is no date: no comparison holds
_CHOICES = {"status": STATUSES, "kind": KINDS}

# Canonical fields that hold text or people, never dates.
_TEXT_FIELDS = frozenset(CANONICAL_FIELDS) - TIME_FIELDS


class _Compiler:
    def __init__(self, fields: Collection[str], tz: ZoneInfo, parse_date: DateParser | None = None) -> None:
        self.fields = frozenset(fields)
        self.tz = tz
        self.parse_date = parse_date or parse_iso_time

    def compile(self, spec: Any, path: tuple[str | int, ...]) -> Condition:
        if not isinstance(spec, dict):
            raise ConditionError("a condition must be a mapping of field: value", path)
        parts = [self._entry(key, value, (*path, key)) for key, value in spec.items()]
        if not parts:
            return Always()
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def _entry(self, key: str, value: Any, path: tuple[str | int, ...]) -> Condition:
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise ConditionError(f"'{key}' takes a non-empty list of conditions", path)
            parts = tuple(self.compile(item, (*path, i)) for i, item in enumerate(value))
            return AllOf(parts) if key == "all" else AnyOf(parts)
        if key == "not":
            return NotOf(self.compile(value, path), _brief(value))
        if key not in self.fields:
            hint = difflib.get_close_matches(str(key), sorted(self.fields), n=1)
            suffix = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConditionError(f"unknown field {key!r}{suffix}", path, key=True)
        if isinstance(value, dict):
            if len(value) != 1:
                raise ConditionError(
                    f"write one operator per mapping, e.g. {key}: {{ne: done}}; use all: to combine", path
                )
            ((op, operand),) = value.items()
            if op not in OPS:
                hint = difflib.get_close_matches(str(op), OPS, n=1)
                suffix = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(OPS)})"
                raise ConditionError(f"unknown operator {op!r}{suffix}", (*path, op), key=True)
            return self._op(key, op, operand, (*path, op))
        if isinstance(value, list):
            return self._op(key, "in", value, path)
        return self._op(key, "eq", value, path)

    def _op(self, field: str, op: str, operand: Any, path: tuple[str | int, ...]) -> Condition:
        text = f"{field} {op} {_brief(operand)}"
        if field in _CHOICES and op in ("eq", "ne", "in", "not_in"):
            _check_choices(field, operand, path)
        is_tags = field == "tags"
        # A register date field, or another column tested against a date: compared as dates.
        is_time = field in TIME_FIELDS or (
            field not in _TEXT_FIELDS
            and op not in ("regex", "contains", "empty")
            and _is_time_operand(operand)
        )
        if op == "empty":
            if not isinstance(operand, bool):
                raise ConditionError("'empty' takes true or false", path)
            return FieldTest(
                field, text, (lambda v: _is_empty(v)) if operand else (lambda v: not _is_empty(v))
            )
        if op == "regex":
            if not isinstance(operand, str):
                raise ConditionError("'regex' takes a regular expression string", path)
            try:
                pattern = re.compile(operand)
            except re.error as exc:
                raise ConditionError(f"invalid regular expression {operand!r}: {exc}", path) from None
            if is_tags:
                return FieldTest(field, text, lambda v: bool(v) and any(pattern.search(t) for t in v))
            return FieldTest(field, text, lambda v: v is not None and pattern.search(_text(v)) is not None)
        if op in ("in", "not_in"):
            if not isinstance(operand, list):
                raise ConditionError(f"'{op}' takes a list of values", path)
            members = [self._operand(field, item, (*path, i), is_time) for i, item in enumerate(operand)]
            if is_tags:
                wanted = frozenset(str(m) for m in members)

                def overlap(v: Any) -> bool:
                    return bool(v) and not wanted.isdisjoint(v)

                check = overlap if op == "in" else (lambda v: not overlap(v))
                return FieldTest(field, text, check)
            if not is_time and members and all(isinstance(m, str) for m in members):
                # Text members: one set lookup (the common case, and on the hot path).
                texts = frozenset(members)
                if op == "in":
                    return FieldTest(field, text, lambda v: _text_in(v, texts), texts)
                return FieldTest(field, text, lambda v: not _text_in(v, texts))
            equals = [self._equality(field, m, is_time) for m in members]
            if op == "in":
                return FieldTest(field, text, lambda v: any(eq(v) for eq in equals))
            return FieldTest(field, text, lambda v: not any(eq(v) for eq in equals))
        if isinstance(operand, (list, dict)):
            raise ConditionError(f"'{op}' takes a single value", path)
        value = self._operand(field, operand, path, is_time)
        if op == "contains":
            needle = str(value)
            if is_tags:
                return FieldTest(field, text, lambda v: bool(v) and needle in v)
            return FieldTest(field, text, lambda v: v is not None and needle in _text(v))
        if op in ("eq", "ne"):
            if is_tags:
                tag = str(value)
                has = lambda v: bool(v) and tag in v  # noqa: E731
                return FieldTest(field, text, has if op == "eq" else (lambda v: not has(v)))
            eq = self._equality(field, value, is_time)
            if op == "eq":
                return FieldTest(field, text, eq, frozenset([value]) if isinstance(value, str) else None)
            return FieldTest(field, text, lambda v: not eq(v))
        if is_tags:
            raise ConditionError(f"'{op}' does not apply to tags", path)
        return FieldTest(field, text, self._ordering(op, value, is_time))

    def _operand(self, field: str, operand: Any, path: tuple[str | int, ...], is_time: bool) -> Any:
        if isinstance(operand, (dict, list)):
            raise ConditionError("expected a single value", path)
        if is_time and operand is not None:
            parsed = parse_iso_time(operand)
            if parsed is None:
                raise ConditionError(
                    f"{field} is a date: expected an ISO date or datetime, got {operand!r}", path
                )
            return parsed
        return operand

    def _equality(self, field: str, operand: Any, is_time: bool) -> Callable[[Any], bool]:
        if operand is None:
            return _is_empty
        if is_time:
            return lambda v: v is not None and self._time_key(v, operand) == 0
        if isinstance(operand, bool):
            wanted = "true" if operand else "false"
            return lambda v: v is not None and _text(v).lower() == wanted
        number = _number(operand) if not isinstance(operand, str) else None
        text = str(operand)
        if number is not None:
            return lambda v: v is not None and (_number(v) == number or _text(v) == text)
        # Register values are nearly always text already: compare directly before converting.
        return lambda v: v == text or (v is not None and not isinstance(v, str) and _text(v) == text)

    def _ordering(self, op: str, operand: Any, is_time: bool) -> Callable[[Any], bool]:
        compare: Callable[[int], bool] = {
            "lt": lambda c: c < 0,
            "lte": lambda c: c <= 0,
            "gt": lambda c: c > 0,
            "gte": lambda c: c >= 0,
        }[op]
        if is_time:

            def check_time(v: Any) -> bool:
                key = self._time_key(v, operand) if v is not None else _NOT_A_TIME
                return key != _NOT_A_TIME and compare(key)

            return check_time
        number = _number(operand)
        text = str(operand)

        def check(v: Any) -> bool:
            if _is_empty(v):
                return False
            if number is not None:
                mine = _number(v)
                if mine is not None:
                    return compare((mine > number) - (mine < number))
            mine_text = _text(v)
            return compare((mine_text > text) - (mine_text < text))

        return check

    def _time_key(self, value: Any, operand: date | datetime) -> int:
        """-1, 0 or 1 comparing ``value`` with ``operand``; on dates when either side is a date."""
        if isinstance(value, str):
            parsed = self.parse_date(value.strip())
            if parsed is None:
                return _NOT_A_TIME  # unparseable: never equal, never ordered
            value = parsed
        elif not isinstance(value, date):  # a number or a time of day in another column
            return _NOT_A_TIME
        if isinstance(value, datetime) and isinstance(operand, datetime):
            a = value if value.tzinfo else value.replace(tzinfo=self.tz)
            b = operand if operand.tzinfo else operand.replace(tzinfo=self.tz)
        else:
            a = (
                value.astimezone(self.tz).date()
                if isinstance(value, datetime) and value.tzinfo
                else _day(value)
            )
            b = _day(operand)
        return (a > b) - (a < b)


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _text_in(value: Any, texts: frozenset[str]) -> bool:
    """``value`` equals one of ``texts`` as the ``eq`` of a text operand would compare it."""
    if type(value) is str:
        return value in texts
    return value is not None and _text(value) in texts


def parse_iso_time(value: Any) -> date | datetime | None:
    """An ISO 8601 date (``2026-12-04``) or date-time from text, a date as it is; None otherwise."""
    if isinstance(value, (date, datetime)):
        return value
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        return None


def _brief(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def compile_condition(
    spec: Any, fields: Collection[str], tz: ZoneInfo, parse_date: DateParser | None = None
) -> Condition:
    """Compile a ``when`` mapping; raises ConditionError with a path relative to it.

    ``parse_date`` reads a date from a register cell's text (the register's ``date_format``);
    ISO 8601 when None.
    """
    return _Compiler(fields, tz, parse_date).compile(spec, ())


def pinned_values(condition: Condition) -> dict[str, frozenset[str]]:
    """For each field the condition pins with ``eq``/``in`` on text, the values it must have.

    Only top-level tests (possibly inside ``all``) pin; a record whose :func:`index_key` for that
    field is outside the set can never match, so evaluation picks candidates from an index of the
    register instead of testing every row.
    """
    if isinstance(condition, FieldTest):
        return {condition.field: condition.values} if condition.values is not None else {}
    found: dict[str, frozenset[str]] = {}
    if isinstance(condition, AllOf):
        for part in condition.parts:
            for name, values in pinned_values(part).items():
                found[name] = values & found[name] if name in found else values
    return found


def without_pins(condition: Condition) -> Condition:
    """The condition less the tests :func:`pinned_values` reports: what still needs testing for a
    record already known to have the pinned values (picked from the index)."""
    if isinstance(condition, FieldTest) and condition.values is not None:
        return Always()
    if isinstance(condition, AllOf):
        rest = tuple(without_pins(part) for part in condition.parts)
        rest = tuple(part for part in rest if not isinstance(part, Always))
        if not rest:
            return Always()
        return rest[0] if len(rest) == 1 else AllOf(rest)
    return condition


def index_key(value: Any) -> str | None:
    """The text a record value is indexed under: what text ``eq``/``in`` compare it as."""
    if value is None or type(value) is str:
        return value
    return _text(value)


def predicate(condition: Condition) -> Callable[[Record], bool]:
    """The condition flattened into nested closures: the same truth as ``test`` with fewer calls.

    Built once per rule; the hot path runs it for every (rule, open action) pair.
    """
    if isinstance(condition, FieldTest):
        name, check = condition.field, condition.check
        return lambda record: check(record.get(name))
    if isinstance(condition, NotOf):
        inner = predicate(condition.part)
        return lambda record: not inner(record)
    if isinstance(condition, (AllOf, AnyOf)):
        parts = [predicate(part) for part in condition.parts]
        return _fold(parts, isinstance(condition, AllOf))
    return condition.test


def _fold(parts: list[Callable[[Record], bool]], conjunction: bool) -> Callable[[Record], bool]:
    """``a and b and c`` as nested two-way closures: no generator per call."""
    if len(parts) == 1:
        return parts[0]
    first, rest = parts[0], _fold(parts[1:], conjunction)
    if conjunction:
        return lambda record: first(record) and rest(record)
    return lambda record: first(record) or rest(record)
