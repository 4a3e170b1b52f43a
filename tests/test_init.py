"""``sopwatch init DIR``: the scaffold validates, checks and runs straight away."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import CliRunner
from test_schema import plain

from sopwatch.core.model import CANONICAL_FIELDS
from sopwatch.scaffold import files
from sopwatch.schema_export import CONFIG_FILE, RULES_FILE, render, schemas

STARTER_RULES = {"stale-approval", "missed-deadline", "unassigned-decision", "missing-cycle-input"}


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory, run_sopwatch: CliRunner) -> Path:
    folder = tmp_path_factory.mktemp("init") / "sop"
    result = run_sopwatch("init", str(folder))
    assert result.returncode == 0, result.stderr
    assert "sopwatch validate --config" in result.stdout
    return folder


def test_init_writes_a_complete_setup(scaffolded: Path) -> None:
    for relative in (
        "config.yaml",
        "people.yaml",
        "register.csv",
        "cycles.yaml",
        "rules/approvals.yaml",
        "rules/deadlines.yaml",
        "rules/ownership.yaml",
        "rules/inputs.yaml",
        "templates/reminder.txt.j2",
        "schema/config.schema.json",
        "schema/rules.schema.json",
    ):
        assert (scaffolded / relative).is_file(), relative
    config = (scaffolded / "config.yaml").read_text(encoding="utf-8")
    assert config.splitlines()[0] == "# yaml-language-server: $schema=./schema/config.schema.json"
    for path in (scaffolded / "rules").glob("*.yaml"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schema/rules.schema.json", path.name
    header = (scaffolded / "register.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert sorted(header) == sorted(CANONICAL_FIELDS)
    assert (scaffolded / "templates/reminder.txt.j2").read_text(encoding="utf-8").startswith("{#-")


def test_the_scaffold_validates_at_once(scaffolded: Path, run_sopwatch: CliRunner) -> None:
    result = run_sopwatch("validate", "--config", str(scaffolded / "config.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("ok: 4 rules in 4 files, 6 actions, 5 people")


def test_check_shows_each_starter_rule_firing(scaffolded: Path, run_sopwatch: CliRunner) -> None:
    result = run_sopwatch("check", "--json", "--config", str(scaffolded / "config.yaml"))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert {line["rule"] for line in lines} == STARTER_RULES
    assert "Traceback" not in result.stderr


def test_the_template_override_renders(scaffolded: Path, run_sopwatch: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "reminder.eml"
    result = run_sopwatch(
        "preview",
        "reminder",
        "--action",
        "A-2",
        "--rule",
        "missed-deadline",
        "--out",
        str(out),
        "--config",
        str(scaffolded / "config.yaml"),
    )
    assert result.returncode == 0, result.stderr
    assert "template failed" not in result.stderr
    text = out.read_text(encoding="utf-8", errors="replace")
    assert "Hello Alex Novak" in text and "Open work past its due date" in text


def test_the_scaffold_matches_its_schemas(scaffolded: Path) -> None:
    for name in (CONFIG_FILE, RULES_FILE):
        assert (scaffolded / "schema" / name).read_text(encoding="utf-8") == render(schemas()[name])
    config = jsonschema.Draft202012Validator(schemas()[CONFIG_FILE])
    assert not list(config.iter_errors(plain(yaml.safe_load((scaffolded / "config.yaml").read_text()))))
    rules = jsonschema.Draft202012Validator(schemas()[RULES_FILE])
    for path in (scaffolded / "rules").glob("*.yaml"):
        assert not list(rules.iter_errors(plain(yaml.safe_load(path.read_text())))), path.name


def test_init_refuses_a_non_empty_folder(tmp_path: Path, run_sopwatch: CliRunner) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "config.yaml").write_text("mine\n", encoding="utf-8")
    (folder / "notes.txt").write_text("keep me\n", encoding="utf-8")
    result = run_sopwatch("init", str(folder))
    assert result.returncode == 1
    assert "not empty" in result.stderr and "--force" in result.stderr
    assert "Traceback" not in result.stderr
    assert (folder / "config.yaml").read_text(encoding="utf-8") == "mine\n"

    forced = run_sopwatch("init", "--force", str(folder))
    assert forced.returncode == 0, forced.stderr
    assert (folder / "config.yaml").read_text(encoding="utf-8").startswith("# yaml-language-server")
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "keep me\n"
    validated = run_sopwatch("validate", "--config", str(folder / "config.yaml"))
    assert validated.returncode == 0, validated.stdout


def test_init_into_an_existing_empty_folder_with_a_timezone(tmp_path: Path, run_sopwatch: CliRunner) -> None:
    result = run_sopwatch("init", "--timezone", "Europe/Berlin", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "\ntimezone: Europe/Berlin\n" in (tmp_path / "config.yaml").read_text(encoding="utf-8")
    bad = run_sopwatch("init", "--timezone", "Mars/Olympus", str(tmp_path / "other"))
    assert bad.returncode == 1 and "unknown timezone" in bad.stderr
    assert not (tmp_path / "other").exists()


def test_the_example_rows_follow_the_calendar() -> None:
    """Dated around the day of init, in that month's cycle, which cycles.yaml generates."""
    generated = files(today=date(2027, 1, 15))
    assert ",2027-01," in generated["register.csv"]
    assert ",2026-12,data_gathering," not in generated["register.csv"]
    early = files(today=date(2027, 1, 4))["register.csv"]
    assert ",2026-12,data_gathering," in early  # before this month's cutoff: last month's input
    assert 'from: "2026-12"' in generated["cycles.yaml"] and 'to: "2028-01"' in generated["cycles.yaml"]


def test_init_takes_the_config_path_instead_of_a_folder(tmp_path: Path, run_sopwatch: CliRunner) -> None:
    config = tmp_path / "setup" / "sop.yaml"
    result = run_sopwatch("init", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert config.is_file() and not (tmp_path / "setup" / "config.yaml").exists()
    assert f"sopwatch validate --config {config.as_posix()}" in result.stdout
    for written in (
        config,
        tmp_path / "setup" / "cycles.yaml",
        tmp_path / "setup" / "templates" / "reminder.txt.j2",
    ):
        text = written.read_text(encoding="utf-8")
        assert "sop.yaml" in text and "config.yaml" not in text, written  # the comments name it
    validated = run_sopwatch("validate", "--config", str(config))
    assert validated.returncode == 0, validated.stdout + validated.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [((), "say where"), (("elsewhere", "--config", "setup/config.yaml"), "must lie in DIR")],
)
def test_init_needs_one_place_to_write(tmp_path: Path, run_sopwatch: CliRunner, args, message: str) -> None:
    result = run_sopwatch("init", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []
