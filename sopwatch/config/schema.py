"""Pydantic models of the files admins write: ``config.yaml`` and rules files.

They check shape and types only; meaning (time expressions, conditions, recipients) is checked
when the rules are compiled, where the register's columns and the directory are known.

The ``description=`` and ``examples=`` of the fields are documentation only: ``sopwatch schema``
turns them into the JSON Schema editors use for completion and hover help.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sopwatch.core.addresses import address_problem, normalise_sender
from sopwatch.core.business import WEEKDAYS


def _listify(value: Any) -> Any:
    """Admins write ``notify: owner`` as often as ``notify: [owner]``."""
    return [value] if isinstance(value, str) else value


StrList = Annotated[
    list[str],
    BeforeValidator(_listify),
    # The JSON Schema says what admins may write: one string or a list of them.
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]

# Documentation for the editors only (the loaders parse these strings themselves).
DURATION_HELP = (
    "A duration: N minutes|hours|days|weeks|business days (singular too) or the short forms 30m 4h 2d 1w 3bd."
)
TIME_EXPRESSION_HELP = (
    "A time expression: an anchor (an action field such as due, created_at, status_since; "
    "cycle.<phase>.start|end|meeting; fire_at inside a step; now) followed by any number of "
    "+/- durations (N minutes|hours|days|weeks|business days, or 30m 4h 2d 1w 3bd)."
)
RECIPIENT_HELP = (
    "Recipients: a field holding a person (owner, approver, raised_by, ...), manager(X) (nestable), "
    "role(name), or a literal email address."
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def check_timezone(value: str) -> str:
    if not isinstance(value, str):  # ``timezone: 5`` made ZoneInfo raise TypeError: a traceback
        raise ValueError(f"expected an IANA timezone name such as Europe/Berlin, got {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (use an IANA name such as Europe/Berlin)") from None
    return value


class RegisterConfig(Strict):
    """The action register: decisions, actions, approvals and input submissions."""

    type: Literal["sqlite", "csv", "xlsx"] = Field("sqlite", description="Where the register lives.")
    path: str = Field(description="Register file, relative to the config file.", examples=["register.csv"])
    table: str = Field("actions", description="SQLite table holding the actions.")
    sheet: str | None = Field(None, description="XLSX sheet name; the first sheet when absent.")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Customer header -> canonical field.",
        examples=[{"Decision owner": "owner"}],
    )
    status_map: dict[str, str] = Field(
        default_factory=dict,
        description="Customer status spelling -> canonical status.",
        examples=[{"Waiting for approval": "pending_approval"}],
    )
    kind_map: dict[str, str] = Field(
        default_factory=dict,
        description="Customer kind spelling -> canonical kind.",
        examples=[{"Sign-off": "approval"}],
    )
    date_format: str | None = Field(
        None, description="strptime format for dates; ISO 8601 always works.", examples=["%d/%m/%Y"]
    )
    encoding: str = Field("utf-8-sig", description="CSV text encoding.")
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field delimiter.")
    max_shrink: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Shrink guard: the daemon refuses a new register snapshot with more than this "
        "fraction fewer actions than the last accepted one (an empty register after a non-empty one "
        "too), keeps the last accepted one and tells the admin; 1 turns the guard off.",
        examples=[0.5],
    )

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, value: str | None) -> str | None:
        """A bad format would otherwise be reported as an unparseable date on every row."""
        if value is None:
            return value
        if "%" not in value:
            raise ValueError(f"{value!r} has no strptime directives: write it like '%d/%m/%Y'")
        try:
            datetime.strptime("", value)
        except ValueError as exc:
            if "does not match" not in str(exc):
                raise ValueError(f"{value!r} is not a strptime format ({exc})") from None
        return value


class HolidaySource(Strict):
    """Public holidays from the `holidays` package and/or iCalendar (.ics) holiday calendars."""

    country: str | None = Field(
        None, description="ISO country code for the `holidays` package.", examples=["DE"]
    )
    subdiv: str | None = Field(None, description="Subdivision, e.g. a German state.", examples=["BY"])
    ics: StrList = Field(
        default_factory=list,
        description="iCalendar files (Outlook, Google) whose every event day is a non-business day; "
        "recurring events are expanded. Relative to the config file.",
        examples=[["holidays.ics"]],
    )


_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class BusinessCalendarConfig(Strict):
    """Which days are business days, and when mail may be delivered."""

    workdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: list(WEEKDAYS[:5]),
        min_length=1,
        description="Business weekdays.",
        examples=[["mon", "tue", "wed", "thu", "fri"]],
    )
    holidays: HolidaySource | None = Field(
        None, description="Public holidays by country and subdivision.", examples=[{"country": "DE"}]
    )
    closures: list[date] = Field(
        default_factory=list, description="Extra non-business dates.", examples=[["2026-12-24"]]
    )
    hours: str = Field(
        "08:00-18:00",
        description="Delivery window, recipient-local; end exclusive.",
        examples=["08:00-18:00"],
        json_schema_extra={"pattern": _HOURS.pattern},
    )

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = _HOURS.match(value)
        if not match or match.group(1, 2) >= match.group(3, 4):
            raise ValueError(f"hours must look like '08:00-18:00' with start before end, got {value!r}")
        return value


_MONTH_TEXT = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class CycleCalendarSource(Strict):
    """``calendar:``: a file, and for an .ics file how its events become phases.

    ``calendar: cycles.yaml`` is short for ``calendar: {path: cycles.yaml}``. The model is
    path-like (``os.fspath`` gives ``path``), so code that joins it to a folder keeps working.
    """

    path: str = Field(min_length=1, description="YAML or .ics file, relative to the config file.")
    phases: dict[str, str] | None = Field(
        None,
        description="(.ics) Regular expression searched for in each event's summary (or categories) "
        "-> phase id; the first match wins and unmatched events are ignored. Without it an event's "
        "summary in snake_case is its phase id.",
        examples=[{"Data gathering": "data_gathering", "Executive .*Review": "exec_review"}],
    )
    match: Literal["summary", "categories"] = Field(
        "summary", description="(.ics) What the `phases` patterns are matched against."
    )
    cycle_id: str = Field("%Y-%m", description="(.ics) strftime of a phase's start date naming its cycle.")
    from_: str | None = Field(
        None,
        alias="from",
        description="(.ics) First month of phases, e.g. 2026-01; from the file's earliest event when absent.",
    )
    to: str | None = Field(
        None,
        description="(.ics) Last month of phases; 3 years after the newest date in the file when absent.",
    )

    @field_validator("cycle_id")
    @classmethod
    def _cycle_id(cls, value: str) -> str:
        if "%" not in value:
            raise ValueError(f"{value!r} has no strftime directives: write it like '%Y-%m'")
        try:
            date(2026, 12, 1).strftime(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a strftime format ({exc})") from None
        return value

    @field_validator("from_", "to")
    @classmethod
    def _month(cls, value: str | None) -> str | None:
        if value is not None and not _MONTH_TEXT.match(value.strip()):
            raise ValueError(f"expected a month such as 2026-11, got {value!r}")
        return value

    def __fspath__(self) -> str:
        return self.path


def _calendar_source(value: Any) -> Any:
    if isinstance(value, str):
        return {"path": value}
    if value is None or isinstance(value, (dict, CycleCalendarSource)):
        return value
    raise ValueError(f"expected a file name or a mapping with `path:` and `phases:`, got {value!r}")


CalendarSetting = Annotated[
    CycleCalendarSource | None,
    BeforeValidator(_calendar_source, json_schema_input_type=str | CycleCalendarSource | None),
]


class DeliveryConfig(Strict):
    """Where mail goes: a maildir folder (no server needed) or an SMTP server."""

    type: Literal["maildir", "smtp"] = Field("maildir", description="maildir (a folder) or smtp.")
    path: str = Field("outbox/", description="Maildir folder (maildir delivery).")
    from_: str = Field(
        "sopwatch <sopwatch@localhost>",
        alias="from",
        description="Sender and calendar organizer.",
        examples=["sopwatch <sopwatch@example.com>"],
    )
    host: str | None = Field(None, description="SMTP server.", examples=["smtp.example.com"])
    port: int | None = Field(
        None, description="SMTP port; 465 with tls, 587 with starttls, else 25.", examples=[587]
    )
    starttls: bool = Field(
        False, description="Require STARTTLS (never attempted when false); set starttls or tls explicitly."
    )
    tls: bool = Field(False, description="Implicit TLS (SMTPS).")
    user: str | None = Field(None, description="SMTP AUTH user; AUTH without TLS is refused.")
    password_env: str | None = Field(
        None,
        description="Name of the environment variable holding the SMTP password.",
        examples=["SOPWATCH_SMTP_PASSWORD"],
    )
    ca_file: str | None = Field(
        None,
        description="PEM file of CA certificates to trust for the SMTP server's TLS certificate "
        "(e.g. an internal CA), relative to the config file; the system CAs when absent.",
    )

    @field_validator("from_")
    @classmethod
    def _one_sender(cls, value: str) -> str:
        return normalise_sender(value)

    @property
    def port_or_default(self) -> int:
        """The SMTP port: as written, else the one of the TLS mode."""
        return self.port if self.port is not None else 465 if self.tls else 587 if self.starttls else 25

    @model_validator(mode="after")
    def _smtp_is_complete_and_safe(self) -> DeliveryConfig:
        """What ``make_transport`` needs, checked where ``validate`` sees it (and a running daemon
        refuses the edit): only the password itself waits for the daemon's environment."""
        if self.type != "smtp":
            return self
        if not self.host:
            raise ValueError("host is required for SMTP delivery")
        # Plain text must be a decision, not what a forgotten key gives.
        if not {"starttls", "tls"} & self.model_fields_set:
            raise ValueError(
                "say whether SMTP uses TLS: starttls: true (port 587), tls: true (port 465), "
                "or starttls: false for a relay that offers no TLS"
            )
        if self.starttls and self.tls:
            raise ValueError(
                "set either starttls (upgrade on port 587) or tls (implicit TLS on port 465), not both"
            )
        if (self.user is None) != (self.password_env is None):
            missing = (
                "user"
                if self.user is None
                else "password_env (the environment variable holding the password)"
            )
            present = "password_env" if self.user is None else "user"
            raise ValueError(f"{present} is set but {missing} is not")
        if self.user is not None and not (self.starttls or self.tls):
            # Never put a password on the wire in clear text.
            raise ValueError("user needs starttls: true or tls: true so the password is encrypted")
        return self


class DigestConfig(Strict):
    """A digest: one email per recipient listing their pending `via: digest` items."""

    id: str = Field(description="The digest's name.", examples=["weekly"])
    schedule: str = Field(description="Weekday(s) and recipient-local time.", examples=["mon 08:00"])


class MetricsConfig(Strict):
    """Prometheus metrics over HTTP, served by `sopwatch run` (read at start; restart to change)."""

    port: int = Field(ge=1, le=65535, description="TCP port of the /metrics endpoint.", examples=[9464])
    host: str = Field(
        "127.0.0.1",
        description="Address to listen on; 0.0.0.0 for every interface (e.g. in a container).",
        examples=["127.0.0.1"],
    )


# A domain (example.com, localhost), or a leading dot for its subdomains (.example.com).
_DOMAIN = re.compile(r"^\.?[^\s@.,;:<>()\[\]\\\"']+(\.[^\s@.,;:<>()\[\]\\\"']+)*$")


class Config(Strict):
    """sopwatch's config file. Paths are relative to the config file's folder."""

    timezone: Annotated[str, BeforeValidator(check_timezone)] = Field(
        "UTC",
        description="The organisation's IANA timezone; naive register times are in it.",
        examples=["Europe/Berlin"],
    )
    register_: RegisterConfig = Field(alias="register", description=RegisterConfig.__doc__)
    people: str | None = Field(
        None,
        description="People directory: YAML `people: [{id, name, email, manager, timezone, roles}]` or CSV.",
        examples=["people.yaml"],
    )
    calendar: CalendarSetting = Field(
        None,
        description="Cycle calendar: YAML (explicit cycles and/or a monthly template) or an .ics export "
        "(Outlook, Google); a file name, or a mapping {path, phases, match, cycle_id, from, to}.",
        examples=["cycles.yaml", {"path": "sop.ics", "phases": {"Executive": "exec_review"}}],
    )
    business_calendar: BusinessCalendarConfig = Field(
        default_factory=BusinessCalendarConfig, description=BusinessCalendarConfig.__doc__
    )
    roles: dict[str, StrList] = Field(
        default_factory=dict,
        description="Role name -> person ids or addresses; merged with the people file's roles.",
        examples=[{"sop-lead": ["lee"]}],
    )
    fallback_recipient: str | None = Field(
        None,
        description="Where a `to` recipient that cannot be resolved goes. " + RECIPIENT_HELP,
        examples=["role(sop-lead)"],
    )
    admin: str | None = Field(
        None,
        description="Hears about sopwatch's own problems (rejected edits, template failures, failed sends).",
        examples=["ops-admin@example.com"],
    )
    start_date: date | None = Field(
        None,
        description="Rollout safety: ignore episodes whose fire_at is before this date.",
        examples=["2026-12-01"],
    )
    allowed_domains: list[str] | None = Field(
        None,
        min_length=1,
        description="Refuse and report any recipient outside these domains (case-insensitive). "
        "example.com allows exactly example.com; .example.com allows its subdomains (not example.com "
        "itself: list both for both).",
        examples=[["example.com", ".example.com"]],
    )
    terminal_statuses: list[str] | None = Field(
        None,
        description="Statuses that end all alerting (default: done cancelled approved rejected).",
        examples=[["done", "cancelled", "approved", "rejected"]],
    )
    rules: StrList = Field(
        default_factory=lambda: ["rules/"],
        description="Rules files or folders of *.yaml.",
        examples=[["rules/"]],
    )
    templates: str | None = Field(
        None,
        description="Folder of template overrides (NAME.subject.j2, NAME.txt.j2, NAME.html.j2).",
        examples=["templates/"],
    )
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig, description=DeliveryConfig.__doc__)
    state: str = Field("state.db", description="The SQLite state file.")
    interval: str = Field("5m", description="Daemon evaluation interval. " + DURATION_HELP, examples=["5m"])
    max_messages_per_tick: int = Field(
        200, ge=1, description="Cap on one evaluation's sends; the rest wait for the next tick."
    )
    digests: list[DigestConfig] = Field(
        default_factory=list,
        description="Digests and their schedules.",
        examples=[[{"id": "weekly", "schedule": "mon 08:00"}]],
    )
    metrics: MetricsConfig | None = Field(None, description=MetricsConfig.__doc__, examples=[{"port": 9464}])

    @field_validator("admin")
    @classmethod
    def _admin_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # `admin: ""` has always meant no admin
        problem = address_problem(value.strip())
        if problem is not None:
            raise ValueError(problem)
        return value.strip()

    @field_validator("allowed_domains")
    @classmethod
    def _allowed_domains(cls, value: list[str] | None) -> list[str] | None:
        """Normalised to lower case without a trailing dot; a typo here would refuse everyone."""
        if value is None:
            return value
        domains = []
        for entry in value:
            domain = entry.strip().lower().rstrip(".")
            if "@" in domain:
                raise ValueError(
                    f"{entry!r} is an address: write its domain, e.g. {domain.rpartition('@')[2]!r}"
                )
            if domain.startswith("*."):
                raise ValueError(f"{entry!r}: write {domain[1:]!r} to allow the subdomains of {domain[2:]!r}")
            if not _DOMAIN.match(domain):
                raise ValueError(f"{entry!r} is not a domain such as example.com or .example.com")
            domains.append(domain)
        return domains


class CalendarHoldSpec(Strict):
    """An iMIP calendar invitation sent with the step."""

    start: str = Field(
        description="Time expression for the hold's start. " + TIME_EXPRESSION_HELP,
        examples=["fire_at + 1 business day"],
    )
    duration: str = Field("30m", description="Length of the hold. " + DURATION_HELP, examples=["30m"])
    busy: bool = Field(False, description="Show as busy; by default the hold does not block the day.")
    title: str | None = Field(
        None, description="The event's title.", examples=["Decide the pending approval"]
    )


class StepSpec(Strict):
    """One escalation step, due at fire_at + after."""

    after: str | None = Field(
        None, description="Delay from fire_at. " + DURATION_HELP, examples=["2 business days"]
    )
    notify: StrList = Field(
        min_length=1,
        description="To recipients. " + RECIPIENT_HELP,
        examples=[["approver"], ["manager(owner)"], ["role(sop-lead)"]],
        json_schema_extra={"minItems": 1},
    )
    cc: StrList = Field(
        default_factory=list, description="Cc recipients. " + RECIPIENT_HELP, examples=[["owner"]]
    )
    template: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Template name (letters, digits, - and _); built-in by default.",
        examples=["approval-reminder"],
    )
    via: Literal["email", "digest"] = Field(
        "email", description="email, or digest (listed in the next digest)."
    )
    calendar_hold: CalendarHoldSpec | None = Field(None, description=CalendarHoldSpec.__doc__)


class RuleSpec(Strict):
    """A rule: when it holds for an action and fire_at has passed, the escalation runs."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Unique slug.", examples=["stale-approval"])
    description: str = Field("", description="What the rule is about; shown in messages and digests.")
    severity: Literal["info", "warning", "critical"] = Field(
        "warning", description="info, warning or critical."
    )
    when: dict[str, Any] = Field(
        default_factory=dict,
        description="Conditions, all of which must hold; only non-terminal actions are considered.",
        examples=[{"kind": "approval", "status": "pending_approval"}],
    )
    fire_at: str | None = Field(
        None,
        description="When the rule fires (as soon as `when` holds if absent). " + TIME_EXPRESSION_HELP,
        examples=["status_since + 2 business days", "due", "cycle.data_gathering.end - 1 business day"],
    )
    escalation: list[StepSpec] = Field(
        min_length=1, description="Escalation steps, in increasing order of `after`."
    )
    repeat: str | None = Field(
        None,
        description="Re-send the current step this often while unresolved. " + DURATION_HELP,
        examples=["1 business day"],
    )
    notify_resolved: bool = Field(False, description="Send a resolved notice when the episode ends.")


class RulesFile(Strict):
    """A sopwatch rules file."""

    rules: list[RuleSpec] = Field(description="The rules.")
