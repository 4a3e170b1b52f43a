"""The variables templates see (documented at the top of templates/reminder.txt.j2).

Built here, once, so the daemon, ``preview`` and ``validate``'s sample render show the same thing.
Every canonical field is present (None when empty): with StrictUndefined, ``{% if action.link %}``
must not fail just because the register has no link column.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sopwatch.core.digest import human_span
from sopwatch.core.model import CANONICAL_FIELDS, OBSERVED_FIELDS, PERSON_FIELDS, Directory, Person
from sopwatch.core.timeexpr import end_of_day


def tz_name(tz: tzinfo | None) -> str:
    key = getattr(tz, "key", None)
    return key if key else str(tz or "UTC")


def as_instant(value: date | datetime, org_tz: tzinfo) -> datetime:
    """A date means the end of that day in the organisation's timezone (SPEC §1.1)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=org_tz)
    return end_of_day(value, org_tz)


def action_context(action: Mapping[str, Any] | None, action_id: str) -> dict[str, Any]:
    fields: dict[str, Any] = dict.fromkeys((*CANONICAL_FIELDS, *OBSERVED_FIELDS))
    if action is not None:
        fields.update(action)
    fields["id"] = fields.get("id") or action_id
    fields["title"] = fields.get("title") or ""
    fields["kind"] = fields.get("kind") or "action"
    fields["status"] = fields.get("status") or "open"
    return fields


def person_context(reference: str | None, directory: Directory) -> dict[str, Any] | None:
    if not reference:
        return None
    person = directory.find(reference)
    if person is None:
        return {"id": reference, "name": reference, "email": reference if "@" in reference else None}
    return {"id": person.id, "name": person.name or person.email, "email": person.email}


def recipient_context(address: str | None, directory: Directory, org_tz: tzinfo) -> dict[str, Any]:
    """The first ``to`` recipient: their name and timezone, or the bare address in the org's timezone."""
    person: Person | None = directory.find(address) if address else None
    if person is None:
        return {"name": address or "", "email": address or "", "timezone": tz_name(org_tz)}
    return {
        "name": person.name or person.email,
        "email": address or person.email,
        "timezone": tz_name(person.timezone or org_tz),
    }


def deadline_context(action: Mapping[str, Any], org_tz: tzinfo, now: datetime) -> dict[str, Any] | None:
    due = action.get("due")
    if not isinstance(due, date):
        return None
    at = as_instant(due, org_tz)
    return {"at": at, "overdue": now >= at, "by": human_span(now - at)}


def waiting_on(action: Mapping[str, Any], people: Mapping[str, Any]) -> dict[str, Any]:
    """Whose move it is: the approver for an approval waiting on an answer, else the owner."""
    role = (
        "approver"
        if action.get("status") == "pending_approval" or action.get("kind") == "approval"
        else "owner"
    )
    person = people.get(role) or (people.get("owner") if role == "approver" else None)
    if person is None:
        return {"role": role, "name": f"nobody (no {role} assigned)", "email": None, "assigned": False}
    return {**person, "role": role, "assigned": True}


def base_context(
    *,
    recipient: str | None,
    directory: Directory,
    org_name: str,
    org_tz: tzinfo,
    now: datetime,
) -> dict[str, Any]:
    return {
        "recipient": recipient_context(recipient, directory, org_tz),
        "now": now,
        "org": {"name": org_name, "timezone": tz_name(org_tz)},
    }


def alert_context(
    *,
    action: Mapping[str, Any] | None,
    action_id: str,
    rule: Mapping[str, Any],
    step: int,
    fired_at: datetime,
    repeats: int,
    kind: str,
    recipient: str | None,
    directory: Directory,
    org_name: str,
    org_tz: tzinfo,
    now: datetime,
    cycle: Mapping[str, Any] | None = None,
    notes: tuple[str, ...] | list[str] = (),
    hold: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    fields = action_context(action, action_id)
    people = {name: person_context(fields.get(name), directory) for name in PERSON_FIELDS}
    context = {
        **base_context(recipient=recipient, directory=directory, org_name=org_name, org_tz=org_tz, now=now),
        "action": fields,
        "people": people,
        "waiting_on": waiting_on(fields, people),
        "deadline": deadline_context(fields, org_tz, now),
        "rule": {
            "id": rule.get("id", ""),
            "description": rule.get("description") or "",
            "severity": rule.get("severity") or "info",
        },
        "step": step,
        "alert": {
            "fired_at": fired_at,
            "age": human_span(now - fired_at),
            "step": step,
            "repeats": repeats,
            "kind": kind,
        },
        "cycle": dict(cycle or {}),
        "notes": list(notes),
        "hold": dict(hold) if hold is not None else None,
    }
    return in_recipient_zone(context)


def in_recipient_zone(context: dict[str, Any]) -> dict[str, Any]:
    """Every date-time of ``context`` in its recipient's timezone (SPEC §3: dates render in the
    recipient's timezone), so that a custom template's plain ``{{ alert.fired_at }}`` does too;
    ``|localtime`` formats them."""
    zone = ZoneInfo(context["recipient"]["timezone"])

    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                return value
            try:
                return value.astimezone(zone)
            except OverflowError:  # within hours of year 1 or 9999
                return value
        if isinstance(value, dict):
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, list):
            return [convert(item) for item in value]
        return value

    return convert(context)


def sample_context(*, org_name: str, org_tz: tzinfo, now: datetime) -> dict[str, Any]:
    """A realistic context for ``validate`` and ``preview`` when no real action is at hand."""
    fired = now - timedelta(days=3)
    start = datetime.combine(now.date() + timedelta(days=2), time(10), tzinfo=org_tz)
    context = alert_context(
        action={
            "id": "A-17",
            "kind": "approval",
            "title": "Approve the Q1 safety-stock increase for EMEA",
            "status": "pending_approval",
            "owner": "owner@example.com",
            "approver": "approver@example.com",
            "cycle": f"{now:%Y-%m}",
            "phase": "supply_review",
            "due": now.date() - timedelta(days=2),
            "priority": "high",
            "team": "Supply",
            "link": "https://example.com/register/A-17",
            "tags": ["emea"],
        },
        action_id="A-17",
        rule={
            "id": "stale-approval",
            "description": "Approval requests with no answer",
            "severity": "warning",
        },
        step=1,
        fired_at=fired,
        repeats=0,
        kind="escalation",
        recipient="manager@example.com",
        directory=Directory(),
        org_name=org_name,
        org_tz=org_tz,
        now=now,
        cycle={
            "supply_review": {"start": now.date(), "end": now.date() + timedelta(days=5), "meeting": None}
        },
        notes=["approver: no manager in the directory; sent to fallback role(sop-lead)"],
        hold={"start": start, "end": start + timedelta(minutes=30), "uid": "sample@sopwatch", "sequence": 0},
    )
    context.update(digest_sample(now=now))
    return context


def digest_sample(*, now: datetime) -> dict[str, Any]:
    """The digest-only variables with one item, so a digest override can be test-rendered too."""
    item = {
        "action": action_context({"id": "A-17", "title": "Approve the Q1 safety-stock increase"}, "A-17"),
        "fired_at": now - timedelta(days=3),
        "age": "3 days",
        "step": 2,
        "owner": {"id": "lee", "name": "Lee Park", "email": "lee@example.com"},
    }
    return {
        "digest": {"id": "weekly"},
        "count": 1,
        "groups": [
            {
                "rule": {"id": "stale-approval", "description": "Stale approvals", "severity": "warning"},
                "entries": [item],
            }
        ],
        "summary": {
            "open": 12,
            "overdue": 3,
            "ageing": {"0-2 days": 1, "3-7 days": 1, "8+ days": 1},
            "stale_approvals": 1,
            "unassigned_decisions": 0,
            "oldest_item": {"id": "A-3", "age": "12 days"},
            "closed_on_time_pct": 80.0,
            "median_approval_turnaround": "1 day",
        },
    }
