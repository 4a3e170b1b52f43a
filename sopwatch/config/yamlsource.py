"""YAML loading that remembers where every node was, so errors can say ``file:line:col``.

The safe loader never builds Python objects from tags. Booleans are only ``true``/``false`` and
``10:00`` stays a string: YAML 1.1's ``NO``-is-false and sexagesimal numbers surprise admins
(Norway's country code, meeting times).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sopwatch.errors import ConfigError, Location

Path_ = tuple[str | int, ...]
MAX_NODES = 1_000_000  # guards against alias bombs


# libyaml's parser keeps node positions and is ~10x faster on large people files; the resolvers
# and constructors below stay the safe Python ones either way.
_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    pass


# Keep the safe resolvers except bool/int/float, which we re-add with stricter patterns.
_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?$"),
    list("-+0123456789"),
)


@dataclass
class LocatedDocument:
    """Plain data from a YAML file plus the position of every value and every mapping key."""

    path: str
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def location(self, path: Path_, *, key: bool = False) -> Location:
        """The position of ``path``, or of its nearest ancestor that has one."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while True:
            if probe in table:
                line, col = table[probe]
                return Location(self.path, line, col)
            if key and probe in self.values:
                line, col = self.values[probe]
                return Location(self.path, line, col)
            if not probe:
                return Location(self.path, 1, 1)
            probe = probe[:-1]

    def error(self, path: Path_, message: str, *, key: bool = False) -> ConfigError:
        return ConfigError(message, self.location(path, key=key))


_PLAIN_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_STR = "tag:yaml.org,2002:str"


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def load_yaml_text(text: str, path: str) -> LocatedDocument:
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = f"invalid YAML: {exc.problem or exc.context}"
            start = exc.context_mark
            if (
                exc.problem
                and exc.context
                and start is not None
                and mark is not None
                and start.line != mark.line
            ):
                # The parser notices far below the culprit (an unclosed bracket or quote): say where it began.
                message += f" ({exc.context} that starts at line {start.line + 1}, column {start.column + 1})"
            if mark is None:
                raise ConfigError(message, Location(path)) from None
            raise ConfigError(message, Location(path, mark.line + 1, mark.column + 1)) from None
        except yaml.reader.ReaderError as exc:
            # libyaml counts bytes of UTF-8, the Python reader counts characters.
            if _Base is yaml.SafeLoader:
                before = text[: exc.position]
            else:
                before = text.encode("utf-8")[: exc.position].decode("utf-8", "ignore")
            line, col = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
            code = exc.character if isinstance(exc.character, int) else ord(exc.character)
            message = f"invalid YAML: control character U+{code:04X} is not allowed"
            raise ConfigError(message, Location(path, line, col)) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML: {' '.join(str(exc).split())}", Location(path)) from None
        doc = LocatedDocument(path=path, data=None)
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == "tag:yaml.org,2002:null"):
            doc.data = {}
            return doc
        budget = [MAX_NODES]
        doc.data = _build(loader, root, (), doc, budget)
        return doc
    finally:
        loader.dispose()


def load_yaml_file(path: Path) -> LocatedDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", Location(str(path))) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", Location(str(path))) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", Location(str(path))) from None
    return load_yaml_text(text, str(path))


def _build(loader: _Loader, node: yaml.Node, path: Path_, doc: LocatedDocument, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise doc.error(path, "document too large (alias expansion?)")
    doc.values[path] = _mark(node)
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
        line, col = _mark(node)
        raise ConfigError(f"invalid YAML: tag {node.tag!r} is not allowed", Location(doc.path, line, col))
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, col = _mark(key_node)
                raise ConfigError("mapping keys must be plain values", Location(doc.path, line, col))
            if key_node.tag == "tag:yaml.org,2002:merge":
                line, col = _mark(key_node)
                raise ConfigError("YAML merge keys (<<) are not supported", Location(doc.path, line, col))
            key = _scalar(loader, key_node, doc)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                key = str(key)
            if key in result:
                line, col = _mark(key_node)
                raise ConfigError(f"duplicate key {key!r}", Location(doc.path, line, col))
            child = (*path, key)
            doc.keys[child] = _mark(key_node)
            result[key] = _build(loader, value_node, child, doc, budget)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, index), doc, budget) for index, item in enumerate(node.value)]
    return _scalar(loader, node, doc)


def _scalar(loader: _Loader, node: yaml.Node, doc: LocatedDocument) -> Any:
    if node.tag == _STR:
        return node.value  # what the constructor returns for a string, without its bookkeeping
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        line, col = _mark(node)
        raise ConfigError(f"invalid YAML: {exc.problem}", Location(doc.path, line, col)) from None
    except ValueError as exc:
        line, col = _mark(node)
        raise ConfigError(f"invalid value: {exc}", Location(doc.path, line, col)) from None
