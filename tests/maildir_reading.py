"""What a test setup's maildir received, parsed with the standard library's email parser.

Shared by the daemon tests (``import maildir_reading`` works because pytest puts ``tests/`` on the
path, as for ``smtp_server``).
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path


def delivered(config: Path) -> list[tuple[bytes, EmailMessage]]:
    """Every message in ``maildir/new`` next to ``config``, in file-name order, raw and parsed."""
    new = config.parent / "maildir" / "new"
    files = sorted(new.iterdir()) if new.exists() else []
    out = []
    for path in files:
        raw = path.read_bytes()
        out.append((raw, email.message_from_bytes(raw, policy=email.policy.default)))
    return out


def messages(config: Path) -> list[EmailMessage]:
    return [message for _raw, message in delivered(config)]


def kind_of(message: EmailMessage) -> str:
    return str(message["X-Sopwatch-Kind"])


def of_kind(config: Path, kind: str) -> list[EmailMessage]:
    return [m for m in messages(config) if kind_of(m) == kind]
