"""The narrow interface between the outbox and whatever carries mail: messages in, outcomes out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    id: int  # outbox row id
    sender: str  # envelope sender address (bare address)
    recipients: tuple[str, ...]
    data: bytes  # the full RFC 5322 message (already has Message-ID etc.)


@dataclass(frozen=True)
class SendResult:
    """One message's outcome.

    When ``error`` is set the whole message failed and no recipient received it; the caller
    retries every recipient unless ``error_permanent``. Otherwise the recipients are split
    between ``accepted``, ``temporary`` (retry) and ``permanent`` (mark failed).
    """

    id: int
    accepted: tuple[str, ...] = ()
    temporary: Mapping[str, str] = field(default_factory=dict)  # recipient -> "451 4.3.0 try later"
    permanent: Mapping[str, str] = field(default_factory=dict)  # recipient -> "550 5.1.1 no such user"
    error: str | None = None  # whole-message failure: connection error, timeout, TLS, 4xx on MAIL/DATA
    error_permanent: bool = False  # e.g. 552 size refusal for the whole message, 5xx on DATA


class Transport(Protocol):
    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """One result per message, in the same order; never raises for a delivery failure."""
        ...

    async def close(self) -> None: ...


def is_permanent(code: int) -> bool:
    """RFC 5321: 5xx is final; 4xx and anything odd (a broken server) deserves another try."""
    return 500 <= code < 600
