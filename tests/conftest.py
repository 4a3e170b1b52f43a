"""Shared fixtures: a private copy of the bundled example, and the real CLI as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def copy_example(target: Path) -> Path:
    """Copy config.example.yaml (as config.yaml), example/, rules/ and templates/ into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config.example.yaml", target / "config.yaml")
    for folder in ("example", "rules", "templates"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, target / folder)
    return target


def pytest_configure(config: pytest.Config) -> None:
    """Every command of the suite keeps its cache (the holiday tables) in a folder of its own.

    Set before collection, as modules copy ``os.environ`` for their subprocesses when imported:
    the suite never writes into the home folder of whoever runs it.
    """
    folder = tempfile.mkdtemp(prefix="sopwatch-tests-cache-")
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = folder

    def restore() -> None:
        if previous is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = previous
        shutil.rmtree(folder, ignore_errors=True)

    config.add_cleanup(restore)


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    """A folder holding an editable copy of the bundled example; its config is ``config.yaml``."""
    return copy_example(tmp_path / "setup")


@pytest.fixture(scope="session")
def run_sopwatch() -> CliRunner:
    """Run ``python -m sopwatch ARGS...`` in ``cwd``; returns the CompletedProcess (text mode)."""

    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"}
    env.pop("PYTHONWARNINGS", None)

    def run(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sopwatch", *args],
            cwd=cwd or ROOT,
            capture_output=True,
            text=True,
            encoding="utf-8",
            env=env,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def make_example_copy() -> Callable[[Path], Path]:
    """``copy_example`` as a fixture, for module- or session-scoped setups (``example_copy`` is per test)."""
    return copy_example


@pytest.fixture
def daemons() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Long-running daemons a test starts; any still alive at teardown is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def engines():  # type: ignore[no-untyped-def]
    """``engines(config, **kwargs)`` makes a daemon Engine (no SMTP secrets); all are closed after the test."""
    from sopwatch.daemon.engine import Engine

    made: list[Engine] = []

    def make(config: Path, **kwargs) -> Engine:  # type: ignore[no-untyped-def]
        engine = Engine(config, environ={}, **kwargs)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        if not engine.loop.is_closed():
            engine.close()
