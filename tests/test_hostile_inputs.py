"""Hostile inputs: fuzzed admin files and register rows through the real loaders, YAML tags that try
to build Python objects, path tricks, huge values, header injection, HTML injection and secrets in logs.

The loaders may only fail with a SopwatchError (ProblemList included), and every problem they
report reads as one line starting with the file at fault.
"""

from __future__ import annotations

import base64
import csv
import email
import email.policy
import logging
import re
import shutil
import socket
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from daemon_setup import ANN_AND_CARL, LATE_RULE, in_delivery_order
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sopwatch.adapters.register import read_register
from sopwatch.config.loader import load_setup
from sopwatch.config.schema import RegisterConfig
from sopwatch.daemon.engine import Engine
from sopwatch.errors import ProblemList, SopwatchError

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 12, 2, 10, tzinfo=BERLIN)

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

CONFIG = textwrap.dedent(
    """\
    timezone: Europe/Berlin
    register: {type: csv, path: register.csv}
    people: people.yaml
    business_calendar:
      workdays: [mon, tue, wed, thu, fri, sat, sun]
      hours: "00:00-24:00"
    admin: admin@example.com
    fallback_recipient: carl@example.com
    rules: [rules.yaml]
    delivery: {type: maildir, path: maildir, from: "sopwatch <sopwatch@example.com>"}
    state: state.db
    """
)
HEADER = ["id", "title", "status", "owner", "due"]


def write_register(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def make_setup(
    folder: Path,
    rows: list[list[str]] | None = None,
    *,
    config: str = CONFIG,
    people: str = ANN_AND_CARL,
    rules: str = LATE_RULE,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(config, encoding="utf-8")
    (folder / "people.yaml").write_text(people, encoding="utf-8")
    (folder / "rules.yaml").write_text(rules, encoding="utf-8")
    write_register(
        folder / "register.csv", rows if rows is not None else [["A-1", "Pay", "open", "ann", "2026-12-01"]]
    )
    return folder / "config.yaml"


def problems_of(exc: SopwatchError) -> list[SopwatchError]:
    return list(exc.problems) if isinstance(exc, ProblemList) else [exc]


def assert_one_line_problems(exc: SopwatchError, folder: Path) -> None:
    """Every problem is one line that starts with a file of the setup."""
    prefix = str(folder.resolve())
    for problem in problems_of(exc):
        text = str(problem)
        assert len(text.splitlines()) == 1, repr(text)
        assert text.startswith(prefix), repr(text)


def load_and_check(config: Path) -> None:
    try:
        load_setup(config)
    except SopwatchError as exc:  # ProblemList is one
        assert_one_line_problems(exc, config.parent)


@pytest.fixture(scope="module")
def setup_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("hostile")
    make_setup(folder)
    load_setup(folder / "config.yaml")  # the base setup is valid
    yield folder


# --- fuzzing the loaders ----------------------------------------------------------------------------

# Hostile text: line breaks of every kind, NUL, quotes, YAML and CSV syntax, unicode, no surrogates.
hostile_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("\r\n\x00\t\"',:;[]{}#&*!|>%@`=?<>()\\/\u2028\u0085\ufeff é中🙂")),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=40,
)
long_text = st.sampled_from(["x" * 70_000, "é" * 20_000 + "\r\n" * 100, "\x00" * 5000])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.dates(),
    hostile_text,
    st.sampled_from(
        [
            "open",
            "done",
            "pending_approval",
            "approval",
            "owner",
            "approver",
            "due",
            "status_since + 2 business days",
            "due - 1 business day",
            "cycle.supply_review.end",
            "fire_at + 3bd",
            "now",
            "manager(owner)",
            "manager(manager(approver))",
            "role(sop-lead)",
            "role(",
            "a@b.example",
            "1 day",
            "30m",
            "-2d",
            "0 minutes",
            "999999999999 weeks",
            "(?P<",
            "[",
            "*",
            "email",
            "digest",
            "warning",
            "../x",
            "reminder",
            "mon 08:00",
            "08:00-18:00",
            "Europe/Berlin",
            "Mars/Olympus",
            "%d/%m/%Y",
            "%Q",
            "csv",
            "xlsx",
            "sqlite",
            "smtp",
            "register.csv",
            "people.yaml",
            "rules.yaml",
            "/nonexistent/x.csv",
            "..",
        ]
    ),
)

RULE_KEYS = [
    "rules",
    "id",
    "description",
    "severity",
    "when",
    "fire_at",
    "escalation",
    "repeat",
    "notify_resolved",
    "notify",
    "cc",
    "after",
    "template",
    "via",
    "calendar_hold",
    "start",
    "duration",
    "busy",
    "title",
    "all",
    "any",
    "not",
    "status",
    "kind",
    "owner",
    "due",
    "tags",
    "eq",
    "ne",
    "in",
    "not_in",
    "lt",
    "lte",
    "gt",
    "gte",
    "empty",
    "regex",
    "contains",
]


def values(keys: list[str]) -> st.SearchStrategy[Any]:
    key = st.one_of(st.sampled_from(keys), hostile_text)
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(key, children, max_size=5)
        ),
        max_leaves=25,
    )


def rule_dicts() -> st.SearchStrategy[dict[str, Any]]:
    value = values(RULE_KEYS)
    step = st.dictionaries(
        st.sampled_from(["notify", "cc", "after", "template", "via", "calendar_hold"]), value, max_size=5
    )
    return st.fixed_dictionaries(
        {"id": st.one_of(st.sampled_from(["late", "late", "x-1"]), value)},
        optional={
            "description": value,
            "severity": st.one_of(st.sampled_from(["info", "warning", "critical"]), value),
            "when": value,
            "fire_at": value,
            "escalation": st.one_of(st.lists(step, max_size=3), value),
            "repeat": value,
            "notify_resolved": value,
            "junk": value,
        },
    )


def yaml_text(structured: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """Valid YAML of a generated structure, sometimes mangled, sometimes replaced by garbage."""
    dumped = structured.map(lambda data: yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    garbage = hostile_text
    return st.one_of(
        dumped,
        st.tuples(dumped, st.integers(0, 10_000), garbage).map(
            lambda t: t[0][: t[1] % (len(t[0]) + 1)] + t[2] + t[0][t[1] % (len(t[0]) + 1) :]
        ),
        garbage,
        st.binary(max_size=200).map(lambda b: b.decode("utf-8", errors="replace")),
    )


rules_text = yaml_text(
    st.one_of(
        st.fixed_dictionaries({"rules": st.lists(rule_dicts(), max_size=3)}),
        values(RULE_KEYS),
    )
)


@FUZZ
@given(text=rules_text)
def test_fuzzed_rules_files_fail_only_with_located_problems(setup_dir: Path, text: str) -> None:
    (setup_dir / "rules.yaml").write_text(text, encoding="utf-8")
    try:
        load_and_check(setup_dir / "config.yaml")
    finally:
        (setup_dir / "rules.yaml").write_text(LATE_RULE, encoding="utf-8")


CONFIG_KEYS = [
    "timezone",
    "register",
    "people",
    "calendar",
    "business_calendar",
    "roles",
    "fallback_recipient",
    "admin",
    "start_date",
    "allowed_domains",
    "terminal_statuses",
    "rules",
    "templates",
    "delivery",
    "interval",
    "max_messages_per_tick",
    "digests",
    "metrics",
]
NESTED_KEYS = [
    "type",
    "path",
    "table",
    "sheet",
    "columns",
    "status_map",
    "kind_map",
    "date_format",
    "encoding",
    "delimiter",
    "max_shrink",
    "workdays",
    "holidays",
    "closures",
    "hours",
    "country",
    "subdiv",
    "ics",
    "phases",
    "match",
    "cycle_id",
    "from",
    "to",
    "host",
    "port",
    "starttls",
    "tls",
    "user",
    "password_env",
    "id",
    "schedule",
]
BASE_CONFIG = yaml.safe_load(CONFIG)


def config_docs() -> st.SearchStrategy[Any]:
    value = values(NESTED_KEYS + CONFIG_KEYS)
    overrides = st.dictionaries(st.one_of(st.sampled_from(CONFIG_KEYS), hostile_text), value, max_size=4)
    register = st.dictionaries(st.sampled_from(NESTED_KEYS[:11]), value, max_size=3)

    def merged(parts: tuple[dict[str, Any], dict[str, Any], bool]) -> dict[str, Any]:
        top, reg, drop = parts
        doc = {**BASE_CONFIG, **top}
        if reg:
            doc["register"] = {**BASE_CONFIG["register"], **reg}
        # Never point the fuzzer at the state or maildir: load_setup must not touch them anyway.
        doc["state"] = "state.db"
        if drop:
            doc.pop("rules", None)
        return doc

    return st.one_of(st.tuples(overrides, register, st.booleans()).map(merged), value)


@FUZZ
@given(text=yaml_text(config_docs()))
def test_fuzzed_config_files_fail_only_with_located_problems(setup_dir: Path, text: str) -> None:
    (setup_dir / "config.yaml").write_text(text, encoding="utf-8")
    try:
        load_and_check(setup_dir / "config.yaml")
    finally:
        (setup_dir / "config.yaml").write_text(CONFIG, encoding="utf-8")


cells = st.one_of(hostile_text, long_text, st.sampled_from(["", "A-1", "open", "ann", "2026-12-01", "done"]))
registers = st.tuples(
    st.lists(
        st.one_of(st.sampled_from([*HEADER, "kind", "approver", "tags", "cycle"]), hostile_text),
        min_size=1,
        max_size=7,
    ),
    st.lists(st.lists(cells, max_size=8), max_size=8),
)


@FUZZ
@given(register=registers)
def test_fuzzed_register_rows_are_read_or_reported(
    setup_dir: Path, register: tuple[list[str], list[list[str]]]
) -> None:
    header, rows = register
    path = setup_dir / "register.csv"
    try:
        write_register(path, rows, header)
        try:
            read = read_register(RegisterConfig(type="csv", path="register.csv"), setup_dir, BERLIN)
        except SopwatchError as exc:
            assert_one_line_problems(exc, setup_dir)
        else:
            for problem in read.problems:
                assert len(str(problem).splitlines()) == 1, repr(str(problem))
                assert str(problem).startswith(str(path)), str(problem)
        load_and_check(setup_dir / "config.yaml")
    finally:
        write_register(path, [["A-1", "Pay", "open", "ann", "2026-12-01"]])


@FUZZ
@given(rows=st.lists(st.lists(cells, min_size=5, max_size=5), min_size=1, max_size=6))
def test_fuzzed_register_rows_never_break_a_tick(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]]
) -> None:
    folder = tmp_path_factory.mktemp("tick")
    config = make_setup(folder, [["A-0", "Fine", "open", "ann", "2026-12-01"], *rows])
    engine = Engine(config, environ={})
    try:
        engine.tick(T0)
        for raw in maildir_messages(config):
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert_clean_headers(message, raw)
    finally:
        engine.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("char", ["\x00", "\x1f", "\x7f", "\ufffe"])
def test_yaml_control_characters_are_one_located_line(tmp_path: Path, char: str) -> None:
    config = make_setup(tmp_path / "s", rules=LATE_RULE.replace("Open work", f"Open{char}work"))
    with pytest.raises(ProblemList) as caught:
        load_setup(config)
    assert_one_line_problems(caught.value, config.parent)
    # "Open<char>work" is in the description on line 3; the character is column 22.
    assert str(caught.value).startswith(
        f"{config.parent / 'rules.yaml'}:3:22: invalid YAML: control character"
    )


# --- YAML tags that build Python objects ------------------------------------------------------------

PYTHON_TAGS = [
    '!!python/object/apply:os.system ["touch {pwned}"]',
    "!!python/name:os.system",
    '!!python/object/new:subprocess.Popen [["touch", "{pwned}"]]',
    "!!python/module:os",
    '!python/object/apply:os.system ["touch {pwned}"]',
]


@pytest.mark.parametrize("tag", PYTHON_TAGS)
@pytest.mark.parametrize("file", ["config.yaml", "rules.yaml", "people.yaml"])
def test_python_tags_are_refused_with_their_position(tmp_path: Path, file: str, tag: str) -> None:
    config = make_setup(tmp_path / "s")
    pwned = tmp_path / "PWNED"
    target = config.parent / file
    text = target.read_text(encoding="utf-8")
    value = tag.format(pwned=pwned)
    if file == "config.yaml":
        text = text.replace("admin: admin@example.com", f"admin: {value}")
        at = text.splitlines().index(f"admin: {value}") + 1
    elif file == "rules.yaml":
        text = text.replace("description: Open work past its due date", f"description: {value}")
        at = text.splitlines().index(f"    description: {value}") + 1
    else:
        text += f"  - id: eve\n    email: eve@example.com\n    name: {value}\n"
        at = len(text.splitlines())
    target.write_text(text, encoding="utf-8")
    with pytest.raises(SopwatchError) as caught:
        load_setup(config)
    found = [str(p) for p in problems_of(caught.value)]
    assert any(re.match(rf"{re.escape(str(target.resolve()))}:{at}:\d+: ", line) for line in found), found
    assert not pwned.exists()


@pytest.mark.parametrize("name", ["../x", "../../etc/passwd", "..", "a/b", "..\\x", "/etc/passwd"])
def test_a_template_name_that_climbs_out_is_refused(tmp_path: Path, name: str) -> None:
    rules = LATE_RULE.replace(
        "      - notify: [owner]\n", f"      - notify: [owner]\n        template: {name!r}\n"
    )
    config = make_setup(tmp_path / "s", rules=rules)
    line = rules.splitlines().index(f"        template: {name!r}") + 1
    with pytest.raises(ProblemList) as caught:
        load_setup(config)
    found = [str(p) for p in caught.value.problems]
    assert len(found) == 1 and re.match(
        rf"{re.escape(str(config.parent / 'rules.yaml'))}:{line}:\d+: .*template", found[0]
    ), found


# --- huge values ------------------------------------------------------------------------------------


def maildir_messages(config: Path) -> list[bytes]:
    return [p.read_bytes() for p in in_delivery_order(config.parent / "maildir" / "new")]


def test_a_10_mb_title_loads_and_makes_a_bounded_subject(tmp_path: Path) -> None:
    title = "Big " + "x" * (10 * 1024 * 1024)
    config = make_setup(tmp_path / "s", [["A-1", title, "open", "ann", "2026-12-01"]])
    setup = load_setup(config)
    assert len(setup.snapshot.actions["A-1"].title) == len(title)
    engine = Engine(config, environ={})
    try:
        engine.tick(T0)
    finally:
        engine.close()
    raws = maildir_messages(config)
    assert len(raws) == 1
    raw = raws[0]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(message["Subject"]).startswith("[S&OP] A-1: Big xxx")
    assert len(str(message["Subject"])) <= 250
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert len(head) < 10_000


# --- header injection from every header source ------------------------------------------------------

ENCODED_B = "=?utf-8?b?" + base64.b64encode(b"\r\nBcc: evil2@evil.test").decode() + "?="
ENCODED_Q = "=?utf-8?q?x=0D=0ABcc:_evil3@evil.test?="
INJECT = f"x\r\nBcc: evil1@evil.test\r\nX-Evil: 1 {ENCODED_B} {ENCODED_Q} \n\nbody"
EXPECTED_HEADERS = {
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "x-sopwatch-rule",
    "x-sopwatch-action",
    "x-sopwatch-kind",
    "x-sopwatch-repeat",
    "x-sopwatch-digest",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}


def assert_clean_headers(message: EmailMessage, raw: bytes) -> None:
    names = {name.lower() for name in message}
    assert names <= EXPECTED_HEADERS, names - EXPECTED_HEADERS
    for name, value in message.items():
        text = str(value)
        assert "\r" not in text and "\n" not in text, (name, text)
        assert "Bcc:" not in text or name.lower() in (
            "subject",
            "x-sopwatch-action",
            "x-sopwatch-digest",
            "from",
        ), (name, text)
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    starts = [line.split(b":", 1)[0].lower() for line in head.split(b"\n") if line[:1] not in (b" ", b"\t")]
    assert b"bcc" not in starts and b"x-evil" not in starts, starts
    for part in message.walk():
        for name in part:
            assert name.lower() not in ("bcc", "x-evil"), name


def q(text: str) -> str:
    """A YAML double-quoted scalar for any text."""
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def test_crlf_and_encoded_words_in_every_header_source_add_no_header(tmp_path: Path) -> None:
    config_text = (
        # A line break or an address in `from` is refused when the config loads (see below); on one
        # line and without the injected addresses, the rest is a display name, quoted.
        CONFIG.replace(
            'from: "sopwatch <sopwatch@example.com>"',
            f"from: {q(' '.join(INJECT.replace('@', ' at ').split()) + ' <sopwatch@example.com>')}",
        )
        + f'digests:\n  - {{id: {q(INJECT)}, schedule: "mon 08:00"}}\n'
        + "allowed_domains: [example.com]\n"  # A-3's owner makes an admin notice
    )
    people = ANN_AND_CARL.replace("name: Ann Example", f"name: {q(INJECT)}")
    rules = textwrap.dedent(
        f"""\
        rules:
          - id: late
            description: {q(INJECT)}
            when: {{status: open}}
            fire_at: due
            escalation:
              - notify: [owner]
                calendar_hold: {{start: "fire_at + 10 days", duration: 30m, title: {q(INJECT)}}}
              - after: 1 day
                notify: [manager(owner)]
                via: digest
            notify_resolved: true
        """
    )
    rows = [
        [f"A-1{INJECT}", f"Title {INJECT}", "open", "ann", "2026-12-01"],
        ["A-2", "Plain", "open", f"nobody{INJECT}", "2026-12-01"],
        [f"A-3{INJECT}", "Outside", "open", "x@evil.test", "2026-12-01"],
    ]
    config = make_setup(tmp_path / "s", rows, config=config_text, people=people, rules=rules)
    engine = Engine(config, environ={})
    try:
        for hour in range(0, 6 * 24, 4):  # Wed 2 Dec (reminders, holds) to Mon 7 Dec (the digest)
            engine.tick(T0 + timedelta(hours=hour))
        write_register(
            config.parent / "register.csv", [["A-2", "Plain", "done", "ann", "2026-12-01"], rows[0]]
        )
        engine.tick(T0 + timedelta(days=6, hours=1))  # resolved notice and cancel for A-2
    finally:
        engine.close()
    raws = maildir_messages(config)
    kinds = set()
    for raw in raws:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        kinds.add(str(message["X-Sopwatch-Kind"]))
        assert_clean_headers(message, raw)
    assert {"reminder", "hold", "digest", "resolved", "cancel", "admin"} <= kinds, kinds


@pytest.mark.parametrize(
    ("sender", "message"),
    [
        (INJECT + " <sopwatch@example.com>", "one line without control characters"),
        ("Ops <victim,ops@example.com>", "not one plain email address"),
        ("Ops <jörg@example.com>", "non-ASCII"),
    ],
)
def test_a_sender_that_is_not_one_mailbox_is_refused_at_its_place(
    tmp_path: Path, sender: str, message: str
) -> None:
    config_text = CONFIG.replace('from: "sopwatch <sopwatch@example.com>"', f"from: {q(sender)}")
    with pytest.raises(ProblemList) as raised:
        load_setup(make_setup(tmp_path / "s", config=config_text))
    (problem,) = raised.value.problems
    line = next(n for n, text in enumerate(config_text.splitlines(), 1) if "from:" in text)
    assert problem.location is not None and problem.location.line == line
    assert "delivery.from" in str(problem) and message in str(problem), str(problem)


# --- HTML injection ---------------------------------------------------------------------------------


def test_script_in_every_html_field_is_escaped(tmp_path: Path) -> None:
    script = "<script>alert({})</script>"
    people = ANN_AND_CARL.replace("name: Ann Example", f"name: {q(script.format('name'))}")
    rules = LATE_RULE.replace(
        "description: Open work past its due date", f"description: {q(script.format('rule'))}"
    )
    rules = rules.replace("    repeat: 1 day\n", "    repeat: 1 day\n    notify_resolved: true\n")
    config_text = CONFIG + 'digests:\n  - {id: weekly, schedule: "mon 08:00"}\n'
    rules += (
        "  - id: listed\n"
        f"    description: {q(script.format('digest'))}\n"
        "    when: {status: open}\n"
        "    fire_at: due\n"
        "    escalation:\n"
        "      - notify: [owner]\n"
        "        via: digest\n"
    )
    rows = [
        ["A-1", script.format("title"), "open", "ann", "2026-12-01"],
        ["A-2", "Plain", "open", script.format("owner"), "2026-12-01"],  # a note names the owner
    ]
    config = make_setup(tmp_path / "s", rows, config=config_text, people=people, rules=rules)
    engine = Engine(config, environ={})
    try:
        now = datetime(2026, 12, 6, 10, tzinfo=BERLIN)
        for hour in range(0, 30, 2):
            engine.tick(now + timedelta(hours=hour))
        write_register(
            config.parent / "register.csv", [["A-1", script.format("title"), "done", "ann", "2026-12-01"]]
        )
        engine.tick(now + timedelta(hours=31))
    finally:
        engine.close()
    seen: set[str] = set()
    for raw in maildir_messages(config):
        message = email.message_from_bytes(raw, policy=email.policy.default)
        html_part = message.get_body(("html",))
        if html_part is None:
            continue
        html = html_part.get_content()
        assert "<script" not in html.lower(), html
        seen.update(re.findall(r"&lt;script&gt;alert\((\w+)\)&lt;/script&gt;", html))
    assert {"title", "rule", "name", "owner", "digest"} <= seen, seen


# --- secrets in logs --------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_password_or_body_in_the_logs_of_a_tick(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    password = "pw-Zq8!never-log-this"
    marker = "BODY-MARKER-7f3c2a9e"
    config_text = CONFIG.replace(
        'delivery: {type: maildir, path: maildir, from: "sopwatch <sopwatch@example.com>"}',
        textwrap.dedent(
            f"""\
            delivery:
              type: smtp
              host: 127.0.0.1
              port: {closed_port()}
              starttls: true
              user: sopwatch
              password_env: SOPWATCH_TEST_PASSWORD
              from: "sopwatch <sopwatch@example.com>"
            templates: templates/\
            """
        ),
    )
    config = make_setup(tmp_path / "s", config=config_text)
    (config.parent / "templates").mkdir()
    (config.parent / "templates" / "reminder.txt.j2").write_text(
        f"{marker}\n{{{{ action.id }}}} needs you.\n", encoding="utf-8"
    )
    caplog.set_level(logging.DEBUG)
    engine = Engine(config, environ={"SOPWATCH_TEST_PASSWORD": password})
    try:
        report = engine.tick(T0)
        engine.tick(T0 + timedelta(minutes=10))  # the retry
    finally:
        engine.close()
    assert report.enqueued == 1 and report.retry == 1, report.line()
    assert caplog.records, "the tick logged something"
    assert password not in caplog.text
    assert marker not in caplog.text
    for record in caplog.records:
        assert password not in repr(record.args) and marker not in repr(record.args)


# --- dates at the ends of the calendar ----------------------------------------------------------------

EDGE_RULES = """\
rules:
  - id: late
    when: {status: open}
    fire_at: due
    escalation:
      - notify: [owner]
        calendar_hold: {start: "fire_at + 1 business day", duration: 30m}
      - after: 2 business days
        notify: [owner]
    repeat: 1 day
  - id: ahead
    when: {status: open}
    fire_at: due - 3 business days
    escalation:
      - notify: [owner]
  - id: stale
    when: {status: open}
    fire_at: status_since + 2h
    escalation:
      - notify: [owner]
  - id: eve
    when: {status: open}
    fire_at: due - 1 day
    escalation:
      - notify: [owner]
  - id: hour-before
    when: {status: open}
    fire_at: due - 3 hours
    escalation:
      - notify: [owner]
"""
EDGE_HEADER = [*HEADER, "status_changed_at", "created_at"]
# Placeholders some registers use for "no date", and their mirror images at year 1.
FAR_FUTURE = ["9999-12-31", "9999-12-31T23:59:59", "9999-12-31T23:00-05:00", "9999-12-30", "9999-12-31T00:00"]
FAR_PAST = ["0001-01-01", "0001-01-01T00:00+05:00"]


def test_placeholder_dates_at_the_ends_of_the_calendar_alert_nobody_and_stop_nothing(
    tmp_path: Path, run_sopwatch
) -> None:
    rows = [["A-0", "Fine", "open", "ann", "2026-12-01", "", ""]]
    rows += [[f"F-{i}", "Someday", "open", "ann", d, d, d] for i, d in enumerate(FAR_FUTURE)]
    rows += [[f"P-{i}", "Long ago", "open", "ann", d, d, d] for i, d in enumerate(FAR_PAST)]
    config = make_setup(tmp_path / "s", rows, rules=EDGE_RULES)
    (config.parent / "register.csv").unlink()
    write_register(config.parent / "register.csv", rows, EDGE_HEADER)
    engine = Engine(config, environ={})
    try:
        for hours in (0, 30, 80):  # through step 1, a repeat and the holds' starts
            engine.tick(T0 + timedelta(hours=hours))
    finally:
        engine.close()
    sent = [email.message_from_bytes(raw, policy=email.policy.default) for raw in maildir_messages(config)]
    assert all(m["X-Sopwatch-Action"] for m in sent)  # no admin notice: every template rendered
    alerted = {str(m["X-Sopwatch-Action"]) for m in sent}
    assert "A-0" in alerted and alerted >= {f"P-{i}" for i in range(len(FAR_PAST))}
    assert not alerted & {f"F-{i}" for i in range(len(FAR_FUTURE))}  # due "never": never late

    for args in (("check", "--at", "2026-12-09T10:00"), ("explain", "F-0", "--at", "2026-12-09T10:00")):
        result = run_sopwatch(*args, "--config", "config.yaml", cwd=config.parent)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "fire_at 9999-12-30T00:00:00+00:00 is in the future" in result.stdout
