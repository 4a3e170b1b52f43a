"""JSON Schema for editors: ``config.schema.json`` and ``rules.schema.json``.

Both come from the pydantic models of :mod:`sopwatch.config.schema` (``by_alias=True``, with their
descriptions and examples). The rule conditions (``when``) are free-form in the model because
their fields depend on the register; here they get a recursive description with the combinators
and the operator names, so an editor can complete ``{ne: done}`` and flag ``{neq: done}``.

The schemas help while typing; ``sopwatch validate`` stays the authority (it knows the register's
columns, the directory and the calendar's phases).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sopwatch.config.schema import Config, RulesFile
from sopwatch.core.conditions import COMBINATORS, OPS
from sopwatch.core.model import CANONICAL_FIELDS, KINDS, OBSERVED_FIELDS, STATUSES, TIME_FIELDS

DIALECT = "https://json-schema.org/draft/2020-12/schema"
CONFIG_FILE = "config.schema.json"
RULES_FILE = "rules.schema.json"

_SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean", "null"]}

_OP_HELP = {
    "eq": "equal to the value",
    "ne": "not equal to the value",
    "in": "one of the listed values",
    "not_in": "none of the listed values",
    "lt": "less than (dates compare as dates, numbers as numbers)",
    "lte": "less than or equal",
    "gt": "greater than",
    "gte": "greater than or equal",
    "empty": "true: the field is empty; false: it has a value",
    "regex": "a regular expression (Python syntax) found in the value, e.g. '(?i)^high$'",
    "contains": "the text contains the value; for tags, has the tag",
}

_FIELD_HELP = {
    "id": "the action's id",
    "kind": "decision, action, approval or input",
    "title": "the action's title",
    "status": "the canonical status (after status_map)",
    "owner": "person reference; empty = unassigned",
    "approver": "person reference",
    "raised_by": "person reference",
    "cycle": "cycle id, e.g. 2026-12",
    "phase": "phase id, e.g. supply_review",
    "tags": "the action's tags: `tags: x` means has tag x",
    "status_since": "when sopwatch first observed the current status (or status_changed_at)",
    "owner_since": "when sopwatch first observed the current owner",
    "first_seen": "when sopwatch first observed the action",
}


def _value_schema(field: str | None) -> dict[str, Any]:
    """What one comparison value may be for ``field`` (None: any other register column)."""
    if field == "status":
        return {"type": "string", "enum": list(STATUSES)}
    if field == "kind":
        return {"type": "string", "enum": list(KINDS)}
    if field in TIME_FIELDS:
        return {
            "type": ["string", "null"],
            "description": "An ISO date or datetime, e.g. 2026-12-04 or 2026-12-04T12:00.",
        }
    return dict(_SCALAR)


def _operator_schema(value: dict[str, Any]) -> dict[str, Any]:
    """``{op: operand}``: exactly one operator per mapping."""
    listed = {"type": "array", "items": value}
    operands: dict[str, Any] = {
        "eq": value,
        "ne": value,
        "in": listed,
        "not_in": listed,
        "lt": value,
        "lte": value,
        "gt": value,
        "gte": value,
        "empty": {"type": "boolean"},
        "regex": {"type": "string", "format": "regex"},
        "contains": _SCALAR,
    }
    assert set(operands) == set(OPS), "keep the schema's operators in step with the conditions"
    return {
        "type": "object",
        "description": "One operator: " + ", ".join(OPS) + ". Use all: to combine several.",
        "properties": {op: {**operands[op], "description": _OP_HELP[op]} for op in OPS},
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 1,
    }


def _field_condition(value: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "anyOf": [value, {"type": "array", "items": value}, _operator_schema(value)],
    }


# One definition per kind of value; each field's property refers to one of them.
_VALUE_KINDS = {
    "FieldCondition": (None, "a register column (any header is usable by name)"),
    "StatusCondition": ("status", "the canonical status (after status_map)"),
    "KindCondition": ("kind", "decision, action, approval or input"),
    "TimeCondition": ("due", "a date or datetime; compared as dates when either side is a date"),
}


def _definition_for(field: str) -> str:
    if field == "status":
        return "StatusCondition"
    if field == "kind":
        return "KindCondition"
    return "TimeCondition" if field in TIME_FIELDS else "FieldCondition"


def condition_defs() -> dict[str, dict[str, Any]]:
    """``$defs`` for rule conditions: ``Condition`` and the field tests it refers to."""
    generic = "value (equality), [a, b] (membership), or {op: value}"
    properties: dict[str, Any] = {
        "all": {
            "type": "array",
            "minItems": 1,
            "items": {"$ref": "#/$defs/Condition"},
            "description": "Every condition in the list holds.",
        },
        "any": {
            "type": "array",
            "minItems": 1,
            "items": {"$ref": "#/$defs/Condition"},
            "description": "At least one condition in the list holds.",
        },
        "not": {"$ref": "#/$defs/Condition", "description": "The condition does not hold."},
    }
    assert set(properties) == set(COMBINATORS)
    defs: dict[str, dict[str, Any]] = {
        name: _field_condition(_value_schema(sample), f"{help_text}: {generic}.")
        for name, (sample, help_text) in _VALUE_KINDS.items()
    }
    for field in (*CANONICAL_FIELDS, *OBSERVED_FIELDS):
        help_text = _FIELD_HELP.get(field, "a date or datetime" if field in TIME_FIELDS else field)
        properties[field] = {
            "$ref": f"#/$defs/{_definition_for(field)}",
            "description": f"{field}: {help_text}.",
        }
    defs["Condition"] = {
        "type": "object",
        "description": (
            "All keys must hold. Keys are register fields (canonical fields, observed instants, or any "
            "other column by its header) or the combinators all, any, not. Values: a value "
            "(equality), a list (membership) or {op: value} with op one of " + ", ".join(OPS) + "."
        ),
        "properties": properties,
        "additionalProperties": {"$ref": "#/$defs/FieldCondition"},
    }
    return defs


def config_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(by_alias=True)
    return {
        "$schema": DIALECT,
        "title": "sopwatch config",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def rules_schema() -> dict[str, Any]:
    schema = RulesFile.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    defs.update(condition_defs())
    when = defs["RuleSpec"]["properties"]["when"]
    for key in ("type", "additionalProperties"):
        when.pop(key, None)
    when["$ref"] = "#/$defs/Condition"
    return {
        "$schema": DIALECT,
        "title": "sopwatch rules file",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema."""
    return {CONFIG_FILE: config_schema(), RULES_FILE: rules_schema()}


def render(schema: dict[str, Any]) -> str:
    """The file text: stable, so the committed copies can be compared with a fresh export."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = out / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written
