"""YAML loading with positions (file:line:col), strict scalars and refused constructs."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sopwatch.config.yamlsource import _Loader, load_yaml_file, load_yaml_text
from sopwatch.errors import ConfigError, Location

RULES = """\
rules:
  - id: stale-approval
    severity: warning
    when:
      kind: approval
      status: [pending_approval, blocked]
    fire_at: status_since + 2 business days
    escalation:
      - notify: [approver]
      - after: 2 business days
        notify: ["manager(approver)"]
"""


def test_values_and_keys_have_positions() -> None:
    doc = load_yaml_text(RULES, "rules/a.yaml")
    rule = doc.data["rules"][0]
    assert rule["id"] == "stale-approval"
    assert rule["when"]["status"] == ["pending_approval", "blocked"]

    # positions are 1-based (line, col); a value starts after "key: "
    assert doc.keys[("rules",)] == (1, 1)
    assert doc.values[("rules", 0)] == (2, 5)  # the mapping starts at "id", after "- "
    assert doc.keys[("rules", 0, "id")] == (2, 5)
    assert doc.values[("rules", 0, "id")] == (2, 9)
    assert doc.keys[("rules", 0, "severity")] == (3, 5)
    assert doc.values[("rules", 0, "severity")] == (3, 15)
    assert doc.keys[("rules", 0, "when", "kind")] == (5, 7)
    assert doc.values[("rules", 0, "when", "kind")] == (5, 13)
    assert doc.values[("rules", 0, "fire_at")] == (7, 14)


def test_positions_in_nested_lists() -> None:
    doc = load_yaml_text(RULES, "rules/a.yaml")
    # flow sequence items: [pending_approval, blocked]
    assert doc.values[("rules", 0, "when", "status")] == (6, 15)
    assert doc.values[("rules", 0, "when", "status", 0)] == (6, 16)
    assert doc.values[("rules", 0, "when", "status", 1)] == (6, 34)
    # block sequence of mappings inside a mapping inside a list
    assert doc.values[("rules", 0, "escalation", 0)] == (9, 9)
    assert doc.values[("rules", 0, "escalation", 0, "notify", 0)] == (9, 18)
    assert doc.keys[("rules", 0, "escalation", 1, "after")] == (10, 9)
    assert doc.keys[("rules", 0, "escalation", 1, "notify")] == (11, 9)
    assert doc.values[("rules", 0, "escalation", 1, "notify", 0)] == (11, 18)


def test_positions_match_the_text() -> None:
    """Every recorded value position points at the first character of that value in the source."""
    lines = RULES.splitlines()
    doc = load_yaml_text(RULES, "rules/a.yaml")

    def walk(node, path):
        yield path, node
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, (*path, index))

    checked = 0
    for path, value in walk(doc.data, ()):
        line, col = doc.values[path]
        if isinstance(value, str):
            at = lines[line - 1][col - 1 :]
            assert at.lstrip('"').startswith(value), (path, at)
            checked += 1
        if path and isinstance(path[-1], str):
            kline, kcol = doc.keys[path]
            assert lines[kline - 1][kcol - 1 :].startswith(f"{path[-1]}:")
            checked += 1
    assert checked > 15


def test_location_falls_back_to_nearest_ancestor() -> None:
    doc = load_yaml_text(RULES, "rules/a.yaml")
    assert doc.location(("rules", 0, "when", "kind")) == Location("rules/a.yaml", 5, 13)
    assert doc.location(("rules", 0, "when", "kind"), key=True) == Location("rules/a.yaml", 5, 7)
    # a missing field is reported where its mapping is
    assert doc.location(("rules", 0, "when", "missing")) == Location("rules/a.yaml", 5, 7)
    assert doc.location(("nothing", "here")) == Location("rules/a.yaml", 1, 1)
    error = doc.error(("rules", 0, "severity"), "unknown severity 'warn'")
    assert isinstance(error, ConfigError)
    assert str(error) == "rules/a.yaml:3:15: unknown severity 'warn'"


@pytest.mark.parametrize("text", ["NO", "no", "No", "yes", "Yes", "on", "off", "OFF", "y", "n"])
def test_yaml11_booleans_stay_strings(text: str) -> None:
    doc = load_yaml_text(f"country: {text}\n", "c.yaml")
    assert doc.data == {"country": text}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("false", False), ("True", True), ("FALSE", False)],
)
def test_real_booleans(text: str, expected: bool) -> None:
    assert load_yaml_text(f"flag: {text}\n", "c.yaml").data["flag"] is expected


@pytest.mark.parametrize("text", ["10:00", "08:00", "1:30", "190:20:30"])
def test_sexagesimal_stays_a_string(text: str) -> None:
    assert load_yaml_text(f"at: {text}\n", "c.yaml").data == {"at": text}


def test_other_scalars() -> None:
    doc = load_yaml_text(
        "n: 200\nneg: -3\nf: 1.5\ns: '10:00'\nd: 2026-12-24\nnull_: null\nlist: [2026-12-24, 10:00]\n",
        "c.yaml",
    )
    assert doc.data == {
        "n": 200,
        "neg": -3,
        "f": 1.5,
        "s": "10:00",
        "d": date(2026, 12, 24),
        "null_": None,
        "list": [date(2026, 12, 24), "10:00"],
    }
    assert type(doc.data["n"]) is int


def test_python_tag_on_a_scalar_is_refused_with_its_position() -> None:
    text = "rules:\n  - id: x\n    fire_at: !!python/name:os.system ''\n"
    with pytest.raises(ConfigError) as info:
        load_yaml_text(text, "rules/evil.yaml")
    assert info.value.location == Location("rules/evil.yaml", 3, 14)
    assert str(info.value).startswith("rules/evil.yaml:3:14: ")
    assert "python/name" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "x: !!python/object:os.system {}\n",
        "x: !!python/object/apply:os.system [ls]\n",
        "x: !!python/tuple [1, 2]\n",
    ],
)
def test_python_tag_on_a_collection_is_refused(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml_text(text, "evil.yaml")
    assert info.value.location == Location("evil.yaml", 1, 4)


def test_python_object_tag_is_never_constructed() -> None:
    with pytest.raises(ConfigError):
        load_yaml_text("x: !!python/object/apply:os.getcwd []\n", "evil.yaml")


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [
        ("a: [1, 2\nb: 3\n", 2, 2),  # unclosed flow sequence: the ':' on line 2 is the problem
        ("a: 1\n  b: 2\n", 2, 4),  # bad indentation: a mapping value where none is allowed
        ("a:\n  - 1\n - 2\n", 3, 2),
        ("key: 'unterminated\n", 2, 1),
        ("a: 1\n\tb: 2\n", 2, 1),  # tab indentation
    ],
)
def test_invalid_yaml_gives_file_line_col(text: str, line: int, col: int) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml_text(text, "bad.yaml")
    location = info.value.location
    assert (location.path, location.line, location.col) == ("bad.yaml", line, col)
    assert str(info.value).startswith(f"bad.yaml:{line}:{col}: invalid YAML: ")


def test_multiple_documents_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml_text("a: 1\n---\nb: 2\n", "two.yaml")
    assert info.value.location.path == "two.yaml"
    assert info.value.location.line == 2


@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n"])
def test_empty_file_is_an_empty_mapping(text: str) -> None:
    doc = load_yaml_text(text, "empty.yaml")
    assert doc.data == {}
    assert doc.location(("anything",)) == Location("empty.yaml", 1, 1)


def test_load_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("timezone: Europe/Berlin\nhours: 08:00-18:00\n", encoding="utf-8")
    doc = load_yaml_file(path)
    assert doc.data == {"timezone": "Europe/Berlin", "hours": "08:00-18:00"}
    assert doc.location(("hours",)) == Location(str(path), 2, 8)

    with pytest.raises(ConfigError, match="file not found"):
        load_yaml_file(tmp_path / "missing.yaml")

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: M\xfcller\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_yaml_file(latin1)


def test_alias_bomb_is_refused() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 8):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 10)}]")
    with pytest.raises(ConfigError, match="too large"):
        load_yaml_text("\n".join(lines) + "\n", "bomb.yaml")


# Values as an admin's files hold them, strings that look like other things included.
_SCALARS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["yes", "no", "on", "010", "1e3", "0x1F", "2026-12-24", "10:00", "null", "~", "'q'", "#c"]
    ),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.none(),
    st.dates(),
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), _DOCUMENTS, max_size=5))
def test_values_are_what_the_loader_itself_constructs(data: dict[str, object]) -> None:
    # Oracle: PyYAML's own construction of the same text with the same (strict) resolvers; the
    # located build takes shortcuts (plain strings) and must not change a value.
    text = yaml.safe_dump(data, allow_unicode=True)
    assert load_yaml_text(text, "x.yaml").data == yaml.load(text, Loader=_Loader)
