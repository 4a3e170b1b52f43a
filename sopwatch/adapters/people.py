"""Load the people directory (YAML or CSV) and merge in the roles from ``config.yaml``.

Both formats are reduced to the same records, each knowing where its values sit in the file, so
one set of checks reports ``file:line:col`` for YAML and ``file:row N`` for CSV.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from sopwatch.config.schema import StrList, check_timezone
from sopwatch.config.validation import validate_model
from sopwatch.config.yamlsource import LocatedDocument, load_yaml_file
from sopwatch.core.addresses import address_problem
from sopwatch.core.model import Directory, Person
from sopwatch.errors import ConfigError, Location, ProblemList, SopwatchError

COLUMNS = ("id", "name", "email", "manager", "timezone", "roles")
_REQUIRED_COLUMNS = ("id", "email")


class _PersonSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    id: str = Field(min_length=1)
    name: str | None = None
    email: str
    manager: str | None = None
    timezone: str | None = None
    roles: StrList = Field(default_factory=list)


class _PeopleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    people: list[_PersonSpec]


@dataclass(frozen=True, slots=True)
class _Record:
    """One person as written, with ``where(key)`` giving the location of a value."""

    id: str
    name: str | None
    email: str
    manager: str | None
    timezone: str | None
    roles: tuple[str, ...]
    where: Callable[[str], Location]


def load_directory(
    path: Path | None,
    config_roles: dict[str, list[str]],
    org_tz: ZoneInfo,
    config_doc: LocatedDocument | None = None,
) -> Directory:
    """The directory recipients resolve against; raises :class:`ProblemList` listing every problem."""
    problems: list[SopwatchError] = []
    records: list[_Record] = []
    if path is not None:
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            records = _yaml_records(path)
        elif suffix == ".csv":
            records, problems = _csv_records(path)
        else:
            raise ConfigError("a people file must be .yaml, .yml or .csv", Location(str(path)))
    directory = _build(records, config_roles, org_tz, config_doc, path is not None, problems)
    if problems:
        raise ProblemList(problems)
    return directory


def _yaml_records(path: Path) -> list[_Record]:
    doc = load_yaml_file(path)
    if not isinstance(doc.data, dict):
        raise ConfigError("a people file must be a YAML mapping with a `people:` list", doc.location(()))
    parsed = validate_model(doc, _PeopleFile)

    def locator(index: int) -> Callable[[str], Location]:
        return lambda key: doc.location(("people", index, key))

    return [
        _Record(
            id=spec.id.strip(),
            name=spec.name,
            email=spec.email.strip(),
            manager=(spec.manager or "").strip() or None,
            timezone=(spec.timezone or "").strip() or None,
            roles=tuple(r.strip() for r in spec.roles if r.strip()),
            where=locator(index),
        )
        for index, spec in enumerate(parsed.people)
    ]


def _csv_records(path: Path) -> tuple[list[_Record], list[SopwatchError]]:
    where = str(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise ConfigError("file not found", Location(where)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", Location(where)) from None
    except csv.Error as exc:
        raise ConfigError(f"malformed CSV: {exc}", Location(where)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", Location(where)) from None
    if not rows:
        raise ConfigError(f"empty file: expected a header row with {', '.join(COLUMNS)}", Location(where))
    header = [h.strip().lower() for h in rows[0]]
    problems: list[SopwatchError] = []
    for name in header:
        if name and name not in COLUMNS:
            problems.append(
                ConfigError(
                    f"unknown column {name!r} (expected {', '.join(COLUMNS)})", Location(where, row=1)
                )
            )
    missing = [c for c in _REQUIRED_COLUMNS if c not in header]
    if missing:
        problems.extend(ConfigError(f"missing column {c!r}", Location(where, row=1)) for c in missing)
        raise ProblemList(problems)
    index = {name: header.index(name) for name in COLUMNS if name in header}

    records: list[_Record] = []
    for number, values in enumerate(rows[1:], start=2):
        cells = {name: values[i].strip() if i < len(values) else "" for name, i in index.items()}
        if not any(cells.values()):
            continue
        location = Location(where, row=number)
        bad = [f"missing {name}" for name in _REQUIRED_COLUMNS if not cells[name]]
        if bad:
            problems.extend(ConfigError(message, location) for message in bad)
            continue
        roles = tuple(r.strip() for r in re.split(r"[;,]", cells.get("roles", "")) if r.strip())
        records.append(
            _Record(
                id=cells["id"],
                name=cells.get("name") or None,
                email=cells["email"],
                manager=cells.get("manager") or None,
                timezone=cells.get("timezone") or None,
                roles=roles,
                where=lambda _key, loc=location: loc,
            )
        )
    return records, problems


def _build(
    records: list[_Record],
    config_roles: dict[str, list[str]],
    org_tz: ZoneInfo,
    config_doc: LocatedDocument | None,
    have_file: bool,
    problems: list[SopwatchError],
) -> Directory:
    first: dict[str, _Record] = {}
    for record in records:
        if record.id in first:
            problems.append(
                ConfigError(
                    f"duplicate person id {record.id!r} (first at {_short(first[record.id].where('id'))})",
                    record.where("id"),
                )
            )
        else:
            first[record.id] = record
    by_email = {r.email.lower(): r.id for r in records}

    zones: dict[str, ZoneInfo] = {}
    for record in records:
        problem = address_problem(record.email)
        if problem is not None:
            problems.append(ConfigError(f"email {problem}", record.where("email")))
        if record.manager is not None and record.manager not in first:
            known = by_email.get(record.manager.lower())
            hint = f"; use their id {known!r}" if known else ""
            problems.append(
                ConfigError(
                    f"unknown manager {record.manager!r}: not a person id{hint}", record.where("manager")
                )
            )
        if record.timezone is not None:
            try:
                check_timezone(record.timezone)
            except ValueError as exc:
                problems.append(ConfigError(str(exc), record.where("timezone")))
            else:
                zones[record.id] = ZoneInfo(record.timezone)
    problems.extend(_manager_cycles(first))

    roles: dict[str, list[str]] = {}
    for role, refs in config_roles.items():
        members = roles.setdefault(role, [])
        for position, ref in enumerate(refs):
            ref = ref.strip()
            if ref in first:
                member = ref
            elif "@" in ref:
                member = by_email.get(ref.lower(), ref)
                problem = None if member != ref else address_problem(ref)
                if problem is not None:
                    location = config_doc.location(("roles", role, position)) if config_doc else None
                    problems.append(ConfigError(f"role {role!r}: {problem}", location))
                    continue
            else:
                source = "not an id in the people file" if have_file else "no people file is configured"
                location = config_doc.location(("roles", role, position)) if config_doc else None
                message = f"role {role!r}: unknown person {ref!r} ({source}; use an id or an email address)"
                problems.append(ConfigError(message, location))
                continue
            if member not in members:
                members.append(member)
    for record in first.values():
        for role in record.roles:
            members = roles.setdefault(role, [])
            if record.id not in members:
                members.append(record.id)

    member_of: dict[str, list[str]] = {}
    for role, members in roles.items():
        for member in members:
            member_of.setdefault(member, []).append(role)
    people = {
        r.id: Person(
            id=r.id,
            name=r.name or r.id,
            email=r.email,
            manager=r.manager,
            timezone=zones.get(r.id, org_tz),
            roles=tuple(member_of.get(r.id, ())),
        )
        for r in first.values()
    }
    return Directory(people=people, roles={role: tuple(members) for role, members in roles.items()})


def _manager_cycles(people: dict[str, _Record]) -> Iterable[ConfigError]:
    """Each manager cycle once, reported at the manager value of its first member in file order."""
    order = {person: position for position, person in enumerate(people)}
    done: set[str] = set()
    for start in people:
        chain: list[str] = []
        on_chain: set[str] = set()
        current: str | None = start
        while current is not None and current in people and current not in done and current not in on_chain:
            chain.append(current)
            on_chain.add(current)
            current = people[current].manager
        if current is not None and current in on_chain:
            loop = chain[chain.index(current) :]
            head = min(loop, key=order.__getitem__)
            rotated = loop[loop.index(head) :] + loop[: loop.index(head)]
            yield ConfigError(
                "manager cycle: " + " -> ".join([*rotated, head]), people[head].where("manager")
            )
        done.update(chain)


def _short(location: Location) -> str:
    if location.row is not None:
        return f"row {location.row}"
    return f"line {location.line}" if location.line is not None else location.path
