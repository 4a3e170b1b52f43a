"""Notifications and digests as MIME messages, ready for SMTP or a maildir.

Threading (SPEC §3): every message about one action has the same subject and references one root
Message-ID per action (``<action-ID@domain>``), which is never sent itself; mail clients thread on it.
Message-IDs are derived from the outbox key, so a re-send after a crash carries the same id and the
receiving side can de-duplicate.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from sopwatch.core.digest import DigestFigures, human_span
from sopwatch.core.evaluate import Notification
from sopwatch.core.model import Directory
from sopwatch.core.rules import SEVERITY_RANK
from sopwatch.messages.context import action_context, base_context, in_recipient_zone, person_context
from sopwatch.messages.ical import build_hold
from sopwatch.messages.notification import template_names
from sopwatch.messages.render import one_line
from sopwatch.messages.templates import RenderedText, TemplateSet

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, building each header class once.

    ``HeaderRegistry`` makes a new class with ``type()`` for every header it parses, though the
    class depends only on the header's name: with ~25 headers per message that was about 40 % of
    building one. The header objects and their parsing are the standard library's, unchanged.
    """

    _LIMIT = 256  # names we set are a fixed few; never grow without bound on odd input

    def __init__(self) -> None:
        super().__init__()
        self._built: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        built = self._built.get(key)
        if built is None:
            built = super().__getitem__(name)
            if len(self._built) < self._LIMIT:
                self._built[key] = built
        return built


# SMTP line endings, and no 8bit bodies: non-ASCII parts go out quoted-printable or base64, so a
# relay without 8BITMIME never has to reject or mangle them.
POLICY = SMTP.clone(cte_type="7bit", header_factory=_HeaderClasses())


@dataclass(frozen=True, slots=True)
class Composed:
    message: EmailMessage
    message_id: str
    fallback_reason: str | None = None  # a template failed and the built-in was used: tell the admin


@dataclass(frozen=True, slots=True)
class DigestItem:
    rule: str
    rule_description: str
    severity: str
    action: Mapping[str, Any]
    fired_at: datetime
    step: int


# The summary figures are computed by the pure core; the template only shows them.
DigestSummary = DigestFigures


# -- headers -------------------------------------------------------------------------------------


def header_text(value: Any, limit: int = 200) -> str:
    """A header value from data: one line, and no RFC 2047 encoded-word syntax.

    The stdlib decodes ``=?utf-8?q?...?=`` in a value as it is set, so a title carrying an encoded
    CR LF would come back as a second header line; breaking the ``=?`` opener keeps it literal text.
    """
    return one_line(str(value), limit).replace("=?", "= ?")


def _address_list(addresses: Sequence[str]) -> str:
    return ", ".join(header_text(a, 1000) for a in addresses if a and a.strip())


def sender_domain(sender: str) -> str:
    address = parseaddr(one_line(sender, 1000))[1]
    domain = address.rpartition("@")[2] if "@" in address else ""
    return _UNSAFE_ID.sub("-", domain).strip("-.") or "sopwatch.invalid"


def _safe_id(value: str) -> str:
    """An action id usable inside a Message-ID; a hash suffix keeps 'A/1' and 'A-1' apart."""
    cleaned = _UNSAFE_ID.sub("-", value).strip("-.")[:40]
    if cleaned == value:
        return cleaned
    return f"{cleaned or 'x'}-{hashlib.sha1(value.encode()).hexdigest()[:8]}"


def thread_root(action_id: str, sender: str) -> str:
    """The never-sent root every message about one action refers to."""
    return f"<action-{_safe_id(action_id)}@{sender_domain(sender)}>"


def message_id_for(
    key: str, recipients: Sequence[str], action_id: str, sender: str, instance: str = ""
) -> str:
    """Deterministic: the same outbox key and recipients give the same id after a crash and restart;
    ``instance`` (the state file's token) keeps it apart from another state file's message."""
    digest = _id_digest(key + "|" + ",".join(sorted(a.strip().lower() for a in recipients)), instance)
    return f"<{digest}.{_safe_id(action_id)}@{sender_domain(sender)}>"


def _id_digest(material: str, instance: str) -> str:
    """The unique part of a Message-ID: ``material`` hashed, with the state file's token (an empty
    token, from a state file older than tokens, leaves the ids such a file made unchanged)."""
    if instance:
        material = f"{instance}|{material}"
    return hashlib.sha1(material.encode("utf-8")).hexdigest()[:24]


def hold_uid(uid: str, instance: str) -> str:
    """The UID a calendar sees for a hold: the episode's, with the state file's token."""
    if not instance:
        return uid
    local, at, domain = uid.rpartition("@")
    return f"{local}.{instance}@{domain}" if at else f"{uid}.{instance}"


def _base_message(
    *, sender: str, to: Sequence[str], cc: Sequence[str], subject: str, now: datetime, message_id: str
) -> EmailMessage:
    message = EmailMessage(policy=POLICY)
    message["From"] = header_text(sender, 1000)
    if to:
        message["To"] = _address_list(to)
    if cc:
        message["Cc"] = _address_list(cc)
    message["Subject"] = header_text(subject)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    # Tell autoresponders and Exchange not to answer a robot (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    return message


def text_to_html(text: str, subject: str) -> str:
    """An HTML part for an override without one: the text, escaped, in a readable width."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head>\n"
        '<body style="margin:0;padding:24px 12px;background-color:#ffffff;">\n'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        'style="max-width:640px;"><tr><td style="font-family:Consolas,Menlo,monospace;font-size:14px;'
        f'line-height:20px;color:#111827;white-space:pre-wrap;">{html.escape(text)}</td></tr></table>\n'
        "</body></html>\n"
    )


def _set_bodies(message: EmailMessage, rendered: RenderedText) -> None:
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html or text_to_html(rendered.text, rendered.subject), subtype="html")


# -- alerts ----------------------------------------------------------------------------------------


def compose_from_context(
    notification: Notification,
    context: Mapping[str, Any],
    *,
    directory: Directory,
    templates: TemplateSet,
    sender: str,
    now: datetime,
    busy: bool = False,
    hold_title: str | None = None,
    instance: str = "",
    thread_subject: str | None = None,
) -> Composed:
    """One notification as an email; a calendar/cancel notification with a hold becomes an iMIP invite.

    ``context`` comes from ``messages.notification``, where ``check`` gets the one it prints the
    subject from. ``instance`` is the state file's token (see ``StateStore.instance``).
    ``thread_subject``, the subject of the first message about the action, replaces the rendered
    one: a title edited since, or a step with a template of its own, must not split the thread.
    """
    name, builtin = template_names(notification)
    rendered = templates.render(name, context, builtin=builtin, subject=thread_subject)

    recipients = [*notification.to, *notification.cc]
    message_id = message_id_for(notification.key, recipients, notification.action, sender, instance)
    message = _base_message(
        sender=sender,
        to=notification.to,
        cc=notification.cc,
        subject=rendered.subject,
        now=now,
        message_id=message_id,
    )
    root = thread_root(notification.action, sender)
    message["In-Reply-To"] = root
    message["References"] = root
    message["X-Sopwatch-Rule"] = header_text(notification.rule)
    message["X-Sopwatch-Action"] = header_text(notification.action)
    _set_bodies(message, rendered)

    hold = notification.hold
    if hold is not None and notification.channel in ("calendar", "cancel"):
        method = "CANCEL" if notification.channel == "cancel" else "REQUEST"
        title = hold_title or f"{context['action']['id']}: {context['action']['title']}"
        names = {}
        for address in hold.attendees:
            person = directory.find(address)
            if person is not None and person.name:
                names[address.lower()] = person.name
        ics = build_hold(
            replace(hold, uid=hold_uid(hold.uid, instance)),
            method=method,
            organizer=sender,
            summary=title,
            description=rendered.text,
            busy=busy,
            dtstamp=now,
            names=names,
        )
        attach_invite(message, ics, method)
    return Composed(message, message_id, rendered.fallback_reason)


def attach_invite(message: EmailMessage, ics: bytes, method: str) -> None:
    """RFC 6047: text/calendar inside the alternatives, plus the same object as an .ics attachment.

    Clients that read iMIP take the alternative; the rest still get a file to open. Calling this on
    a multipart/alternative turns the message into multipart/mixed around it.
    """
    message.add_alternative(
        ics.decode("utf-8"), subtype="calendar", charset="utf-8", params={"method": method}
    )
    message.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")


# -- digests ---------------------------------------------------------------------------------------


def _group_items(items: Sequence[DigestItem], now: datetime, directory: Directory) -> list[dict[str, Any]]:
    """Grouped by rule; groups by severity then their oldest item; items oldest first (ids in
    natural order among equals: D-2 before D-10)."""
    groups: dict[str, list[DigestItem]] = {}
    for item in items:
        groups.setdefault(item.rule, []).append(item)
    ordered = []
    for rule_id, members in groups.items():
        members.sort(key=lambda i: (i.fired_at, _natural(str(i.action.get("id", "")))))
        head = members[0]
        ordered.append(
            (
                SEVERITY_RANK.get(head.severity, len(SEVERITY_RANK)),
                head.fired_at,
                rule_id,
                {
                    "rule": {"id": rule_id, "description": head.rule_description, "severity": head.severity},
                    "entries": [
                        {
                            "action": action_context(i.action, str(i.action.get("id", ""))),
                            "fired_at": i.fired_at,
                            "age": human_span(now - i.fired_at),
                            "step": i.step,
                            # The directory's name: a digest reader knows "Lisa Neumann", not "lisa".
                            "owner": person_context(i.action.get("owner"), directory),
                        }
                        for i in members
                    ],
                },
            )
        )
    ordered.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in ordered]


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that orders the numbers inside ``text`` by value."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


def _summary_context(summary: DigestSummary) -> dict[str, Any]:
    oldest = summary.oldest_item
    return {
        "open": summary.open,
        "overdue": summary.overdue,
        "ageing": dict(summary.ageing),
        "stale_approvals": summary.stale_approvals,
        "unassigned_decisions": summary.unassigned_decisions,
        "oldest_item": {"id": oldest[0], "age": oldest[1]} if oldest else None,
        "closed_on_time_pct": summary.closed_on_time_pct,
        "median_approval_turnaround": summary.median_approval_turnaround,
    }


def compose_digest(
    recipient: str,
    items: list[DigestItem],
    summary: DigestSummary,
    *,
    directory: Directory,
    templates: TemplateSet,
    sender: str,
    org_name: str,
    org_tz: ZoneInfo,
    now: datetime,
    digest_id: str,
    instance: str = "",
) -> Composed:
    """One digest email for one recipient. Callers skip empty digests (SPEC §2)."""
    context = base_context(
        recipient=recipient, directory=directory, org_name=org_name, org_tz=org_tz, now=now
    )
    context.update(
        digest={"id": digest_id},
        count=len(items),
        groups=_group_items(items, now, directory),
        summary=_summary_context(summary),
    )
    rendered = templates.render("digest", in_recipient_zone(context), builtin="digest")
    digest = _id_digest(f"{digest_id}|{recipient.strip().lower()}|{now.isoformat()}", instance)
    message_id = f"<{digest}.digest-{_safe_id(digest_id)}@{sender_domain(sender)}>"
    message = _base_message(
        sender=sender, to=[recipient], cc=[], subject=rendered.subject, now=now, message_id=message_id
    )
    message["X-Sopwatch-Digest"] = header_text(digest_id)
    _set_bodies(message, rendered)
    return Composed(message, message_id, rendered.fallback_reason)
