"""Templates and emails: every built-in renders, headers thread, hostile data stays harmless."""

from __future__ import annotations

import email
import email.policy
import random
import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import sopwatch.messages.email as email_module
from sopwatch.core.digest import human_span
from sopwatch.core.evaluate import Notification
from sopwatch.core.model import Directory, Person
from sopwatch.core.state import HoldRecord
from sopwatch.errors import SopwatchError
from sopwatch.messages.context import sample_context
from sopwatch.messages.email import (
    Composed,
    DigestItem,
    DigestSummary,
    compose_digest,
    compose_from_context,
    header_text,
    thread_root,
)
from sopwatch.messages.notification import notification_context, template_names
from sopwatch.messages.render import one_line
from sopwatch.messages.templates import BUILTINS, TemplateSet, check_name, format_local

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 12, 9, 10, 0, tzinfo=BERLIN)
SENDER = "sopwatch <sopwatch@northwind.example>"
RULE = {"id": "stale-approval", "description": "Approval requests with no answer", "severity": "warning"}

DIRECTORY = Directory(
    people={
        "dana": Person("dana", "Dana Scholz", "dana@northwind.example", manager="sam", timezone=BERLIN),
        "lee": Person("lee", "Lee Park", "lee@northwind.example", timezone=NEW_YORK),
        "sam": Person("sam", "Sam Okafor", "sam@northwind.example"),
    },
    roles={"sop-lead": ("lee",)},
)


def action(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "id": "A-17",
        "kind": "approval",
        "title": "Approve the Q1 safety-stock increase for EMEA",
        "status": "pending_approval",
        "owner": "sam",
        "approver": "dana",
        "cycle": "2026-12",
        "phase": "supply_review",
        "due": date(2026, 12, 4),
        "priority": "high",
        "link": "https://register.northwind.example/A-17",
        "status_since": datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN),
    }
    fields.update(overrides)
    return fields


CYCLE = {
    "demand_review": {"start": date(2026, 12, 1), "end": date(2026, 12, 4), "meeting": None},
    "supply_review": {
        "start": date(2026, 12, 7),
        "end": date(2026, 12, 11),
        "meeting": datetime(2026, 12, 11, 14, 0, tzinfo=BERLIN),
    },
}

HOLD = HoldRecord(
    uid="stale-approval/A-17/1/hold1@sopwatch",
    step=1,
    sequence=0,
    start=datetime(2026, 12, 10, 10, 0, tzinfo=BERLIN),
    end=datetime(2026, 12, 10, 10, 30, tzinfo=BERLIN),
    attendees=("sam@northwind.example", "dana@northwind.example"),
)


def notification(**overrides: object) -> Notification:
    base = Notification(
        at=NOW,
        rule="stale-approval",
        action="A-17",
        episode="stale-approval/A-17/1",
        step=0,
        repeat=0,
        channel="email",
        kind="reminder",
        to=("dana@northwind.example",),
        cc=("sam@northwind.example",),
        template="reminder",
        not_before=NOW,
        severity="warning",
        fire_at=NOW - timedelta(days=3),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


KINDS: dict[str, dict[str, object]] = {
    "reminder": {},
    "escalation": {
        "step": 1,
        "kind": "escalation",
        "template": "escalation",
        "to": ("sam@northwind.example",),
        "cc": ("dana@northwind.example",),
    },
    "resolved": {"kind": "resolved", "template": "resolved", "notes": ("status 'approved' is terminal",)},
    "hold": {"step": 1, "channel": "calendar", "kind": "hold", "template": "hold", "hold": HOLD, "cc": ()},
    "hold-update": {
        "step": 1,
        "repeat": 1,
        "channel": "calendar",
        "kind": "hold-update",
        "template": "hold",
        "hold": replace(HOLD, sequence=1),
        "cc": (),
    },
    "cancel": {
        "step": 1,
        "repeat": 2,
        "channel": "cancel",
        "kind": "cancel",
        "template": "cancel",
        "hold": replace(HOLD, sequence=2),
        "cc": (),
    },
}


def context_for(n: Notification, *, now: datetime = NOW, **fields: object) -> dict[str, object]:
    """The template context of ``n`` for the action with ``fields``, as the daemon builds it."""
    return notification_context(
        n,
        action=action(**fields),
        rule=RULE,
        directory=DIRECTORY,
        org_name="Northwind",
        org_tz=BERLIN,
        now=now,
        cycle=CYCLE,
    )


def build(
    n: Notification, *, templates: TemplateSet | None = None, now: datetime = NOW, **fields: object
) -> Composed:
    return compose_from_context(
        n,
        context_for(n, now=now, **fields),
        directory=DIRECTORY,
        templates=templates or TemplateSet(),
        sender=SENDER,
        now=now,
    )


def parse(composed: Composed) -> EmailMessage:
    parsed = email.message_from_bytes(composed.message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    # Parsed from CRLF wire format: compare with the templates in newline form.
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


# -- built-in templates ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_builtin_renders_for_each_kind(kind: str) -> None:
    composed = build(notification(**KINDS[kind]))
    assert composed.fallback_reason is None
    message = parse(composed)
    assert message["Subject"] == "[S&OP] A-17: Approve the Q1 safety-stock increase for EMEA"
    text, html = bodies(message)
    assert "A-17" in text and "A-17" in html
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert "max-width:640px" in html and "<style" not in html
    assert "Dana Scholz" in text  # the first To recipient is greeted by name, or named as the approver


def test_reminder_says_what_is_overdue() -> None:
    text, _ = bodies(parse(build(notification())))
    assert "Hello Dana Scholz," in text
    assert "A-17 is overdue: it was due Fri 4 Dec 2026, 4 days ago." in text
    assert "Please approve or reject it" in text
    assert "cutoff Fri 11 Dec 2026" in text


def test_escalation_says_who_did_not_act_and_since_when() -> None:
    text, html = bodies(parse(build(notification(**KINDS["escalation"]))))
    assert "Hello Sam Okafor," in text
    assert "waiting on Dana Scholz (approver), who has not acted on it since Sun 6 Dec 2026 10:00 CET" in text
    assert "3 days ago" in text
    assert "Dana Scholz" in html and "Escalation" in html


def test_escalation_for_unassigned_action() -> None:
    n = notification(**KINDS["escalation"])
    text, _ = bodies(parse(build(n, kind="action", status="open", owner=None, approver=None)))
    assert "nobody (no owner assigned)" in text
    assert "assign an owner" in text


def test_resolved_says_why() -> None:
    text, html = bodies(parse(build(notification(**KINDS["resolved"]))))
    assert "A-17 is resolved" in text
    assert "status 'approved' is terminal" in text
    assert "status &#39;approved&#39; is terminal" in html


def test_hold_and_cancel_explain_the_hold() -> None:
    text, _ = bodies(parse(build(notification(**KINDS["hold"]))))
    assert "Thu 10 Dec 2026 10:00 CET – 10:30 CET" in text
    update, _ = bodies(parse(build(notification(**KINDS["hold-update"]))))
    assert "has moved" in update
    cancel, _ = bodies(parse(build(notification(**KINDS["cancel"]))))
    assert "is cancelled" in cancel


def test_action_that_left_the_register_still_renders() -> None:
    n = notification(**KINDS["resolved"])
    context = notification_context(
        n, action=None, rule=RULE, directory=DIRECTORY, org_name="Northwind", org_tz=BERLIN, now=NOW
    )
    composed = compose_from_context(
        n, context, directory=DIRECTORY, templates=TemplateSet(), sender=SENDER, now=NOW
    )
    assert composed.fallback_reason is None
    assert parse(composed)["Subject"] == "[S&OP] A-17:"


def test_sample_context_renders_every_builtin() -> None:
    templates = TemplateSet()
    context = sample_context(org_name="Northwind", org_tz=BERLIN, now=NOW)
    for name in BUILTINS:
        rendered = templates.render(name, context)
        assert rendered.fallback_reason is None, name
        assert rendered.html is not None and rendered.text.strip()


# -- headers and threading -------------------------------------------------------------------------


def test_headers() -> None:
    composed = build(notification())
    message = parse(composed)
    assert message["From"] == SENDER
    assert message["To"] == "dana@northwind.example"
    assert message["Cc"] == "sam@northwind.example"
    assert message["Date"] == "Wed, 09 Dec 2026 10:00:00 +0100"
    assert message["Message-ID"] == composed.message_id
    assert re.fullmatch(r"<[0-9a-f]{24}\.A-17@northwind\.example>", composed.message_id)
    assert message["In-Reply-To"] == "<action-A-17@northwind.example>"
    assert message["References"] == "<action-A-17@northwind.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert message["X-Sopwatch-Rule"] == "stale-approval"
    assert message["X-Sopwatch-Action"] == "A-17"


def test_multipart_alternative_structure() -> None:
    message = parse(build(notification()))
    assert message.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in message.iter_parts()]
    assert types == ["text/plain", "text/html"]
    for part in message.iter_parts():
        assert part.get_content_charset() == "utf-8"


def test_wire_format_is_smtp_safe() -> None:
    raw = build(notification(), title="Ü" * 300 + " long title").message.as_bytes()
    assert b"\r\n" in raw
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert raw.isascii()  # no 8bit parts: any relay accepts it


def test_messages_about_one_action_thread_together() -> None:
    first = parse(build(notification()))
    repeat = parse(build(notification(repeat=1)))
    escalation = parse(build(notification(**KINDS["escalation"])))
    assert first["Subject"] == repeat["Subject"] == escalation["Subject"]
    assert first["References"] == repeat["References"] == escalation["References"]
    assert len({first["Message-ID"], repeat["Message-ID"], escalation["Message-ID"]}) == 3
    other = parse(build(notification(action="A-18"), id="A-18"))
    assert other["References"] != first["References"]


def test_same_notification_composed_twice_has_the_same_message_id() -> None:
    # A re-send after a crash: later, maybe with an edited title, but the same outbox row.
    once = build(notification())
    again = build(notification(), now=NOW + timedelta(hours=2), title="Renamed")
    assert once.message_id == again.message_id
    assert build(notification(to=("lee@northwind.example",))).message_id != once.message_id


def test_thread_root_keeps_unusual_ids_apart() -> None:
    assert thread_root("A/1", SENDER) != thread_root("A-1", SENDER)
    assert re.fullmatch(r"<action-[A-Za-z0-9._-]+@northwind\.example>", thread_root("Ä 1\r\n<x>", SENDER))


# -- hostile data ----------------------------------------------------------------------------------

HOSTILE_TITLES = [
    "Budget\r\nBcc: evil@example.com",
    "Budget\nBcc: evil@example.com\r\n\r\nbody",
    "=?utf-8?q?evil?=",
    "x =?utf-8?q?a=0D=0ABcc:_evil@example.com?= y",
    "=?utf-8?b?DQpCY2M6IGV2aWxAZXhhbXBsZS5jb20=?=",
    "Line\u2028Separator\x0bVT\x0cFF\x85NEL Bcc: evil@example.com",
]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_title_cannot_inject_headers(title: str) -> None:
    composed = build(notification(action="A-17\r\nBcc: evil@example.com"), id="A-17\r\nBcc: x@y", title=title)
    raw = composed.message.as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"(?im)^bcc:", head)
    # Every part's header block too (the title may appear in bodies, where it is only text).
    for block in re.findall(rb"\r\n--=+\d+==\r\n(.*?)\r\n\r\n", raw, re.S):
        assert not re.search(rb"(?im)^bcc:", block)
    message = parse(composed)
    assert message["Bcc"] is None
    assert "evil@example.com" not in (message["To"] or "") + (message["Cc"] or "")
    for name in ("Subject", "X-Sopwatch-Action", "Message-ID", "References"):
        value = str(message[name])
        assert "\r" not in value and "\n" not in value, name
    assert message["Subject"].startswith("[S&OP] A-17 Bcc: x@y: ")
    assert len(message.get_all("Subject")) == 1


@pytest.mark.parametrize("title", ["Plain", "Ü" * 300 + " long title", *HOSTILE_TITLES])
def test_reused_header_classes_build_the_same_bytes_as_the_standard_registry(
    title: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Oracle: the same message composed under the standard library's own header registry. The
    # MIME boundaries are random, so both compositions start from the same seed.
    hold = notification(**KINDS["hold"])

    def wire() -> list[bytes]:
        random.seed(7)
        return [build(n, title=title).message.as_bytes() for n in (notification(), hold)]

    ours = wire()
    monkeypatch.setattr(email_module, "POLICY", email.policy.SMTP.clone(cte_type="7bit"))
    assert wire() == ours
    assert type(build(notification()).message["Subject"]) is not type(
        build(notification()).message["Subject"]
    )
    monkeypatch.undo()
    assert type(build(notification()).message["Subject"]) is type(build(notification()).message["Subject"])


def test_header_text_defuses_encoded_words() -> None:
    assert header_text("a =?utf-8?q?b?= c") == "a = ?utf-8?q?b?= c"
    assert header_text("x\r\ny") == "x y"


def test_script_in_title_is_escaped_in_html_and_readable_in_text() -> None:
    title = "<script>alert(1)</script> & <b>bold</b>"
    text, html = bodies(parse(build(notification(), title=title)))
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert title in text


def test_javascript_link_is_not_made_a_button() -> None:
    _, html = bodies(parse(build(notification(), link="javascript:alert(1)")))
    assert 'href="javascript:' not in html


# -- overrides and the sandbox ---------------------------------------------------------------------


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(source, encoding="utf-8")
    return path


def test_override_replaces_builtin(tmp_path: Path) -> None:
    write(tmp_path, "reminder.txt.j2", "Custom for {{ recipient.name }}: {{ action.title }}\n")
    composed = build(notification(), templates=TemplateSet(tmp_path))
    assert composed.fallback_reason is None
    text, html = bodies(parse(composed))
    assert text == "Custom for Dana Scholz: Approve the Q1 safety-stock increase for EMEA\n"
    # Not the built-in HTML, which would say other things in the part most clients show: the text.
    assert "Custom for Dana Scholz: Approve the Q1 safety-stock increase for EMEA" in html
    builtin_html = bodies(parse(build(notification())))[1]
    assert "Custom for" not in builtin_html and builtin_html != html


def test_an_override_of_both_bodies_keeps_both(tmp_path: Path) -> None:
    write(tmp_path, "reminder.txt.j2", "Text for {{ action.id }}\n")
    write(tmp_path, "reminder.html.j2", "<p>HTML for {{ action.id }}</p>")
    assert bodies(parse(build(notification(), templates=TemplateSet(tmp_path)))) == (
        "Text for A-17\n",
        "<p>HTML for A-17</p>\n",
    )


def test_an_html_only_override_keeps_the_builtin_text(tmp_path: Path) -> None:
    write(tmp_path, "reminder.html.j2", "<p>HTML for {{ action.id }}</p>")
    text, html = bodies(parse(build(notification(), templates=TemplateSet(tmp_path))))
    assert html.strip() == "<p>HTML for A-17</p>"
    assert text == bodies(parse(build(notification())))[0]


def test_custom_template_without_html_gets_an_escaped_html_part(tmp_path: Path) -> None:
    write(tmp_path, "approval-nudge.txt.j2", "Nudge: {{ action.title }}\n")
    n = notification(template="approval-nudge")
    composed = build(n, templates=TemplateSet(tmp_path), title="<i>x</i>")
    assert composed.fallback_reason is None
    message = parse(composed)
    assert message["Subject"] == "[S&OP] A-17: <i>x</i>"  # the built-in subject keeps the thread
    text, html = bodies(message)
    assert text == "Nudge: <i>x</i>\n"
    assert "Nudge: &lt;i&gt;x&lt;/i&gt;" in html


def test_html_override_is_autoescaped(tmp_path: Path) -> None:
    write(tmp_path, "reminder.html.j2", "<p>{{ action.title }}</p>")
    _, html = bodies(parse(build(notification(), templates=TemplateSet(tmp_path), title="<script>x")))
    assert html.strip() == "<p>&lt;script&gt;x</p>"


def test_sandbox_escape_falls_back_to_builtin(tmp_path: Path) -> None:
    path = write(tmp_path, "reminder.txt.j2", "Hi\n{{ ''.__class__.__mro__ }}\n")
    composed = build(notification(), templates=TemplateSet(tmp_path))
    reason = composed.fallback_reason
    assert reason is not None
    assert reason.startswith(f"{path}:2: ")
    assert "access to attribute '__class__' of 'str' object is unsafe" in reason
    text, _ = bodies(parse(composed))
    assert "A-17 is overdue" in text  # the built-in reminder went out instead
    assert "object" not in text


def test_sandbox_blocks_other_escapes(tmp_path: Path) -> None:
    write(tmp_path, "reminder.txt.j2", "{{ cycle.__init__.__globals__ }}{{ action.update({'x': 1}) }}\n")
    reason = build(notification(), templates=TemplateSet(tmp_path)).fallback_reason
    assert reason is not None and "unsafe" in reason


def test_immutable_sandbox_refuses_mutation(tmp_path: Path) -> None:
    write(tmp_path, "reminder.txt.j2", "{% set _ = notes.append('x') %}ok\n")
    reason = build(notification(), templates=TemplateSet(tmp_path)).fallback_reason
    assert reason is not None and "unsafe" in reason


def test_undefined_variable_falls_back_with_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "reminder.txt.j2", "line one\n\n{{ action.no_such_column }} {{ nope }}\n")
    composed = build(notification(), templates=TemplateSet(tmp_path))
    assert composed.fallback_reason is not None
    assert composed.fallback_reason.startswith(f"{path}:3: ")
    assert "no_such_column" in composed.fallback_reason
    assert "A-17 is overdue" in bodies(parse(composed))[0]


def test_extra_register_columns_are_reachable(tmp_path: Path) -> None:
    write(tmp_path, "reminder.txt.j2", "Region {{ action.region }}\n")
    composed = build(notification(), templates=TemplateSet(tmp_path), region="EMEA")
    assert composed.fallback_reason is None
    assert bodies(parse(composed))[0] == "Region EMEA\n"


def test_missing_custom_template_falls_back_to_reminder_at_step_0(tmp_path: Path) -> None:
    composed = build(notification(template="does-not-exist"), templates=TemplateSet(tmp_path))
    assert composed.fallback_reason is not None and "does-not-exist.txt.j2" in composed.fallback_reason
    assert "A-17 is overdue" in bodies(parse(composed))[0]
    escalation = notification(**{**KINDS["escalation"], "template": "does-not-exist"})
    composed = build(escalation, templates=TemplateSet(tmp_path))
    assert "who has not acted" in bodies(parse(composed))[0]


def test_broken_subject_override_falls_back_whole(tmp_path: Path) -> None:
    write(tmp_path, "reminder.subject.j2", "{{ 1 / 0 }}")
    composed = build(notification(), templates=TemplateSet(tmp_path))
    assert composed.fallback_reason is not None and "division by zero" in composed.fallback_reason
    assert parse(composed)["Subject"] == "[S&OP] A-17: Approve the Q1 safety-stock increase for EMEA"


@pytest.mark.parametrize("name", ["../etc/passwd", "..", "a/b", "a\\b", "x.txt", "", "rem inder", "é"])
def test_template_names_that_could_traverse_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(SopwatchError, match="not allowed"):
        check_name(name)
    templates = TemplateSet(tmp_path / "templates")
    with pytest.raises(SopwatchError):
        templates.exists(name)
    # At send time the notification still goes out, on the built-in, with the refusal as the reason.
    rendered = templates.render(
        name, sample_context(org_name="N", org_tz=BERLIN, now=NOW), builtin="reminder"
    )
    assert rendered.fallback_reason is not None and "not allowed" in rendered.fallback_reason
    assert "root:" not in rendered.text


def test_unknown_builtin_is_refused() -> None:
    with pytest.raises(SopwatchError):
        TemplateSet().render("reminder", {}, builtin="nope")


def test_validate_reports_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path, "reminder.txt.j2", "ok\n{% if %}\n")
    unknown_filter = write(tmp_path, "escalation.txt.j2", "{{ action.id | nosuchfilter }}\n")
    write(tmp_path, "notes.md", "ignored: not a template")
    oddly_named = write(tmp_path, "reminder.j2", "x")
    subject_only = write(tmp_path, "nudge.subject.j2", "x")
    problems = TemplateSet(tmp_path).validate()
    rendered = sorted(str(p) for p in problems)
    assert any(p.startswith(f"{bad}:2: ") for p in rendered), rendered
    assert any(p.startswith(f"{unknown_filter}:1: ") and "nosuchfilter" in p for p in rendered), rendered
    assert any(p.startswith(f"{oddly_named}: not a template file name") for p in rendered), rendered
    assert any(p.startswith(f"{subject_only}: nudge.txt.j2 is missing") for p in rendered), rendered
    assert len(problems) == 4
    for problem in problems:
        assert isinstance(problem, SopwatchError) and problem.location is not None


def test_validate_with_sample_finds_runtime_errors(tmp_path: Path) -> None:
    write(tmp_path, "reminder.txt.j2", "{{ action.id }}\n")
    write(tmp_path, "digest.txt.j2", "{% for g in groups %}{{ g.entries | length }}{% endfor %}\n")
    templates = TemplateSet(tmp_path)
    sample = sample_context(org_name="Northwind", org_tz=BERLIN, now=NOW)
    assert templates.validate(sample) == []
    write(tmp_path, "escalation.txt.j2", "{{ nope }}\n")
    problems = templates.validate(sample)
    assert len(problems) == 1 and "'nope' is undefined" in str(problems[0])


def test_validate_without_overrides_and_missing_folder(tmp_path: Path) -> None:
    assert TemplateSet().validate() == []
    problems = TemplateSet(tmp_path / "missing").validate()
    assert len(problems) == 1 and "not found" in str(problems[0])


# -- dates in the recipient's timezone -------------------------------------------------------------


def test_dates_render_in_the_recipients_timezone() -> None:
    berlin, _ = bodies(parse(build(notification(**KINDS["hold"]))))
    assert "Thu 10 Dec 2026 10:00 CET" in berlin
    n = notification(
        **{
            **KINDS["hold"],
            "to": ("lee@northwind.example",),
            "hold": replace(HOLD, attendees=("lee@northwind.example",)),
        }
    )
    text, html = bodies(parse(build(n)))
    assert "Hello Lee Park," in text
    assert "Thu 10 Dec 2026 04:00 EST – 04:30 EST" in text
    assert "Thu 10 Dec 2026 04:00 EST" in html


def test_unknown_recipient_gets_the_org_timezone() -> None:
    n = notification(**{**KINDS["escalation"], "to": ("someone@partner.example",)})
    text, _ = bodies(parse(build(n)))
    assert "Hello someone@partner.example," in text
    assert "since Sun 6 Dec 2026 10:00 CET" in text


def test_format_local() -> None:
    assert (
        format_local(datetime(2026, 12, 9, 9, 0, tzinfo=ZoneInfo("UTC")), BERLIN)
        == "Wed 9 Dec 2026 10:00 CET"
    )
    assert format_local(date(2026, 12, 9), NEW_YORK) == "Wed 9 Dec 2026"
    assert format_local(datetime(2026, 7, 1, 12, 0), NEW_YORK, BERLIN) == "Wed 1 Jul 2026 06:00 EDT"
    assert format_local(None, BERLIN) == ""
    assert format_local("2026-12-09", BERLIN) == "Wed 9 Dec 2026"
    assert format_local("not a date", BERLIN) == "not a date"
    assert format_local(datetime(2026, 12, 9, 9, 0, tzinfo=BERLIN), BERLIN, style="time") == "09:00 CET"


def test_human_span() -> None:
    assert human_span(timedelta(days=3, hours=5)) == "3 days"
    assert human_span(timedelta(days=1)) == "1 day"
    assert human_span(timedelta(hours=5, minutes=3)) == "5 hours"
    assert human_span(timedelta(minutes=1)) == "1 minute"
    assert human_span(timedelta(seconds=5)) == "less than a minute"


# -- digests ---------------------------------------------------------------------------------------


def digest_items() -> list[DigestItem]:
    def item(rule: str, severity: str, ident: str, days: int, step: int = 2) -> DigestItem:
        return DigestItem(
            rule=rule,
            rule_description=f"{rule} description",
            severity=severity,
            action=action(id=ident, title=f"Title {ident}"),
            fired_at=NOW - timedelta(days=days),
            step=step,
        )

    return [
        item("late-input", "info", "A-1", 9),
        item("stale-approval", "warning", "A-2", 2),
        item("overdue-decision", "critical", "A-3", 1),
        item("stale-approval", "warning", "A-4", 6),
        item("overdue-decision", "critical", "A-5", 4),
    ]


SUMMARY = DigestSummary(
    open=14,
    overdue=5,
    ageing={"0-2 days": 2, "3-7 days": 2, "8+ days": 1},
    stale_approvals=2,
    unassigned_decisions=1,
    oldest_item=("A-1", "9 days"),
    closed_on_time_pct=72.4,
    median_approval_turnaround="1 day 4 hours",
)


def build_digest(
    items: list[DigestItem], now: datetime = NOW, recipient: str = "lee@northwind.example"
) -> Composed:
    return compose_digest(
        recipient,
        items,
        SUMMARY,
        directory=DIRECTORY,
        templates=TemplateSet(),
        sender=SENDER,
        org_name="Northwind",
        org_tz=BERLIN,
        now=now,
        digest_id="weekly",
    )


def test_digest_groups_by_rule_sorted_by_severity_then_age() -> None:
    composed = build_digest(digest_items())
    assert composed.fallback_reason is None
    message = parse(composed)
    assert message["Subject"] == "[S&OP] Weekly digest: 5 items waiting · Wed 9 Dec 2026"
    assert message["To"] == "lee@northwind.example"
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = bodies(message)
    order = [text.index(f"- {ident}:") for ident in ("A-5", "A-3", "A-4", "A-2", "A-1")]
    assert order == sorted(order)
    groups = [
        text.index(f"{rule} description") for rule in ("overdue-decision", "stale-approval", "late-input")
    ]
    assert groups == sorted(groups)
    for figure in ("14", "0-2 days: 2", "A-1 (9 days)", "72%", "1 day 4 hours", "Unassigned decisions:    1"):
        assert figure in text
    assert "Hello Lee Park," in text
    assert "as of Wed 9 Dec 2026 04:00 EST" in text  # Lee reads it in New York time
    assert "Overdue 8+ days" in html and "72%" in html


def test_a_digest_puts_its_summary_before_the_list() -> None:
    """Gmail clips an HTML part past ~100 KB: with hundreds of items, a summary at the end is lost."""
    text, html = bodies(parse(build_digest(digest_items())))
    for body, first_item in ((text, "- A-5:"), (html, ">A-5<")):
        assert body.index("Execution discipline in your area") < body.index(first_item)


def test_a_digest_names_owners_and_orders_equal_ages_by_number() -> None:
    """A manager reads "owner Dana Scholz", not the register's "dana"; D-2 comes before D-10."""
    items = [
        DigestItem("late", "Late work", "warning", action(id=ident, title=f"T {ident}", owner=owner), NOW, 1)
        for ident, owner in (("D-10", "dana"), ("D-2", "ghost"), ("D-100", ""))
    ]
    text, html = bodies(parse(build_digest(items)))
    assert text.index("- D-2:") < text.index("- D-10:") < text.index("- D-100:")
    assert "owner Dana Scholz" in text and "owner Dana Scholz" in html
    assert "owner ghost" in text  # not in the directory: as the register has it
    after = text[text.index("- D-100:") :]
    assert "owner" not in after.split("\n\n")[0]  # unassigned: no owner shown


def test_digest_with_missing_figures() -> None:
    summary = DigestSummary(open=1, overdue=0)
    composed = compose_digest(
        "dana@northwind.example",
        digest_items()[:1],
        summary,
        directory=DIRECTORY,
        templates=TemplateSet(),
        sender=SENDER,
        org_name="Northwind",
        org_tz=BERLIN,
        now=NOW,
        digest_id="weekly",
    )
    assert composed.fallback_reason is None
    text, _ = bodies(parse(composed))
    assert "Oldest item:             none" in text and "n/a" in text
    assert parse(composed)["Subject"].startswith("[S&OP] Weekly digest: 1 item waiting")


def test_digest_message_id_is_deterministic() -> None:
    once, again = build_digest(digest_items()), build_digest(digest_items())
    assert once.message_id == again.message_id
    assert build_digest(digest_items(), now=NOW + timedelta(days=7)).message_id != once.message_id
    assert build_digest(digest_items(), recipient="sam@northwind.example").message_id != once.message_id


# -- TemplateSet.subject: what `check` prints -----------------------------------------------------

BUILTIN_SUBJECT = "[S&OP] A-17: Approve the Q1 safety-stock increase for EMEA"


def subject_of(n: Notification, templates: TemplateSet, **fields: object) -> str:
    name, builtin = template_names(n)
    return templates.subject(name, context_for(n, **fields), builtin=builtin)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_subject_is_the_subject_header_of_every_kind(kind: str, tmp_path: Path) -> None:
    n = notification(**KINDS[kind])
    assert subject_of(n, TemplateSet()) == parse(build(n))["Subject"] == BUILTIN_SUBJECT
    write(
        tmp_path, f"{template_names(n)[0]}.subject.j2", "{{ alert.kind }} {{ step }} for {{ recipient.name }}"
    )
    custom = TemplateSet(tmp_path)
    assert subject_of(n, custom) == parse(build(n, templates=custom))["Subject"]
    assert subject_of(n, custom).startswith(f"{n.kind} {n.step} for ")


def test_subject_matches_render_for_every_builtin(tmp_path: Path) -> None:
    context = sample_context(org_name="Northwind", org_tz=BERLIN, now=NOW)
    write(tmp_path, "reminder.txt.j2", "Custom body\n")  # a body override: the subject stays built-in
    for templates in (TemplateSet(), TemplateSet(tmp_path)):
        for name in BUILTINS:
            assert templates.subject(name, context) == templates.render(name, context).subject, name


def test_subject_uses_the_override(tmp_path: Path) -> None:
    write(tmp_path, "reminder.subject.j2", "[Northwind]  {{ action.id }}\r\nfor {{ recipient.name }}\n")
    n = notification()
    assert subject_of(n, TemplateSet(tmp_path)) == "[Northwind] A-17 for Dana Scholz"
    assert subject_of(n, TemplateSet()) == BUILTIN_SUBJECT


def test_custom_template_without_a_subject_file_keeps_the_builtin_subject(tmp_path: Path) -> None:
    write(tmp_path, "nudge.txt.j2", "A nudge about {{ action.id }}\n")
    write(tmp_path, "escalation.subject.j2", "escalated {{ action.id }}")
    templates = TemplateSet(tmp_path)
    assert subject_of(notification(template="nudge"), templates) == BUILTIN_SUBJECT
    # Which built-in subject: the one for the notification's kind, not the custom name's.
    escalation = notification(**{**KINDS["escalation"], "template": "nudge"})
    assert subject_of(escalation, templates) == "escalated A-17"
    assert parse(build(escalation, templates=templates))["Subject"] == "escalated A-17"


@pytest.mark.parametrize(
    ("filename", "source"),
    [
        ("reminder.subject.j2", "{{ 1 / 0 }}"),  # fails while rendering
        ("reminder.subject.j2", "{{ action.no_such_column }}"),  # strict undefined
        ("reminder.subject.j2", "{{ action.id.__class__ }}"),  # the sandbox refuses
        ("reminder.subject.j2", "{% if %}"),  # does not compile
        ("reminder.txt.j2", "{% if %}\n"),  # a broken body sends the whole message to the built-in
    ],
)
def test_broken_override_falls_back_to_the_builtin_subject(
    tmp_path: Path, filename: str, source: str
) -> None:
    write(tmp_path, "reminder.subject.j2", "[custom] {{ action.id }}")
    write(tmp_path, filename, source)
    templates = TemplateSet(tmp_path)
    composed = build(notification(), templates=templates)
    assert composed.fallback_reason is not None
    assert subject_of(notification(), templates) == parse(composed)["Subject"] == BUILTIN_SUBJECT


def test_missing_custom_body_falls_back_to_the_builtin_subject(tmp_path: Path) -> None:
    write(tmp_path, "nudge.subject.j2", "[nudge] {{ action.id }}")  # no nudge.txt.j2
    n = notification(template="nudge")
    assert subject_of(n, TemplateSet(tmp_path)) == parse(build(n, templates=TemplateSet(tmp_path)))["Subject"]
    assert subject_of(n, TemplateSet(tmp_path)) == BUILTIN_SUBJECT


def test_failing_builtin_subject_gives_the_last_resort() -> None:
    templates = TemplateSet()
    context = {"action": {"id": "A-1"}}  # no title: the built-in subject fails on strict undefined
    rendered = templates.render("reminder", context)
    assert rendered.fallback_reason is not None and "built-in" in rendered.fallback_reason
    assert templates.subject("reminder", context) == rendered.subject == "[S&OP] A-1:"
    # A template name that could reach outside the folder is refused: the built-in subject, as in render.
    full = context_for(notification())
    assert templates.subject("../x", full, builtin="reminder") == BUILTIN_SUBJECT


def test_subject_is_one_line_of_data() -> None:
    n = notification()
    assert subject_of(n, TemplateSet(), title="Fix\r\nBcc: x") == "[S&OP] A-17: Fix Bcc: x"
    assert one_line("a\n\tb") == "a b"


def test_a_step_may_name_a_built_in_or_an_override_with_a_text_body(tmp_path: Path) -> None:
    from sopwatch.messages.names import BUILTINS, available_templates

    for name in ("mine.txt.j2", "mine.subject.j2", "_partial.txt.j2", "onlyhtml.html.j2", "notes.md"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    (tmp_path / "folder.txt.j2").mkdir()
    assert available_templates(tmp_path) == {*BUILTINS, "mine"}
    assert available_templates(None) == available_templates(tmp_path / "missing") == set(BUILTINS)
