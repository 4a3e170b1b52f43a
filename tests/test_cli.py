"""The command line, run as a real subprocess on a copy of the bundled example (SPEC §5)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from test_cli_daemon_commands import ANCIENT, WEEKDAYS, add_ancient_action, edit_config, maildir_messages

from sopwatch import __version__
from sopwatch.adapters.state_store import StateStore
from sopwatch.config.loader import load_setup
from sopwatch.core.evaluate import apply
from sopwatch.core.simulate import simulate
from sopwatch.core.state import State

AT = "2026-12-09T10:00"
SPEC_KEYS = {
    "at": str,
    "rule": str,
    "action": str,
    "step": int,
    "repeat": int,
    "channel": str,
    "to": list,
    "cc": list,
    "subject": str,
    "not_before": str,
}
CHANNELS = {"email", "digest", "calendar", "cancel"}


def no_traceback(result) -> None:  # type: ignore[no-untyped-def]
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def ok(result) -> str:  # type: ignore[no-untyped-def]
    """Assert success without a traceback; return stdout."""
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    return result.stdout


def set_config(setup_dir: Path, old: str, new: str) -> None:
    path = setup_dir / "config.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in the example config"
    path.write_text(text.replace(old, new), encoding="utf-8")


def point_state_at(setup_dir: Path, name: str) -> Path:
    """Make the copy's ``state:`` name ``name``; returns that file's path."""
    path = setup_dir / "config.yaml"
    text = path.read_text(encoding="utf-8")
    text, count = re.subn(r"(?m)^state:.*$", f"state: {name}", text)
    assert count == 1
    path.write_text(text, encoding="utf-8")
    return setup_dir / name


def json_lines(stdout: str) -> list[dict]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None and value.utcoffset() is not None, text
    return value


def check_spec_line(item: dict) -> None:
    missing = set(SPEC_KEYS) - set(item)
    assert not missing, f"missing keys {missing} in {item}"
    for key, kind in SPEC_KEYS.items():
        assert isinstance(item[key], kind) and not isinstance(item[key], bool), (key, item[key])
    assert item["step"] >= 0 and item["repeat"] >= 0
    assert item["channel"] in CHANNELS
    assert all(isinstance(a, str) and "@" in a for a in item["to"] + item["cc"]), item
    assert aware(item["not_before"]) >= aware(item["at"])
    assert item["subject"].strip()


# --- --version, usage errors, config errors ---------------------------------------------------------


def test_version(run_sopwatch) -> None:
    out = ok(run_sopwatch("--version"))
    assert "sopwatch" in out and __version__ in out


def test_help_lists_the_commands(run_sopwatch) -> None:
    out = ok(run_sopwatch("--help"))
    for command in ("validate", "check", "simulate", "explain"):
        assert re.search(rf"^\s+{command}\b", out, re.M), command


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("check", "--bogus"), "No such option"),
        (("frobnicate",), "No such command"),
        (("simulate", "--to", "2026-12-02T00:00"), "Missing option '--from'"),
        (("explain",), "Missing argument"),
    ],
)
def test_usage_errors_exit_2(run_sopwatch, example_copy: Path, args, fragment: str) -> None:
    result = run_sopwatch(*args, "--config", "config.yaml", cwd=example_copy)
    no_traceback(result)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("check", "--at", "garbage"), "'garbage'"),
        (("check", "--at", "2026-02-30T10:00"), "'2026-02-30T10:00'"),
        (("explain", "NW-1210", "--at", "next tuesday"), "'next tuesday'"),
        (("simulate", "--from", "soon", "--to", "2026-12-02T00:00"), "'soon'"),
        (("simulate", "--from", "2026-12-01T00:00", "--to", "2026-12-02T00:00", "--every", "0m"), "--every"),
        (("simulate", "--from", "2026-12-01T00:00", "--to", "2026-12-02T00:00", "--every", "1bd"), "--every"),
        (("simulate", "--from", "2026-12-03T00:00", "--to", "2026-12-02T00:00"), "--to"),
    ],
)
def test_bad_instants_and_steps_exit_2_with_a_message(
    run_sopwatch, example_copy: Path, args, fragment: str
) -> None:
    result = run_sopwatch(*args, "--config", "config.yaml", cwd=example_copy)
    no_traceback(result)
    assert result.returncode == 2, result.stderr
    assert "Invalid value" in result.stderr
    assert fragment in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("command", [["validate"], ["check", "--at", AT], ["explain", "NW-1210"]])
def test_missing_config_file_exits_1(run_sopwatch, tmp_path: Path, command: list[str]) -> None:
    result = run_sopwatch(*command, "--config", "nope.yaml", cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "nope.yaml: file not found"


def test_default_config_is_config_yaml_in_the_working_folder(run_sopwatch, tmp_path: Path) -> None:
    result = run_sopwatch("validate", cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 1
    assert "config.yaml: file not found" in result.stderr


# --- validate --------------------------------------------------------------------------------------


def test_validate_reports_counts_of_the_example(run_sopwatch, example_copy: Path) -> None:
    out = ok(run_sopwatch("validate", "--config", "config.yaml", cwd=example_copy))
    *cycle_lines, summary = out.splitlines()
    match = re.fullmatch(
        r"ok: (\d+) rules in (\d+) files, (\d+) actions, (\d+) people, (\d+) cycles", summary
    )
    assert match, out
    # validate lists the phases found per cycle; December 2026 starts on Tuesday the 1st, so
    # business days 1-3 of the template are 1-3 Dec.
    assert len(cycle_lines) == int(match.group(5))
    assert any(line.startswith("cycle 2026-12: data_gathering 1–3 Dec") for line in cycle_lines), out
    rule_files = sorted((example_copy / "rules").glob("*.yaml"))
    rules = sum(len(yaml.safe_load(p.read_text(encoding="utf-8"))["rules"]) for p in rule_files)
    with (example_copy / "example" / "register.csv").open(encoding="utf-8-sig", newline="") as handle:
        actions = sum(1 for row in list(csv.reader(handle))[1:] if any(row))
    people = len(yaml.safe_load((example_copy / "example" / "people.yaml").read_text("utf-8"))["people"])
    template = yaml.safe_load((example_copy / "example" / "cycles.yaml").read_text("utf-8"))["template"]
    first, last = (int(y) * 12 + int(m) for y, m in (template[k].split("-") for k in ("from", "to")))
    assert tuple(int(g) for g in match.groups()) == (
        rules,
        len(rule_files),
        actions,
        people,
        last - first + 1,
    )
    assert rules >= 5 and actions >= 40


# --- check -----------------------------------------------------------------------------------------


def _check_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


def test_check_lists_due_notifications(run_sopwatch, example_copy: Path) -> None:
    out = ok(run_sopwatch("check", "--config", "config.yaml", "--at", AT, cwd=example_copy))
    lines = _check_lines(out)
    assert lines, "the example has overdue work on 9 Dec"
    assert all(
        line.startswith("2026-12-09 10:00 CET") for line in lines if not line.lstrip().startswith("note")
    )
    # NW-1201 (tobias, input) missed the data-gathering cutoff of Thu 3 Dec: step 1 goes to his
    # manager julia with the S&OP lead (julia too) and tobias in copy.
    assert any(
        re.search(
            r"missing-cycle-input\s+NW-1201\s+step 1 rep 0.*-> julia\.hoffmann@northwind\.example", line
        )
        for line in lines
    ), out
    assert any(re.search(r"stale-approval\s+NW-1210\b", line) for line in lines), out
    # Closed and cancelled work never appears.
    for closed in ("NW-1202", "NW-1207", "NW-1245"):
        assert closed not in out


def test_check_json_lines_follow_spec(run_sopwatch, example_copy: Path) -> None:
    result = run_sopwatch("check", "--config", "config.yaml", "--at", AT, "--json", cwd=example_copy)
    items = json_lines(ok(result))
    assert items
    at = aware("2026-12-09T10:00:00+01:00")
    for item in items:
        check_spec_line(item)
        assert aware(item["at"]) == at
    pairs = {(i["rule"], i["action"]) for i in items}
    assert ("missing-cycle-input", "NW-1201") in pairs
    assert ("stale-approval", "NW-1210") in pairs
    nw1201 = next(i for i in items if (i["rule"], i["action"]) == ("missing-cycle-input", "NW-1201"))
    assert nw1201["to"] == ["julia.hoffmann@northwind.example"]
    assert "tobias.wagner@northwind.example" in nw1201["cc"]
    # The same notifications as the text output, one per line.
    text = ok(run_sopwatch("check", "--config", "config.yaml", "--at", AT, cwd=example_copy))
    text_lines = [line for line in _check_lines(text) if not line.lstrip().startswith("note:")]
    assert len(text_lines) == len(items)


def test_check_before_anything_is_due_prints_nothing(run_sopwatch, example_copy: Path) -> None:
    set_config(example_copy, "register:\n", "start_date: 2027-06-01\nregister:\n")
    result = run_sopwatch("check", "--config", "config.yaml", "--at", AT, "--json", cwd=example_copy)
    assert ok(result) == ""


# --- subjects: what the config's templates make of each notification --------------------------------

# Overrides in the example's `templates:` folder (which holds only reminder.txt.j2), using the rule,
# the step and the recipient, so the subject differs from the built-in for every notification.
SUBJECT_OVERRIDES = {
    "reminder.subject.j2": "[Northwind] reminder {{ action.id }} ({{ rule.id }}): {{ action.title }}\n",
    "escalation.subject.j2": (
        "[Northwind] {{ rule.id }} step {{ step }} for {{ recipient.name }}: {{ action.id }}\n"
    ),
}


def override_subjects(setup_dir: Path) -> None:
    for name, source in SUBJECT_OVERRIDES.items():
        (setup_dir / "templates" / name).write_text(source, encoding="utf-8")


def test_check_prints_the_subjects_of_the_template_overrides(run_sopwatch, example_copy: Path) -> None:
    override_subjects(example_copy)
    setup = load_setup(example_copy / "config.yaml")
    args = ("check", "--config", "config.yaml", "--at", AT)
    items = json_lines(ok(run_sopwatch(*args, "--json", cwd=example_copy)))
    assert {"reminder", "escalation"} <= {i["kind"] for i in items}, "the example has both at AT"
    for item in items:
        check_spec_line(item)
        title = setup.snapshot.actions[item["action"]].title
        if item["kind"] == "reminder":
            expected = f"[Northwind] reminder {item['action']} ({item['rule']}): {title}"
        elif item["kind"] == "escalation":
            person = setup.environment.directory.find(item["to"][0])
            assert person is not None and person.name
            expected = f"[Northwind] {item['rule']} step {item['step']} for {person.name}: {item['action']}"
        else:
            expected = f"[S&OP] {item['action']}: {title}"  # hold and cancel: no override, the built-in
        assert item["subject"] == " ".join(expected.split()), item
    # The text output shows no subjects (it has no column for them) and is unchanged by the overrides.
    text = ok(run_sopwatch(*args, cwd=example_copy))
    assert "[Northwind]" not in text
    assert len([line for line in _check_lines(text) if not line.lstrip().startswith("note:")]) == len(items)


def test_check_imports_jinja2_only_to_print_subjects(example_copy: Path) -> None:
    probe = (
        "import sys\n"
        "from sopwatch.cli import invoke\n"
        "invoke(sys.argv[1:])\n"
        "heavy = ('jinja2', 'icalendar', 'aiosmtplib', 'sopwatch.daemon.engine', 'sopwatch.messages.email',\n"
        "         'sopwatch.core.explain', 'sopwatch.core.simulate')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}

    def loaded(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", probe, "check", "--config", "config.yaml", "--at", AT, *args],
            cwd=example_copy,
            capture_output=True,
            text=True,
            encoding="utf-8",
            env=env,
            check=True,
        )
        return result.stderr.strip()

    assert loaded() == "[]"
    assert loaded("--json") == "['jinja2']"


# The ``sopwatch`` command leaves with os._exit after flushing (the heap is not freed object by
# object). The oracle is the same command through ``invoke`` and a normal interpreter exit.
NORMAL_EXIT = "import sys\nfrom sopwatch.cli import invoke\nsys.exit(invoke(sys.argv[1:]))\n"
LONG_SIMULATION = ["simulate", "--from", "2026-11-01T00:00", "--to", "2027-01-31T00:00", "--json"]


@pytest.mark.parametrize(
    "args",
    [LONG_SIMULATION, ["check", "--at", "not-a-time"], ["explain", "NO-SUCH-ACTION", "--at", AT]],
    ids=["long output", "usage error", "user error"],
)
def test_the_fast_exit_loses_no_output_and_keeps_the_status(example_copy: Path, args: list[str]) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}

    def run(*prefix: str) -> subprocess.CompletedProcess[bytes]:
        command = [sys.executable, *prefix, *args, "--config", "config.yaml"]
        return subprocess.run(command, cwd=example_copy, capture_output=True, env=env, timeout=60)

    fast, normal = run("-m", "sopwatch"), run("-c", NORMAL_EXIT)
    assert (fast.returncode, fast.stdout, fast.stderr) == (normal.returncode, normal.stdout, normal.stderr)
    if args is LONG_SIMULATION:
        assert len(fast.stdout) > 4 * 65536  # more than a pipe buffer, and many stdout buffers
        assert all(json.loads(line) for line in fast.stdout.decode().splitlines())
    else:
        assert fast.returncode in (1, 2) and fast.stderr


@pytest.mark.parametrize("closed", [1, 2], ids=["stdout closed", "stderr closed"])
@pytest.mark.parametrize(
    "args",
    [["--version"], ["explain", "NO-SUCH-ACTION", "--at", AT, "--config", "config.yaml"]],
    ids=["ok", "user error"],
)
def test_a_closed_output_stream_keeps_the_exit_status(
    example_copy: Path, args: list[str], closed: int
) -> None:
    """``sopwatch health 2>&-`` in a watchdog: the status must be the command's, as with a normal exit."""

    def status(*prefix: str) -> int:
        command = [sys.executable, *prefix, *args]
        return subprocess.run(
            command, cwd=example_copy, preexec_fn=lambda: os.close(closed), timeout=60
        ).returncode

    assert status("-m", "sopwatch") == status("-c", NORMAL_EXIT) == (0 if args == ["--version"] else 1)


def test_a_reader_that_leaves_early_stops_the_command_quietly(example_copy: Path) -> None:
    """``sopwatch simulate ... | head -1``: no broken-pipe noise, the status click gives (1) both ways."""

    def run(*prefix: str) -> tuple[bytes, bytes, int]:
        command = [sys.executable, *prefix, *LONG_SIMULATION, "--config", "config.yaml"]
        with subprocess.Popen(
            command, cwd=example_copy, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            first = proc.stdout.readline()
            proc.stdout.close()  # the reader goes away with most of the output unread
            return first, proc.stderr.read(), proc.wait(timeout=60)

    first, errors, status = run("-m", "sopwatch")
    assert json.loads(first)["kind"]
    assert errors == b""
    assert status == run("-c", NORMAL_EXIT)[2] == 1


def test_check_json_subject_is_the_subject_of_the_email_the_daemon_sends(
    run_sopwatch, example_copy: Path
) -> None:
    override_subjects(example_copy)
    add_ancient_action(example_copy)  # due since 2020: at least one message, whatever today is
    edit_config(
        example_copy,
        business_calendar={"workdays": list(WEEKDAYS), "hours": "00:00-24:00", "closures": []},
        delivery={"type": "maildir", "path": "mail", "from": "sopwatch <sopwatch@northwind.example>"},
        state="state.db",
    )
    # Both on the real clock (`run` has no --at), check first: it reads the state run then writes.
    items = json_lines(ok(run_sopwatch("check", "--config", "config.yaml", "--json", cwd=example_copy)))
    subjects = {(i["rule"], i["action"], i["kind"], i["repeat"]): i["subject"] for i in items}
    assert len(subjects) == len(items)
    ok(run_sopwatch("run", "--once", "--config", "config.yaml", cwd=example_copy))

    sent = [m for m in maildir_messages(example_copy / "mail") if m["X-Sopwatch-Action"] is not None]
    assert any(str(m["X-Sopwatch-Action"]) == ANCIENT for m in sent)
    for message in sent:
        key = (
            str(message["X-Sopwatch-Rule"]),
            str(message["X-Sopwatch-Action"]),
            str(message["X-Sopwatch-Kind"]),
            int(str(message["X-Sopwatch-Repeat"])),
        )
        assert key in subjects, f"check did not list {key} (a fire time passed between the two runs?)"
        assert str(message["Subject"]) == subjects[key], key
        assert str(message["Subject"]).startswith(("[Northwind] ", "[S&OP] "))
    assert any(str(m["Subject"]).startswith("[Northwind] ") for m in sent)


def _snapshot_files(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of every file but SQLite's own -wal/-shm sidecars: a read-only connection to
    a WAL database creates those (empty of changes) when no writer has them open."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def test_check_and_explain_create_no_state_file(run_sopwatch, example_copy: Path) -> None:
    state = point_state_at(example_copy, "state/sopwatch.db")
    before = sorted(p.relative_to(example_copy) for p in example_copy.rglob("*"))
    ok(run_sopwatch("check", "--config", "config.yaml", "--at", AT, cwd=example_copy))
    ok(run_sopwatch("explain", "NW-1210", "--config", "config.yaml", "--at", AT, cwd=example_copy))
    assert not state.exists() and not state.parent.exists()
    assert sorted(p.relative_to(example_copy) for p in example_copy.rglob("*")) == before


def test_check_and_explain_change_nothing_in_an_existing_state(run_sopwatch, example_copy: Path) -> None:
    state = point_state_at(example_copy, "state/sopwatch.db")
    state.parent.mkdir()
    setup = load_setup(example_copy / "config.yaml")
    tz = setup.loaded.tz
    store = StateStore(state)
    try:
        for evaluation in simulate(
            setup.snapshot,
            setup.rules,
            setup.environment,
            datetime(2026, 12, 1, tzinfo=tz),
            datetime(2026, 12, 4, tzinfo=tz),
            timedelta(hours=1),
        ):
            store.commit(evaluation)
    finally:
        store.close()
    before = _snapshot_files(state.parent)
    assert "sopwatch.db" in before
    for args in (("check", "--at", AT), ("check", "--at", AT, "--json"), ("explain", "NW-1210", "--at", AT)):
        ok(run_sopwatch(*args, "--config", "config.yaml", cwd=example_copy))
        assert _snapshot_files(state.parent) == before, args


# --- simulate --------------------------------------------------------------------------------------


def test_simulate_text_summary_matches_json(run_sopwatch, example_copy: Path) -> None:
    args = ("simulate", "--config", "config.yaml", "--from", "2026-12-01T00:00", "--to", "2026-12-10T23:00")
    text = ok(run_sopwatch(*args, cwd=example_copy))
    match = re.search(r"^(\d+) notifications$", text, re.M)
    assert match, text
    assert re.search(r"^by rule: .*missing-cycle-input \d+", text, re.M)
    items = json_lines(ok(run_sopwatch(*args, "--json", cwd=example_copy)))
    assert len(items) == int(match.group(1)) > 0
    start, end = aware("2026-12-01T00:00:00+01:00"), aware("2026-12-10T23:00:00+01:00")
    previous = start
    for item in items:
        check_spec_line(item)
        at = aware(item["at"])
        assert start <= at <= end
        assert (at - start) % timedelta(hours=1) == timedelta(0), "ticks lie on the hourly grid"
        assert at >= previous, "printed in time order"
        previous = at
    # The first reminder of a missing input: NW-1201 at step 0, before the data-gathering cutoff.
    assert any(
        (i["rule"], i["action"], i["step"], i["repeat"]) == ("missing-cycle-input", "NW-1201", 0, 0)
        for i in items
    )


@pytest.mark.parametrize("cap", [1, 200])
def test_simulate_says_when_the_cap_held_sends_back(run_sopwatch, example_copy: Path, cap: int) -> None:
    edit_config(example_copy, max_messages_per_tick=cap)
    args = ("simulate", "--config", "config.yaml", "--from", "2026-12-01T00:00", "--to", "2026-12-03T00:00")
    result = run_sopwatch(*args, cwd=example_copy)
    assert result.returncode == 0, result.stderr
    note = re.search(
        r"^note: at (\d+) tick\(s\) max_messages_per_tick \((\d+)\) held sends back", result.stderr, re.M
    )
    if cap == 1:  # the example's first morning alone has more than one message due
        assert note and int(note.group(1)) > 0 and note.group(2) == "1", result.stderr
    else:
        assert note is None, result.stderr


def test_simulate_every_changes_the_grid(run_sopwatch, example_copy: Path) -> None:
    args = ("simulate", "--config", "config.yaml", "--from", "2026-12-01T00:00", "--to", "2026-12-08T00:00")
    items = json_lines(ok(run_sopwatch(*args, "--every", "1d", "--json", cwd=example_copy)))
    assert items
    for item in items:
        at = aware(item["at"])
        assert (at.hour, at.minute) == (0, 0), item["at"]


# --- simulate and check agree ----------------------------------------------------------------------

AGREEMENT_INSTANTS = (
    "2026-12-01T00:00",  # the first tick: a fresh state for both
    "2026-12-03T00:00",
    "2026-12-04T08:00",
    "2026-12-05T12:00",  # a Saturday: nothing new
    "2026-12-07T08:00",  # Monday morning after the weekend
    "2026-12-12T00:00",
    "2026-12-15T09:00",
    "2026-12-16T00:00",
    "2026-12-18T08:00",
)


def _key(item: dict) -> tuple:
    return (
        item["rule"],
        item["action"],
        item["step"],
        item["repeat"],
        item["channel"],
        tuple(item["to"]),
        tuple(item["cc"]),
    )


def test_simulate_and_check_agree_through_the_state_file(run_sopwatch, example_copy: Path) -> None:
    state_path = point_state_at(example_copy, "agreement.db")
    setup = load_setup(example_copy / "config.yaml")
    tz = setup.loaded.tz
    instants = [datetime.fromisoformat(t).replace(tzinfo=tz) for t in AGREEMENT_INSTANTS]
    start = datetime(2026, 12, 1, tzinfo=tz)
    store = StateStore(state_path)
    state = State()
    compared = 0
    try:
        for evaluation in simulate(
            setup.snapshot, setup.rules, setup.environment, start, max(instants), timedelta(hours=1)
        ):
            if evaluation.at in instants:
                # The store holds every evaluation before this tick: what the daemon would have.
                store.close()
                result = run_sopwatch(
                    "check",
                    "--config",
                    "config.yaml",
                    "--at",
                    evaluation.at.strftime("%Y-%m-%dT%H:%M"),
                    "--json",
                    cwd=example_copy,
                )
                from_check = Counter(_key(item) for item in json_lines(ok(result)))
                from_simulate = Counter(
                    _key(
                        {
                            "rule": n.rule,
                            "action": n.action,
                            "step": n.step,
                            "repeat": n.repeat,
                            "channel": n.channel,
                            "to": list(n.to),
                            "cc": list(n.cc),
                        }
                    )
                    for n in evaluation.notifications
                )
                assert from_check == from_simulate, evaluation.at
                assert all(n.at == evaluation.at for n in evaluation.notifications)
                compared += sum(from_simulate.values())
                store = StateStore(state_path)
            store.commit(evaluation)
            state = apply(state, evaluation)
    finally:
        store.close()
    assert compared >= 20, "the chosen instants must include real notifications"
    # The store and the in-memory state agree on what is open.
    reopened = StateStore(state_path)
    try:
        loaded = reopened.load()
    finally:
        reopened.close()
    assert set(loaded.episodes) == set(state.episodes)
    assert set(loaded.observations) == set(state.observations)


# --- explain ---------------------------------------------------------------------------------------


def _explain_blocks(out: str) -> dict[str, list[str]]:
    """``rule (severity): FIRES|no`` headers and their indented lines."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        header = re.fullmatch(r"([a-z0-9][a-z0-9_-]*) \((info|warning|critical)\): (FIRES|no)", line)
        if header:
            current = blocks.setdefault(header.group(1), [line])
        elif current is not None and line.strip():
            current.append(line)
    return blocks


def test_explain_shows_a_firing_rule_with_fire_at_and_recipients(run_sopwatch, example_copy: Path) -> None:
    out = ok(run_sopwatch("explain", "NW-1210", "--config", "config.yaml", "--at", AT, cwd=example_copy))
    assert out.splitlines()[0].startswith("NW-1210: Approve the expedited PVOH film order")
    assert "[pending_approval]" in out.splitlines()[0]
    blocks = _explain_blocks(out)
    stale = blocks["stale-approval"]
    assert stale[0] == "stale-approval (warning): FIRES"
    # status_changed_at Fri 27 Nov 11:30 + 2 business days = Tue 1 Dec 11:30.
    assert "  fire_at: 2026-12-01 11:30 CET" in stale
    assert "  step 0 recipients: claudia.weber@northwind.example" in stale  # the approver
    # Step 1: claudia's manager, the owner (jonas) in copy.
    assert "  step 1 recipients: stefan.richter@northwind.example  cc jonas.becker@northwind.example" in stale
    assert not any("why not" in line for line in stale)


def test_explain_says_why_a_rule_does_not_match(run_sopwatch, example_copy: Path) -> None:
    out = ok(run_sopwatch("explain", "NW-1210", "--config", "config.yaml", "--at", AT, cwd=example_copy))
    blocks = _explain_blocks(out)
    assert set(blocks) >= {"stale-approval", "missing-cycle-input", "approval-without-approver"}
    inputs = blocks["missing-cycle-input"]
    assert inputs[0] == "missing-cycle-input (warning): no"
    why = [line for line in inputs if line.startswith("  why not:")]
    assert len(why) == 1 and "kind" in why[0] and "'approval'" in why[0], inputs
    approver = blocks["approval-without-approver"]
    why = [line for line in approver if line.startswith("  why not:")]
    assert len(why) == 1 and "approver" in why[0] and "claudia" in why[0], approver


def test_explain_unknown_action_exits_1(run_sopwatch, example_copy: Path) -> None:
    result = run_sopwatch("explain", "NW-9999", "--config", "config.yaml", "--at", AT, cwd=example_copy)
    no_traceback(result)
    assert result.returncode == 1
    assert "NW-9999" in result.stderr and "no action" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "command",
    [
        ("check", "--at", "9999-12-31T23:59"),
        ("explain", "NW-1213", "--at", "9999-12-31T23:59"),
        ("simulate", "--from", "9999-12-31T00:00", "--to", "9999-12-31T23:59"),
        ("check", "--at", "0001-01-01T00:00"),
    ],
)
def test_instants_at_the_ends_of_the_calendar_are_no_traceback(
    run_sopwatch, example_copy: Path, command: tuple[str, ...]
) -> None:
    """The last minutes of year 9999 have no delivery window after them, and no next hourly tick."""
    result = run_sopwatch(*command, "--config", "config.yaml", cwd=example_copy)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
