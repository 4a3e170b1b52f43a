"""``sopwatch init DIR``: a working starter setup an admin edits instead of starting from nothing.

It writes a commented ``config.yaml`` (maildir delivery, so nothing needs a mail server), a
people directory, a register CSV with the canonical headers and a few example rows dated around
today (so ``check`` shows something at once), a monthly cycle calendar, starter rules for the four
classic cases, a commented template override and the JSON Schema files the editors use.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sopwatch.config.schema import check_timezone
from sopwatch.core.model import CANONICAL_FIELDS
from sopwatch.errors import SopwatchError
from sopwatch.schema_export import render, schemas

CONFIG = """\
# yaml-language-server: $schema=./schema/config.schema.json
#
# sopwatch configuration, scaffolded by `sopwatch init` on %TODAY%.
#   sopwatch validate --config config.yaml     checks this file and every file it names
#   sopwatch check --config config.yaml        prints what would be sent now (sends nothing)
#   sopwatch run --config config.yaml          the daemon
# Paths are relative to this file's folder. Editors with YAML language support (VS Code's YAML
# extension, JetBrains IDEs, yaml-language-server) complete and check the keys through the schema
# named on the first line.

# The organisation's IANA timezone: naive dates and times in the register are read in it.
timezone: %TIMEZONE%

# The action register: decisions, actions, approvals and input submissions.
# register.csv uses the canonical headers; for your own spreadsheet map its headers instead.
register:
  type: csv                          # sqlite (the default) | csv | xlsx
  path: register.csv
  # columns: {"Decision owner": owner}                 # your header -> canonical field
  # status_map: {"Waiting for approval": pending_approval}
  # date_format: "%d/%m/%Y"                            # ISO 8601 always works

# Who is who: ids, names, emails, managers (for escalation), timezones and roles.
people: people.yaml

# The S&OP cycle calendar: phases and their cutoffs.
calendar: cycles.yaml

# Business days and the delivery window (recipient-local).
business_calendar:
  workdays: [mon, tue, wed, thu, fri]
  # holidays: {country: DE}          # public holidays via the `holidays` package; add subdiv: BY
  closures: []                       # extra non-business dates, e.g. [2026-12-24]
  hours: "08:00-18:00"               # end exclusive

# Roles in addition to those in people.yaml; rules address them as role(NAME).
roles:
  exec-team: [kim]

# Where a notification goes whose recipient cannot be resolved (unassigned owner, no manager).
fallback_recipient: "role(sop-lead)"

# Hears about sopwatch's own problems: rejected edits, template failures, failed sends.
admin: ops-admin@example.com

# Refuse (and report) recipients outside these domains, so a typo never mails a stranger.
allowed_domains: [example.com]

# Rollout safety: ignore episodes that fired before this date (uncomment before going live on a
# register full of old overdue work).
# start_date: %TODAY%

rules: [rules/]                      # files or folders of *.yaml
templates: templates/                # overrides; the built-ins are used where absent

# Mail goes to a maildir folder until you configure a server: open outbox/new/*.eml to read it.
delivery:
  type: maildir
  path: outbox/
  from: "sopwatch <sopwatch@example.com>"   # also the organizer of calendar holds
  # For an SMTP relay (the password comes from the environment variable named here):
  # type: smtp
  # host: smtp.example.com
  # port: 587
  # starttls: true
  # user: sopwatch@example.com
  # password_env: SOPWATCH_SMTP_PASSWORD

state: state.db                      # sopwatch's memory (SQLite)
interval: 5m                         # how often the daemon evaluates

# One email per recipient with their pending `via: digest` items (recipient-local time).
digests:
  - {id: weekly, schedule: "mon 08:00"}

# Prometheus metrics served by `sopwatch run` at http://HOST:PORT/metrics.
# metrics: {port: 9464, host: 127.0.0.1}
"""

PEOPLE = """\
# The people directory.
#   id        how the register and the rules refer to a person (an email address works too)
#   name      shown in greetings
#   email     where sopwatch writes
#   manager   the id of the person's manager: manager(owner) in a rule escalates to them
#   timezone  IANA name; mail is delivered in this zone's business hours (default: config's)
#   roles     role(NAME) in a rule reaches everyone holding the role
people:
  - id: kim
    name: Kim Weber
    email: kim@example.com
    roles: [exec-team]

  - id: lee
    name: Lee Morgan
    email: lee@example.com
    manager: kim
    roles: [sop-lead]

  - id: dana
    name: Dana Fischer
    email: dana@example.com
    manager: kim

  - id: sam
    name: Sam Patel
    email: sam@example.com
    manager: lee

  - id: alex
    name: Alex Novak
    email: alex@example.com
    manager: dana
"""

CYCLES = """\
# The S&OP cycle calendar. `template` generates one cycle per month:
#   from, to   the first and the last month (YYYY-MM), inclusive: extend `to` as time goes by
#   cycle_id   strftime pattern of each cycle's id; "%Y-%m" gives e.g. %CYCLE%, the value of the
#              register's `cycle` column
#   phases     `start` and `end` are business-day numbers of the month (1 = the first business
#              day, -1 = the last) on the business calendar of config.yaml; `end` is the cutoff
#              (the end of that day)
#   meeting    optional: "HH:MM" on the phase's end day, or {day: N, time: "HH:MM"}
# Rules refer to phases as cycle.<phase>.start|end|meeting, e.g. cycle.data_gathering.end.
#
# Explicit cycles override generated ones with the same id:
# cycles:
#   - id: "%CYCLE%"
#     phases: [{id: exec_review, start: %TODAY%, end: %TODAY%, meeting: "%TODAY%T09:00"}]
template:
  from: "%FROM%"
  to: "%TO%"
  cycle_id: "%Y-%m"
  phases:
    - {id: data_gathering, start: 1, end: 3}                   # forecasts and capacity plans due
    - {id: demand_review, start: 4, end: 6, meeting: "10:00"}  # consensus demand plan
    - {id: supply_review, start: 7, end: 9, meeting: "14:00"}  # constrained supply plan
    - {id: pre_sop, start: 10, end: 11, meeting: "10:00"}      # options and recommendation
    - id: exec_review                                          # executive S&OP: decisions
      start: 12
      end: 13
      meeting: {day: 13, time: "09:00"}
"""

RULE_HEADER = "# yaml-language-server: $schema=../schema/rules.schema.json\n"

RULES = {
    "approvals.yaml": """\
#
# Stale approvals: requests nobody has answered. `status_since` is when the status last changed
# (the register's status_changed_at where present, otherwise when sopwatch first saw it).
rules:
  - id: stale-approval
    description: Approval requests with no answer after 2 business days
    severity: warning
    when:                                  # every key must hold; terminal actions never match
      kind: approval
      status: pending_approval
    fire_at: status_since + 2 business days
    escalation:
      - notify: [approver]                 # step 0 at fire_at: the built-in reminder
      - after: 2 business days             # measured from fire_at
        notify: ["manager(approver)"]
        cc: [owner]
        calendar_hold: {start: "fire_at + 3 business days", duration: 30m, title: Decide the approval}
      - after: 4 business days
        notify: ["role(sop-lead)"]
        via: digest                        # listed in the weekly digest instead of an email
    repeat: 1 business day                 # re-send the current step while unanswered
    notify_resolved: true
""",
    "deadlines.yaml": """\
#
# Missed deadlines. A due date without a time means the end of that day.
rules:
  - id: missed-deadline
    description: Open work past its due date
    severity: warning
    when:
      status: [open, in_progress, blocked]     # a list means "one of"
      kind: {ne: input}                        # cycle inputs have their own rule (inputs.yaml)
      owner: {empty: false}                    # unassigned work: see ownership.yaml
    fire_at: due
    escalation:
      - notify: [owner]
      - after: 2 business days
        notify: ["manager(owner)"]
        cc: [owner]
    repeat: 2 business days
    notify_resolved: true
""",
    "ownership.yaml": """\
#
# Decisions nobody owns: the owner cannot be reminded, so the S&OP lead hears first.
rules:
  - id: unassigned-decision
    description: Decisions without an owner one business day after they were raised
    severity: critical
    when:
      kind: decision
      owner: {empty: true}
    fire_at: created_at + 1 business day     # first_seen works for registers without created_at
    escalation:
      - notify: ["role(sop-lead)"]
        cc: [raised_by]
      - after: 2 business days
        notify: ["manager(raised_by)"]
        cc: ["role(sop-lead)"]
    repeat: 2 business days
    notify_resolved: true                     # assigning an owner ends the episode
""",
    "inputs.yaml": """\
#
# Cycle inputs (forecasts, capacity plans, supplier confirmations) still missing the business
# day before the data-gathering cutoff of their cycle (see cycles.yaml).
rules:
  - id: missing-cycle-input
    description: Cycle inputs not yet submitted the day before the data-gathering cutoff
    severity: warning
    when:
      kind: input
      status: [open, in_progress, blocked]
    fire_at: cycle.data_gathering.end - 1 business day
    escalation:
      - notify: [owner]
      - after: 1 business day                 # the cutoff has passed
        notify: ["manager(owner)"]
        cc: ["role(sop-lead)"]
    repeat: 1 business day
    notify_resolved: true
""",
}

REMINDER_TEMPLATE = """\
{#-
  An override of the built-in `reminder` plain-text body (step 0 of every rule that does not
  name another template). Delete this file to go back to the built-in. The subject and the HTML
  part still come from the built-ins, so messages about one action keep threading.

  Files here are named NAME.subject.j2, NAME.txt.j2 and NAME.html.j2; built-in names are
  reminder, escalation, resolved, hold, cancel and digest, and a rule step can use its own name
  with `template: NAME`.

  Variables (strict: a misspelt name fails the render, and sopwatch then sends the built-in and
  tells the admin; `sopwatch validate` renders every override to catch that early):
    recipient.name      the person this copy is addressed to
    action.id, action.title, action.due, action.owner, ...   every register column by name
    deadline            {at, overdue, by} or None when the action has no due date
    rule.description    the rule's description
    alert.age           how long ago the rule fired ("3 days")
    alert.repeats       0 for the first send of a step
  Dates print in the recipient's timezone with the `localtime` filter.
  Preview:  sopwatch preview reminder --action A-2 --config config.yaml
-#}
Hello {{ recipient.name }},

{{ rule.description or "An item in the S&OP action register needs your attention" }}:

  {{ action.id }}  {{ action.title }}
{% if deadline %}
  Due: {{ action.due | localtime("date") }}{% if deadline.overdue %} ({{ deadline.by }} ago){% endif %}

{% endif %}

sopwatch first flagged this {{ alert.age }} ago.{% if alert.repeats %} This is reminder number {{ alert.repeats + 1 }}.{% endif %}


Please update the item in the action register, or tell the S&OP lead if it is stuck.

--
sopwatch
"""

TEMPLATES_README = """\
# Template overrides

Files here replace sopwatch's built-in message templates by name: `NAME.subject.j2` (keep it
the same for every message about one action, so they thread), `NAME.txt.j2` and `NAME.html.j2`.
A file that is absent falls back to the built-in one. `reminder.txt.j2` shows the variables.
"""


# Every canonical field, in the order people read a register.
REGISTER_HEADERS = (
    "id",
    "kind",
    "title",
    "status",
    "owner",
    "approver",
    "raised_by",
    "cycle",
    "phase",
    "due",
    "priority",
    "team",
    "impact",
    "tags",
    "parent",
    "link",
    "created_at",
    "updated_at",
    "status_changed_at",
    "approval_requested_at",
    "decided_at",
)
assert sorted(REGISTER_HEADERS) == sorted(CANONICAL_FIELDS)


@dataclass(frozen=True)
class Scaffold:
    folder: Path
    files: tuple[Path, ...]


def _month(day: date, offset: int) -> str:
    index = day.year * 12 + day.month - 1 + offset
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _register(today: date) -> str:
    """Example rows dated around ``today``: one for each starter rule, one done, one not yet due."""
    cycle = _month(today, 0)
    # The input is late for the data-gathering cutoff (business day 3) of its cycle: this month's
    # once that has passed, otherwise last month's, so `check` shows it on any day.
    input_cycle = cycle if today.day >= 8 else _month(today, -1)

    def ago(days: int) -> str:
        return (today - timedelta(days=days)).isoformat()

    rows = [
        {
            "id": "A-1",
            "kind": "approval",
            "title": "Approve the consensus demand plan",
            "status": "pending_approval",
            "owner": "sam",
            "approver": "dana",
            "raised_by": "sam",
            "cycle": cycle,
            "phase": "demand_review",
            "due": ago(-5),
            "created_at": ago(8),
            "status_changed_at": ago(6),
            "priority": "P1",
            "team": "Demand Planning",
        },
        {
            "id": "A-2",
            "kind": "action",
            "title": "Confirm supplier capacity for the promotion",
            "status": "in_progress",
            "owner": "alex",
            "raised_by": "lee",
            "cycle": cycle,
            "phase": "supply_review",
            "due": ago(2),
            "created_at": ago(12),
            "priority": "P1",
            "team": "Procurement",
            "tags": "promo,capacity",
        },
        {
            "id": "A-3",
            "kind": "decision",
            "title": "Decide whether to build stock early for the promotion",
            "status": "open",
            "raised_by": "sam",
            "cycle": cycle,
            "phase": "exec_review",
            "created_at": ago(4),
            "priority": "P1",
            "impact": "high",
            "tags": "promo",
        },
        {
            "id": "A-4",
            "kind": "input",
            "title": "Submit the statistical forecast",
            "status": "open",
            "owner": "sam",
            "raised_by": "lee",
            "cycle": input_cycle,
            "phase": "data_gathering",
            "created_at": ago(20),
            "priority": "P2",
            "team": "Demand Planning",
        },
        {
            "id": "A-5",
            "kind": "action",
            "title": "Update the safety-stock parameters",
            "status": "done",
            "owner": "alex",
            "cycle": cycle,
            "due": ago(2),
            "created_at": ago(15),
            "priority": "P3",
        },
        {
            "id": "A-6",
            "kind": "action",
            "title": "Prepare the S&OP pack for the executive meeting",
            "status": "open",
            "owner": "lee",
            "parent": "A-3",
            "cycle": cycle,
            "phase": "exec_review",
            "due": ago(-10),
            "created_at": ago(1),
            "priority": "P2",
            "link": "https://example.com/sop/pack",
        },
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(REGISTER_HEADERS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def files(
    timezone: str = "UTC", today: date | None = None, config_name: str = "config.yaml"
) -> dict[str, str]:
    """Relative path -> text of every file ``init`` writes; the config is ``config_name``."""
    today = today or datetime.now(ZoneInfo(timezone)).date()  # the organisation's today

    def fill(text: str) -> str:
        return (
            text.replace("config.yaml", config_name)  # the comments that name the config file
            .replace("%TODAY%", today.isoformat())
            .replace("%TIMEZONE%", timezone)
            .replace("%CYCLE%", _month(today, 0))
            .replace("%FROM%", _month(today, -1))
            .replace("%TO%", _month(today, 12))
        )

    result = {
        config_name: fill(CONFIG),
        "people.yaml": PEOPLE,
        "register.csv": _register(today),
        "cycles.yaml": fill(CYCLES),
        **{f"rules/{name}": RULE_HEADER + text for name, text in RULES.items()},
        "templates/reminder.txt.j2": fill(REMINDER_TEMPLATE),
        "templates/README.md": TEMPLATES_README,
    }
    for name, schema in schemas().items():
        result[f"schema/{name}"] = render(schema)
    return result


def scaffold(
    folder: Path,
    *,
    force: bool = False,
    timezone: str = "UTC",
    today: date | None = None,
    config_name: str = "config.yaml",
) -> Scaffold:
    """Write the starter setup into ``folder`` (the config as ``config_name``); a non-empty folder
    needs ``force``."""
    try:
        check_timezone(timezone)
    except ValueError as exc:
        raise SopwatchError(str(exc)) from None
    if folder.exists() and not folder.is_dir():
        raise SopwatchError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise SopwatchError(
            f"{folder} is not empty: choose a new folder, or use --force to write the starter files "
            "into it (files with the same names are overwritten, others are left alone)"
        )
    written = []
    for relative, text in files(timezone, today, config_name).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return Scaffold(folder, tuple(written))
