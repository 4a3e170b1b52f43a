"""Turn pydantic's validation errors into ``file:line:col: message`` problems."""

from __future__ import annotations

import difflib
import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from sopwatch.config.yamlsource import LocatedDocument, Path_
from sopwatch.errors import ConfigError, ProblemList

M = TypeVar("M", bound=BaseModel)


_PLAIN_KEY = re.compile(r"^[\w-]+$")


def _dotted(path: Path_) -> str:
    """``rules[0].escalation``; a key that is not a plain word (a line break, a dot) shows quoted."""
    return "".join(
        f"[{p}]" if isinstance(p, int) else f".{p}" if _PLAIN_KEY.fullmatch(str(p)) else f"[{str(p)!r}]"
        for p in path
    ).lstrip(".")


def _known_keys(model: type[BaseModel], path: Path_) -> list[str]:
    """Field names of the sub-model at ``path``, for 'did you mean' hints."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None or isinstance(part, int):
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            field = next((f for f in current.model_fields.values() if f.alias == part), None)
        annotation = getattr(field, "annotation", None)
        current = _model_in(annotation)
    if current is None:
        return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found:
            return found
    return None


def problems_from(
    doc: LocatedDocument, model: type[BaseModel], exc: ValidationError, base: Path_ = ()
) -> list[ConfigError]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # Union branches add their type names (``list[str]``) to the location; drop them.
        loc = tuple(p for p in loc if isinstance(p, int) or "[" not in p)
        path = base + loc
        kind = error["type"]
        if kind == "extra_forbidden":
            key = loc[-1] if loc else "?"
            hint = difflib.get_close_matches(str(key), _known_keys(model, loc[:-1]), n=1)
            suffix = f"; did you mean {hint[0]!r}?" if hint else ""
            where = _dotted(loc[:-1])
            message = f"unknown key {key!r}" + (f" in {where}" if where else "") + suffix
            problems.append(doc.error(path, message, key=True))
        elif kind == "missing":
            problems.append(doc.error(path[:-1], f"{_dotted(loc)}: required key is missing"))
        else:
            msg = error["msg"].removeprefix("Value error, ")
            value = error.get("input")
            shown = (
                f" (got {value!r})" if isinstance(value, (str, int, float)) and kind != "value_error" else ""
            )
            problems.append(doc.error(path, f"{_dotted(loc)}: {msg}{shown}"))
    return problems


def validate_model(doc: LocatedDocument, model: type[M], data: object = None, base: Path_ = ()) -> M:
    try:
        return model.model_validate(doc.data if data is None else data)
    except ValidationError as exc:
        raise ProblemList(problems_from(doc, model, exc, base)) from None


def require_mapping(doc: LocatedDocument, what: str) -> dict:
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{what} must be a YAML mapping", doc.location(()))
    return doc.data
