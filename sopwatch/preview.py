"""``sopwatch preview``: one message rendered for one action, exactly as the daemon would send it."""

from __future__ import annotations

from datetime import datetime

from sopwatch.adapters.state_store import stored_thread_subjects
from sopwatch.config.loader import Setup
from sopwatch.core.evaluate import Notification, delivery_start, record_of, resolve_recipients
from sopwatch.core.state import HoldRecord, State
from sopwatch.core.timeexpr import Duration
from sopwatch.daemon.engine import compose_notification
from sopwatch.errors import SopwatchError
from sopwatch.messages.email import Composed
from sopwatch.messages.names import BUILTINS
from sopwatch.messages.notification import MessageSetup, templates_folder
from sopwatch.messages.templates import TemplateSet, check_name

_KIND = {"hold": ("hold", "calendar"), "cancel": ("cancel", "cancel"), "resolved": ("resolved", "email")}


def preview(
    setup: Setup, name: str, action_id: str, step: int, now: datetime, rule_id: str | None = None
) -> Composed:
    check_name(name)
    if action_id not in setup.snapshot.actions:
        raise SopwatchError(f"no action {action_id!r} in the register")
    if name == "digest":
        raise SopwatchError("a digest lists many actions; preview a notification template instead")
    rules = setup.rules
    rule = rules.get(rule_id) if rule_id else _rule_using(setup, name)
    if rule is None:
        raise SopwatchError(f"no rule {rule_id!r}" if rule_id else "there are no rules to preview with")
    if not 0 <= step < len(rule.steps):
        raise SopwatchError(f"rule {rule.id!r} has steps 0..{len(rule.steps) - 1}, not {step}")
    record = record_of(setup.snapshot, State(), now, action_id)
    env = setup.environment
    to, cc, notes = resolve_recipients(rule.steps[step], record, env)
    kind, channel = _KIND.get(name, ("reminder" if step == 0 else "escalation", "email"))
    hold = None
    if channel in ("calendar", "cancel"):
        start = env.clock.add(now, Duration(1, "business days"))
        hold = HoldRecord(
            uid=f"{rule.id}/{action_id}/preview/hold{step}@sopwatch",
            step=step,
            sequence=1 if channel == "cancel" else 0,
            start=start,
            end=env.clock.add(start, Duration(30, "minutes")),
            attendees=tuple(r.email for r in to) + cc,
        )
    notification = Notification(
        at=now,
        rule=rule.id,
        action=action_id,
        episode=f"{rule.id}/{action_id}/preview",
        step=step,
        repeat=0,
        channel=channel,
        kind=kind,
        to=tuple(r.email for r in to),
        cc=cc,
        template=name,
        not_before=delivery_start(to, env, now),
        severity=rule.severity,
        fire_at=now,
        notes=notes,
        hold=hold,
    )
    templates = TemplateSet(templates_folder(setup))
    if name not in BUILTINS and not templates.exists(name):
        raise SopwatchError(f"no template {name!r} (built-in: {', '.join(BUILTINS)})")
    action = setup.snapshot.actions[action_id]
    thread = stored_thread_subjects(setup.loaded.state_path, [action_id]).get(
        action_id
    )  # as the daemon sends it
    return compose_notification(MessageSetup.of(setup), templates, notification, action, now, None, thread)


def _rule_using(setup: Setup, name: str):  # type: ignore[no-untyped-def]
    """The first rule whose steps use template ``name``, else the first rule."""
    for rule in setup.rules:
        if any(step.template == name for step in rule.steps):
            return rule
    return next(iter(setup.rules), None)
