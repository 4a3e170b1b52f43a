"""The fault suite (faults/) at its ``--quick`` sizes: every scenario row must hold.

`make faults` runs the full sizes and prints the table. Each scenario returns rows whose
``checks`` map a guarantee to whether it held; a test fails naming the checks that did not hold.
Rows that document a known gap (``known_gap``) still have to pass their own checks.
The two bugs this suite found (a CSV cut inside its last column; an episode resolved when the
clock went back across a restart) are fixed, and their rows must hold like the others.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

FAULTS = Path(__file__).resolve().parents[1] / "faults"
sys.path.insert(0, str(FAULTS))
scenarios: Any = importlib.import_module("scenarios")
harness: Any = importlib.import_module("harness")

QUICK = scenarios.QUICK


def assert_held(row: Any) -> None:
    assert row.checks, f"{row.scenario}: no checks ran"
    assert row.ok, f"{row.scenario}: not held: {row.failed}; figures {row.figures}"


def test_kill_9_mid_delivery_loses_nothing() -> None:
    row = scenarios.crashes(QUICK.kills, QUICK.messages)
    assert_held(row)
    figures = row.figures
    assert figures["received"] == QUICK.messages + figures["duplicates"]
    assert figures["duplicates"] <= QUICK.kills * scenarios.DELIVERY_BATCH


def test_smtp_outage_backs_off_without_spinning_and_delivers_the_backlog_once() -> None:
    row = scenarios.smtp_outage(40, QUICK.outage_seconds, rounds=2)
    assert_held(row)
    assert row.figures["daemon_cpu_s_in_outage"] < 0.05 * row.figures["outage_wall_s"]


def test_random_421_and_451_deliver_everything_once() -> None:
    row = scenarios.smtp_flaky(QUICK.flaky_messages)
    assert_held(row)
    assert row.figures["commands_after_421"] == 0
    assert row.figures["rows_retried"] > 0  # the faults did happen


def test_552_fails_at_once_and_tells_the_admin() -> None:
    assert_held(scenarios.smtp_size(30))


@pytest.mark.parametrize("case", scenarios.TLS_CASES, ids=[c[0] for c in scenarios.TLS_CASES])
def test_tls_failures_never_fall_back_to_clear_text(case: tuple[str, str, str]) -> None:
    row = scenarios._tls_case(case, 2)
    assert_held(row)
    assert row.figures["clear_text_seen"] == []


def test_tls_failure_runs_out_of_retries_and_queues_an_admin_notice() -> None:
    assert_held(scenarios.smtp_tls_exhausted())


def _register_params() -> list[Any]:
    params = []
    for case in scenarios.REGISTER_CASES:
        params.append(pytest.param(case, id=case[0]))
    return params


@pytest.mark.parametrize("case", _register_params())
def test_damaged_register_does_not_crash_or_resolve(case: tuple[str, str, Any, bool]) -> None:
    row = scenarios._register_case(case, QUICK.register_actions)
    assert_held(row)
    if case[3] and row.details["guard"]:
        assert row.details["episodes_resolved"] == 0 and row.details["holds_cancelled"] == 0


def test_register_written_while_read_is_read_again() -> None:
    row = scenarios.register_half_written_while_read(QUICK.register_actions)
    assert_held(row)
    assert row.details["actions_per_tick"][1:] == [QUICK.register_actions] * 2


def _time_params() -> list[Any]:
    params = []
    for case in scenarios.time_cases(QUICK.time_step_minutes):
        params.append(pytest.param(case, id=case[0]))
    return params


@pytest.mark.parametrize("case", _time_params())
def test_clock_faults_send_nothing_twice_and_never_burst(case: Any) -> None:
    row = scenarios._time_case(case)
    assert_held(row)
    assert row.details["max_copies_of_a_send"] == 1


def test_cli_beside_a_running_daemon_and_a_second_daemon() -> None:
    rows = scenarios.concurrency(QUICK.cli_actions, QUICK.cli_commands, QUICK.churn_seconds)
    assert [r.scenario for r in rows] == [
        "concurrency: CLI while the daemon runs",
        "concurrency: a second daemon",
    ]
    for row in rows:
        assert_held(row)


def test_a_failed_check_fails_the_row() -> None:
    """The rows the tests rely on: one false check makes the row fail, with its name."""
    row = harness.Result("x", "y")
    assert not row.ok  # no checks: not held
    row.check("a", True)
    assert row.ok
    row.check("b", False)
    assert not row.ok and row.failed == ["b"] and row.status.startswith("FAILED")
