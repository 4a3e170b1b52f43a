"""When to try a temporarily failed message again: exponential backoff with full jitter.

Full jitter (a uniform delay between 0 and the exponential ceiling) spreads the retries of
many messages that failed together, e.g. while the SMTP server was down, so they do not all
hit it again in the same second.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

BASE = timedelta(seconds=30)
CAP = timedelta(hours=1)
# With a 1 h cap, 24 attempts span at most ~17 h (expected ~9 h): an SMTP server down
# overnight does not lose reminders, yet a dead address is reported within a working day.
MAX_ATTEMPTS = 24


def ceiling(attempts: int) -> timedelta:
    """The largest delay after ``attempts`` failed attempts: BASE, 2·BASE, 4·BASE, ... up to CAP."""
    exponent = min(max(attempts, 1) - 1, 32)  # bounded so huge counts never overflow
    return min(CAP, BASE * (2**exponent))


def next_attempt(attempts: int, now: datetime, rng: random.Random) -> datetime:
    """The instant of the next try after ``attempts`` attempts (the first failure is attempts=1)."""
    return now + timedelta(seconds=rng.uniform(0, ceiling(attempts).total_seconds()))


def exhausted(attempts: int) -> bool:
    """True when a temporary failure after ``attempts`` attempts must now count as permanent."""
    return attempts >= MAX_ATTEMPTS
