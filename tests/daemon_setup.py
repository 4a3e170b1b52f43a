"""A small daemon setup written into a folder, and what its maildir received.

Shared by the daemon tests (``import daemon_setup`` works because pytest puts ``tests/`` on the
path, as for ``smtp_server``). Business hours are all day every day, so only the rules decide when
something is due; every message is parsed with the standard library's email parser.
"""

from __future__ import annotations

import csv
import email
import email.policy
import re
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path

# Two people, Ann reporting to Carl; and the plainest rule: remind the owner daily once due has passed.
ANN_AND_CARL = """\
people:
  - {id: ann, name: Ann Example, email: ann@example.com, manager: carl}
  - {id: carl, name: Carl Boss, email: carl@example.com}
"""
LATE_RULE = """\
rules:
  - id: late
    description: Open work past its due date
    when: {status: open}
    fire_at: due
    escalation:
      - notify: [owner]
    repeat: 1 day
"""

BASE_CONFIG = """\
timezone: Europe/Berlin
register: {register}
people: people.yaml
business_calendar:
  workdays: [mon, tue, wed, thu, fri, sat, sun]
  hours: "00:00-24:00"
admin: admin@example.com
rules: [rules.yaml]
delivery: {{type: maildir, path: maildir, from: "sopwatch <sopwatch@example.com>"}}
state: state.db
"""


def write_setup(
    folder: Path,
    rows: Sequence[Mapping[str, str]],
    *,
    people: str,
    rules: str,
    fields: Sequence[str],
    extra: str = "",
    register: str = "{type: csv, path: register.csv}",
    templates: Mapping[str, str] | None = None,
) -> Path:
    """config.yaml (``BASE_CONFIG`` with ``register`` and ``extra``), people, rules, the register
    (CSV, or XLSX when ``register`` names one) with ``fields`` as its header, and any ``templates``
    (file name -> source) in ``templates/``; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    config = BASE_CONFIG.format(register=register) + extra
    if templates is not None:
        config += "templates: templates/\n"
        (folder / "templates").mkdir()
        for name, source in templates.items():
            (folder / "templates" / name).write_text(source, encoding="utf-8")
    (folder / "config.yaml").write_text(config, encoding="utf-8")
    (folder / "people.yaml").write_text(people, encoding="utf-8")
    (folder / "rules.yaml").write_text(rules, encoding="utf-8")
    if "xlsx" in register:
        write_xlsx(folder / "register.xlsx", rows, fields)
    else:
        write_register(folder / "register.csv", rows, fields)
    return folder / "config.yaml"


def write_register(path: Path, rows: Sequence[Mapping[str, str]], fields: Sequence[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)


def write_xlsx(path: Path, rows: Sequence[Mapping[str, str]], fields: Sequence[str]) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(list(fields))
    for row in rows:
        sheet.append([row.get(name, "") for name in fields])
    book.save(path)


def in_delivery_order(new: Path) -> list[Path]:
    """The files of a maildir's ``new/``, oldest first.

    Python's mailbox names a file ``<seconds>.M<microseconds>P<pid>Q<count>.<host>`` without
    zero-padding the microseconds, so plain name order puts ``M99`` after ``M123`` within a second;
    sorting on the numbers gives the order of writing (the count breaks ties within a process).
    """
    if not new.exists():
        return []

    def written(path: Path) -> tuple[int, ...]:
        found = re.match(r"(\d+)\.M(\d+)P(\d+)Q(\d+)\.", path.name)
        assert found, f"not a name Python's mailbox writes: {path.name}"
        seconds, micros, _pid, count = (int(part) for part in found.groups())
        return seconds, micros, count

    return sorted(new.iterdir(), key=written)


def delivered(config: Path) -> list[tuple[bytes, EmailMessage]]:
    """Every message in ``maildir/new`` next to ``config``, in the order written, raw and parsed."""
    files = in_delivery_order(config.parent / "maildir" / "new")
    out = []
    for path in files:
        raw = path.read_bytes()
        out.append((raw, email.message_from_bytes(raw, policy=email.policy.default)))
    return out


def messages(config: Path) -> list[EmailMessage]:
    return [message for _raw, message in delivered(config)]


def kind_of(message: EmailMessage) -> str:
    return str(message["X-Sopwatch-Kind"])


def of_kind(config: Path, kind: str) -> list[EmailMessage]:
    return [m for m in messages(config) if kind_of(m) == kind]
