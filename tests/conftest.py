"""Shared fixtures: a private copy of the bundled example, and the real CLI as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


@pytest.fixture(scope="session", autouse=True)
def private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every command of the suite keeps its cache (the holiday tables) in a folder of its own.

    Set before any test starts a subprocess, which inherits it: the suite never writes into the
    home folder of whoever runs it.
    """
    folder = tmp_path_factory.mktemp("cache-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder))
        yield folder


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
