"""Text made safe for one line: email headers, subjects and calendar invitation fields."""

from __future__ import annotations

MAX_HEADER = 200


def one_line(text: str, limit: int = MAX_HEADER) -> str:
    """Collapse every kind of line break and run of whitespace: data never splits a header."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
