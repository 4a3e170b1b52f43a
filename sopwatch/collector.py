"""Keep Python's cyclic garbage collector out of the way of bulk loading.

Loading a 100,000-row register allocates millions of objects and frees almost none of them. Each
allocation burst triggers collections that rescan the whole growing heap, which made load time
grow faster than the rows. Nothing built while loading forms reference cycles that would need the
collector, so it is paused while loading and resumed afterwards.

A pause only defers work: the allocations still count, and the first collection after it scans
everything the load made (about 0.2 s for 100k rows), then the next older generation's scans it
again. A one-shot command whose setup lives until it exits freezes the setup before the collector
resumes, which skips those scans for good; the daemon does the same at each reload
(:func:`long_lived_load`), and gives what it froze last time back to one full collection first.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector inside the block (nested use is fine)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def settle_long_lived() -> None:
    """Move everything alive now out of the collector's sight (a one-shot command's setup).

    Later collections then scan only what the command allocates afterwards. Frozen objects are
    still freed by reference counting; only cycles among them would outlive their use.
    """
    gc.freeze()


@contextmanager
def long_lived_load() -> Iterator[None]:
    """Load something that lives until the next such load (the daemon's setup) out of the
    collector's way.

    What the previous load froze goes back to the collector, which runs once, in full, first: a
    frozen object is never collected, so the reference cycles of a setup replaced since would
    otherwise stay for good. The load then runs with the collector paused, and everything alive
    after it (the new setup among it) is frozen, even if the load failed and the last good setup
    stays. At 100k register rows this is one full collection per reload instead of the ~1 s of
    repeated scans of the new setup that the evaluation after a reload used to pay.
    """
    gc.unfreeze()
    gc.collect()
    try:
        with collector_paused():
            yield
    finally:
        gc.freeze()
