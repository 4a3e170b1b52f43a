"""Malformed admin files, each run through the real ``sopwatch validate`` on a copy of the example.

Every case asserts: exit code 1, no traceback, and exactly one problem line carrying the precise
``file:line:col:`` (or ``file:row N:``) and the expected message. The expected position is computed
from the edited text, so the cases survive comment edits in the bundled example.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

Edit = Callable[[str], str]

CONFIG = "config.yaml"
APPROVALS = "rules/approvals.yaml"
BLOCKED = "rules/blocked.yaml"
DEADLINES = "rules/deadlines.yaml"
INPUTS = "rules/inputs.yaml"
EXTRA_RULES = "rules/zz-extra.yaml"  # sorts after the bundled rules files
PEOPLE = "example/people.yaml"
CYCLES = "example/cycles.yaml"
REGISTER = "example/register.csv"

PROBLEM_LINE = re.compile(r"^\S.*?:(?:\d+:\d+|row \d+): ")


def replace(old: str, new: str) -> Edit:
    def edit(text: str) -> str:
        assert text.count(old) == 1, f"{old!r} must occur exactly once"
        return text.replace(old, new)

    return edit


def content(new: str) -> Edit:
    return lambda _text: new


@dataclass(frozen=True)
class Case:
    id: str
    file: str  # the file to edit (created if absent), relative to the setup folder
    edit: Edit
    at: str | None  # text in the edited file whose first character is the expected line:col
    fragments: tuple[str, ...]
    offset: int = 0  # added to the column of ``at``
    row_of: str | None = None  # register: the row holding this text is the expected ``row N``


def case(
    id: str,
    file: str,
    edit: Edit,
    at: str | None,
    *fragments: str,
    offset: int = 0,
    row_of: str | None = None,
) -> Case:
    return Case(id, file, edit, at, fragments, offset, row_of)


CASES = [
    # --- config.yaml --------------------------------------------------------------------------------
    case(
        "config-unknown-key",
        CONFIG,
        replace("\ninterval: 5m", "\ninterval: 5m\ninterwal: 5m"),
        "interwal",
        "unknown key 'interwal'; did you mean 'interval'?",
    ),
    case(
        "config-unknown-nested-key",
        CONFIG,
        replace("business_calendar:\n", "business_calendar:\n  hourz: 08:00-17:00\n"),
        "hourz",
        "unknown key 'hourz' in business_calendar; did you mean 'hours'?",
    ),
    case(
        "config-bad-timezone",
        CONFIG,
        replace("timezone: Europe/Berlin", "timezone: Europe/Berlyn"),
        "Europe/Berlyn",
        "timezone: unknown timezone 'Europe/Berlyn'",
        "IANA",
    ),
    case(
        "config-timezone-not-text",
        CONFIG,
        replace("timezone: Europe/Berlin", "timezone: 5"),
        "timezone: 5",
        "timezone: expected an IANA timezone name",
        offset=len("timezone: "),
    ),
    case(
        "config-bad-register-type",
        CONFIG,
        replace("type: csv ", "type: cvs "),
        "cvs",
        "register.type: Input should be 'sqlite', 'csv' or 'xlsx'",
        "'cvs'",
    ),
    case(
        "config-missing-register-path",
        CONFIG,
        replace("  path: example/register.csv\n", ""),
        "type: csv",  # the register mapping starts with its first key
        "register.path: required key is missing",
    ),
    case(
        "config-bad-hours",
        CONFIG,
        replace('hours: "08:00-18:00"', 'hours: "18:00-08:00"'),
        '"18:00-08:00"',
        "business_calendar.hours",
        "start before end",
    ),
    case(
        "config-closure-not-a-date",
        CONFIG,
        replace("closures: [2026-12-24, 2026-12-31]", "closures: [2026-12-24, christmas]"),
        "christmas",
        "business_calendar.closures[1]",
        "valid date",
    ),
    case(
        "config-negative-max-messages",
        CONFIG,
        replace("\ninterval: 5m", "\ninterval: 5m\nmax_messages_per_tick: -5"),
        "-5",
        "max_messages_per_tick: Input should be greater than or equal to 1",
    ),
    case(
        "config-bad-interval",
        CONFIG,
        replace("\ninterval: 5m", "\ninterval: 5 fortnights"),
        "5 fortnights",
        "invalid duration '5 fortnights'",
    ),
    # SMTP settings the daemon would refuse at start, reported by validate at their place.
    case(
        "config-smtp-auth-without-tls",
        CONFIG,
        replace(
            "  type: maildir\n  path: example-out/maildir\n",
            "  type: smtp\n  host: mail.example.com\n  starttls: false\n  user: ops\n  password_env: PW\n",
        ),
        "type: smtp\n",  # the delivery mapping starts with its first key (the comment above says "type: smtp with")
        "delivery: user needs starttls: true or tls: true",
    ),
    case(
        "config-smtp-both-tls-modes",
        CONFIG,
        replace(
            "  type: maildir\n", "  type: smtp\n  host: mail.example.com\n  starttls: true\n  tls: true\n"
        ),
        "type: smtp\n",
        "delivery: set either starttls",
        "not both",
    ),
    case(
        "config-smtp-without-host",
        CONFIG,
        replace("  type: maildir\n", "  type: smtp\n  starttls: true\n"),
        "type: smtp\n",
        "delivery: host is required for SMTP delivery",
    ),
    case(
        "config-smtp-ca-file-missing",
        CONFIG,
        replace(
            "  type: maildir\n",
            "  type: smtp\n  host: mail.example.com\n  starttls: true\n  ca_file: nope.pem\n",
        ),
        "nope.pem",
        "cannot load CA certificates",
        "nope.pem",
    ),
    case(
        "config-yaml-syntax",
        CONFIG,
        replace("admin: sop-tooling@northwind.example", "admin: sop-tooling: northwind.example"),
        ": northwind.example",
        "invalid YAML: mapping values are not allowed",
    ),
    case(
        "config-yaml-python-tag",
        CONFIG,
        replace("admin: sop-tooling@northwind.example", "admin: !!python/object/apply:os.system [ls]"),
        "!!python",
        "invalid YAML: tag",
        "is not allowed",
    ),
    case(
        "config-duplicate-key",
        CONFIG,
        replace("\ninterval: 5m", "\ninterval: 5m\nadmin: other@northwind.example"),
        "admin: other",
        "duplicate key 'admin'",
    ),
    case(
        "config-smtp-without-a-word-on-tls",
        CONFIG,
        replace(
            "  type: maildir\n  path: example-out/maildir\n", "  type: smtp\n  host: smtp.northwind.example\n"
        ),
        "type: smtp\n  host",
        "delivery: say whether SMTP uses TLS",
        "starttls: false",
    ),
    case(
        "config-unknown-holiday-country",
        CONFIG,
        replace("holidays: {country: DE}", "holidays: {country: DX}"),
        "{country: DX}",
        "holidays: unknown country 'DX'",
    ),
    case(
        "config-unknown-holiday-subdivision",
        CONFIG,
        replace("holidays: {country: DE}", "holidays: {country: DE, subdiv: XX}"),
        "{country: DE",
        "country DE has no subdivision 'XX'",
        "BY",
    ),
    case(
        "config-fallback-unknown-role",
        CONFIG,
        replace('fallback_recipient: "role(sop-lead)"', 'fallback_recipient: "role(sop-leed)"'),
        '"role(sop-leed)"',
        "unknown role 'sop-leed'",
        "sop-lead",
    ),
    case(
        "config-role-unknown-person",
        CONFIG,
        replace("sop-lead: [julia]", "sop-lead: [julja]"),
        "julja",
        "role 'sop-lead': unknown person 'julja'",
    ),
    case(
        "config-status-map-unknown-status",
        CONFIG,
        replace('"Blocked": blocked', '"Blocked": snoozed'),
        "snoozed",
        "status_map: 'snoozed' is not a status",
        "pending_approval",
    ),
    case(
        "config-columns-unknown-field",
        CONFIG,
        replace('"Due date": due', '"Due date": deu'),
        "deu",
        "columns: 'deu' is not a canonical field; did you mean 'due'?",
    ),
    case(
        "config-bad-date-format",
        CONFIG,
        replace('date_format: "%d/%m/%Y"', 'date_format: "%Q/%m/%Y"'),
        '"%Q/%m/%Y"',
        "register.date_format: '%Q/%m/%Y' is not a strptime format",
    ),
    case(
        "config-date-format-without-directives",
        CONFIG,
        replace('date_format: "%d/%m/%Y"', 'date_format: "dd/mm/yyyy"'),
        '"dd/mm/yyyy"',
        "register.date_format: 'dd/mm/yyyy' has no strptime directives",
    ),
    case(
        "config-missing-rules-folder",
        CONFIG,
        replace("rules: [rules/]", "rules: [rules/, rulez/]"),
        "rulez/",
        "rules: 'rulez/' does not exist",
    ),
    case(
        "config-not-a-mapping",
        CONFIG,
        content("- timezone: UTC\n"),
        "- timezone",
        "the config file must be a YAML mapping",
    ),
    # --- rules ----------------------------------------------------------------------------------------
    case(
        "rule-unknown-field",
        APPROVALS,
        replace(
            "      kind: approval\n      status: pending_approval",
            "      kindd: approval\n      status: pending_approval",
        ),
        "kindd",
        "unknown field 'kindd'; did you mean 'kind'?",
    ),
    case(
        "rule-unknown-operator",
        BLOCKED,
        replace("impact: {regex: '(?i)^high$'}", "impact: {matches: high}"),
        "matches",
        "unknown operator 'matches'",
        "regex",
    ),
    case(
        "rule-bad-regex",
        BLOCKED,
        replace("impact: {regex: '(?i)^high$'}", "impact: {regex: '(high'}"),
        "'(high'",
        "invalid regular expression '(high'",
    ),
    case(
        "rule-in-with-a-scalar",
        DEADLINES,
        replace("status: {in: [open, in_progress, blocked]}", "status: {in: open}"),
        "open}",
        "'in' takes a list of values",
    ),
    case(
        "rule-bad-fire-at",
        APPROVALS,
        replace("fire_at: status_since + 2 business days", "fire_at: status_since plus 2 business days"),
        "status_since plus",
        "in 'status_since plus 2 business days'",
        "'+ DURATION'",
    ),
    case(
        "rule-unknown-anchor",
        APPROVALS,
        replace("fire_at: status_since + 2 business days", "fire_at: status_sinse + 2 business days"),
        "status_sinse",
        "unknown anchor 'status_sinse'",
    ),
    case(
        "rule-unknown-phase",
        INPUTS,
        replace("fire_at: cycle.data_gathering.end", "fire_at: cycle.data_gatherin.end"),
        "cycle.data_gatherin.end",
        "unknown phase 'data_gatherin'",
        "data_gathering",
    ),
    case(
        "rule-fire-at-outside-a-step",
        APPROVALS,
        replace("fire_at: status_since + 2 business days", "fire_at: fire_at + 2 business days"),
        "fire_at + 2",
        "'fire_at' can only be used inside an escalation step",
    ),
    case(
        "rule-bad-repeat",
        APPROVALS,
        replace("repeat: 1 business day ", "repeat: 1 fortnight "),
        "1 fortnight",
        "invalid duration '1 fortnight'",
    ),
    case(
        "rule-zero-repeat",
        APPROVALS,
        replace("repeat: 1 business day ", "repeat: 0 minutes "),
        "0 minutes",
        "repeat must be longer than zero",
    ),
    case(
        "rule-bad-after",
        APPROVALS,
        replace("after: 2 business days ", "after: two business days "),
        "two business days",
        "invalid duration 'two business days'",
    ),
    case(
        "rule-bad-hold-duration",
        APPROVALS,
        replace("duration: 30m", "duration: half an hour"),
        "half an hour",
        "invalid duration 'half an hour'",
    ),
    case(
        "rule-unknown-recipient",
        BLOCKED,
        replace("      - notify: [owner]\n", "      - notify: [ownr]\n"),
        "ownr",
        "unknown recipient 'ownr'",
    ),
    case(
        "rule-unknown-role",
        BLOCKED,
        replace('cc: ["role(sop-lead)"]\n', 'cc: ["role(sop-leed)"]\n'),
        '"role(sop-leed)"',
        "unknown role 'sop-leed'",
    ),
    case(
        "rule-duplicate-id-across-files",
        EXTRA_RULES,
        content(
            "rules:\n  - id: stale-approval\n    fire_at: due\n    escalation:\n      - notify: [owner]\n"
        ),
        "stale-approval",
        "duplicate rule id 'stale-approval' (first in ",
        "/rules/approvals.yaml:",
    ),
    case(
        "rule-steps-decreasing",
        APPROVALS,
        replace("      - after: 4 business days", "      - after: 1 business days"),
        "1 business days",
        "escalation steps must be in increasing order of 'after'",
    ),
    case(
        "rule-unknown-template",
        EXTRA_RULES,
        content(
            "rules:\n  - id: typo\n    fire_at: due\n    escalation:\n"
            "      - notify: [owner]\n        template: reminderr\n"
        ),
        "reminderr",
        "unknown template 'reminderr' (no reminderr.txt.j2 in the templates folder; did you mean 'reminder'?)",
    ),
    case(
        "rule-that-can-never-fire",
        EXTRA_RULES,
        content(
            "rules:\n  - id: dead\n    when: {status: [done, approved]}\n    escalation:\n"
            "      - notify: [owner]\n"
        ),
        "{status: [done",
        "this rule can never fire: it asks for status approved, done, and terminal actions are never "
        "considered (terminal_statuses)",
    ),
    case(
        "rule-missing-escalation",
        EXTRA_RULES,
        content("rules:\n  - id: no-steps\n    fire_at: due\n"),
        "id: no-steps",
        "rules[0].escalation: required key is missing",
    ),
    case(
        "rule-file-is-a-list",
        EXTRA_RULES,
        content("- id: listy\n  fire_at: due\n  escalation:\n    - notify: [owner]\n"),
        "- id: listy",
        "a rules file must be a YAML mapping",
    ),
    case(
        "rule-unknown-step-key",
        APPROVALS,
        replace("calendar_hold:", "calendar_holds:"),
        "calendar_holds",
        "unknown key 'calendar_holds'",
        "did you mean 'calendar_hold'?",
    ),
    case(
        "rule-digest-step-with-hold",
        APPROVALS,
        replace("        via: digest\n", "        via: digest\n        calendar_hold: {start: fire_at}\n"),
        "{start: fire_at}",
        "a digest step cannot carry a calendar hold",
    ),
    case(
        "rule-bad-severity",
        APPROVALS,
        replace("    severity: warning\n    when:   ", "    severity: fatal\n    when:   "),
        "fatal",
        "rules[0].severity: Input should be 'info', 'warning' or 'critical'",
    ),
    # --- people ---------------------------------------------------------------------------------------
    case(
        "people-duplicate-id",
        PEOPLE,
        replace("  - id: tobias\n", "  - id: elif\n"),
        "elif\n    name: Elif",
        "duplicate person id 'elif' (first at line",
    ),
    case(
        "people-unknown-manager",
        PEOPLE,
        replace(
            "    manager: claudia\n    timezone: Asia/Singapore",
            "    manager: claudio\n    timezone: Asia/Singapore",
        ),
        "claudio",
        "unknown manager 'claudio'",
    ),
    case(
        "people-bad-timezone",
        PEOPLE,
        replace("timezone: Asia/Singapore", "timezone: Asia/Singapur"),
        "Asia/Singapur",
        "unknown timezone 'Asia/Singapur'",
    ),
    case(
        "people-missing-email",
        PEOPLE,
        replace("    email: lisa.neumann@northwind.example\n", ""),
        "id: lisa",
        "people[14].email: required key is missing",
    ),
    case(
        "people-bad-email",
        PEOPLE,
        replace("email: lisa.neumann@northwind.example", "email: lisa neumann"),
        "lisa neumann",
        "email 'lisa neumann' is not one plain email address such as lee@example.com",
    ),
    case(
        "people-manager-cycle",
        PEOPLE,
        replace(
            "    email: anna.keller@northwind.example\n",
            "    email: anna.keller@northwind.example\n    manager: julia\n",
        ),
        "julia\n    timezone: Europe/Berlin\n    roles: [exec-team, ceo]",
        "manager cycle: anna -> julia -> stefan -> anna",
    ),
    case(
        "people-file-is-a-list",
        PEOPLE,
        content("- id: anna\n  email: anna@northwind.example\n"),
        "- id: anna",
        "a people file must be a YAML mapping with a `people:` list",
    ),
    # --- cycle calendar ---------------------------------------------------------------------------------
    case(
        "calendar-template-end-before-start",
        CYCLES,
        replace("{id: pre_sop, start: 10, end: 11,", "{id: pre_sop, start: 11, end: 10,"),
        "10, meeting",
        "phase 'pre_sop' ends before it starts in 2026-11",
    ),
    case(
        "calendar-explicit-end-before-start",
        CYCLES,
        content(
            "cycles:\n  - id: '2026-12'\n    phases:\n      - {id: review, start: 2026-12-05, end: 2026-12-01}\n"
        ),
        "2026-12-01}",
        "phase 'review' ends on 2026-12-01 before it starts on 2026-12-05",
    ),
    case(
        "calendar-business-day-zero",
        CYCLES,
        replace("{id: data_gathering, start: 1, end: 3}", "{id: data_gathering, start: 0, end: 3}"),
        "0, end: 3}",
        "business day 0 does not exist",
    ),
    case(
        "calendar-business-day-out-of-month",
        CYCLES,
        replace("{id: pre_sop, start: 10, end: 11,", "{id: pre_sop, start: 10, end: 30,"),
        "30, meeting",
        "business day 30 does not exist in 2026-11",
    ),
    case(
        "calendar-duplicate-phase",
        CYCLES,
        replace("{id: pre_sop, start: 10", "{id: supply_review, start: 10"),
        "supply_review, start: 10",
        "duplicate phase id 'supply_review' (first on line",
    ),
    case(
        "calendar-bad-month",
        CYCLES,
        replace('from: "2026-11"', 'from: "2026-13"'),
        '"2026-13"',
        "template.from: expected a month such as 2026-11",
    ),
    # --- register rows (skipped, reported with their row number) ---------------------------------------
    case(
        "register-missing-id",
        REGISTER,
        replace('"NW-1204","input"', '"","input"'),
        None,
        "missing id",
        row_of='"","input"',
    ),
    case(
        "register-unknown-status",
        REGISTER,
        replace('"Open","wei","","paul"', '"Snoozed","wei","","paul"'),
        None,
        "unknown status 'Snoozed'",
        "status_map",
        row_of='"Snoozed"',
    ),
    case(
        "register-unparseable-date",
        REGISTER,
        replace('"03/12/2026","2026-11-27T13:00"', '"31/13/2026","2026-11-27T13:00"'),
        None,
        "unparseable date '31/13/2026' in due (column 'Due date')",
        row_of="31/13/2026",
    ),
    case(
        "register-duplicate-id",
        REGISTER,
        replace('"NW-1206","input"', '"NW-1205","input"'),
        None,
        "duplicate id 'NW-1205' (first on row",
        row_of='"NW-1205","input","Film',
    ),
]


def _position(text: str, needle: str, offset: int) -> str:
    assert text.count(needle) == 1, f"{needle!r} must occur exactly once in the edited file"
    index = text.index(needle) + offset
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"{line}:{col}"


def _row(text: str, needle: str) -> str:
    lines = text.splitlines()
    rows = [number for number, line in enumerate(lines, start=1) if needle in line]
    assert len(rows) == 1, f"{needle!r} must occur on exactly one row"
    return f"row {rows[0]}"


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_validate_reports_the_problem_where_it_is(run_sopwatch, example_copy: Path, bad: Case) -> None:
    path = example_copy / bad.file
    original = path.read_text(encoding="utf-8") if path.exists() else ""
    edited = bad.edit(original)
    assert edited != original
    path.write_text(edited, encoding="utf-8")
    if bad.row_of is not None:
        where = _row(edited, bad.row_of)
    else:
        assert bad.at is not None
        where = _position(edited, bad.at, bad.offset)

    result = run_sopwatch("validate", "--config", CONFIG, cwd=example_copy)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 1, output

    if bad.file == CONFIG:  # named as given on the command line
        located = [line for line in output.splitlines() if line.startswith(f"{CONFIG}:{where}: ")]
    else:  # resolved against the config's folder
        located = [line for line in output.splitlines() if f"/{bad.file}:{where}: " in line]
    assert len(located) == 1, f"expected one problem at {bad.file}:{where}:\n{output}"
    for fragment in bad.fragments:
        assert fragment in located[0], f"{fragment!r} not in {located[0]!r}"
    problems = [line for line in output.splitlines() if PROBLEM_LINE.match(line)]
    assert problems == located, "one mistake, one problem: no follow-on noise"
    assert not result.stdout.startswith("ok:")


def test_yaml_syntax_error_says_where_the_unclosed_bracket_starts(run_sopwatch, example_copy: Path) -> None:
    config = example_copy / CONFIG
    text = config.read_text(encoding="utf-8")
    text = replace("admin: sop-tooling@northwind.example", "admin: [sop-tooling@northwind.example")(text)
    config.write_text(text, encoding="utf-8")
    start = _position(text, "[sop-tooling", 0).split(":")
    result = run_sopwatch("validate", "--config", CONFIG, cwd=example_copy)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert re.match(r"config\.yaml:\d+:\d+: invalid YAML: ", first), first
    assert f"flow sequence that starts at line {start[0]}, column {start[1]}" in first


BAD_ROWS = [
    replace('"NW-1204","input"', '"","input"'),
    replace('"Open","wei","","paul"', '"Snoozed","wei","","paul"'),
]


def test_bad_register_rows_fail_validate_but_check_evaluates_the_rest(
    run_sopwatch, example_copy: Path
) -> None:
    register = example_copy / REGISTER
    text = register.read_text(encoding="utf-8")
    for edit in BAD_ROWS:
        text = edit(text)
    register.write_text(text, encoding="utf-8")
    missing_id, snoozed = _row(text, '"","input"'), _row(text, '"Snoozed"')

    result = run_sopwatch("validate", "--config", CONFIG, cwd=example_copy)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 1
    assert f"/{REGISTER}:{missing_id}: missing id" in result.stdout
    assert f"/{REGISTER}:{snoozed}: unknown status 'Snoozed'" in result.stdout
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith("2 problems; ") and "44 actions" in summary, summary

    result = run_sopwatch("check", "--config", CONFIG, "--at", "2026-12-09T10:00", cwd=example_copy)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, result.stderr
    assert f"/{REGISTER}:{missing_id}: missing id" in warnings[0]
    assert f"/{REGISTER}:{snoozed}: unknown status 'Snoozed'" in warnings[1]
    # The good rows are still evaluated; the skipped ones are not.
    assert re.search(r"missing-cycle-input\s+NW-1201\b", result.stdout)
    assert re.search(r"missing-cycle-input\s+NW-1205\b", result.stdout)
    assert "NW-1204" not in result.stdout  # its id was blanked
    assert "NW-1206" not in result.stdout  # its status is unknown
