"""Text made safe for one line: email headers, subjects and calendar invitation fields."""

from __future__ import annotations

MAX_HEADER = 200
# C0 and C1 control characters and DEL: RFC 5322 headers and RFC 5545 text may not carry them,
# and a terminal escape in a subject is a spoof.
_CONTROL_CODES = (*range(0x20), 0x7F, *range(0x80, 0xA0))
# One line: those str.split() does not take for whitespace (the rest collapse into spaces).
_CONTROLS = {code: None for code in _CONTROL_CODES if not chr(code).isspace()}
# Text that keeps its lines (a calendar DESCRIPTION): all of them but line feed and tab.
_CONTROLS_BUT_LINES = {code: None for code in _CONTROL_CODES if chr(code) not in "\n\t"}


def without_controls(text: str) -> str:
    """``text`` with its lines kept and every other control character dropped (RFC 5545 TEXT)."""
    return text.replace("\r\n", "\n").translate(_CONTROLS_BUT_LINES)


def one_line(text: str, limit: int = MAX_HEADER) -> str:
    """Collapse every kind of line break and run of whitespace and drop control characters: data
    never splits a header."""
    flat = " ".join(str(text).translate(_CONTROLS).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
