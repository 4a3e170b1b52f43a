"""Jinja2 rendering in a sandbox with strict undefined variables.

Every message about one action carries the same subject so mail clients thread them.
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sopwatch.core.model import Action

SUBJECT = "[S&OP] {{ action.id }}: {{ action.title }}"
MAX_HEADER = 200


def one_line(text: str, limit: int = MAX_HEADER) -> str:
    """Collapse every kind of line break and run of whitespace: data never splits a header."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Renderer:
    def __init__(self, subject_template: str = SUBJECT) -> None:
        self.env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self.subject_template = self.env.from_string(subject_template)
        self.builtin_subject = self.env.from_string(SUBJECT)

    def subject(self, action: Action | None, action_id: str) -> str:
        context: dict[str, Any] = {
            "action": dict(action.fields) if action else {"id": action_id, "title": ""}
        }
        try:
            text = self.subject_template.render(context)
        except TemplateError:
            text = self.builtin_subject.render(context)
        return one_line(text)
