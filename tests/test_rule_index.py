"""The register index that picks a rule's candidates must never drop an action the rule matches.

The oracle is the brute force: test every open record with the rule's full condition.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from sopwatch.core.conditions import compile_condition, index_key, pinned_values
from sopwatch.core.evaluate import _RecordIndex
from sopwatch.core.model import DEFAULT_TERMINAL, STATUSES
from sopwatch.core.rules import Rule
from sopwatch.core.state import Episode

TZ = ZoneInfo("Europe/Berlin")
FIELDS = {"status", "kind", "team", "priority", "impact_eur", "title"}
TEAMS = ["Sales", "Ops", "17", "True", "Sales "]
# Register values as the sources give them: text, SQLite numbers, spreadsheet floats and bools.
VALUES = st.one_of(st.sampled_from(TEAMS), st.sampled_from([17, 17.0, 3.5, True, False]), st.none())
TEXTS = st.sampled_from(["Sales", "Ops", "17", "True", "3.5", "false"])


def make_rule(when: dict) -> Rule:
    condition = compile_condition(when, FIELDS, TZ)
    return Rule("r", "", "info", condition, None, (), None, False, "rules.yaml:1")


conditions = st.fixed_dictionaries(
    {},
    optional={
        "status": st.one_of(st.sampled_from(STATUSES), st.lists(st.sampled_from(STATUSES), min_size=1)),
        "team": st.one_of(TEXTS, st.lists(TEXTS, min_size=1, max_size=3)),
        "priority": st.one_of(
            st.fixed_dictionaries({"in": st.lists(TEXTS, min_size=1, max_size=3)}),
            st.fixed_dictionaries({"ne": TEXTS}),
            st.fixed_dictionaries({"eq": st.sampled_from([17, 3.5, True])}),
        ),
        "any": st.lists(st.fixed_dictionaries({"impact_eur": TEXTS}), min_size=1, max_size=2),
    },
)
records = st.lists(
    st.fixed_dictionaries(
        {"status": st.sampled_from(STATUSES), "kind": st.sampled_from(["action", "decision"])},
        optional={"team": VALUES, "priority": VALUES, "impact_eur": VALUES},
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(when=conditions, rows=records, with_episode=st.sets(st.integers(0, 29), max_size=3))
def test_candidates_hold_every_matching_open_action_in_register_order(when, rows, with_episode) -> None:
    rule = make_rule(when)
    table = {f"A{i}": {**row, "id": f"A{i}"} for i, row in enumerate(rows)}
    episodes = {
        f"A{i}": Episode(f"r/A{i}/1", "r", f"A{i}", 1, None, None)  # type: ignore[arg-type]
        for i in with_episode
        if i < len(rows)
    }
    candidates, unpinned = _RecordIndex(table, DEFAULT_TERMINAL).candidates(rule, episodes)

    expected = [i for i, r in table.items() if r["status"] not in DEFAULT_TERMINAL and rule.matches(r)]
    assert set(expected) <= set(candidates)
    assert set(episodes) <= set(candidates)  # an open episode is always looked at, to resolve it
    order = list(table)
    assert candidates == sorted(candidates, key=order.index)
    # Nothing outside the pins: a candidate without an episode is open and has every pinned value.
    for action_id in set(candidates) - set(episodes):
        record = table[action_id]
        assert record["status"] not in DEFAULT_TERMINAL
        for name, values in pinned_values(rule.when).items():
            assert index_key(record.get(name)) in values
    # Evaluation tests what the index did not: the rest of the condition must give the same answer.
    assert unpinned <= set(episodes)
    for action_id in candidates:
        record = table[action_id]
        test = rule.matches if action_id in unpinned else rule.matches_unpinned
        assert test(record) == rule.matches(record), action_id


def test_pins_come_only_from_text_equality_at_the_top() -> None:
    rule = make_rule({"status": ["open", "blocked"], "team": "Sales", "any": [{"priority": "P1"}]})
    assert rule.pins == {"status": frozenset({"open", "blocked"}), "team": frozenset({"Sales"})}
    assert make_rule({"priority": {"eq": 17}}).pins == {}
    assert make_rule({"not": {"team": "Sales"}}).pins == {}
    # Two pins on one field leave only the values both allow.
    both = make_rule({"all": [{"status": ["open", "blocked"]}, {"status": "blocked"}]})
    assert both.pins == {"status": frozenset({"blocked"})}


def test_the_unpinned_test_skips_only_the_pinned_parts() -> None:
    rule = make_rule({"status": "open", "team": "Sales", "priority": {"ne": "P1"}})
    # The pinned status and team are not looked at; the priority still is.
    assert rule.matches_unpinned({"status": "done", "team": "Ops", "priority": "P2"})
    assert not rule.matches_unpinned({"status": "open", "team": "Sales", "priority": "P1"})
    assert make_rule({"status": "open"}).matches_unpinned({})  # nothing left to test
