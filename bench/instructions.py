"""Count the work of reading a register, free of the machine's noise, with valgrind's cachegrind.

    python bench/instructions.py [--sizes 10000 100000] [--source csv|sqlite]

Wall time on a shared 2-core machine moves by 10-30 % between runs, and the growth from 10k to
100k rows also carries the memory hierarchy (ten times the rows stop fitting the caches). This
counts what the program itself does: instructions executed, and first-level and last-level data
cache misses in cachegrind's simulation of this machine's caches, for sopwatch's
``read_register`` and for the bare reader of the same file (``csv.DictReader`` / ``SELECT *``).
Each figure is one child process minus the same child that reads nothing, so interpreter start,
imports and the configuration cancel out. Both readers run with the cyclic collector paused, as
``read_register`` pauses it, so the counts compare the reading itself. The children run with a
fixed hash seed, so the counts repeat almost exactly (to within a few hundred instructions of
billions here; address-space layout still moves them a little); the runs take about a minute
(cachegrind runs Python ~50x slower).
Needs ``valgrind`` on the PATH.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from generate import DEFAULT_OUT, generate

ROOT = Path(__file__).resolve().parent.parent
COUNTERS = {"I": r"I\s+refs:\s+([\d,]+)", "D1": r"D1\s+misses:\s+([\d,]+)", "LL": r"LL misses:\s+([\d,]+)"}

# argv: config path, rows to read (0: load the configuration only). os._exit skips the teardown,
# as the CLI does, so freeing the rows is not counted.
SOPWATCH_CHILD = """\
import os, sys
from pathlib import Path
from sopwatch.adapters.register import read_register
from sopwatch.config.loader import load_config
from sopwatch.core.model import DEFAULT_TERMINAL
loaded = load_config(Path(sys.argv[1]))
if sys.argv[2] != "0":
    read_register(loaded.config.register_, loaded.base_dir, loaded.tz, closed=DEFAULT_TERMINAL)
os._exit(0)
"""
BARE_CHILD = """\
import csv, gc, os, sqlite3, sys
from pathlib import Path
from sopwatch.config.loader import load_config
loaded = load_config(Path(sys.argv[1]))
cfg = loaded.config.register_
gc.disable()
if sys.argv[2] != "0":
    path = loaded.base_dir / cfg.path
    if cfg.type == "sqlite":
        rows = sqlite3.connect(path).execute(f'SELECT * FROM "{cfg.table}"').fetchall()
    else:
        with path.open(newline="", encoding=cfg.encoding) as handle:
            rows = list(csv.DictReader(handle, delimiter=cfg.delimiter))
os._exit(0)
"""
READERS = {"sopwatch read_register": SOPWATCH_CHILD, "bare reader": BARE_CHILD}


def count(child: str, config: Path, rows: int) -> dict[str, int]:
    """Cachegrind's totals for one child process."""
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--cachegrind-out-file=/dev/null"]
    done = subprocess.run(
        [*command, sys.executable, "-c", child, str(config), str(rows)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # set iteration order, and so the counts, repeat
    )
    if done.returncode != 0:
        raise RuntimeError(f"cachegrind failed ({done.returncode}):\n{done.stderr[-2000:]}")
    totals = {}
    for name, pattern in COUNTERS.items():
        found = re.search(pattern, done.stderr)
        if found is None:
            raise RuntimeError(f"no {name} count in cachegrind's report:\n{done.stderr[-2000:]}")
        totals[name] = int(found.group(1).replace(",", ""))
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--source", choices=["csv", "sqlite"], default="csv")
    parser.add_argument("--data", type=Path, default=DEFAULT_OUT, help="generated inputs (cached)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing to count", file=sys.stderr)
        return 1
    compileall.compile_dir(ROOT / "sopwatch", quiet=1)  # count no byte-compiling (see run.py)
    configs = {n: generate(n, 50, args.data, sources=[args.source])[args.source] for n in args.sizes}
    jobs = {
        (reader, n): (child, configs[max(n, min(args.sizes))], n)
        for reader, child in READERS.items()
        for n in [0, *args.sizes]
    }
    with ThreadPoolExecutor(os.cpu_count()) as pool:  # one valgrind per core: each is CPU-bound
        futures = {key: pool.submit(count, *job) for key, job in jobs.items()}
        totals = {key: future.result() for key, future in futures.items()}

    print(f"{'reader':<24} {'rows':>9} {'instructions':>15} {'D1 misses':>12} {'LL misses':>11}")
    for reader in READERS:
        base = totals[(reader, 0)]
        work = {n: {k: totals[(reader, n)][k] - base[k] for k in COUNTERS} for n in args.sizes}
        for n in args.sizes:
            print(f"{reader:<24} {n:>9,} {work[n]['I']:>15,} {work[n]['D1']:>12,} {work[n]['LL']:>11,}")
        for small, large in zip(args.sizes, args.sizes[1:], strict=False):
            growth = "  ".join(f"{k} {work[large][k] / work[small][k]:.2f}x" for k in COUNTERS)
            print(f"{reader:<24} {'growth':>9} {small:,} -> {large:,}: {growth} (rows {large / small:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
