"""The people directory from YAML and CSV files, merged with config roles."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sopwatch.adapters.people import load_directory
from sopwatch.config.yamlsource import load_yaml_text
from sopwatch.errors import ConfigError, ProblemList

BERLIN = ZoneInfo("Europe/Berlin")

GOOD_YAML = """\
people:
  - id: dana
    name: Dana Smith
    email: dana@example.com
    manager: lee
    timezone: America/New_York
    roles: [approvers]
  - id: lee
    name: Lee
    email: Lee@Example.com
    roles: sop-lead
  - id: 1042
    email: kim@example.com
"""


def problems_of(info: pytest.ExceptionInfo[ProblemList]) -> list[str]:
    return [str(p) for p in info.value.problems]


def test_yaml_directory(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    path.write_text(GOOD_YAML)
    directory = load_directory(
        path, {"sop-lead": ["kim@example.com"], "approvers": ["lee@example.com"]}, BERLIN
    )
    dana = directory.people["dana"]
    assert (dana.name, dana.email, dana.manager) == ("Dana Smith", "dana@example.com", "lee")
    assert dana.timezone == ZoneInfo("America/New_York")
    lee = directory.people["lee"]
    assert lee.timezone is BERLIN and lee.manager is None
    assert directory.people["1042"].name == "1042"  # numeric ids stay ids; name defaults to the id
    # Config members first, then people's own roles; emails of known people become their ids.
    assert directory.roles == {"sop-lead": ("1042", "lee"), "approvers": ("lee", "dana")}
    assert lee.roles == ("sop-lead", "approvers")
    assert directory.find("dana@EXAMPLE.com") is dana


def test_csv_directory(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "ID,Name,Email,Manager,Timezone,Roles\n"
        "dana,Dana,dana@example.com,lee,America/New_York,approvers; reviewers\n"
        "\n"
        'lee,Lee,lee@example.com,,,"sop-lead,approvers"\n'
    )
    directory = load_directory(path, {}, BERLIN)
    assert directory.people["dana"].timezone == ZoneInfo("America/New_York")
    assert directory.people["lee"].timezone is BERLIN
    assert directory.roles == {"approvers": ("dana", "lee"), "reviewers": ("dana",), "sop-lead": ("lee",)}


def test_no_people_file_keeps_config_roles() -> None:
    directory = load_directory(None, {"sop-lead": ["lead@example.com"]}, BERLIN)
    assert directory.people == {}
    assert directory.roles == {"sop-lead": ("lead@example.com",)}


def test_yaml_problems_are_all_reported_with_positions(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    path.write_text(
        "people:\n"  # 1
        "  - id: ana\n"  # 2
        "    email: ana@example.com\n"  # 3
        "    manager: bob\n"  # 4
        "  - id: bob\n"  # 5
        "    email: bob@example.com\n"  # 6
        "    manager: ana\n"  # 7
        "  - id: ana\n"  # 8
        "    email: not-an-email\n"  # 9
        "    timezone: Mars/Olympus\n"  # 10
        "  - id: cy\n"  # 11
        "    email: cy@example.com\n"  # 12
        "    manager: bob@example.com\n"  # 13
        "  - id: self\n"  # 14
        "    email: self@example.com\n"  # 15
        "    manager: self\n"  # 16
    )
    with pytest.raises(ProblemList) as info:
        load_directory(path, {}, BERLIN)
    assert problems_of(info) == [
        f"{path}:8:9: duplicate person id 'ana' (first at line 2)",
        f"{path}:9:12: email 'not-an-email' is not one plain email address such as lee@example.com",
        f"{path}:10:15: unknown timezone 'Mars/Olympus' (use an IANA name such as Europe/Berlin)",
        f"{path}:13:14: unknown manager 'bob@example.com': not a person id; use their id 'bob'",
        f"{path}:4:14: manager cycle: ana -> bob -> ana",
        f"{path}:16:14: manager cycle: self -> self",
    ]
    assert all(isinstance(p, ConfigError) for p in info.value.problems)


def test_yaml_shape_errors(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    path.write_text("people:\n  - id: ana\n    mail: ana@example.com\n")
    with pytest.raises(ProblemList) as info:
        load_directory(path, {}, BERLIN)
    assert problems_of(info) == [
        f"{path}:2:5: people[0].email: required key is missing",
        f"{path}:3:5: unknown key 'mail' in people[0]; did you mean 'email'?",
    ]


def test_csv_problems_are_reported_by_row(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "id,name,email,manager,timezone,roles,phone\n"  # row 1
        "ana,Ana,ana@example.com,zed,,,\n"  # row 2
        ",No Id,x@example.com,,,,\n"  # row 3
        "bob,Bob,bob at example.com,,Europe/Nowhere,,\n"  # row 4
        "ana,Ana again,ana2@example.com,,,,\n"  # row 5
    )
    with pytest.raises(ProblemList) as info:
        load_directory(path, {}, BERLIN)
    assert problems_of(info) == [
        f"{path}:row 1: unknown column 'phone' (expected id, name, email, manager, timezone, roles)",
        f"{path}:row 3: missing id",
        f"{path}:row 5: duplicate person id 'ana' (first at row 2)",
        f"{path}:row 2: unknown manager 'zed': not a person id",
        f"{path}:row 4: email 'bob at example.com' is not one plain email address such as lee@example.com",
        f"{path}:row 4: unknown timezone 'Europe/Nowhere' (use an IANA name such as Europe/Berlin)",
    ]


def test_csv_missing_required_column(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("id,name\nana,Ana\n")
    with pytest.raises(ProblemList) as info:
        load_directory(path, {}, BERLIN)
    assert problems_of(info) == [f"{path}:row 1: missing column 'email'"]


def test_config_roles_must_name_known_people(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    path.write_text(GOOD_YAML)
    config = load_yaml_text(
        "timezone: Europe/Berlin\nroles:\n  sop-lead: [lee, zed, ops@example.com]\n  finance: nobody\n",
        "config.yaml",
    )
    with pytest.raises(ProblemList) as info:
        load_directory(path, config.data["roles"] | {"finance": ["nobody"]}, BERLIN, config)
    assert problems_of(info) == [
        "config.yaml:3:19: role 'sop-lead': unknown person 'zed' "
        "(not an id in the people file; use an id or an email address)",
        "config.yaml:4:12: role 'finance': unknown person 'nobody' "
        "(not an id in the people file; use an id or an email address)",
    ]


def test_config_roles_without_people_file_or_config_doc() -> None:
    with pytest.raises(ProblemList) as info:
        load_directory(None, {"sop-lead": ["lee"]}, BERLIN)
    assert problems_of(info) == [
        "role 'sop-lead': unknown person 'lee' (no people file is configured; use an id or an email address)"
    ]


def test_unsupported_people_file_type(tmp_path: Path) -> None:
    path = tmp_path / "people.json"
    path.write_text("{}")
    with pytest.raises(ConfigError) as info:
        load_directory(path, {}, BERLIN)
    assert str(info.value) == f"{path}: a people file must be .yaml, .yml or .csv"


def test_missing_people_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_directory(tmp_path / "people.yaml", {}, BERLIN)
    assert str(info.value) == f"{tmp_path / 'people.yaml'}: file not found"
