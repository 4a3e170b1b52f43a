"""Profile one benchmark figure with cProfile and print its hotspots as file:line.

    python bench/hotspots.py simulate [--days 3]     # 10k actions x 20 rules, hourly
    python bench/hotspots.py check [--n 100000]      # the CLI `check`, imports included
    python bench/hotspots.py tick [--n 100000]       # load_setup + evaluate against a warm state

``--top`` sets how many functions are listed (by own time, then by cumulative time); ``--save``
writes the raw profile for snakeviz or ``python -m pstats``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import sys
import sysconfig
from datetime import timedelta
from pathlib import Path
from typing import Any

from generate import DEFAULT_OUT, generate

ROOT = Path(__file__).resolve().parent.parent
AT = "2026-12-09T10:00"
SITE = sysconfig.get_paths()["purelib"]
STDLIB = sysconfig.get_paths()["stdlib"]


def where(filename: str, line: int) -> str:
    for prefix, label in ((str(ROOT) + "/", ""), (SITE + "/", "site-packages/"), (STDLIB + "/", "stdlib/")):
        if filename.startswith(prefix):
            return f"{label}{filename[len(prefix) :]}:{line}"
    return f"{filename}:{line}" if line else filename


def report(profile: cProfile.Profile, top: int, title: str) -> None:
    stats = pstats.Stats(profile)
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = stats.stats  # type: ignore[attr-defined]
    print(f"\n{title}: {total:.2f} s profiled (cProfile overhead included)")
    for key, heading in ((3, "own time (tottime)"), (4, "cumulative time (cumtime)")):
        print(f"\ntop {top} by {heading}")
        print(f"{'own s':>8} {'cum s':>8} {'calls':>11}  function")
        ranked = sorted(entries.items(), key=lambda item: item[1][key - 1], reverse=True)
        for (filename, line, name), (_cc, calls, own, cumulative, _callers) in ranked[:top]:
            print(f"{own:8.2f} {cumulative:8.2f} {calls:11d}  {name}  {where(filename, line)}")


def profile_simulate(args: argparse.Namespace) -> cProfile.Profile:
    from sopwatch.config.loader import load_setup
    from sopwatch.core.simulate import simulate
    from sopwatch.timeparse import parse_instant

    config = generate(args.n or 10_000, args.rules or 20, args.data, sources=["csv"])["csv"]
    setup = load_setup(config)
    start = parse_instant("2026-12-01T00:00", setup.loaded.tz)
    profile = cProfile.Profile()
    profile.enable()
    for _ in simulate(
        setup.snapshot,
        setup.rules,
        setup.environment,
        start,
        start + timedelta(days=args.days),
        timedelta(hours=1),
    ):
        pass
    profile.disable()
    return profile


def profile_check(args: argparse.Namespace) -> cProfile.Profile:
    config = generate(args.n or 100_000, args.rules or 50, args.data, sources=[args.source])[args.source]
    profile = cProfile.Profile()
    profile.enable()
    from sopwatch.cli import invoke  # imports are part of what a user waits for

    with contextlib.redirect_stdout(io.StringIO()):
        status = invoke(["check", "--config", str(config), "--at", AT])
    profile.disable()
    if status != 0:
        raise SystemExit(f"check exited {status}: nothing worth profiling")
    return profile


def profile_tick(args: argparse.Namespace) -> cProfile.Profile:
    from sopwatch.config.loader import load_setup
    from sopwatch.core.evaluate import apply, evaluate
    from sopwatch.core.state import State
    from sopwatch.timeparse import parse_instant

    config = generate(args.n or 100_000, args.rules or 50, args.data, sources=[args.source])[args.source]
    setup = load_setup(config)
    now = parse_instant(AT, setup.loaded.tz)
    state = apply(
        State(), evaluate(setup.snapshot, setup.rules, setup.environment, State(), now - timedelta(minutes=5))
    )
    profile = cProfile.Profile()
    profile.enable()
    fresh = load_setup(config)
    evaluate(fresh.snapshot, fresh.rules, fresh.environment, state, now)
    profile.disable()
    return profile


FIGURES: dict[str, Any] = {"simulate": profile_simulate, "check": profile_check, "tick": profile_tick}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cProfile hotspots of one benchmark figure")
    parser.add_argument("figure", choices=FIGURES)
    parser.add_argument("--n", type=int, help="actions (simulate 10k, others 100k)")
    parser.add_argument("--rules", type=int, help="rules (simulate 20, others 50)")
    parser.add_argument("--source", choices=["csv", "sqlite", "xlsx"], default="csv")
    parser.add_argument("--days", type=int, default=3, help="simulated days (simulate)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--save", type=Path, help="write the raw profile here")
    parser.add_argument("--data", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    profile = FIGURES[args.figure](args)
    if args.save:
        profile.dump_stats(args.save)
    report(profile, args.top, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
