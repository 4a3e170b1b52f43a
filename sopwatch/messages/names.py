"""Template names and files, without Jinja2: what the config loader needs to check a rule's
``template:`` (loading Jinja2 is left to the commands that render)."""

from __future__ import annotations

import re
from pathlib import Path

BUILTINS = ("reminder", "escalation", "resolved", "hold", "cancel", "digest")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
FILE_PATTERN = re.compile(r"^(?P<name>[A-Za-z0-9_-]+)\.(?P<part>subject|txt|html)\.j2$")


def available_templates(folder: Path | None) -> frozenset[str]:
    """The names a step may use: the built-ins, and overrides in ``folder`` with a text body
    (``NAME.txt.j2``; partials, starting with ``_``, are not templates of their own)."""
    names = set(BUILTINS)
    if folder is not None and folder.is_dir():
        for path in folder.iterdir():
            match = FILE_PATTERN.match(path.name)
            if match and match["part"] == "txt" and not match["name"].startswith("_") and path.is_file():
                names.add(match["name"])
    return frozenset(names)
