"""Editor support: the JSON Schema files of ``sopwatch schema`` and the committed ``schema/`` folder."""

from __future__ import annotations

import copy
import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import ROOT, CliRunner

from sopwatch.core.conditions import OPS
from sopwatch.schema_export import CONFIG_FILE, RULES_FILE, render, schemas

SCHEMA_LINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")
RULE_FILES = sorted((ROOT / "rules").glob("*.yaml"))


def plain(value: Any) -> Any:
    """YAML 1.1 reads ``2026-12-24`` as a date; editors (YAML 1.2) and JSON see the text."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def load(path: Path) -> Any:
    return plain(yaml.safe_load(path.read_text(encoding="utf-8")))


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        schemas()[name], format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def errors(name: str, document: Any) -> list[str]:
    return [error.message for error in validator(name).iter_errors(document)]


def test_the_schemas_are_valid_json_schema() -> None:
    for schema in schemas().values():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)


def test_the_bundled_config_validates() -> None:
    assert errors(CONFIG_FILE, load(ROOT / "config.example.yaml")) == []


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_bundled_rules_file_validates(path: Path) -> None:
    assert errors(RULES_FILE, load(path)) == []


def test_the_schema_lines_resolve_to_the_committed_files() -> None:
    for path, name in [(ROOT / "config.example.yaml", CONFIG_FILE)] + [(p, RULES_FILE) for p in RULE_FILES]:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        match = SCHEMA_LINE.match(first)
        assert match, f"{path.name}: first line is {first!r}"
        target = (path.parent / match.group(1)).resolve()
        assert target == (ROOT / "schema" / name).resolve(), f"{path.name} points at {target}"
        assert target.is_file()


def test_the_committed_schemas_are_what_sopwatch_schema_writes_now(
    run_sopwatch: CliRunner, tmp_path: Path
) -> None:
    """If this fails, run `sopwatch schema` at the top of the repository and commit schema/."""
    result = run_sopwatch("schema", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    for name in (CONFIG_FILE, RULES_FILE):
        fresh = (tmp_path / "out" / name).read_text(encoding="utf-8")
        assert fresh == render(schemas()[name])
        committed = (ROOT / "schema" / name).read_text(encoding="utf-8")
        assert committed == fresh, f"schema/{name} is stale: run `sopwatch schema` and commit it"


def test_schema_defaults_to_a_schema_folder_in_the_working_directory(
    run_sopwatch: CliRunner, tmp_path: Path
) -> None:
    result = run_sopwatch("schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "schema" / CONFIG_FILE).read_text(encoding="utf-8"))["title"]
    assert json.loads((tmp_path / "schema" / RULES_FILE).read_text(encoding="utf-8"))["title"]


RULE = {"id": "late", "when": {"status": "open"}, "fire_at": "due", "escalation": [{"notify": "owner"}]}


def rules_with(**changes: Any) -> dict[str, Any]:
    rule = copy.deepcopy(RULE)
    rule.update(changes)
    return {"rules": [rule]}


def test_a_good_minimal_rules_file_validates() -> None:
    assert errors(RULES_FILE, rules_with()) == []
    condition = {
        "kind": "approval",
        "status": {"in": ["pending_approval", "blocked"]},
        "owner": {"empty": False},
        "due": {"lt": "2026-12-01"},
        "Region": "EMEA",  # any register column, by its header
        "tags": {"contains": "promo"},
        "all": [{"priority": {"not_in": ["P3"]}}, {"any": [{"title": {"regex": "(?i)film"}}]}],
        "not": {"team": "Finance"},
    }
    assert errors(RULES_FILE, rules_with(when=condition)) == []


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"when": {"status": {"neq": "done"}}}, "an unknown operator"),
        ({"when": {"owner": {"empty": True, "ne": "x"}}}, "two operators in one mapping"),
        ({"when": {"status": "Waiting for approval"}}, "a status that is not canonical"),
        ({"when": {"kind": "task"}}, "an unknown kind"),
        ({"when": {"owner": {"empty": "yes"}}}, "empty takes true or false"),
        ({"when": {"all": {"status": "open"}}}, "all takes a list"),
        ({"severity": "urgent"}, "an unknown severity"),
        ({"escalation": []}, "no escalation steps"),
        ({"escalation": [{"notify": []}]}, "nobody to notify"),
        ({"escalation": [{"notify": "owner", "via": "sms"}]}, "an unknown channel"),
        ({"id": "Stale Approval"}, "an id that is not a slug"),
        ({"fire_at": 5}, "a time expression that is not text"),
        ({"notfiy_resolved": True}, "a misspelt key"),
    ],
)
def test_known_bad_rules_fail(change: dict[str, Any], why: str) -> None:
    assert errors(RULES_FILE, rules_with(**change)), why


def test_known_bad_configs_fail() -> None:
    good = load(ROOT / "config.example.yaml")
    assert errors(CONFIG_FILE, good) == []
    for change, why in [
        ({"registr": good["register"]}, "a misspelt key"),
        ({"register": {"type": "csv"}}, "a register without a path"),
        ({"register": {**good["register"], "type": "excel"}}, "an unknown register type"),
        ({"business_calendar": {"hours": "8-18"}}, "hours in the wrong shape"),
        ({"business_calendar": {"workdays": ["monday"]}}, "an unknown weekday"),
        ({"delivery": {"type": "pigeon"}}, "an unknown delivery type"),
        ({"max_messages_per_tick": 0}, "a cap below one"),
        ({"metrics": {"host": "127.0.0.1"}}, "metrics without a port"),
        ({"metrics": {"port": 70000}}, "a port out of range"),
    ]:
        document = {**good, **change}
        if "registr" in change:
            del document["register"]
        assert errors(CONFIG_FILE, document), why
    assert errors(CONFIG_FILE, {**good, "metrics": {"port": 9464}}) == []


def test_editors_can_complete_the_operators_and_fields() -> None:
    schema = schemas()[RULES_FILE]
    condition = schema["$defs"]["Condition"]
    assert {"all", "any", "not", "status", "owner", "due", "status_since"} <= set(condition["properties"])
    assert condition["additionalProperties"] == {"$ref": "#/$defs/FieldCondition"}
    operators = next(
        option for option in schema["$defs"]["FieldCondition"]["anyOf"] if option.get("type") == "object"
    )
    assert set(operators["properties"]) == set(OPS)
    assert schema["$defs"]["RuleSpec"]["properties"]["when"]["$ref"] == "#/$defs/Condition"


def test_every_setting_is_documented() -> None:
    """Hover help in the editor: every property of every model has a description."""
    for name, schema in schemas().items():
        for model, definition in [("(top)", schema), *schema["$defs"].items()]:
            for key, prop in definition.get("properties", {}).items():
                ref = prop.get("$ref", "").removeprefix("#/$defs/")
                described = prop.get("description") or schema["$defs"].get(ref, {}).get("description")
                assert described, f"{name}: {model}.{key} has no description"


def test_schema_writes_beside_the_config_it_is_given(run_sopwatch: CliRunner, tmp_path: Path) -> None:
    """Every command takes --config (SPEC §5): here it says where the editor looks for the schema."""
    result = run_sopwatch("schema", "--config", str(tmp_path / "setup" / "config.yaml"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "setup" / "schema" / CONFIG_FILE).read_text(encoding="utf-8"))["title"]
