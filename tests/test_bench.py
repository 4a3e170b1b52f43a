"""The benchmark's inputs are what the performance issue asks for, and ``make bench`` still runs.

The generator's promises (500 people with managers over three timezones, ~10% open work of
every kind, due dates over six months, rule sets using every condition operator, three register
sources holding the same rows) are checked by reading its files with plain csv, sqlite3, openpyxl
and yaml, not with sopwatch's own readers. The runner is run end to end in its ``--smoke`` mode
(toy sizes, one run each): its figures are not asserted, only that each one is measured, printed
and written. Timing is the benchmark's job, never the suite's.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from openpyxl import load_workbook

from sopwatch.core.conditions import OPS
from sopwatch.core.model import DEFAULT_TERMINAL, KINDS

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

from generate import generate, register_path  # noqa: E402  (bench/ is not a package)

N = 2_000
SEED = 7


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench-inputs")
    configs = {rules: generate(N, rules, out, SEED, sources=["csv", "sqlite", "xlsx"]) for rules in (20, 50)}
    return {"out": out, "configs": configs}


def _config(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _statuses(inputs: dict[str, Any]) -> list[str]:
    config = _config(inputs["configs"][50]["csv"])
    spelling = config["register"]["status_map"]
    rows = _csv_rows(register_path(inputs["out"], N, SEED, "csv"))
    return [spelling.get(row["Status"], row["Status"]) for row in rows]


def test_about_a_tenth_of_the_work_is_open_and_every_kind_and_status_occurs(inputs: dict[str, Any]) -> None:
    statuses = _statuses(inputs)
    assert len(statuses) == N
    open_share = sum(status not in DEFAULT_TERMINAL for status in statuses) / N
    assert 0.07 <= open_share <= 0.13, open_share
    config = _config(inputs["configs"][50]["csv"])
    kinds = Counter(
        config["register"].get("kind_map", {}).get(row["Type"], row["Type"]).lower()
        for row in _csv_rows(register_path(inputs["out"], N, SEED, "csv"))
    )
    assert set(kinds) == set(KINDS)
    assert set(statuses) >= {"open", "in_progress", "blocked", "pending_approval", *DEFAULT_TERMINAL}


def test_due_dates_span_six_months(inputs: dict[str, Any]) -> None:
    config = _config(inputs["configs"][50]["csv"])
    date_format = config["register"]["date_format"]
    dues = [
        datetime.strptime(row["Due date"], date_format).date()
        for row in _csv_rows(register_path(inputs["out"], N, SEED, "csv"))
    ]
    assert 170 <= (max(dues) - min(dues)).days <= 186
    assert min(dues) < date(2026, 12, 9) < max(dues)  # around the moment the bench evaluates at


def test_500_people_in_one_management_tree_over_three_timezones(inputs: dict[str, Any]) -> None:
    config = _config(inputs["configs"][50]["csv"])
    people = _config(inputs["out"] / config["people"])["people"]
    assert len(people) == 500
    by_id = {person["id"]: person for person in people}
    roots = [person for person in people if "manager" not in person]
    assert len(roots) == 1
    for person in people:  # every chain of managers ends at the one root, without a loop
        seen, current = set(), person
        while "manager" in current:
            assert current["id"] not in seen
            seen.add(current["id"])
            current = by_id[current["manager"]]
        assert current is roots[0]
    zones = {person.get("timezone", config["timezone"]) for person in people}
    assert zones == {"Europe/Berlin", "America/New_York", "Asia/Singapore"}


def _conditions(node: Any) -> set[str]:
    """Every operator a ``when`` uses, including the implicit ``eq``/``in`` of the short forms."""
    ops: set[str] = set()
    if isinstance(node, list):
        for item in node:
            ops |= _conditions(item)
        return ops
    for key, value in node.items():
        if key in ("all", "any", "not"):
            ops.add(key)
            ops |= _conditions(value)
        elif isinstance(value, dict):
            ops |= set(value)
        else:
            ops.add("in" if isinstance(value, list) else "eq")
    return ops


@pytest.mark.parametrize("count", [20, 50])
def test_each_rule_set_has_its_size_and_uses_every_condition_operator(
    inputs: dict[str, Any], count: int
) -> None:
    config = _config(inputs["configs"][count]["csv"])
    folder = inputs["out"] / config["rules"][0]
    rules = [rule for path in sorted(folder.glob("*.yaml")) for rule in _config(path)["rules"]]
    assert len(rules) == count
    used = set().union(*(_conditions(rule["when"]) for rule in rules))
    assert used >= {*OPS, "all", "any", "not"}, sorted({*OPS, "all", "any", "not"} - used)
    assert any(len(rule["escalation"]) > 1 for rule in rules)
    assert any("calendar_hold" in step for rule in rules for step in rule["escalation"])
    assert any(step.get("via") == "digest" for rule in rules for step in rule["escalation"])
    assert any("business days" in rule["fire_at"] for rule in rules)
    assert any(rule["fire_at"].startswith("cycle.") for rule in rules)


def test_the_three_register_sources_hold_the_same_rows(inputs: dict[str, Any]) -> None:
    out = inputs["out"]
    from_csv = _csv_rows(register_path(out, N, SEED, "csv"))
    with sqlite3.connect(register_path(out, N, SEED, "sqlite")) as conn:
        cursor = conn.execute("SELECT * FROM actions ORDER BY rowid")
        headers = [column[0] for column in cursor.description]
        from_sqlite = [dict(zip(headers, row, strict=True)) for row in cursor]
    book = load_workbook(register_path(out, N, SEED, "xlsx"), read_only=True)
    try:
        sheet_rows = list(book.worksheets[0].iter_rows(values_only=True))
    finally:
        book.close()
    from_xlsx = [dict(zip(sheet_rows[0], row, strict=True)) for row in sheet_rows[1:]]
    assert len(from_csv) == len(from_sqlite) == len(from_xlsx) == N
    for columns in (("ID", "Title", "Status", "Type", "Decision owner", "Team"),):
        for text, table, sheet in zip(from_csv, from_sqlite, from_xlsx, strict=True):
            for column in columns:
                assert text[column] == (table[column] or "") == (sheet[column] or ""), (column, text["ID"])


def test_the_same_seed_gives_the_same_files_and_another_seed_others(tmp_path: Path) -> None:
    first = generate(300, 20, tmp_path / "a", SEED, sources=["csv"])["csv"]
    again = generate(300, 20, tmp_path / "b", SEED, sources=["csv"])["csv"]
    other = generate(300, 20, tmp_path / "c", SEED + 1, sources=["csv"])["csv"]
    read = [
        register_path(config.parent, 300, seed, "csv").read_bytes()
        for config, seed in ((first, SEED), (again, SEED), (other, SEED + 1))
    ]
    assert read[0] == read[1]
    assert read[0] != read[2]


def test_every_generated_config_passes_validate(inputs: dict[str, Any]) -> None:
    sopwatch = Path(sys.executable).parent / "sopwatch"
    for configs in inputs["configs"].values():
        for config in configs.values():
            result = subprocess.run(
                [str(sopwatch), "validate", "--config", str(config)], capture_output=True, text=True
            )
            assert result.returncode == 0, (config.name, result.stdout, result.stderr)


def test_make_bench_runs_every_figure_and_writes_the_table_as_json(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--smoke",
            "--data",
            str(tmp_path / "data"),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads(output.read_text(encoding="utf-8"))
    assert written["mode"] == "smoke"
    rows = written["rows"]
    keys = [row["key"] for row in rows]
    for figure in (
        "load.csv.", "load.sqlite.", "load.xlsx.", "check.csv.", "check.sqlite.", "simulate.", "tick.",
        "digest.figures.", "delivery.plain.", "delivery.starttls.", "rss.check.csv.", "rss.check.sqlite.",
        "growth.check.csv.", "growth.check.sqlite.", "growth.load.csv.", "growth.load.sqlite.",
    ):  # fmt: skip
        assert any(key.startswith(figure) for key in keys), figure
    for row in rows:
        assert row["value"] is not None and row["value"] > 0, row
        assert row["baseline"] is not None and row["baseline"] > 0, row  # every figure beside a baseline
        assert (row["met"] is None) == (row["target"] == ""), row
        assert row["label"] in result.stdout  # the printed table holds the same figures
    assert written["machine"]["cpus"] >= 1
