"""Pydantic models of the files admins write: ``config.yaml`` and rules files.

They check shape and types only; meaning (time expressions, conditions, recipients) is checked
when the rules are compiled, where the register's columns and the directory are known.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from sopwatch.core.business import WEEKDAYS


def _listify(value: Any) -> Any:
    """Admins write ``notify: owner`` as often as ``notify: [owner]``."""
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], BeforeValidator(_listify)]


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
        default_factory=dict, description="Customer kind spelling -> canonical kind."
    )
    date_format: str | None = Field(None, description="strptime format for dates; ISO 8601 always works.")
    encoding: str = Field("utf-8-sig", description="CSV text encoding.")
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field delimiter.")

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
    country: str | None = Field(
        None, description="ISO country code for the `holidays` package.", examples=["DE"]
    )
    subdiv: str | None = Field(None, description="Subdivision, e.g. a German state.", examples=["BY"])


_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class BusinessCalendarConfig(Strict):
    workdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: list(WEEKDAYS[:5]), min_length=1
    )
    holidays: HolidaySource | None = None
    closures: list[date] = Field(default_factory=list, description="Extra non-business dates.")
    hours: str = Field("08:00-18:00", description="Delivery window, recipient-local; end exclusive.")

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = _HOURS.match(value)
        if not match or match.group(1, 2) >= match.group(3, 4):
            raise ValueError(f"hours must look like '08:00-18:00' with start before end, got {value!r}")
        return value


class DeliveryConfig(Strict):
    type: Literal["maildir", "smtp"] = "maildir"
    path: str = Field("outbox/", description="Maildir folder (maildir delivery).")
    from_: str = Field(
        "sopwatch <sopwatch@localhost>", alias="from", description="Sender and calendar organizer."
    )
    host: str | None = None
    port: int | None = None
    starttls: bool = False
    tls: bool = False
    user: str | None = None
    password_env: str | None = Field(
        None, description="Name of the environment variable holding the SMTP password."
    )


class DigestConfig(Strict):
    id: str
    schedule: str = Field(description="Weekday(s) and recipient-local time.", examples=["mon 08:00"])


class Config(Strict):
    timezone: Annotated[str, BeforeValidator(check_timezone)] = "UTC"
    register_: RegisterConfig = Field(alias="register")
    people: str | None = None
    calendar: str | None = None
    business_calendar: BusinessCalendarConfig = Field(default_factory=BusinessCalendarConfig)
    roles: dict[str, StrList] = Field(default_factory=dict)
    fallback_recipient: str | None = None
    admin: str | None = None
    start_date: date | None = None
    allowed_domains: list[str] | None = None
    terminal_statuses: list[str] | None = None
    rules: StrList = Field(default_factory=lambda: ["rules/"])
    templates: str | None = None
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    state: str = "state.db"
    interval: str = "5m"
    max_messages_per_tick: int = Field(200, ge=1)
    digests: list[DigestConfig] = Field(default_factory=list)


class CalendarHoldSpec(Strict):
    start: str = Field(
        description="Time expression for the hold's start.", examples=["fire_at + 1 business day"]
    )
    duration: str = Field("30m", description="Length of the hold.")
    busy: bool = Field(False, description="Show as busy; by default the hold does not block the day.")
    title: str | None = None


class StepSpec(Strict):
    after: str | None = Field(None, description="Delay from fire_at.", examples=["2 business days"])
    notify: StrList = Field(
        min_length=1, description="owner, approver, manager(X), role(name), or an address."
    )
    cc: StrList = Field(default_factory=list)
    template: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Template name (letters, digits, - and _); built-in by default.",
    )
    via: Literal["email", "digest"] = "email"
    calendar_hold: CalendarHoldSpec | None = None


class RuleSpec(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Unique slug.")
    description: str = ""
    severity: Literal["info", "warning", "critical"] = "warning"
    when: dict[str, Any] = Field(default_factory=dict)
    fire_at: str | None = None
    escalation: list[StepSpec] = Field(min_length=1)
    repeat: str | None = None
    notify_resolved: bool = False


class RulesFile(Strict):
    rules: list[RuleSpec]
