"""The register adapter against real CSV, SQLite and XLSX files."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import sqlite_utils

from sopwatch.adapters.register import RegisterRead, read_register, register_config_problems
from sopwatch.config.schema import RegisterConfig
from sopwatch.errors import ConfigError, InputError, Location, ProblemList

BERLIN = ZoneInfo("Europe/Berlin")


def write_csv(path: Path, rows: list[list[Any]], delimiter: str = ",") -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)


def read(tmp_path: Path, **cfg: Any) -> RegisterRead:
    cfg.setdefault("type", "csv")
    cfg.setdefault("path", "register.csv")
    return read_register(RegisterConfig(**cfg), tmp_path, BERLIN)


def messages(result: RegisterRead) -> list[str]:
    return [str(p) for p in result.problems]


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_maps_columns_and_keeps_extra_columns(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "register.csv",
        [
            ["ID", "Title", "Decision owner", "Due Date", "Tags", "Region", "raised by"],
            ["A-1", "  Approve budget ", "dana", "2026-12-04", "finance, q1 ,,", "EMEA", "lee"],
            ["A-2", "Freeze plan", "", "", "", "", ""],
        ],
    )
    result = read(tmp_path, columns={"Decision owner": "owner", "Due Date": "due"})
    assert result.problems == ()
    first = result.snapshot.actions["A-1"]
    assert first.fields == {
        "id": "A-1",
        "title": "Approve budget",
        "owner": "dana",
        "due": date(2026, 12, 4),
        "tags": ("finance", "q1"),
        "Region": "EMEA",
        "raised_by": "lee",
        "kind": "action",
        "status": "open",
    }
    assert first.row == 2
    second = result.snapshot.actions["A-2"]
    assert second.row == 3
    assert second["owner"] is None and "owner" not in second.fields
    assert result.snapshot.columns == frozenset(
        {"id", "title", "owner", "due", "tags", "Region", "raised_by", "kind", "status"}
    )
    assert [a.id for a in result.snapshot] == ["A-1", "A-2"]


def test_status_and_kind_maps_are_case_insensitive(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "register.csv",
        [
            ["id", "title", "status", "kind"],
            ["A-1", "t", "WAITING for  approval", "Sign-off"],
            ["A-2", "t", "In Progress", "Decision"],
            ["A-3", "t", "pending-approval", ""],
            ["A-4", "t", "Erledigt", "input"],
        ],
    )
    result = read(
        tmp_path,
        status_map={"Waiting for approval": "pending_approval", "erledigt": "done"},
        kind_map={"sign-off": "approval"},
    )
    assert result.problems == ()
    got = {a.id: (a.status, a["kind"]) for a in result.snapshot}
    assert got == {
        "A-1": ("pending_approval", "approval"),
        "A-2": ("in_progress", "decision"),
        "A-3": ("pending_approval", "action"),
        "A-4": ("done", "input"),
    }


def test_dates_iso_and_date_format(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "register.csv",
        [
            ["id", "title", "due", "created_at", "status_changed_at"],
            ["A-1", "t", "04/12/2026", "2026-12-01T09:30", "2026-12-02T08:00:00Z"],
            ["A-2", "t", "2026-12-05", "2026-12-01 09:30:15+05:00", "2026-12-02"],
        ],
    )
    result = read(tmp_path, date_format="%d/%m/%Y")
    assert result.problems == ()
    a1, a2 = result.snapshot.actions["A-1"], result.snapshot.actions["A-2"]
    assert a1["due"] == date(2026, 12, 4) and type(a1["due"]) is date
    assert a1["created_at"] == datetime(2026, 12, 1, 9, 30, tzinfo=BERLIN)
    assert a1["created_at"].tzinfo is BERLIN
    assert a1["status_changed_at"] == datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    assert type(a2["due"]) is date and a2["due"] == date(2026, 12, 5)
    assert a2["created_at"].utcoffset().total_seconds() == 5 * 3600
    assert type(a2["status_changed_at"]) is date


def test_date_format_with_a_time_gives_an_aware_datetime(tmp_path: Path) -> None:
    write_csv(tmp_path / "register.csv", [["id", "title", "due"], ["A-1", "t", "04.12.2026 17:00"]])
    result = read(tmp_path, date_format="%d.%m.%Y %H:%M")
    assert result.snapshot.actions["A-1"]["due"] == datetime(2026, 12, 4, 17, 0, tzinfo=BERLIN)


def test_bad_rows_are_reported_with_row_numbers_and_skipped(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "register.csv",
        [
            ["id", "title", "status", "due", "kind"],
            ["A-1", "good", "open", "2026-12-04", ""],  # row 2
            ["", "no id", "open", "", ""],  # row 3
            ["A-3", "", "open", "", ""],  # row 4
            ["A-1", "again", "open", "", ""],  # row 5
            ["A-5", "status", "Parked", "", ""],  # row 6
            ["A-6", "date", "open", "next week", ""],  # row 7
            ["A-7", "kind", "open", "", "memo"],  # row 8
            [],  # row 9: blank line, skipped silently but counted
            ["A-9", "good too", "done", "", ""],  # row 10
            ["", "", "", "", ""],  # row 11: empty cells, skipped silently
        ],
    )
    result = read(tmp_path)
    where = str(tmp_path / "register.csv")
    assert messages(result) == [
        f"{where}:row 3: missing id",
        f"{where}:row 4: missing title",
        f"{where}:row 5: duplicate id 'A-1' (first on row 2)",
        f"{where}:row 6: unknown status 'Parked' (add it to register.status_map)",
        f"{where}:row 7: unparseable date 'next week' in due",
        f"{where}:row 8: unknown kind 'memo' (allowed: decision, action, approval, input; or use register.kind_map)",
    ]
    assert all(isinstance(p, InputError) for p in result.problems)
    assert result.problems[0].location == Location(where, row=3)
    assert list(result.snapshot.actions) == ["A-1", "A-9"]
    assert result.snapshot.actions["A-1"].title == "good"
    assert result.snapshot.actions["A-9"].row == 10


def test_unparseable_date_names_the_customer_column(tmp_path: Path) -> None:
    write_csv(tmp_path / "register.csv", [["id", "title", "Target"], ["A-1", "t", "31/31/2026"]])
    result = read(tmp_path, columns={"Target": "due"}, date_format="%d/%m/%Y")
    assert messages(result) == [
        f"{tmp_path / 'register.csv'}:row 2: unparseable date '31/31/2026' in due (column 'Target')"
    ]
    assert len(result.snapshot) == 0


def test_semicolon_delimiter_and_latin1_encoding(tmp_path: Path) -> None:
    (tmp_path / "register.csv").write_bytes("id;title;Bereich\nA-1;Überprüfung;Süd\n".encode("latin-1"))
    result = read(tmp_path, delimiter=";", encoding="latin-1")
    action = result.snapshot.actions["A-1"]
    assert (action.title, action["Bereich"]) == ("Überprüfung", "Süd")


def test_wrong_encoding_is_a_fatal_input_error(tmp_path: Path) -> None:
    (tmp_path / "register.csv").write_bytes("id,title\nA-1,Überprüfung\nA-2,ok\n".encode("latin-1"))
    with pytest.raises(InputError) as info:
        read(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'register.csv'}:2: not utf-8-sig text (")
    assert "register.encoding" in str(info.value)


def test_unknown_column_target_is_a_config_error(tmp_path: Path) -> None:
    write_csv(tmp_path / "register.csv", [["id", "title"], ["A-1", "t"]])
    cfg = RegisterConfig(type="csv", path="register.csv", columns={"Owner name": "owners"})
    with pytest.raises(ConfigError) as info:
        read_register(cfg, tmp_path, BERLIN)
    assert str(info.value) == "columns: 'owners' is not a canonical field; did you mean 'owner'?"
    assert register_config_problems(cfg) == [
        (
            ("register", "columns", "Owner name"),
            "columns: 'owners' is not a canonical field; did you mean 'owner'?",
        )
    ]


def test_status_map_to_an_unknown_status_is_a_config_error(tmp_path: Path) -> None:
    cfg = RegisterConfig(
        path="register.csv", status_map={"Parked": "parked"}, columns={"Changed": "status_changed_at"}
    )
    with pytest.raises(ConfigError, match=r"^status_map: 'parked' is not a status \(one of open, "):
        read_register(cfg, tmp_path, BERLIN)


def test_header_problems_are_reported_but_rows_still_load(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "register.csv",
        [["id", "title", "Decision owner", "owner", "Note", "Note"], ["A-1", "t", "dana", "lee", "x", "y"]],
    )
    result = read(tmp_path, columns={"Decision owner": "owner", "Approver name": "approver"})
    where = str(tmp_path / "register.csv")
    assert messages(result) == [
        f"{where}:row 1: register.columns: no column 'Approver name' in the header "
        "('id', 'title', 'Decision owner', 'owner', 'Note', 'Note')",
        f"{where}:row 1: column 'owner' ignored: column 'Decision owner' already provides 'owner'",
        f"{where}:row 1: column 'Note' ignored: column 'Note' already provides 'Note'",
    ]
    action = result.snapshot.actions["A-1"]
    assert action["owner"] == "dana" and action["Note"] == "x"


def test_missing_id_column_is_fatal(tmp_path: Path) -> None:
    write_csv(tmp_path / "register.csv", [["Key", "title"], ["A-1", "t"]])
    with pytest.raises(InputError) as info:
        read(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'register.csv'}:row 1: no 'id' column (columns: 'Key', 'title'); map one with register.columns"
    )


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read(tmp_path, path="nowhere/register.csv")
    assert str(info.value) == f"{tmp_path / 'nowhere' / 'register.csv'}: register file not found"


def test_empty_csv_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "register.csv").write_text("")
    with pytest.raises(InputError, match="no header row"):
        read(tmp_path)


# --- SQLite ------------------------------------------------------------------------------------


def make_db(path: Path, rows: list[dict[str, Any]], table: str = "actions") -> None:
    db = sqlite_utils.Database(path)
    db[table].insert_all(rows)
    db.conn.close()


def test_sqlite_rows_in_rowid_order(tmp_path: Path) -> None:
    make_db(
        tmp_path / "register.db",
        [
            {
                "id": "A-1",
                "title": "t1",
                "status": "open",
                "due": "2026-12-04",
                "tags": ["a", "b"],
                "score": 7,
            },
            {
                "id": 42,
                "title": "t2",
                "status": "Blocked",
                "due": "2026-12-04 10:00:00",
                "tags": None,
                "score": None,
            },
            {"id": "A-3", "title": "t3", "status": "open", "due": "soon", "tags": None, "score": 1},
        ],
    )
    result = read(tmp_path, type="sqlite", path="register.db")
    assert messages(result) == [f"{tmp_path / 'register.db'}:row 3: unparseable date 'soon' in due"]
    a1, a2 = result.snapshot.actions["A-1"], result.snapshot.actions["42"]
    assert a1["tags"] == ("a", "b") and a1["score"] == 7 and a1.row == 1
    assert a2.status == "blocked" and a2.row == 2
    assert a2["due"] == datetime(2026, 12, 4, 10, 0, tzinfo=BERLIN)
    assert "score" in result.snapshot.columns


def test_sqlite_register_is_not_modified(tmp_path: Path) -> None:
    path = tmp_path / "register.db"
    make_db(path, [{"id": "A-1", "title": "t"}])
    before = path.read_bytes()
    read(tmp_path, type="sqlite", path="register.db")
    assert path.read_bytes() == before


def test_sqlite_missing_table_lists_the_tables(tmp_path: Path) -> None:
    make_db(tmp_path / "register.db", [{"id": "A-1", "title": "t"}], table="decisions")
    with pytest.raises(InputError) as info:
        read(tmp_path, type="sqlite", path="register.db", table="actions")
    assert str(info.value) == (
        f"{tmp_path / 'register.db'}: no table 'actions' in the database (its tables: decisions); set register.table"
    )


def test_sqlite_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "register.db").write_text("id,title\nA-1,t\n" * 200)
    with pytest.raises(InputError) as info:
        read(tmp_path, type="sqlite", path="register.db")
    assert str(info.value).startswith(f"{tmp_path / 'register.db'}: not a readable SQLite database")


# --- XLSX --------------------------------------------------------------------------------------


def make_xlsx(path: Path, sheets: dict[str, list[list[Any]]]) -> None:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    workbook.save(path)


def test_xlsx_typed_cells(tmp_path: Path) -> None:
    rows = [
        ["ID", "Title", "Due", "Created at", "Decided at", "Cycle", "Budget"],
        [
            17,
            "t1",
            date(2026, 12, 4),
            datetime(2026, 12, 1, 9, 30),
            datetime(2026, 12, 3, 0, 0),
            "2026-12",
            1500.5,
        ],
        [None, None, None, None, None, None, None],
        ["A-2", "t2", "2026-12-07", None, None, date(2027, 1, 1), None],
        ["A-3", "t3", "Q1", None, None, None, None],
    ]
    make_xlsx(tmp_path / "register.xlsx", {"Other": [["x"]], "Actions": rows})
    result = read(tmp_path, type="xlsx", path="register.xlsx", sheet="Actions")
    assert messages(result) == [f"{tmp_path / 'register.xlsx'}:row 5: unparseable date 'Q1' in due"]
    a17 = result.snapshot.actions["17"]
    assert a17.row == 2
    assert type(a17["due"]) is date and a17["due"] == date(2026, 12, 4)
    assert a17["created_at"] == datetime(2026, 12, 1, 9, 30, tzinfo=BERLIN)
    # Midnight in a date-and-time cell is an instant, not "that day".
    assert a17["decided_at"] == datetime(2026, 12, 3, 0, 0, tzinfo=BERLIN)
    assert a17["Budget"] == 1500.5
    assert a17["cycle"] == "2026-12"
    a2 = result.snapshot.actions["A-2"]
    assert a2.row == 4 and a2["due"] == date(2026, 12, 7)
    assert a2["cycle"] == "2027-01"  # Excel's auto-converted month comes back as a cycle id


def test_xlsx_first_sheet_by_default(tmp_path: Path) -> None:
    make_xlsx(
        tmp_path / "register.xlsx", {"One": [["id", "title"], ["A-1", "first"]], "Two": [["id", "title"]]}
    )
    result = read(tmp_path, type="xlsx", path="register.xlsx")
    assert result.snapshot.actions["A-1"].title == "first"


def test_xlsx_missing_sheet(tmp_path: Path) -> None:
    make_xlsx(tmp_path / "register.xlsx", {"One": [["id", "title"]]})
    with pytest.raises(InputError) as info:
        read(tmp_path, type="xlsx", path="register.xlsx", sheet="Actions")
    assert (
        str(info.value) == f"{tmp_path / 'register.xlsx'}: no sheet 'Actions' in the workbook (sheets: 'One')"
    )


def test_corrupt_xlsx_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "register.xlsx").write_bytes(b"PK\x03\x04 definitely not a workbook")
    with pytest.raises(InputError) as info:
        read(tmp_path, type="xlsx", path="register.xlsx")
    assert str(info.value).startswith(f"{tmp_path / 'register.xlsx'}: not a readable XLSX workbook (")


def test_config_problems_can_be_several(tmp_path: Path) -> None:
    cfg = RegisterConfig(path="r.csv", columns={"A": "nope"}, kind_map={"memo": "note"})
    with pytest.raises(ProblemList) as info:
        read_register(cfg, tmp_path, BERLIN)
    assert [str(p) for p in info.value.problems] == [
        "columns: 'nope' is not a canonical field",
        "kind_map: 'note' is not a kind (one of decision, action, approval, input)",
    ]
