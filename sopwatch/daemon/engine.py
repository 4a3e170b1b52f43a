"""One daemon tick: evaluate, compose, enqueue (one transaction), send digests, deliver the outbox.

Every instant comes in as an argument, so the demo can run the same code on an accelerated clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

from sopwatch.adapters.state_store import Composed, OutboxRow, StateStore, outbox_key
from sopwatch.config.loader import Setup, load_setup, with_silence_matchers
from sopwatch.config.schema import DeliveryConfig
from sopwatch.core.digest import ScopeFigures, parse_schedule, scope_of
from sopwatch.core.evaluate import Evaluation, Notification, Plan, apply, evaluate, observe, observed_fields
from sopwatch.core.model import Action, Snapshot
from sopwatch.core.state import Episode, Silence, State
from sopwatch.daemon.guard import RegisterGuard
from sopwatch.daemon.inputs import SetupWatcher
from sopwatch.daemon.policy import filter_notification, is_allowed, refusal_reason
from sopwatch.delivery import OutgoingMessage, Transport, make_transport
from sopwatch.delivery.retry import exhausted, next_attempt
from sopwatch.errors import SopwatchError
from sopwatch.messages.context import sample_context
from sopwatch.messages.email import (
    POLICY,
    DigestItem,
    compose_digest,
    compose_from_context,
    header_text,
    sender_domain,
    text_to_html,
)
from sopwatch.messages.email import Composed as ComposedEmail
from sopwatch.messages.notification import (
    MessageSetup,
    ThreadSubjects,
    org_name,
    rendered_at,
    templates_folder,
)
from sopwatch.messages.templates import TemplateSet
from sopwatch.observability import NULL_METRICS, EngineMetrics

log = logging.getLogger("sopwatch")

# Outbox rows per transport batch; the results of a batch are stored when it completes.
DELIVERY_BATCH = 50

# A fixed instant for rendering template overrides with a sample context when validating them.
_SAMPLE_NOW = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)

# Lets the demo play register edits over time; the daemon uses the register as read.
SnapshotHook = Callable[[Snapshot, datetime], Snapshot]


@dataclass
class TickReport:
    at: datetime
    actions: int = 0
    rules: int = 0
    notifications: int = 0
    silenced: int = 0
    deferred: int = 0
    enqueued: int = 0
    digests: int = 0
    sent: int = 0
    retry: int = 0
    failed: int = 0
    problems: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"tick {self.at.isoformat(timespec='minutes')}: {self.actions} actions, {self.rules} rules, "
            f"{self.notifications} notifications ({self.silenced} silenced, {self.deferred} deferred), "
            f"{self.enqueued} enqueued, {self.digests} digests, {self.sent} sent, {self.retry} to retry, "
            f"{self.failed} failed, {self.problems} skipped rows"
        )


class Engine:
    def __init__(
        self,
        config_path: Path,
        *,
        environ: Mapping[str, str],
        snapshot_hook: SnapshotHook | None = None,
        transport: Transport | None = None,
        rng: random.Random | None = None,
        loader: Callable[[Path], Setup] = load_setup,
    ) -> None:
        self.watcher = SetupWatcher(config_path, on_rejected=self._rules_rejected, loader=loader)
        self.setup = self.watcher.current()
        self.environ = environ
        self.snapshot_hook = snapshot_hook
        self.rng = rng or random.Random()
        loaded = self.setup.loaded
        self.store = StateStore(loaded.state_path)
        self.instance = self.store.instance()
        self.transport = transport or make_transport(loaded.config.delivery, loaded.base_dir, environ)
        # A transport passed in (tests, the bench) is kept; one built here follows `delivery:` edits.
        self._delivery = None if transport is not None else loaded.config.delivery
        self._state_told = self.store.path  # the state: path last told about (the store's own at start)
        self.loop = asyncio.new_event_loop()
        self._pending_admin: list[tuple[str, str]] = []
        self.guard = RegisterGuard(self.store, self._admin)  # the register shrink guard
        self._refusals_reported: set[tuple[int, str]] = set()  # digest items, told once
        self._templates_for: Setup | None = None
        self._templates: TemplateSet | None = None
        self._templates_copy: Path | None = None
        self._templates_source: Path | None = None  # the admin's folder the copy was made from
        self._state: State | None = None
        self._state_setup: Setup | None = None
        self._raw_silences: tuple[Silence, ...] = ()
        self._plan: Plan | None = None
        self.metrics: EngineMetrics = NULL_METRICS  # Prometheus hooks; the daemon sets them

    # -- wiring ---------------------------------------------------------------------------

    def _current_state(self, setup: Setup) -> State:
        """The state as of the last commit, kept in memory: this daemon is its only writer.

        Silences come from the CLI, so they are re-read every tick (a small table); they are
        recompiled only when they changed, so the evaluation plan stays valid.
        """
        stored = tuple(self.store.silences())
        if self._state is None or self._state_setup is not setup:
            self._state = with_silence_matchers(self.store.load(), setup)
            self._state_setup, self._raw_silences = setup, stored
        elif stored != self._raw_silences:
            fresh = with_silence_matchers(replace(self._state, silences=stored), setup)
            self._state, self._raw_silences = fresh, stored
        return self._state

    @property
    def templates(self) -> TemplateSet:
        """The template overrides as last validated; a broken edit keeps the last good copy."""
        if self._templates is None or self._templates_for is not self.setup:
            self._templates_for = self.setup
            folder = templates_folder(self.setup)
            if folder is None:
                self._adopt_templates(TemplateSet(None), None, None)
            else:
                # Render from a private copy: an edit in progress on disk never reaches a message.
                copy = Path(tempfile.mkdtemp(prefix="sopwatch-templates-"))
                shutil.copytree(folder, copy, dirs_exist_ok=True)
                candidate = TemplateSet(copy)
                sample = sample_context(
                    org_name=org_name(self.sender), org_tz=self.setup.loaded.tz, now=_SAMPLE_NOW
                )
                problems = candidate.validate(sample)
                if problems and self._templates is not None:
                    shutil.rmtree(copy, ignore_errors=True)
                    text = "\n".join(str(p).replace(str(copy), str(folder)) for p in problems)
                    log.error("rejected the template edit, keeping the last good templates:\n%s", text)
                    self._admin("template edit rejected, keeping the last good templates", text)
                else:
                    self._adopt_templates(candidate, copy, folder)
        assert self._templates is not None
        return self._templates

    def _adopt_templates(self, templates: TemplateSet, copy: Path | None, source: Path | None) -> None:
        if self._templates_copy is not None:
            shutil.rmtree(self._templates_copy, ignore_errors=True)
        self._templates, self._templates_copy, self._templates_source = templates, copy, source

    def _in_source(self, text: str) -> str:
        """A template problem as the admin can act on it: naming their file, not the private copy."""
        if self._templates_copy is None or self._templates_source is None:
            return text
        return text.replace(str(self._templates_copy), str(self._templates_source))

    @property
    def sender(self) -> str:
        return self.setup.loaded.config.delivery.from_

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.transport.close())
        finally:
            self.loop.close()
            self.store.close()
            if self._templates_copy is not None:
                shutil.rmtree(self._templates_copy, ignore_errors=True)

    # -- the tick -------------------------------------------------------------------------

    def tick(self, now: datetime) -> TickReport:
        loaded = self.watcher.current()
        admitted = self.guard.admit(loaded)  # the last accepted setup while a shrunken register is refused
        if admitted is None:
            return self._deliver_only(loaded, now)
        self._follow_settings(admitted)
        self.setup = admitted
        setup = self.setup
        snapshot = setup.snapshot
        if self.snapshot_hook is not None:
            snapshot = self.snapshot_hook(snapshot, now)
        report = TickReport(
            at=now, actions=len(snapshot), rules=len(setup.rules), problems=len(setup.problems)
        )
        state = self._current_state(setup)
        plan, self._plan = self._plan, None  # kept only if this tick's commit succeeds
        started = time.perf_counter()
        evaluation = evaluate(snapshot, setup.rules, setup.environment, state, now, plan)
        evaluated_in = time.perf_counter() - started
        composed = self._compose_all(evaluation, snapshot, state, now)
        report.enqueued = self.store.commit(evaluation, composed)
        self._state, self._plan = apply(state, evaluation), evaluation.plan
        self.metrics.evaluated(evaluation, evaluated_in)
        report.notifications = len(evaluation.notifications)
        report.silenced = sum(1 for n in evaluation.notifications if n.silenced_by)
        report.deferred = evaluation.deferred
        if evaluation.deferred:
            log.warning(
                "%d notifications wait for the next tick (max_messages_per_tick)", evaluation.deferred
            )
        report.digests = self._digests(snapshot, now)
        self._flush_admin(now)
        self._silence_queued(snapshot, now)
        self.deliver(now, report)
        if self._pending_admin:
            # Failed sends found just now: enqueue the admin notice before the tick ends (a
            # `run --once` process would exit with it still in memory) and send it right away.
            self._flush_admin(now)
            self.deliver(now, report)
        self.store.beat(now, report.line())
        return report

    def _silence_queued(self, snapshot: Snapshot, now: datetime) -> None:
        """Queued sends that a silence added since covers do not go out (e.g. waiting for Monday).

        Their episodes then count those sends as silenced, not made: when the silence ends, the
        current step goes out if it never did (SPEC §2), and a hold nobody received is forgotten.
        """
        state = self._state
        assert state is not None  # this tick's state, applied
        silences = [s for s in state.silences if now < s.ends_at]
        if not silences:
            return
        records: dict[str, Mapping[str, Any]] = {}
        silenced: dict[int, Silence] = {}
        undone: dict[tuple[str, str], Episode] = {}  # the episodes, as they become
        for row in self.store.queued_sends():
            if row.action not in records:
                known = snapshot.actions.get(row.action)
                records[row.action] = known.fields if known is not None else {"id": row.action}
            found = next((s for s in silences if s.matches(row.rule, records[row.action], now)), None)
            if found is None:
                continue
            silenced[row.id] = found
            key = (row.rule, row.action)
            episode = undone.get(key) or state.episodes.get(key)
            if episode is not None and episode.id == row.episode:
                undone[key] = _unsent(episode, row.step, row.repeat, row.kind == "hold")
        if silenced:
            log.info("%d queued messages held back by silences added after they were queued", len(silenced))
            self.store.silence_queued(silenced, undone.values())
            self._state = replace(state, episodes={**state.episodes, **undone})
            self._plan = None  # its next looks assumed these sends were made

    def _follow_settings(self, setup: Setup) -> None:
        """Apply a reloaded config's ``delivery:``; say that a new ``state:`` needs a restart.

        The evaluation reads everything else from the setup itself. A delivery that cannot be
        built (its password variable unset, say) keeps the last one and tells the admin.
        """
        loaded = setup.loaded
        delivery = loaded.config.delivery
        if self._delivery is not None and delivery != self._delivery:
            try:
                transport = make_transport(delivery, loaded.base_dir, self.environ)
            except SopwatchError as exc:
                log.error("kept the previous delivery: the new delivery settings cannot be used: %s", exc)
                self._admin("delivery edit not applied, keeping the previous delivery", str(exc))
            else:
                self.loop.run_until_complete(self.transport.close())
                self.transport = transport
                log.info("delivery changed: now %s", _delivery_label(delivery))
            self._delivery = delivery  # told once per edit, not on every tick
        state_path = str(loaded.state_path)
        if state_path != self._state_told:
            if state_path != self.store.path:  # an edit back to the store's own path needs nothing
                text = f"state: now names {state_path}; this daemon keeps {self.store.path} until it is restarted"
                log.warning(text)
                self._admin("state edit needs a restart", text)
            self._state_told = state_path

    def _deliver_only(self, loaded: Setup, now: datetime) -> TickReport:
        """No register accepted yet (the guard refused the first one): deliver, tell, evaluate nothing."""
        self.setup = loaded  # for its config: admin, sender
        report = TickReport(at=now, problems=len(loaded.problems))
        self._flush_admin(now)
        self.deliver(now, report)
        self.store.beat(now, report.line() + " (register refused: nothing evaluated)")
        return report

    def _compose_all(
        self, evaluation: Evaluation, snapshot: Snapshot, state: State, now: datetime
    ) -> dict[str, Composed]:
        setup = self.setup
        allowed = setup.loaded.config.allowed_domains
        composed: dict[str, Composed] = {}
        refusals: list[str] = []
        unaddressed: list[str] = []
        envelope_sender = _address(self.sender)  # the same for every message of the tick
        messages = MessageSetup.of(setup, self.instance)
        threads = ThreadSubjects(
            self.store.thread_subjects(n.action for n in evaluation.sendable if n.channel != "digest")
        )
        for n in evaluation.sendable:
            if n.channel == "digest":
                continue
            key = outbox_key(n)
            # allowed_domains: a refused address leaves the envelope, the headers and the invite.
            filtered = filter_notification(n, allowed)
            recipients = filtered.recipients
            refused: tuple[tuple[str, str], ...] = ()
            if filtered.refused:
                why = refusal_reason(allowed or [])
                refused = tuple((address, why) for address in filtered.refused)
                line = (
                    f"{n.rule} / {n.action} ({n.kind}, step {n.step}): "
                    f"not sent to {', '.join(filtered.refused)}, {why}"
                )
                if not recipients:
                    line += "; no recipient left, marked failed"
                log.error("recipient refused for outbox key %s: %s", key, line)
                refusals.append(line)
                if not recipients:
                    error = f"no recipient left: every one is {why}"
                    composed[key] = Composed(envelope_sender, (), b"", refused, error)
                    continue
            elif not recipients:
                # No recipient resolved and no fallback_recipient: kept as failed, with the reason.
                why = "; ".join(n.notes) or "no recipient"
                line = f"{n.rule} / {n.action} ({n.kind}, step {n.step}): nobody to send to: {why}"
                log.error("no recipient for outbox key %s: %s", key, line)
                unaddressed.append(line)
                composed[key] = Composed(envelope_sender, (), b"", (), f"no recipient: {why}")
                continue
            action = snapshot.actions.get(n.action)
            seen = evaluation.observations.get(n.action) or state.observations.get(n.action)
            observed = observed_fields(action.fields, seen) if action is not None and seen else None
            result = compose_notification(
                messages, self.templates, filtered.notification, action, now, observed, threads.of(n.action)
            )
            if result.fallback_reason:
                reason = self._in_source(result.fallback_reason)
                log.error("template failed for %s, used the built-in: %s", n.key, reason)
                self._admin(f"template failed: {n.template}", reason)
            subject = str(result.message["Subject"])
            threads.going_out(n.action, subject)  # a second message about a new action: this subject
            composed[key] = Composed(
                envelope_sender, recipients, result.message.as_bytes(), refused, subject=subject
            )
        if refusals:
            self._admin("recipients refused (allowed_domains)", "\n".join(refusals))
        if unaddressed:
            hint = "Set fallback_recipient, or fix the register or the people directory."
            self._admin("notifications with nobody to send to", "\n".join([*unaddressed, "", hint]))
        return composed

    # -- digests --------------------------------------------------------------------------

    def _digests(self, snapshot: Snapshot, now: datetime) -> int:
        setup = self.setup
        config = setup.loaded.config
        if not config.digests:
            return 0
        items = self.store.digest_items()
        if not items:
            return 0
        open_episodes = {e.id for e in self._current_state(setup).episodes.values()}
        by_recipient: dict[str, list[dict[str, Any]]] = defaultdict(list)
        expired = []
        for item in items:
            if item["episode"] not in open_episodes:
                expired.append(item["id"])  # resolved before any digest listed it
                continue
            to = [a for a in item["to"] if is_allowed(a, config.allowed_domains)]
            if len(to) < len(item["to"]):
                self._digest_refusal(item, to)
                if not to:
                    expired.append(item["id"])  # nobody it may go to: not kept pending forever
            for address in to:
                by_recipient[address].append(item)
        if expired:
            self.store.mark_digested(expired, now)
        env = setup.environment
        scopes: ScopeFigures | None = None  # built at the first digest that is due, then shared
        sent = 0
        for digest in config.digests:
            schedule = parse_schedule(digest.schedule)
            for address, pending in sorted(by_recipient.items()):
                person = env.directory.find(address)
                tz = (person.timezone if person else None) or setup.loaded.tz
                slot = schedule.last_occurrence(now, tz)
                last = self.store.last_digest(digest.id, address)
                if (last is not None and last >= slot) or not any(
                    datetime.fromisoformat(i["at"]) <= slot for i in pending
                ):
                    continue
                # An item stays in every digest until its episode resolves (a digest lists what
                # is stuck), once per digest: at the latest of its digest steps due by the slot.
                listed = _latest_per_episode([i for i in pending if datetime.fromisoformat(i["at"]) <= slot])
                if scopes is None:
                    records = _records(snapshot, self._current_state(setup), now)
                    scopes = ScopeFigures(
                        records, env.directory, env.terminal, env.cycles, setup.loaded.tz, now
                    )
                result = compose_digest(
                    address,
                    [_digest_item(i, snapshot, setup) for i in listed],
                    scopes.for_scope(scope_of(person, env.directory)),
                    directory=env.directory,
                    templates=self.templates,
                    sender=self.sender,
                    org_name=org_name(self.sender),
                    org_tz=setup.loaded.tz,
                    now=now,
                    digest_id=digest.id,
                    instance=self.instance,
                )
                if result.fallback_reason:
                    reason = self._in_source(result.fallback_reason)
                    log.error("digest template failed for %s, used the built-in: %s", address, reason)
                    self._admin("template failed: digest", reason)
                result.message["X-Sopwatch-Kind"] = "digest"
                key = f"digest:{digest.id}:{address.lower()}:{slot.isoformat()}"
                with self.store.transaction():
                    self.store.enqueue(
                        key,
                        "digest",
                        Composed(_address(self.sender), (address,), result.message.as_bytes()),
                        now,
                        {"rule": f"digest:{digest.id}", "to": [address], "items": len(listed)},
                    )
                    self.store.set_last_digest(digest.id, address, slot)
                sent += 1
        return sent

    # -- delivery -------------------------------------------------------------------------

    def deliver(self, now: datetime, report: TickReport | None = None) -> None:
        rows = self.store.due(now)
        # Outcomes are stored batch by batch: a crash mid-delivery re-sends at most the batch in
        # flight, not every message the tick had already handed to the server.
        for start in range(0, len(rows), DELIVERY_BATCH):
            self._deliver_batch(rows[start : start + DELIVERY_BATCH], now, report)

    def _deliver_batch(self, rows: list[OutboxRow], now: datetime, report: TickReport | None) -> None:
        messages = [OutgoingMessage(r.id, r.sender, r.recipients, r.data) for r in rows]
        results = self.loop.run_until_complete(self.transport.send_batch(messages))
        by_id = {r.id: r for r in rows}
        for result in results:
            row = by_id[result.id]
            if result.error and result.error_permanent:
                refused = {r: result.error for r in row.recipients}
                retry: tuple[str, ...] = ()
            elif result.error:
                refused, retry = {}, row.recipients
            else:
                refused, retry = dict(result.permanent), tuple(result.temporary)
            tries = row.attempts + 1
            attempt_at = next_attempt(tries, now, self.rng) if retry and not exhausted(tries) else None
            # Per-recipient replies (a 451 too) become last_error, so `sopwatch outbox` says why.
            error = result.error or _reasons({**result.permanent, **result.temporary}) or None
            status = self.store.record_delivery(row, result.accepted, refused, retry, error, now, attempt_at)
            self.metrics.delivered(self.store, row.id, status)
            if report is not None:
                setattr(report, status, getattr(report, status) + 1)
            if refused or status == "failed":
                reasons = "; ".join(f"{k}: {v}" for k, v in refused.items()) or (result.error or "")
                log.error("delivery failed for outbox row %s: %s", row.id, reasons)
                self._admin_row(row, reasons)
            elif retry:
                log.warning(
                    "delivery of outbox row %s will be retried: %s", row.id, result.error or result.temporary
                )

    # -- the admin hears about sopwatch's own problems ------------------------------------

    def _rules_rejected(self, message: str) -> None:
        self._admin("configuration rejected, keeping the last good one", message)

    def _admin(self, subject: str, text: str) -> None:
        self._pending_admin.append((subject, text))

    def _digest_refusal(self, item: Mapping[str, Any], kept: list[str]) -> None:
        new = [a for a in item["to"] if a not in kept and (item["id"], a) not in self._refusals_reported]
        if not new:
            return
        self._refusals_reported.update((item["id"], a) for a in new)
        why = refusal_reason(self.setup.loaded.config.allowed_domains or [])
        line = f"{item['rule']} / {item['action']} (digest item): not listed for {', '.join(new)}, {why}"
        if not kept:
            line += "; no recipient left, dropped"
        log.error("digest recipient refused: %s", line)
        self._admin("recipients refused (allowed_domains)", line)

    def _admin_row(self, row: OutboxRow, reasons: str) -> None:
        if not row.key.startswith("admin:"):
            self._admin(f"delivery failed: {row.key}", reasons)

    def _flush_admin(self, now: datetime) -> None:
        admin = self.setup.loaded.config.admin
        pending, self._pending_admin = self._pending_admin, []
        if not admin:
            return
        allowed = self.setup.loaded.config.allowed_domains
        if pending and not is_allowed(admin, allowed):
            why = refusal_reason(allowed or [])
            log.error("admin %s is %s: %d admin notices not sent", admin, why, len(pending))
            return
        for subject, text in pending:
            message = EmailMessage(policy=POLICY)  # 7-bit, as every other message: no 8BITMIME needed
            # Header values from config and data: one line, encoded words defused (never a new header).
            message["From"] = header_text(self.sender, 1000)
            message["To"] = header_text(admin, 1000)
            message["Subject"] = header_text(f"[sopwatch] {subject}")
            message["Date"] = format_datetime(now)
            message["Auto-Submitted"] = "auto-generated"
            message["X-Auto-Response-Suppress"] = "OOF, AutoReply"
            message["X-Sopwatch-Kind"] = "admin"
            material = f"{self.instance}\n{subject}\n{text}\n{now.date()}"
            digest = hashlib.sha1(material.encode()).hexdigest()[:24]
            message["Message-ID"] = f"<admin.{digest}@{sender_domain(self.sender)}>"
            message.set_content(text)
            message.add_alternative(text_to_html(text, f"[sopwatch] {subject}"), subtype="html")  # SPEC §3
            key = f"admin:{digest}"
            with self.store.transaction():
                self.store.enqueue(
                    key,
                    "admin",
                    Composed(_address(self.sender), (admin,), message.as_bytes()),
                    now,
                    {"rule": "admin"},
                )


def compose_notification(
    messages: MessageSetup,
    templates: TemplateSet,
    n: Notification,
    action: Action | None,
    now: datetime,
    observed: Mapping[str, Any] | None = None,
    thread_subject: str | None = None,
) -> ComposedEmail:
    """The email for one notification, with the rule's and the cycle's context (and the action's
    observed instants, when given); ``thread_subject`` is the subject the action's thread keeps.

    It is dated (and rendered as of) the instant it may go out, as ``check`` renders its subject.
    """
    now = rendered_at(n, now)
    hold = _hold_spec(messages.rules.get(n.rule), n)
    result = compose_from_context(
        n,
        messages.context(n, action, now, observed),
        directory=messages.directory,
        templates=templates,
        sender=messages.sender,
        now=now,
        busy=hold.busy if hold else False,
        hold_title=hold.title if hold else None,
        instance=messages.instance,
        thread_subject=thread_subject,
    )
    result.message["X-Sopwatch-Kind"] = n.kind
    result.message["X-Sopwatch-Repeat"] = str(n.repeat)
    return result


def _records(snapshot: Snapshot, state: State, now: datetime) -> list[dict[str, Any]]:
    """Register fields plus the observed instants, for the digest figures."""
    records, _ = observe(snapshot, state, now)
    return list(records.values())


def _unsent(episode: Episode, step: int, repeat: int, hold: bool) -> Episode:
    """``episode`` as if send ``repeat`` of ``step`` (or the step's hold) had been silenced."""
    if hold:
        return replace(episode, holds={i: h for i, h in episode.holds.items() if i != step})
    made = episode.steps.get(step)
    if made is None:
        return episode
    last_sent = made.last_sent if repeat > 0 else None
    steps = {**episode.steps, step: replace(made, sends=repeat, last_sent=last_sent, silenced=True)}
    return replace(episode, steps=steps)


def _latest_per_episode(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for item in items:
        mine = latest.get(item["episode"])
        if mine is None or (item["step"], item["id"]) > (mine["step"], mine["id"]):
            latest[item["episode"]] = item
    return [i for i in items if latest[i["episode"]] is i]


def _digest_item(item: Mapping[str, Any], snapshot: Snapshot, setup: Setup) -> DigestItem:
    action = snapshot.actions.get(item["action"])
    rule = setup.rules.get(item["rule"])
    return DigestItem(
        rule=item["rule"],
        rule_description=rule.description if rule else "",
        severity=item["severity"],
        action=dict(action.fields) if action else {"id": item["action"], "title": ""},
        fired_at=datetime.fromisoformat(item["fire_at"]),
        step=item["step"],
    )


def _hold_spec(rule: Any, n: Notification) -> Any:
    """The step's calendar_hold settings (busy, title) for a hold notification."""
    if rule is None or n.hold is None or n.step >= len(rule.steps):
        return None
    return rule.steps[n.step].calendar_hold


def _reasons(replies: Mapping[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in replies.items())


def _delivery_label(delivery: DeliveryConfig) -> str:
    if delivery.type == "maildir":
        return f"maildir {delivery.path}"
    return f"smtp {delivery.host}:{delivery.port_or_default}"


def _address(sender: str) -> str:
    return parseaddr(sender)[1] or sender
