"""Closed rows are read lazily (id, title, status, kind and owner at once, the rest on first use).

The oracle is the same register read with every cell checked, as ``validate`` reads it: for every
register without bad cells, both reads must give the same actions, fields and row numbers.
"""

from __future__ import annotations

import csv
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sopwatch.adapters.register import RegisterActions, RegisterRead, read_register
from sopwatch.config.schema import RegisterConfig
from sopwatch.core.evaluate import observe, record_of
from sopwatch.core.model import DEFAULT_TERMINAL
from sopwatch.core.state import State

BERLIN = ZoneInfo("Europe/Berlin")
HEADER = ["ID", "Status", "Type", "Title", "Owner", "Due", "created_at", "Tags", "Region", "impact_eur"]
MAPPING = {"ID": "id", "Status": "status", "Type": "kind", "Title": "title", "Owner": "owner", "Due": "due"}
STATUS_MAP = {"Closed": "done", "WIP": "in_progress"}

cells = {
    "status": st.sampled_from(["Closed", "done", "WIP", "open", "Cancelled", " Approved ", "rejected", ""]),
    "kind": st.sampled_from(["", "decision", "Approval", "input", "action"]),
    "title": st.sampled_from(["Plan", "  Approve budget ", "Freeze – Q1", "x"]),
    "owner": st.sampled_from(["", "dana", " lee ", "dana@example.com"]),
    "due": st.sampled_from(["", "2026-12-04", "04/12/2026", "2026-12-04T09:30"]),
    "created_at": st.sampled_from(["", "2026-11-01", "2026-11-01T08:00"]),
    "tags": st.sampled_from(["", "a, b", '["x", "y"]']),
    "region": st.sampled_from(["", "EMEA", " APAC"]),
    "impact": st.sampled_from(["", "100", "2.5e5"]),
}
rows_strategy = st.lists(st.fixed_dictionaries(cells), max_size=25)


def as_rows(rows: list[dict[str, str]]) -> list[list[str]]:
    return [
        [
            f"A-{i}",
            r["status"],
            r["kind"],
            r["title"],
            r["owner"],
            r["due"],
            r["created_at"],
            r["tags"],
            r["region"],
            r["impact"],
        ]
        for i, r in enumerate(rows)
    ]


def write_csv(path: Path, rows: list[list[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([HEADER, *rows])


def write_sqlite(path: Path, rows: list[list[Any]]) -> None:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    columns = ", ".join(f'"{name}"' for name in HEADER)
    conn.execute(f"CREATE TABLE actions ({columns})")
    conn.executemany(f"INSERT INTO actions VALUES ({', '.join('?' * len(HEADER))})", rows)
    conn.commit()
    conn.close()


def both_reads(folder: Path, source: str) -> tuple[RegisterRead, RegisterRead]:
    name = "register.csv" if source == "csv" else "register.db"
    cfg = RegisterConfig(
        type=source, path=name, columns=MAPPING, status_map=STATUS_MAP, date_format="%d/%m/%Y"
    )
    lazy = read_register(cfg, folder, BERLIN, closed=DEFAULT_TERMINAL)
    full = read_register(cfg, folder, BERLIN)
    return lazy, full


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, source=st.sampled_from(["csv", "sqlite"]))
def test_a_lazy_read_equals_a_read_of_every_cell(tmp_path: Path, rows, source: str) -> None:
    table = as_rows(rows)
    if source == "csv":
        write_csv(tmp_path / "register.csv", table)
    else:
        write_sqlite(tmp_path / "register.db", table)
    lazy, full = both_reads(tmp_path, source)

    assert [str(p) for p in lazy.problems] == [str(p) for p in full.problems]
    assert list(lazy.snapshot.actions) == list(full.snapshot.actions)
    assert lazy.snapshot.columns == full.snapshot.columns
    # What observing reads from every row is at hand before any closed row is built.
    assert isinstance(lazy.snapshot.actions, RegisterActions)
    assert list(lazy.snapshot.status_and_owner()) == [
        (a.id, a.status, a.fields.get("owner")) for a in full.snapshot
    ]
    for action_id, action in lazy.snapshot.actions.items():
        expected = full.snapshot.actions[action_id]
        assert action_id in lazy.snapshot.actions
        assert action.row == expected.row
        assert dict(action.fields) == dict(expected.fields)
        assert lazy.snapshot.actions[action_id] == action  # built again alike, never kept


def test_a_bad_cell_in_a_closed_row_is_left_out_and_validate_reports_it(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "register.csv",
        [
            ["A-1", "Closed", "", "Old plan", "dana", "31/02/2026", "", "", "", ""],
            ["A-2", "WIP", "", "Live plan", "dana", "31/02/2026", "", "", "", ""],
            ["A-3", "Closed", "", "", "dana", "", "", "", "", ""],  # closed, but no title
            ["A-3", "done", "", "Again", "", "", "", "", "", ""],  # closed, duplicate id
        ],
    )
    lazy, full = both_reads(tmp_path, "csv")

    # Every cell: both are skipped for their impossible date.
    assert [str(p) for p in full.problems] == [
        f"{tmp_path / 'register.csv'}:row 2: unparseable date '31/02/2026' in due",
        f"{tmp_path / 'register.csv'}:row 3: unparseable date '31/02/2026' in due",
        f"{tmp_path / 'register.csv'}:row 4: missing title",
        f"{tmp_path / 'register.csv'}:row 5: duplicate id 'A-3' (first on row 4)",
    ]
    # Lazily: the open row is still skipped; the closed one stays, without its unreadable date.
    assert [str(p) for p in lazy.problems] == [str(p) for p in full.problems][1:]
    closed = lazy.snapshot.actions["A-1"]
    assert closed.status == "done"
    assert "due" not in closed.fields
    assert closed.fields["owner"] == "dana"
    assert "A-2" not in lazy.snapshot.actions
    assert [a.id for a in lazy.snapshot] == ["A-1"]


def test_validate_reports_a_bad_cell_in_a_closed_row_that_check_passes_over(
    example_copy: Path, run_sopwatch
) -> None:
    register = example_copy / "example" / "register.csv"
    with register.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    closed = next(i for i, row in enumerate(rows) if row[header.index("Status")] == "Closed")
    rows[closed][header.index("Due date")] = "someday"
    with register.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL).writerows(rows)

    validated = run_sopwatch("validate", "--config", "config.yaml", cwd=example_copy)
    assert validated.returncode == 1
    assert f"register.csv:row {closed + 1}: unparseable date 'someday' in due" in validated.stdout

    checked = run_sopwatch("check", "--config", "config.yaml", "--at", "2026-12-09T10:00", cwd=example_copy)
    assert checked.returncode == 0, checked.stderr
    assert "someday" not in checked.stderr
    assert "stale-approval" in checked.stdout  # the open actions are still evaluated


def test_one_record_is_built_without_building_the_other_closed_actions(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "register.csv",
        [[f"A-{i}", "Closed", "", f"Plan {i}", "dana", "2026-12-04", "", "", "", ""] for i in range(50)]
        + [["B-1", "WIP", "", "Live", "lee", "2026-12-05", "", "", "", ""]],
    )
    lazy, full = both_reads(tmp_path, "csv")
    now = datetime(2026, 12, 9, 10, tzinfo=BERLIN)
    # White-box, on purpose: explain and preview must not convert the whole register for one action.
    actions = lazy.snapshot.actions
    converted: list[str] = []
    convert = actions._convert  # type: ignore[attr-defined]
    actions._convert = lambda values: converted.append(values[0]) or convert(values)  # type: ignore[attr-defined]
    record = record_of(lazy.snapshot, State(), now, "A-7")
    expected, _ = observe(full.snapshot, State(), now)
    assert record == expected["A-7"]
    assert converted == ["A-7"]  # the open B-1 was converted while reading, the other closed rows never
