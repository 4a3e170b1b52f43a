"""Read the action register (CSV, SQLite, XLSX) into a :class:`Snapshot`.

Every source is reduced to a header and rows of raw values; one normaliser then maps headers onto
canonical fields and converts values. The mapping and the per-column converters are built once
per file, so the per-row loop only indexes and calls: registers run to 100,000 rows.

A bad row is reported with its row number and skipped, never stopping the others (SPEC §1.1);
only a register that cannot be read at all raises.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, time
from operator import itemgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sopwatch.collector import collector_paused
from sopwatch.config.schema import RegisterConfig
from sopwatch.core.model import (
    CANONICAL_FIELDS,
    DATE_FIELDS,
    KINDS,
    STATUSES,
    Action,
    Snapshot,
    name_of_header,
)
from sopwatch.errors import ConfigError, InputError, Location, ProblemList, SopwatchError

Converter = Callable[[Any], Any]
Row = tuple[int, Sequence[Any]]
_CANONICAL = frozenset(CANONICAL_FIELDS)
_MIDNIGHT = time(0, 0)
# Canonical fields whose text is taken as written (after stripping).
_PLAIN_TEXT = frozenset(CANONICAL_FIELDS) - {"kind", "status", "tags", *DATE_FIELDS}
_TIME_DIRECTIVE = re.compile(r"%[-#]?[HIMSfpXcTRrzZ]")


@dataclass(frozen=True, slots=True)
class RegisterRead:
    """A register as read: the good rows, plus every problem found on the bad ones."""

    snapshot: Snapshot
    problems: tuple[SopwatchError, ...]


@dataclass(slots=True)
class _Table:
    """A source reduced to its header and raw rows. ``header_row`` is None where rows have no
    header line (SQLite)."""

    header_row: int | None
    headers: Sequence[Any]
    rows: Iterator[Row]


def register_config_problems(cfg: RegisterConfig) -> list[tuple[tuple[str, str, str], str]]:
    """Mistakes in ``columns``/``status_map``/``kind_map`` as (path under the config, message).

    Public so ``validate`` can place each at its key in ``config.yaml``.
    """
    problems: list[tuple[tuple[str, str, str], str]] = []
    for header, target in cfg.columns.items():
        if target not in _CANONICAL:
            problems.append(
                (
                    ("register", "columns", header),
                    f"columns: {target!r} is not a canonical field" + _hint(target, CANONICAL_FIELDS),
                )
            )
    for spelling, status in cfg.status_map.items():
        if status not in STATUSES:
            problems.append(
                (
                    ("register", "status_map", spelling),
                    f"status_map: {status!r} is not a status (one of {', '.join(STATUSES)})",
                )
            )
    for spelling, kind in cfg.kind_map.items():
        if kind not in KINDS:
            problems.append(
                (
                    ("register", "kind_map", spelling),
                    f"kind_map: {kind!r} is not a kind (one of {', '.join(KINDS)})",
                )
            )
    return problems


def read_register(
    cfg: RegisterConfig, base_dir: Path, tz: ZoneInfo, *, closed: frozenset[str] = frozenset()
) -> RegisterRead:
    """Read and normalise the register named by ``cfg`` (its path relative to ``base_dir``).

    Rows whose status is in ``closed`` are checked for id, title, status and kind at once and
    normalised further only when something reads them (see :class:`RegisterActions`): a register
    keeps years of closed work that no rule looks at. Pass no ``closed`` to check every cell of
    every row, as ``validate`` does.

    Raises :class:`ConfigError` for a bad mapping in ``cfg`` and :class:`InputError` when the
    register cannot be read at all; bad rows come back in ``problems``.
    """
    config_problems = register_config_problems(cfg)
    if config_problems:
        errors: list[SopwatchError] = [ConfigError(message) for _path, message in config_problems]
        raise errors[0] if len(errors) == 1 else ProblemList(errors)
    path = base_dir / cfg.path
    where = str(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise InputError(f"register file {what}", Location(where))
    opener = {"csv": _csv_table, "sqlite": _sqlite_table, "xlsx": _xlsx_table}[cfg.type]
    with collector_paused(), opener(path, cfg, where) as table:
        return _normalise(table, cfg, tz, where, closed)


# --- sources -------------------------------------------------------------------------------------


@contextmanager
def _csv_table(path: Path, cfg: RegisterConfig, where: str) -> Iterator[_Table]:
    try:
        handle = path.open(encoding=cfg.encoding, newline="")
    except LookupError:
        raise ConfigError(f"register.encoding: unknown encoding {cfg.encoding!r}") from None
    except OSError as exc:
        raise InputError(f"cannot read register: {exc.strerror}", Location(where)) from None
    with handle:
        # csv.reader rather than DictReader: blank lines still count as rows, so row numbers match
        # what a spreadsheet shows, and indexing a list is cheaper than building a dict per row.
        reader = csv.reader(handle, delimiter=cfg.delimiter)
        rows = _csv_rows(reader, where, cfg.encoding)
        first = next(rows, None)
        if first is None:
            raise InputError("the register is empty: no header row", Location(where))
        yield _Table(1, first[1], rows)


def _csv_rows(reader: Iterator[list[str]], where: str, encoding: str) -> Iterator[Row]:
    number = 0
    try:
        for values in reader:
            number += 1
            yield number, values
    except UnicodeDecodeError as exc:
        message = f"not {encoding} text ({exc.reason}); set register.encoding"
        raise InputError(message, Location(where, line=_bad_text_line(Path(where), encoding))) from None
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", Location(where, row=number + 1)) from None


def _bad_text_line(path: Path, encoding: str) -> int | None:
    """The file line of the first undecodable byte; the decoder works in blocks, so rows can't say."""
    raw = path.read_bytes()
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        return raw.count(b"\n", 0, exc.start) + 1
    return None


@contextmanager
def _sqlite_table(path: Path, cfg: RegisterConfig, where: str) -> Iterator[_Table]:
    try:
        # Read-only: sopwatch must never change the customer's register.
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise InputError(f"cannot open SQLite database: {exc}", Location(where)) from None
    try:
        try:
            listed = conn.execute(
                "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY rowid"
            ).fetchall()
            tables = [name for name, kind in listed if kind == "table"]
            views = [name for name, kind in listed if kind == "view"]
        except sqlite3.DatabaseError as exc:
            raise InputError(f"not a readable SQLite database ({exc})", Location(where)) from None
        # SQLite names are case-insensitive.
        by_lower = {name.lower(): name for name in (*tables, *views)}
        name = by_lower.get(cfg.table.lower())
        if name is None:
            listing = ", ".join(tables) or "none"
            raise InputError(
                f"no table {cfg.table!r} in the database (its tables: {listing}); set register.table",
                Location(where),
            )
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            cursor = conn.execute(f"SELECT * FROM {quoted} ORDER BY rowid")
        except sqlite3.OperationalError:  # a view or a WITHOUT ROWID table: keep its own order
            cursor = conn.execute(f"SELECT * FROM {quoted}")
        headers = [column[0] for column in cursor.description]
        yield _Table(None, headers, _sqlite_rows(cursor, where))
    finally:
        conn.close()


def _sqlite_rows(cursor: sqlite3.Cursor, where: str) -> Iterator[Row]:
    number = 0
    try:
        for values in cursor:
            number += 1
            yield number, values
    except sqlite3.DatabaseError as exc:
        raise InputError(f"SQLite read failed: {exc}", Location(where, row=number + 1)) from None


@contextmanager
def _xlsx_table(path: Path, cfg: RegisterConfig, where: str) -> Iterator[_Table]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl fails with zip, XML, KeyError... on damaged files
        reason = str(exc) or type(exc).__name__
        raise InputError(f"not a readable XLSX workbook ({reason})", Location(where)) from None
    try:
        if cfg.sheet is not None:
            if cfg.sheet not in workbook.sheetnames:
                listing = ", ".join(repr(s) for s in workbook.sheetnames)
                raise InputError(
                    f"no sheet {cfg.sheet!r} in the workbook (sheets: {listing})", Location(where)
                )
            sheet = workbook[cfg.sheet]
        elif workbook.worksheets:
            sheet = workbook.worksheets[0]
        else:
            raise InputError("the workbook has no worksheet", Location(where))
        # Some writers store a wrong sheet size, which would silently cut rows off.
        sheet.reset_dimensions()
        rows = _xlsx_rows(sheet, where)
        for number, values in rows:
            if any(v is not None and v != "" for v in values):
                yield _Table(number, values, rows)
                return
        raise InputError(f"sheet {sheet.title!r} is empty: no header row", Location(where))
    finally:
        workbook.close()


def _xlsx_rows(sheet: Any, where: str) -> Iterator[Row]:
    date_only: dict[str, bool] = {}
    number = 0
    try:
        for number, cells in enumerate(sheet.iter_rows(), start=1):
            values = []
            for cell in cells:
                value = cell.value
                if type(value) is datetime and value.time() == _MIDNIGHT and _is_date_format(cell, date_only):
                    value = value.date()
                values.append(value)
            yield number, values
    except Exception as exc:  # a damaged sheet part surfaces only while streaming it
        raise InputError(f"cannot read the sheet: {exc}", Location(where, row=number + 1)) from None


def _is_date_format(cell: Any, cache: dict[str, bool]) -> bool:
    """Whether the cell shows a date without a time: then midnight means 'that day', not 00:00."""
    from openpyxl.styles.numbers import is_datetime

    fmt = cell.number_format
    found = cache.get(fmt)
    if found is None:
        found = cache[fmt] = is_datetime(fmt) == "date"
    return found


# --- normalisation -------------------------------------------------------------------------------


def _key(text: str) -> str:
    """How spellings are compared: case and runs of whitespace do not matter."""
    return " ".join(text.split()).casefold()


def _hint(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _normalise(
    table: _Table, cfg: RegisterConfig, tz: ZoneInfo, where: str, closed: frozenset[str]
) -> RegisterRead:
    header_loc = Location(where) if table.header_row is None else Location(where, row=table.header_row)
    names, problems = _map_headers(table.headers, cfg, header_loc)
    converters = _Converters(cfg, tz)
    convert_row = _RowConverter(
        [
            (index, name, converters.for_field(name, str(table.headers[index]).strip()))
            for index, name in names
        ]
    )
    quick = _ClosedRowReader(names, converters, closed) if closed else None
    actions = RegisterActions(convert_row)
    # Ids of rows skipped for their problems: a later row with the same id is still a duplicate.
    rejected: dict[str, int] = {}
    for number, values in table.rows:
        if quick is not None:
            head = quick.read(values)
            if head is not None and head[0] not in rejected and actions.add_closed(number, values, head):
                continue
            # Open, unsound so far, or a duplicate: the full path converts it and reports its problems.
        fields, errors = convert_row(values)
        if not fields and not errors:
            continue  # a blank row: spreadsheets are full of them
        ident = fields.get("id")
        if ident is None:
            errors.append("missing id")
        else:
            first = actions.row_of(ident) or rejected.get(ident)
            if first is not None:
                errors.append(f"duplicate id {ident!r} (first on row {first})")
        if "title" not in fields:
            errors.append("missing title")
        if errors:
            if ident is not None:
                rejected.setdefault(ident, number)
            problems.extend(InputError(message, Location(where, row=number)) for message in errors)
            continue
        actions.add(Action(ident, fields, number))

    columns = frozenset(name for _index, name in names) | {"kind", "status"}
    return RegisterRead(Snapshot(actions, columns), tuple(problems))


class RegisterActions(Mapping[str, Action]):
    """The register's actions by id, in file order; a closed row becomes an Action when asked for.

    Most of a long-lived register is closed work that no rule looks at. Its rows are checked for
    id, title, status and kind when read, then kept raw: only their id, status and owner are at
    hand (for observing status and owner changes), and the rest of a row is converted each time
    something asks for that action (an open episode being resolved, ``explain``, a digest's
    figures). Built actions are not kept: a daemon's snapshot stays the size it was read at, where
    a weekly digest would otherwise leave every closed row converted (about a quarter more memory
    at 100k). A cell that turns out unreadable is left out of its fields; ``validate`` reads every
    cell of every row and reports it with its row number.
    """

    def __init__(self, convert_row: _RowConverter) -> None:
        self._convert = convert_row
        # One entry per action in file order: (id, status, owner, row number, raw cells of a
        # closed row, None for a converted one): one tuple per row keeps a long register small.
        self._rows: list[tuple[str, str, str | None, int, Sequence[Any] | None]] = []
        self._position: dict[str, int] = {}
        self._ready: dict[str, Action] = {}

    def add(self, action: Action) -> None:
        """Add a converted action; its id must be new (see :meth:`row_of`)."""
        assert action.id not in self._position, action.id
        fields = action.fields
        self._position[action.id] = len(self._rows)
        self._rows.append((action.id, fields["status"], fields.get("owner"), action.row, None))
        self._ready[action.id] = action

    def add_closed(self, row: int, values: Sequence[Any], head: tuple[str, str, str | None]) -> bool:
        """Keep a closed row raw, given its (id, status, owner); False (nothing kept) for a taken id."""
        rows = self._rows
        position = len(rows)
        if self._position.setdefault(head[0], position) != position:
            return False
        rows.append((*head, row, values))
        return True

    def row_of(self, action_id: str) -> int | None:
        """The register row of an action, None if there is no such action."""
        position = self._position.get(action_id)
        return None if position is None else self._rows[position][3]

    def status_and_owner(self) -> Iterator[tuple[str, str, str | None]]:
        return map(_ID_STATUS_OWNER, self._rows)

    def __getitem__(self, action_id: str) -> Action:
        action = self._ready.get(action_id)
        if action is None:
            _ident, _status, _owner, row, values = self._rows[self._position[action_id]]  # KeyError: absent
            assert values is not None  # a row without its Action is a closed row kept raw
            fields, _unreadable = self._convert(values)  # left out; validate reports them
            action = Action(action_id, fields, row)
        return action

    def __contains__(self, action_id: object) -> bool:
        return action_id in self._position

    def __iter__(self) -> Iterator[str]:
        return iter(self._position)  # insertion order: file order

    def __len__(self) -> int:
        return len(self._position)


_ID_STATUS_OWNER = itemgetter(0, 1, 2)


class _RowConverter:
    """One raw row to its fields (canonical names, converted values) and its problems.

    Built once per file: the per-row loop only indexes and calls.
    """

    def __init__(self, plan: list[tuple[int, str, Converter]]) -> None:
        # (column index, field, converter, whether a stripped string is already the final value)
        self.plan = [
            (index, name, convert, name in _PLAIN_TEXT or name not in _CANONICAL)
            for index, name, convert in plan
        ]
        self.width = max((index for index, _name, _convert in plan), default=-1) + 1

    def __call__(self, values: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        if len(values) < self.width:
            values = [*values, *([None] * (self.width - len(values)))]
        fields: dict[str, Any] = {}
        errors: list[str] = []
        for index, name, convert, plain in self.plan:
            raw = values[index]
            if type(raw) is str:
                raw = raw.strip()
                if not raw:
                    continue
                if plain:
                    fields[name] = raw
                    continue
            elif raw is None:
                continue
            try:
                value = convert(raw)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            if value is not None:
                fields[name] = value
        if fields:
            fields.setdefault("kind", "action")
            fields.setdefault("status", "open")
        return fields, errors


class _ClosedRowReader:
    """Reads the eager fields of a row and says whether the row is closed and sound so far.

    Runs for every row of the register: status and kind are looked up by their raw cell text in
    dicts that fill themselves (a hit costs no Python call), and the column plan is one tuple.
    """

    def __init__(self, names: list[tuple[int, str]], converters: _Converters, closed: frozenset[str]) -> None:
        columns = {name: index for index, name in names}
        width = max(index for index, _name in names) + 1
        # Raw cell -> status if closed, else None (open, or unknown: the full path reports it).
        closed_status = _Memo(converters.for_field("status", "status"), lambda s: s in closed)
        kind = _Memo(converters.for_field("kind", "kind"), lambda k: True)
        self.plan = (
            width,
            columns.get("status"),
            closed_status,
            columns.get("kind"),
            kind,
            columns["id"],
            columns["title"],
            columns.get("owner"),
        )

    def read(self, values: Sequence[Any]) -> tuple[str, str, str | None] | None:
        """(id, status, owner) of a closed row whose id, title, status and kind are good, else None."""
        width, status_at, closed_status, kind_at, kind, id_at, title_at, owner_at = self.plan
        if len(values) < width or status_at is None:
            return None  # short rows are rare: the full path pads them
        try:
            status = closed_status[values[status_at]]
            if status is None:
                return None
            if kind_at is not None:
                raw_kind = values[kind_at]
                if raw_kind is not None and raw_kind != "" and kind[raw_kind] is None:
                    return None
        except TypeError:  # an unhashable cell (never from the shipped sources): the full path
            return None
        ident, title = values[id_at], values[title_at]
        ident = ident.strip() if type(ident) is str else _to_text(ident)
        title = title.strip() if type(title) is str else _to_text(title)
        if not ident or not title:
            return None
        owner = None
        if owner_at is not None:
            owner = values[owner_at]
            owner = (owner.strip() if type(owner) is str else _to_text(owner)) or None
        return ident, status, owner


class _Memo(dict[Any, Any]):
    """``convert`` memoised by raw value: None where it fails, is empty or ``keep`` refuses it."""

    def __init__(self, convert: Converter, keep: Callable[[Any], bool]) -> None:
        super().__init__()
        self.convert, self.keep = convert, keep

    def __missing__(self, raw: Any) -> Any:
        try:
            value = self.convert(raw)
        except ValueError:
            value = None
        found = self[raw] = value if value is not None and self.keep(value) else None
        return found


def _map_headers(
    headers: Sequence[Any], cfg: RegisterConfig, header_loc: Location
) -> tuple[list[tuple[int, str]], list[SopwatchError]]:
    """(column index, field name) pairs: explicit ``columns`` first, then headers that spell a
    canonical field, then every other column under its own header."""
    texts = [None if h is None else str(h).strip() or None for h in headers]
    explicit = {_key(header): target for header, target in cfg.columns.items()}
    assigned: dict[str, int] = {}
    names: dict[int, str] = {}
    problems: list[SopwatchError] = []

    for index, text in enumerate(texts):
        target = explicit.get(_key(text)) if text else None
        if target is None:
            continue
        if target in assigned:
            other = texts[assigned[target]]
            raise InputError(
                f"columns {other!r} and {text!r} both map to {target!r} (register.columns)", header_loc
            )
        assigned[target] = index
        names[index] = target
    present = {_key(text) for text in texts if text}
    for header in cfg.columns:
        if _key(header) not in present:
            listing = ", ".join(repr(t) for t in texts if t)
            problems.append(
                InputError(f"register.columns: no column {header!r} in the header ({listing})", header_loc)
            )

    for index, text in enumerate(texts):
        if text is None or index in names:
            continue
        guess = name_of_header(text)
        if guess in _CANONICAL and guess not in assigned:
            assigned[guess] = index
            names[index] = guess

    for index, text in enumerate(texts):
        if text is None or index in names:
            continue
        if text in assigned:
            other = texts[assigned[text]]
            problems.append(
                InputError(f"column {text!r} ignored: column {other!r} already provides {text!r}", header_loc)
            )
            continue
        assigned[text] = index
        names[index] = text

    for required in ("id", "title"):
        if required not in assigned:
            listing = ", ".join(repr(t) for t in texts if t) or "none"
            raise InputError(
                f"no {required!r} column (columns: {listing}); map one with register.columns", header_loc
            )
    return sorted(names.items()), problems


def text_date_parser(cfg: RegisterConfig, tz: ZoneInfo) -> Callable[[str], date | datetime | None]:
    """How this register reads a date written as text (ISO 8601, then ``date_format``; naive times
    in ``tz``), for rules that use one of its other columns as a date. None where it is not one."""
    return _Converters(cfg, tz)._parse_time_text


class _Converters:
    """Per-field value converters for one file; they raise ValueError with the row's message."""

    def __init__(self, cfg: RegisterConfig, tz: ZoneInfo) -> None:
        self.tz = tz
        self.date_format = cfg.date_format
        self.format_has_time = bool(cfg.date_format and _TIME_DIRECTIVE.search(cfg.date_format))
        self.time_cache: dict[str, date | datetime | None] = {}
        self.status_map = {_key(k): v for k, v in cfg.status_map.items()}
        self.kind_map = {_key(k): v for k, v in cfg.kind_map.items()}

    def for_field(self, name: str, header: str) -> Converter:
        if name in DATE_FIELDS:
            return self._time_converter(name, header)
        if name == "status":
            return self._choice_converter(
                self.status_map,
                STATUSES,
                lambda text: f"unknown status {text!r} (add it to register.status_map)",
            )
        if name == "kind":
            allowed = ", ".join(KINDS)
            return self._choice_converter(
                self.kind_map,
                KINDS,
                lambda text: f"unknown kind {text!r} (allowed: {allowed}; or use register.kind_map)",
            )
        if name == "tags":
            return self._tags_converter()
        if name == "cycle":
            return _to_cycle
        if name in _CANONICAL:
            return _to_text
        return self._to_extra

    @staticmethod
    def _tags_converter() -> Converter:
        cache: dict[str, tuple[str, ...] | None] = {}

        def convert(raw: Any) -> tuple[str, ...] | None:
            if type(raw) is not str:
                return _to_tags(raw)
            try:
                return cache[raw]
            except KeyError:
                found = cache[raw] = _to_tags(raw)
                return found

        return convert

    def _choice_converter(
        self, mapping: dict[str, str], allowed: Sequence[str], unknown: Callable[[str], str]
    ) -> Converter:
        cache: dict[str, str] = {}

        def convert(raw: Any) -> str | None:
            text = _to_text(raw)
            if text is None:
                return None
            found = cache.get(text)
            if found is not None:
                return found
            key = _key(text)
            value = mapping.get(key) or re.sub(r"[\s\-]+", "_", key)
            if value not in allowed:
                raise ValueError(unknown(text))
            cache[text] = value
            return value

        return convert

    def _time_converter(self, name: str, header: str) -> Converter:
        column = "" if name_of_header(header) == name else f" (column {header!r})"
        tz = self.tz
        parse = self._parse_time_text

        def convert(raw: Any) -> date | datetime | None:
            if type(raw) is str:
                text = raw.strip()
                if not text:
                    return None
            elif isinstance(raw, datetime):
                return raw if raw.tzinfo else raw.replace(tzinfo=tz)
            elif isinstance(raw, date):
                return raw
            elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
                text = str(int(raw)) if float(raw).is_integer() else str(raw)
            else:
                text = str(raw).strip()
            value = parse(text)
            if value is None:
                raise ValueError(f"unparseable date {text!r} in {name}{column}")
            return value

        return convert

    def _parse_time_text(self, text: str) -> date | datetime | None:
        """ISO 8601 first, then ``date_format``; memoised, as one date recurs on many rows."""
        try:
            return self.time_cache[text]
        except KeyError:
            pass
        value: date | datetime | None = None
        if len(text) <= 10:
            with suppress(ValueError):
                value = date.fromisoformat(text)
        if value is None:
            with suppress(ValueError):
                value = datetime.fromisoformat(text)
        if value is None and self.date_format:
            try:
                value = datetime.strptime(text, self.date_format)
            except ValueError:
                pass
            else:
                if not self.format_has_time:
                    value = value.date()
        if type(value) is datetime and value.tzinfo is None:
            value = value.replace(tzinfo=self.tz)
        self.time_cache[text] = value
        return value

    def _to_extra(self, raw: Any) -> Any:
        """Other columns keep their type; naive datetimes get the organisation's zone (SPEC §1.1)."""
        if type(raw) is str:
            return raw.strip() or None
        if type(raw) is datetime and raw.tzinfo is None:
            return raw.replace(tzinfo=self.tz)
        return raw


def _to_text(raw: Any) -> str | None:
    if type(raw) is str:
        return raw.strip() or None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))  # spreadsheets store id 17 as 17.0
    if isinstance(raw, (date, time)):
        return raw.isoformat()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return str(raw).strip() or None


def _to_cycle(raw: Any) -> str | None:
    """Excel turns a typed ``2026-12`` into 1 December 2026; give the cycle id back."""
    if isinstance(raw, date) and not isinstance(raw, datetime) and raw.day == 1:
        return raw.strftime("%Y-%m")
    return _to_text(raw)


def _to_tags(raw: Any) -> tuple[str, ...] | None:
    items: Sequence[Any]
    if isinstance(raw, (list, tuple)):
        items = raw
    elif isinstance(raw, str):
        text = raw.strip()
        items = text.split(",")
        if text.startswith("[") and text.endswith("]"):  # sqlite-utils stores lists as JSON
            try:
                loaded = json.loads(text)
            except ValueError:
                pass
            else:
                if isinstance(loaded, list):
                    items = loaded
    else:
        items = [raw]
    tags = tuple(tag for tag in (str(item).strip() for item in items if item is not None) if tag)
    return tags or None
