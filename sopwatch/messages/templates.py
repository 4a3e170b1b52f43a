"""The template set: the admin's overrides in front of the built-in templates, in a Jinja2 sandbox.

Templates are written by ops admins, and the data they print comes from a spreadsheet, so both are
untrusted: the environment is an ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``, HTML is
autoescaped, and a template that fails for any reason is replaced by the built-in of the same kind
(SPEC §3: a failing template never drops a notification), with the reason handed back to the caller.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sopwatch.errors import Location, SopwatchError
from sopwatch.messages.names import BUILTINS, FILE_PATTERN, NAME_PATTERN
from sopwatch.messages.render import one_line

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class RenderedText:
    subject: str
    text: str
    html: str | None  # None: the template has no HTML part; the caller derives one from the text
    fallback_reason: str | None = None  # set when the built-in replaced a failing override


def check_name(name: str) -> str:
    """Refuse anything that could reach outside the templates folder."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise SopwatchError(f"template name {name!r} is not allowed: use only letters, digits, '-' and '_'")
    return name


def _zone(name: Any, default: tzinfo) -> tzinfo:
    if isinstance(name, tzinfo):
        return name
    try:
        return ZoneInfo(str(name)) if name else default
    except (ZoneInfoNotFoundError, ValueError):
        return default


def format_local(value: Any, tz: tzinfo, naive_tz: tzinfo | None = None, style: str = "datetime") -> str:
    """'Wed 9 Dec 2026 10:00 CET' for an instant in ``tz``; 'Wed 9 Dec 2026' for a date.

    English names on purpose: ``strftime`` follows the process locale, which a daemon does not choose.
    A naive datetime is in the organisation's timezone (SPEC §1.1), passed as ``naive_tz``.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = (
                datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
            )
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=naive_tz or tz)
        try:
            local = value.astimezone(tz)
        except OverflowError:  # within hours of year 1 or 9999: shown in its own zone
            local = value
        day = f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}"
        clock = f"{local:%H:%M} {local.tzname()}"
        if style == "date":
            return day
        if style == "time":
            return clock
        return f"{day} {clock}"
    if isinstance(value, date):
        return f"{_DAYS[value.weekday()]} {value.day} {_MONTHS[value.month - 1]} {value.year}"
    return str(value)


@pass_context
def _localtime(context: Context, value: Any, style: str = "datetime") -> str:
    """Jinja filter: dates in the recipient's timezone (SPEC §3), falling back to the organisation's."""
    org = context.get("org") or {}
    org_tz = _zone(org.get("timezone") if isinstance(org, Mapping) else None, ZoneInfo("UTC"))
    recipient = context.get("recipient") or {}
    tz = _zone(recipient.get("timezone") if isinstance(recipient, Mapping) else None, org_tz)
    return format_local(value, tz, org_tz, style)


def _environment(loader: BaseLoader) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=StrictUndefined,
        # HTML parts escape data (a title may hold <script>); text and subjects must not.
        autoescape=select_autoescape(
            enabled_extensions=("html.j2",), default_for_string=False, default=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["localtime"] = _localtime
    return env


def _where(exc: BaseException, fallback: str) -> str:
    """'file:line' of the innermost template frame: Jinja rewrites tracebacks to point into templates."""
    if isinstance(exc, TemplateSyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}" if exc.lineno else exc.filename
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return f"{frame.filename}:{frame.lineno}"
    return fallback


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TemplateNotFound):
        return f"template {exc.name} not found"
    if isinstance(exc, TemplateSyntaxError):
        return exc.message or str(exc)
    return str(exc) or type(exc).__name__


class TemplateSet:
    """Overrides from ``override_dir`` first, then the built-ins shipped in ``sopwatch/templates``."""

    def __init__(self, override_dir: Path | str | None = None) -> None:
        self.override_dir = Path(override_dir) if override_dir is not None else None
        builtin_loader = PackageLoader("sopwatch", "templates")
        self._builtin = _environment(builtin_loader)
        if self.override_dir is None:
            self._env = self._builtin
        else:
            self._env = _environment(ChoiceLoader([FileSystemLoader(str(self.override_dir)), builtin_loader]))

    # -- discovery ---------------------------------------------------------------------------

    def _override_path(self, filename: str) -> Path | None:
        if self.override_dir is None:
            return None
        path = self.override_dir / filename
        return path if path.is_file() else None

    def exists(self, name: str) -> bool:
        """True if ``name`` is a built-in or the overrides have its text body."""
        check_name(name)
        return name in BUILTINS or self._override_path(f"{name}.txt.j2") is not None

    def overrides(self) -> list[str]:
        """Template NAMEs found in the override folder (partials starting with '_' excluded)."""
        if self.override_dir is None or not self.override_dir.is_dir():
            return []
        names = {
            m["name"]
            for p in self.override_dir.iterdir()
            if (m := FILE_PATTERN.match(p.name)) and not m["name"].startswith("_")
        }
        return sorted(names)

    # -- validation --------------------------------------------------------------------------

    def validate(self, sample: Mapping[str, Any] | None = None) -> list[SopwatchError]:
        """Every problem in the overrides: bad file names, syntax errors (file:line), missing bodies.

        With a ``sample`` context, each override is also rendered, so an unknown variable or a
        sandbox violation shows up in ``sopwatch validate`` rather than in a live send.
        """
        if self.override_dir is None:
            return []
        folder = self.override_dir
        if not folder.is_dir():
            return [SopwatchError("templates folder not found", Location(str(folder)))]
        problems: list[SopwatchError] = []
        parts: dict[str, set[str]] = {}
        for path in sorted(folder.iterdir()):
            if path.is_dir() or not path.name.endswith(".j2"):
                continue
            match = FILE_PATTERN.match(path.name)
            if match is None:
                problems.append(
                    SopwatchError(
                        "not a template file name: expected NAME.subject.j2, NAME.txt.j2 or NAME.html.j2 "
                        "with NAME made of letters, digits, '-' and '_'",
                        Location(str(path)),
                    )
                )
                continue
            parts.setdefault(match["name"], set()).add(match["part"])
            try:
                source = path.read_text(encoding="utf-8")
                self._env.compile(source, path.name, str(path))
            except UnicodeDecodeError as exc:
                problems.append(SopwatchError(f"not UTF-8 text: {exc.reason}", Location(str(path))))
            except TemplateSyntaxError as exc:
                problems.append(SopwatchError(_describe(exc), Location(str(path), exc.lineno)))
        for name, found in sorted(parts.items()):
            if name.startswith("_") or name in BUILTINS or "txt" in found:
                continue
            problems.append(
                SopwatchError(
                    f"{name}.txt.j2 is missing: every template needs a text body",
                    Location(str(folder / f"{name}.{sorted(found)[0]}.j2")),
                )
            )
        if sample is not None and not problems:
            for name in sorted(n for n in parts if not n.startswith("_")):
                builtin = name if name in BUILTINS else ("digest" if "digest" in name else "reminder")
                reason = self.render(name, sample, builtin=builtin).fallback_reason
                if reason:
                    problems.append(SopwatchError(reason))
        return problems

    # -- rendering ---------------------------------------------------------------------------

    def render(
        self, name: str, context: Mapping[str, Any], *, builtin: str | None = None, subject: str | None = None
    ) -> RenderedText:
        """Subject, text and HTML for ``name``; the built-in ``builtin`` replaces a failing override.

        ``builtin`` defaults to ``name`` for built-in names and to ``reminder`` otherwise. A given
        ``subject`` (the action's thread subject) is used instead of rendering one, bodies included.
        """
        return self._render_or_fall_back(name, context, builtin, bodies=True, subject=subject)

    def subject(self, name: str, context: Mapping[str, Any], *, builtin: str | None = None) -> str:
        """The subject ``render`` would give, without rendering the bodies: what ``check`` prints.

        The same fallbacks apply: a custom template without a subject file keeps the built-in's; a
        failing subject, or a body that is missing or does not compile, gives the built-in's subject;
        a failing built-in gives the last-resort one. Only a body that fails at render time goes
        unseen here (``render`` then falls back to the built-in, subject included).
        """
        return self._render_or_fall_back(name, context, builtin, bodies=False).subject

    def _render_or_fall_back(
        self,
        name: str,
        context: Mapping[str, Any],
        builtin: str | None,
        *,
        bodies: bool,
        subject: str | None = None,
    ) -> RenderedText:
        fallback = builtin or (name if name in BUILTINS else "reminder")
        if fallback not in BUILTINS:
            raise SopwatchError(f"{fallback!r} is not a built-in template: use one of {', '.join(BUILTINS)}")
        try:
            check_name(name)
        except SopwatchError as exc:
            return self._builtin_render(fallback, context, str(exc), bodies, subject)
        try:
            return self._render(self._env, name, context, fallback, bodies, subject)
        except Exception as exc:  # anything an override can raise, sandbox violations included
            where = _where(exc, f"{name}")
            return self._builtin_render(fallback, context, f"{where}: {_describe(exc)}", bodies, subject)

    def _builtin_render(
        self, name: str, context: Mapping[str, Any], reason: str, bodies: bool, subject: str | None = None
    ) -> RenderedText:
        try:
            rendered = self._render(self._builtin, name, context, name, bodies, subject)
        except Exception as exc:
            # A built-in failing is a bug, but the notification still goes out, plainly.
            where = _where(exc, name)
            return _last_resort(context, f"{reason}; built-in {where}: {_describe(exc)}")
        return RenderedText(rendered.subject, rendered.text, rendered.html, reason)

    @staticmethod
    def _render(
        env: ImmutableSandboxedEnvironment,
        name: str,
        context: Mapping[str, Any],
        builtin: str,
        bodies: bool,
        subject: str | None = None,
    ) -> RenderedText:
        """One template's parts; without ``bodies`` the bodies are loaded but not rendered (left empty).

        Loading them still matters: a missing or broken body sends the whole message to the built-in,
        subject included, and ``subject`` must say so too.
        """
        if subject is None:
            try:
                subject_template = env.get_template(f"{name}.subject.j2")
            except TemplateNotFound:
                # A custom template without a subject keeps the built-in one: one subject per action.
                subject_template = env.get_template(f"{builtin}.subject.j2")
            subject = one_line(subject_template.render(context))
        full = {**context, "subject": subject}
        text_template = env.get_template(f"{name}.txt.j2")
        text = text_template.render(full) if bodies else ""
        try:
            html_template = env.get_template(f"{name}.html.j2")
        except TemplateNotFound:
            return RenderedText(subject, text, None)
        if _is_builtin(html_template) and not _is_builtin(text_template):
            # The admin rewrote the text only: the built-in HTML would say other things, and most
            # mail clients show the HTML. Without an HTML body the email's is made from the text.
            return RenderedText(subject, text, None)
        return RenderedText(subject, text, html_template.render(full) if bodies else None)


BUILTIN_FOLDER = Path(__file__).resolve().parent.parent / "templates"


def _is_builtin(template: Template) -> bool:
    return template.filename is not None and _in_builtin_folder(template.filename)


@lru_cache(maxsize=256)
def _in_builtin_folder(filename: str) -> bool:  # cached: every message asks, the answer never changes
    return Path(filename).resolve().parent == BUILTIN_FOLDER


def _last_resort(context: Mapping[str, Any], reason: str) -> RenderedText:
    action = context.get("action") or {}
    ident = action.get("id", "") if isinstance(action, Mapping) else ""
    title = action.get("title", "") if isinstance(action, Mapping) else ""
    subject = one_line(f"[S&OP] {ident}: {title}")
    text = f"{subject}\n\nThis message could not be formatted; the administrator has been told.\n"
    return RenderedText(subject, text, None, reason)
