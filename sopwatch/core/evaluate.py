"""The evaluation: (register snapshot, rules, environment, state, now) -> what to send and what changed.

Pure: no files, no network, no clock. The daemon, ``check`` and ``simulate`` all call ``evaluate``,
which is why a simulation shows exactly what the daemon would send at the same instants.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Any

from sopwatch.core.conditions import index_key
from sopwatch.core.model import DEFAULT_TERMINAL, STATUSES, CycleCalendar, Directory, Snapshot
from sopwatch.core.recipients import Recipient, RecipientExpr
from sopwatch.core.rules import Rule, RuleSet, Step
from sopwatch.core.state import Episode, HoldRecord, Observation, Silence, State, StepRecord
from sopwatch.core.timeexpr import Clock

Record = dict[str, Any]


@dataclass(frozen=True)
class Environment:
    """Everything evaluation needs besides the register, the rules and the state."""

    clock: Clock
    directory: Directory = field(default_factory=Directory)
    cycles: CycleCalendar = field(default_factory=CycleCalendar)
    terminal: frozenset[str] = DEFAULT_TERMINAL
    fallback: RecipientExpr | None = None
    start_date: date | None = None
    max_messages_per_tick: int = 200

    @property
    def start_instant(self) -> datetime | None:
        if self.start_date is None:
            return None
        return datetime.combine(self.start_date, time(0), tzinfo=self.clock.tz)


@dataclass(frozen=True, slots=True)
class Notification:
    at: datetime
    rule: str
    action: str
    episode: str
    step: int
    repeat: int
    channel: str  # email | digest | calendar | cancel
    kind: str  # reminder | escalation | resolved | hold | hold-update | cancel
    to: tuple[str, ...]
    cc: tuple[str, ...]
    template: str
    not_before: datetime
    severity: str
    fire_at: datetime
    notes: tuple[str, ...] = ()  # why a recipient fell back, ...
    silenced_by: str | None = None
    hold: HoldRecord | None = None

    @property
    def key(self) -> str:
        """The outbox's unique key: one message per (episode, step, repeat, kind, recipient set).

        A silenced record has its own key: the send after the silence ends has the same step and
        repeat (SPEC §2: notified then, if it never was) and must not be taken for a duplicate.
        """
        silenced = f"!silenced:{self.silenced_by}" if self.silenced_by else ""
        return f"{self.episode}#{self.step}.{self.repeat}.{self.kind}{silenced}"


@dataclass(frozen=True)
class Evaluation:
    at: datetime
    notifications: tuple[Notification, ...]
    observations: Mapping[str, Observation]  # new or changed only
    episodes: tuple[Episode, ...]  # opened or updated, still open
    resolved: tuple[Episode, ...]
    deferred: int = 0  # proposals held back by max_messages_per_tick
    plan: Plan | None = field(default=None, repr=False, compare=False)  # for the next evaluation
    kept: tuple[_Proposal, ...] = field(default=(), repr=False, compare=False)

    @property
    def sendable(self) -> tuple[Notification, ...]:
        return tuple(n for n in self.notifications if n.silenced_by is None)


@dataclass(slots=True)
class _Proposal:
    """One (rule, action) pair's outcome at this instant."""

    rule: Rule
    fire_at: datetime
    episode: Episode | None  # the episode after this evaluation (open)
    resolved: Episode | None = None
    notifications: list[Notification] = field(default_factory=list)
    due: _DueSend | None = None  # a step send decided, built only if the cap lets it through

    @property
    def messages(self) -> int:
        return sum(1 for n in self.notifications if n.channel != "digest" and n.silenced_by is None)


@dataclass(frozen=True, slots=True)
class _DueSend:
    """A step that is due to be sent (or recorded as silenced), decided but not built yet.

    Building means resolving recipients and making the notifications and hold. Once the tick's
    ``max_messages_per_tick`` budget is spent, a send that would cost a message is deferred
    without being built (it is decided again next tick); before that, it is built to know its
    exact cost (an email, and a calendar hold if it has recipients).
    """

    step: Step
    repeat: int
    silence: Silence | None
    record: Record

    @property
    def surely_a_message(self) -> bool:
        """Whether it counts against the cap whatever the recipients: an email no silence holds."""
        return self.silence is None and self.step.via != "digest"


def observe(
    snapshot: Snapshot,
    state: State,
    now: datetime,
    skip: frozenset[str] = frozenset(),
    keep: frozenset[str] = frozenset(),
) -> tuple[dict[str, Record], dict[str, Observation]]:
    """Records for the rules (register fields + observed instants) and the observations that changed.

    Actions whose status is in ``skip`` (terminal) get no record unless their id is in ``keep``
    (they have an open episode), and are only observed if sopwatch saw them open before: a
    register keeps years of closed work that no rule will ever look at.
    """
    records: dict[str, Record] = {}
    changed: dict[str, Observation] = {}
    previous = state.observations
    actions = snapshot.actions
    for action_id, status, owner in snapshot.status_and_owner():
        seen = previous.get(action_id)
        skipped = status in skip and action_id not in keep
        if seen is None:
            if skipped:
                continue  # most of a register: closed before sopwatch ever saw it
            seen = Observation(status, now, owner, now, now)
            changed[action_id] = seen
        elif seen.status != status or seen.owner != owner:
            seen = Observation(
                status,
                seen.status_since if seen.status == status else now,
                owner,
                seen.owner_since if seen.owner == owner else now,
                seen.first_seen,
            )
            changed[action_id] = seen
        if skipped:
            continue
        fields = actions[action_id].fields
        record = dict(fields)
        # observed_fields, inlined: this loop runs for every open action of a full scan.
        record["status_since"] = fields.get("status_changed_at") or seen.status_since
        record["owner_since"] = seen.owner_since
        record["first_seen"] = seen.first_seen
        records[action_id] = record
    return records, changed


def observed_fields(fields: Mapping[str, Any], seen: Observation) -> dict[str, Any]:
    """The observed instants of SPEC §1.1 for an action: what rules and templates see."""
    return {
        "status_since": fields.get("status_changed_at") or seen.status_since,
        "owner_since": seen.owner_since,
        "first_seen": seen.first_seen,
    }


def record_of(snapshot: Snapshot, state: State, now: datetime, action_id: str) -> Record:
    """The record of one action, as ``observe`` makes it, without building any other action's."""
    records, _ = observe(snapshot, state, now, skip=frozenset(STATUSES), keep=frozenset({action_id}))
    return records[action_id]


class Plan:
    """When each (rule, action) pair next needs a look, so a tick touches only what came due.

    A pair's outcome can only change when its record, the rules, the environment or the silences
    change, or when time reaches its next instant (fire_at, the next step, the next repeat, the end
    of a silence). A plan is valid for one snapshot, rule set, environment and silence list (by
    identity); ``evaluate`` consumes the plan it is given and returns its successor on the
    Evaluation. Passing no plan means a full scan, with the same result.
    """

    def __init__(self, snapshot: Snapshot, rules: RuleSet, env: Environment, silences: tuple[Silence, ...]):
        self.snapshot, self.rules, self.env, self.silences = snapshot, rules, env, silences
        self.records: dict[str, Record] = {}
        self.position: dict[str, int] = {}
        self.queue: dict[str, list[tuple[datetime, int, str]]] = {rule.id: [] for rule in rules}
        self.always: dict[str, set[str]] = {rule.id: set() for rule in rules}

    def fits(
        self, snapshot: Snapshot, rules: RuleSet, env: Environment, silences: tuple[Silence, ...]
    ) -> bool:
        return (
            self.snapshot is snapshot
            and self.rules is rules
            and self.env is env
            and self.silences == silences
        )

    def due(self, rule_id: str, now: datetime) -> list[str]:
        """Pairs of this rule to look at now, in register order."""
        queue, found = self.queue[rule_id], set(self.always[rule_id])
        self.always[rule_id] = set()
        while queue and queue[0][0] <= now:
            found.add(heapq.heappop(queue)[2])
        return sorted(found, key=self.position.__getitem__)

    def schedule(self, rule_id: str, action_id: str, look: datetime | None) -> None:
        if look is None:
            self.always[rule_id].add(action_id)
        elif look is not NEVER:
            heapq.heappush(self.queue[rule_id], (look, self.position[action_id], action_id))


NEVER = datetime.max.replace(tzinfo=UTC)  # nothing changes until the inputs do


def evaluate(
    snapshot: Snapshot,
    rules: RuleSet,
    env: Environment,
    state: State,
    now: datetime,
    plan: Plan | None = None,
    *,
    plan_ahead: bool = True,
) -> Evaluation:
    """What is due at ``now``; ``plan_ahead=False`` skips planning a next tick that will not come."""
    open_episodes = state.episodes
    by_rule: dict[str, dict[str, Episode]] = {}
    for episode in open_episodes.values():
        by_rule.setdefault(episode.rule, {})[episode.action] = episode
    silences = tuple(s for s in state.silences if now < s.ends_at)
    full_scan = plan is None or not plan.fits(snapshot, rules, env, state.silences)
    if full_scan:
        with_episode = frozenset(e.action for e in open_episodes.values())
        records, observations = observe(snapshot, state, now, skip=env.terminal, keep=with_episode)
        index: _RecordIndex | None = _RecordIndex(records, env.terminal)
        plan = Plan(snapshot, rules, env, state.silences)
        plan.records, plan.position = records, index.position
    else:
        assert plan is not None
        records, observations, index = plan.records, {}, None
    proposals: list[_Proposal] = []
    looks: list[tuple[Rule, str, Record, Episode | None, _Proposal | None]] = []
    for rule in rules:
        episodes = by_rule.get(rule.id, {})
        if index is not None:
            candidates, unpinned = index.candidates(rule, episodes)
        else:
            candidates, unpinned = plan.due(rule.id, now), None
        for action_id in candidates:
            record = records[action_id]
            episode = episodes.get(action_id)
            # Picked by the index: the pinned fields already hold, the rest of ``when`` is tested.
            matches = rule.matches if unpinned is None or action_id in unpinned else rule.matches_unpinned
            proposal = assess(rule, record, episode, env, state, silences, now, matches)
            if proposal is not None:
                proposals.append(proposal)
            if plan_ahead:
                looks.append((rule, action_id, record, episode, proposal))
        if full_scan:
            for action_id, episode in episodes.items():
                if action_id not in snapshot.actions:
                    proposals.append(_resolve(rule, episode, "the action left the register", env, now))
    evaluation = _commit(proposals, observations, env, now)
    if not plan_ahead:
        return replace(evaluation, kept=())
    kept = {id(p) for p in evaluation.kept}
    for rule, action_id, record, episode, proposal in looks:
        if proposal is not None and id(proposal) not in kept:
            plan.schedule(rule.id, action_id, None)  # deferred by the cap: look again next tick
            continue
        after = episode if proposal is None else (None if proposal.resolved else proposal.episode)
        plan.schedule(rule.id, action_id, next_look(rule, record, after, env, silences, now))
    return replace(evaluation, plan=plan, kept=())


class _RecordIndex:
    """The records of one full scan indexed by the text of the fields that rules pin.

    A rule that pins ``status: blocked`` and ``team: [Sales, Ops]`` is tested only against the
    records in both buckets, found with set operations instead of a test per row. Buckets are
    built on first use, once per field, and unions of values are shared between rules.
    """

    def __init__(self, records: dict[str, Record], terminal: frozenset[str]) -> None:
        self.records = records
        self.ids = list(records)
        self.open = frozenset(i for i, r in enumerate(records.values()) if r["status"] not in terminal)
        self.position = {action_id: index for index, action_id in enumerate(self.ids)}
        self._buckets: dict[str, dict[str | None, set[int]]] = {}
        self._unions: dict[tuple[str, frozenset[str]], frozenset[int]] = {}

    def matching(self, name: str, values: frozenset[str]) -> frozenset[int]:
        found = self._unions.get((name, values))
        if found is None:
            buckets = self._buckets.get(name)
            if buckets is None:
                buckets = self._buckets[name] = {}
                for index, record in enumerate(self.records.values()):
                    buckets.setdefault(index_key(record.get(name)), set()).add(index)
            found = frozenset().union(*(buckets.get(value, ()) for value in values))
            self._unions[(name, values)] = found
        return found

    def candidates(self, rule: Rule, episodes: Mapping[str, Episode]) -> tuple[list[str], frozenset[str]]:
        """Actions a full scan must assess for ``rule``: open ones it could match, and its episodes;
        and which of them do not have the rule's pinned values for sure (episodes the index did not pick)."""
        chosen = self.open
        for name, values in rule.pins.items():
            chosen = chosen & self.matching(name, values)
        ids = self.ids
        unpinned: frozenset[str] = frozenset()
        if episodes:
            position = self.position
            extra = {position[a] for a in episodes if a in position} - chosen
            unpinned = frozenset(ids[index] for index in extra)
            chosen = chosen | extra
        return [ids[index] for index in sorted(chosen)], unpinned


def next_look(
    rule: Rule,
    record: Record,
    episode: Episode | None,
    env: Environment,
    silences: Iterable[Silence],
    now: datetime,
) -> datetime | None:
    """The first instant after ``now`` at which this pair can change while the inputs stay the same.

    None means "look every time" (the answer depends on ``now`` itself); NEVER means only a change
    of the inputs can change it.
    """
    if rule.fire_at is not None and rule.fire_at.expression.anchor == "now":
        return None
    if record["status"] in env.terminal or not rule.matches(record):
        return NEVER
    if rule.fire_at is None:
        if episode is None:
            return None
        fire_at = episode.fired_at
    else:
        computed = rule.fire_at.at(env.clock, record, env.cycles, now)
        if computed is None:
            return NEVER
        if computed > now:
            return computed
        fire_at = computed
    if episode is None:
        start = env.start_instant
        return NEVER if start is not None and fire_at < start else None
    looks: list[datetime] = []
    for step in rule.steps:
        due = step_due(step, env.clock, fire_at)
        if due > now:
            looks.append(due)
            break
    step = current_step(rule, env.clock, fire_at, now)
    if step is not None:
        sent = episode.steps.get(step.index)
        if sent is None or sent.sends == 0 or sent.silenced:
            ends = [s.ends_at for s in silences if s.matches(rule.id, record, now)]
            if not ends and (sent is None or sent.sends == 0):
                return None  # due but not sent: look again next tick
            looks.extend(ends)
        if sent is not None and sent.sends and rule.repeat and step.via != "digest" and sent.last_sent:
            looks.append(env.clock.add(sent.last_sent, rule.repeat))
    return min(looks) if looks else NEVER


def assess(
    rule: Rule,
    record: Record,
    episode: Episode | None,
    env: Environment,
    state: State,
    silences: Iterable[Silence],
    now: datetime,
    matches: Callable[[Record], bool] | None = None,
) -> _Proposal | None:
    """The outcome for one rule and one action; None when nothing changes.

    ``matches`` replaces ``rule.matches`` where the caller knows a cheaper test that is equivalent
    for this record (``rule.matches_unpinned`` for a record the index picked).
    """
    fire_at, reason = firing(rule, record, episode, env, now, explain=episode is not None, matches=matches)
    if fire_at is None:
        return _resolve(rule, episode, reason or "", env, now) if episode is not None else None
    if episode is None:
        start = env.start_instant
        if start is not None and fire_at < start:
            return None  # rollout safety: old work before start_date never alerts
        number = state.episode_counts.get((rule.id, record["id"]), 0) + 1
        episode = Episode(
            id=f"{rule.id}/{record['id']}/{number}",
            rule=rule.id,
            action=record["id"],
            number=number,
            fired_at=fire_at,
            opened_at=now,
        )
        proposal = _Proposal(rule, fire_at, episode)
    else:
        proposal = _Proposal(rule, fire_at, episode)
    step = current_step(rule, env.clock, fire_at, now)
    if step is not None:
        proposal.due = _due_send(proposal, step, record, silences, env, now)
    _update_holds(proposal, record, env, now)
    unchanged = proposal.episode is episode and not proposal.notifications and proposal.due is None
    if unchanged and episode.number <= state.episode_counts.get(episode.key, 0):
        return None
    return proposal


def firing(
    rule: Rule,
    record: Record,
    episode: Episode | None,
    env: Environment,
    now: datetime,
    explain: bool = True,
    matches: Callable[[Record], bool] | None = None,
) -> tuple[datetime | None, str | None]:
    """``fire_at`` if the rule fires for this record now, else None and (when ``explain``) why not."""
    if record["status"] in env.terminal:
        return None, f"status {record['status']!r} is terminal"
    if not (matches or rule.matches)(record):
        # Building the reason walks the condition again: only worth it when someone reads it.
        return None, (rule.when.failure(record) or "when no longer holds") if explain else None
    if rule.fire_at is None:
        return (episode.fired_at if episode else now), None
    if episode is not None and rule.fire_at.expression.anchor == "now":
        # `now` moves with every tick: an episode keeps the instant it fired at, or no step
        # measured from it would ever come due.
        return episode.fired_at, None
    fire_at = rule.fire_at.at(env.clock, record, env.cycles, now)
    if fire_at is None:
        return None, f"{rule.fire_at.expression.anchor} is empty" if explain else None
    if fire_at > now:
        if episode is not None and fire_at == episode.fired_at:
            # The wall clock went back, fire_at did not move: the episode stays open, sends nothing.
            return fire_at, None
        # Most candidates of a scan are not due yet: format the reason only for a reader.
        return None, f"fire_at {fire_at.isoformat()} is in the future" if explain else None
    return fire_at, None


def step_due(step: Step, clock: Clock, fire_at: datetime) -> datetime:
    return clock.add(fire_at, step.after) if step.after else fire_at


def current_step(rule: Rule, clock: Clock, fire_at: datetime, now: datetime) -> Step | None:
    """The highest step that is due; lower steps never sent are skipped (no burst after a late start)."""
    current = None
    for step in rule.steps:
        if step_due(step, clock, fire_at) <= now:
            current = step
    return current


def resolve_recipients(
    step: Step, record: Record, env: Environment
) -> tuple[tuple[Recipient, ...], tuple[str, ...], tuple[str, ...]]:
    """(to, cc addresses, notes). ``to`` falls back to ``fallback_recipient``; to wins over cc."""
    to: list[Recipient] = []
    notes: list[str] = []
    for expression in step.notify:
        resolution = expression.people(record, env.directory)
        to.extend(resolution.recipients)
        if resolution.problem:
            if resolution.recipients:
                notes.append(f"{expression.text}: {resolution.problem}")
                continue
            fallback = env.fallback.people(record, env.directory) if env.fallback else None
            if fallback and fallback.recipients:
                to.extend(fallback.recipients)
                notes.append(f"{expression.text}: {resolution.problem}; sent to fallback {env.fallback.text}")  # type: ignore[union-attr]
            else:
                notes.append(
                    f"{expression.text}: {resolution.problem}; no fallback_recipient could be resolved"
                )
    seen: set[str] = set()
    unique_to: list[Recipient] = []
    for recipient in to:
        if recipient.email.lower() not in seen:
            seen.add(recipient.email.lower())
            unique_to.append(recipient)
    cc: list[str] = []
    for expression in step.cc:
        resolution = expression.people(record, env.directory)
        if resolution.problem:
            notes.append(f"cc {expression.text}: {resolution.problem}")
        for recipient in resolution.recipients:
            if recipient.email.lower() not in seen:
                seen.add(recipient.email.lower())
                cc.append(recipient.email)
    return tuple(unique_to), tuple(cc), tuple(notes)


def delivery_start(to: tuple[Recipient, ...], env: Environment, now: datetime) -> datetime:
    """When an email may go out: now inside the first recipient's window, else the next window."""
    person = to[0].person if to else None
    tz = (person.timezone if person else None) or env.clock.tz
    return env.clock.business.next_window_start(now, tz)


def _due_send(
    proposal: _Proposal,
    step: Step,
    record: Record,
    silences: Iterable[Silence],
    env: Environment,
    now: datetime,
) -> _DueSend | None:
    """Whether ``step`` is to be sent now (first send or repeat) or recorded as silenced."""
    episode = proposal.episode
    assert episode is not None
    rule = proposal.rule
    previous = episode.steps.get(step.index)
    silence = next((s for s in silences if s.matches(rule.id, record, now)), None)
    if previous is None or previous.sends == 0:
        repeat = 0
    elif step.via == "digest":
        return None  # a digest lists the open item on its own schedule; repeating it adds nothing
    elif rule.repeat and now >= env.clock.add(previous.last_sent, rule.repeat):  # type: ignore[arg-type]
        repeat = previous.sends
    else:
        return None
    if silence is not None and previous is not None and previous.silenced and previous.sends == repeat:
        return None  # already recorded as silenced for this send
    return _DueSend(step, repeat, silence, record)


def _build_send(proposal: _Proposal, env: Environment, now: datetime) -> None:
    """Build the proposal's due send: its notifications go before any hold update, and the
    episode records the send (and a new calendar hold)."""
    send, episode, rule = proposal.due, proposal.episode, proposal.rule
    assert send is not None and episode is not None
    proposal.due = None
    step, repeat, silence, record = send.step, send.repeat, send.silence, send.record
    previous = episode.steps.get(step.index)
    to, cc, notes = resolve_recipients(step, record, env)
    digest = step.via == "digest"
    not_before = now if digest else delivery_start(to, env, now)
    kind = "reminder" if step.index == 0 else "escalation"
    notification = Notification(
        at=now,
        rule=rule.id,
        action=record["id"],
        episode=episode.id,
        step=step.index,
        repeat=repeat,
        channel="digest" if digest else "email",
        kind=kind,
        to=tuple(r.email for r in to),
        cc=cc,
        template=step.template,
        not_before=not_before,
        severity=rule.severity,
        fire_at=proposal.fire_at,
        notes=notes,
        silenced_by=silence.id if silence else None,
    )
    built = [notification]
    steps = dict(episode.steps)
    if silence is not None:
        # Recorded, not sent, not sent later; the step counts as never notified.
        steps[step.index] = (
            replace(previous, silenced=True) if previous else StepRecord(0, None, silenced=True)
        )
        proposal.episode = replace(episode, steps=steps)
        proposal.notifications[:0] = built
        return
    steps[step.index] = StepRecord(repeat + 1, not_before, notification.to, cc)
    holds = dict(episode.holds)
    if step.calendar_hold is not None and repeat == 0 and to and step.index not in holds:
        # `now` in the hold's start is the instant this step goes out (its delivery window).
        start = step.calendar_hold.start.at(env.clock, record, env.cycles, not_before, proposal.fire_at)
        if start is not None:
            hold = HoldRecord(
                uid=f"{episode.id}/hold{step.index}@sopwatch",
                step=step.index,
                sequence=0,
                start=start,
                end=env.clock.add(start, step.calendar_hold.duration),
                attendees=notification.to + cc,
            )
            holds[step.index] = hold
            built.append(replace(notification, channel="calendar", kind="hold", template="hold", hold=hold))
    proposal.episode = replace(episode, steps=steps, holds=holds)
    proposal.notifications[:0] = built


def _update_holds(proposal: _Proposal, record: Record, env: Environment, now: datetime) -> None:
    """A hold whose start moved (e.g. the due date changed) is re-sent with a higher SEQUENCE."""
    episode = proposal.episode
    assert episode is not None
    if not episode.holds:
        return
    rule = proposal.rule
    holds = dict(episode.holds)
    changed = False
    for index, hold in episode.holds.items():
        spec = rule.steps[index].calendar_hold if index < len(rule.steps) else None
        if spec is None or spec.start.expression.anchor == "now":
            continue  # a start counted from its send moves with nothing in the register
        start = spec.start.at(env.clock, record, env.cycles, episode.opened_at, proposal.fire_at)
        if start is None or start == hold.start:
            continue
        updated = replace(
            hold, sequence=hold.sequence + 1, start=start, end=env.clock.add(start, spec.duration)
        )
        holds[index] = updated
        changed = True
        proposal.notifications.append(
            _hold_message(rule, episode, updated, "hold-update", "calendar", env, now, proposal.fire_at)
        )
    if changed:
        proposal.episode = replace(episode, holds=holds)


def _hold_message(
    rule: Rule,
    episode: Episode,
    hold: HoldRecord,
    kind: str,
    channel: str,
    env: Environment,
    now: datetime,
    fire_at: datetime,
) -> Notification:
    first = env.directory.find(hold.attendees[0]) if hold.attendees else None
    to = (Recipient(hold.attendees[0], first),) if hold.attendees else ()
    return Notification(
        at=now,
        rule=rule.id,
        action=episode.action,
        episode=episode.id,
        step=hold.step,
        repeat=hold.sequence,
        channel=channel,
        kind=kind,
        to=hold.attendees,
        cc=(),
        template="hold" if channel == "calendar" else "cancel",
        not_before=delivery_start(to, env, now),
        severity=rule.severity,
        fire_at=fire_at,
        hold=hold,
    )


def _resolve(rule: Rule, episode: Episode, reason: str, env: Environment, now: datetime) -> _Proposal:
    """End an episode: cancel its holds still to come and, if the rule asks, tell the people it
    last notified. A hold that has ended is left alone: its meeting took place, and a CANCEL would
    strike it from the attendees' calendars and mail them about a past event."""
    resolved = replace(episode, resolved_at=now, resolution=reason)
    proposal = _Proposal(rule, episode.fired_at, None, resolved=resolved)
    for hold in episode.holds.values():
        if hold.end <= now:
            continue
        cancelled = replace(hold, sequence=hold.sequence + 1)
        proposal.notifications.append(
            _hold_message(rule, episode, cancelled, "cancel", "cancel", env, now, episode.fired_at)
        )
    emailed = [
        (index, record)
        for index, record in episode.steps.items()
        if record.sends > 0 and record.to and index < len(rule.steps) and rule.steps[index].via == "email"
    ]
    if rule.notify_resolved and emailed:
        index, last = max(emailed)
        first = env.directory.find(last.to[0])
        proposal.notifications.append(
            Notification(
                at=now,
                rule=rule.id,
                action=episode.action,
                episode=episode.id,
                step=index,
                repeat=0,
                channel="email",
                kind="resolved",
                to=last.to,
                cc=last.cc,
                template="resolved",
                not_before=delivery_start((Recipient(last.to[0], first),), env, now),
                severity=rule.severity,
                fire_at=episode.fired_at,
                notes=(reason,),
            )
        )
    return proposal


def _commit(
    proposals: list[_Proposal], observations: dict[str, Observation], env: Environment, now: datetime
) -> Evaluation:
    """Apply ``max_messages_per_tick``: resolutions first, then by severity and age; the rest wait."""
    order = {id(p): i for i, p in enumerate(proposals)}
    ranked = sorted(proposals, key=lambda p: (p.resolved is None, p.rule.rank, p.fire_at))
    budget = env.max_messages_per_tick
    kept: list[_Proposal] = []
    deferred = 0
    for proposal in ranked:
        if proposal.due is not None:
            if budget == 0 and proposal.due.surely_a_message:
                deferred += 1  # left unbuilt: decided again next tick
                continue
            _build_send(proposal, env, now)
        messages = proposal.messages
        if messages and messages > budget:
            deferred += 1
            continue
        budget -= messages
        kept.append(proposal)
    kept.sort(key=lambda p: order[id(p)])  # output in rule order, then register order
    notifications = tuple(n for p in kept for n in p.notifications)
    episodes = tuple(p.episode for p in kept if p.episode is not None)
    resolved = tuple(p.resolved for p in kept if p.resolved is not None)
    return Evaluation(now, notifications, observations, episodes, resolved, deferred, kept=tuple(kept))


def apply(state: State, evaluation: Evaluation) -> State:
    """The state after an evaluation; the SQLite store does the same in one transaction."""
    observations = dict(state.observations)
    observations.update(evaluation.observations)
    episodes = dict(state.episodes)
    counts = dict(state.episode_counts)
    for episode in evaluation.episodes:
        episodes[episode.key] = episode
        counts[episode.key] = max(counts.get(episode.key, 0), episode.number)
    for episode in evaluation.resolved:
        episodes.pop(episode.key, None)
    return State(observations, episodes, counts, state.silences)
