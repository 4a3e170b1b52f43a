"""The daemon loads each setup out of the garbage collector's way, and leaks nothing by it.

A frozen object is invisible to ``gc.get_objects()`` (it sits in the permanent generation), which
is how these tests tell frozen from collectable. Each test starts and ends with nothing frozen.
"""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from sopwatch.collector import long_lived_load


class Node:
    """A small object that can take part in a reference cycle and be watched through a weakref."""

    def __init__(self) -> None:
        self.other: Node | None = None


def frozen(obj: object) -> bool:
    return gc.is_tracked(obj) and not any(o is obj for o in gc.get_objects())


@pytest.fixture(autouse=True)
def nothing_frozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()
    assert gc.isenabled()


def test_what_a_load_makes_is_frozen_and_the_collector_runs_again() -> None:
    with long_lived_load():
        assert not gc.isenabled()  # paused while loading
        made = {"rows": [[str(i)] for i in range(100)]}
    assert gc.isenabled()
    assert frozen(made) and frozen(made["rows"][0])


def test_a_failed_load_still_leaves_the_collector_running_and_the_heap_frozen() -> None:
    kept = Node()  # the last good setup, say
    with pytest.raises(ValueError), long_lived_load():
        raise ValueError("a bad rules edit")
    assert gc.isenabled()
    assert frozen(kept)


def test_a_cycle_frozen_at_one_load_is_collected_at_the_next() -> None:
    with long_lived_load():
        first, second = Node(), Node()
        first.other, second.other = second, first  # a cycle: reference counting cannot free it
    watch = weakref.ref(first)
    assert frozen(first)
    del first, second  # replaced: now garbage, but frozen, so no collection would see it
    gc.collect()
    assert watch() is not None
    with long_lived_load():
        pass  # the next reload gives the frozen heap back to one full collection first
    assert watch() is None


def test_a_daemon_reload_freezes_the_new_snapshot_and_lets_the_old_one_go(
    make_example_copy, engines, tmp_path: Path
) -> None:
    setup = make_example_copy(tmp_path / "setup")
    engine = engines(setup / "config.yaml")
    first = engine.setup.snapshot.actions  # the register's rows
    assert frozen(first)  # loaded at start: out of the collector's way from the first tick
    old = weakref.ref(first)
    del first

    register = setup / engine.setup.loaded.config.register_.path
    register.write_text(register.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    later = os.stat(register).st_mtime + 5
    os.utime(register, (later, later))  # a new stamp even on a coarse file system
    now = datetime(2026, 12, 9, 10, tzinfo=engine.setup.loaded.tz)
    engine.tick(now)
    engine.tick(now + timedelta(minutes=5))

    assert frozen(engine.setup.snapshot.actions)
    assert old() is None  # nothing (frozen or not) keeps the replaced register alive
