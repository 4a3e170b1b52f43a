"""Delivery into a local maildir: the embedded default, so the demo needs no mail server."""

from __future__ import annotations

import asyncio
import logging
import mailbox
from collections.abc import Sequence
from pathlib import Path

from sopwatch.delivery.base import OutgoingMessage, SendResult

log = logging.getLogger(__name__)


class MaildirTransport:
    """Writes each message once into ``path/new``; every recipient counts as accepted."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        # mailbox does blocking file I/O (fsync-free, but a network share can still stall).
        return await asyncio.to_thread(self._write_all, list(messages))

    def _write_all(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        try:
            # Maildir creates the folder itself but not its parents (`path: demo-out/maildir` in a fresh setup).
            self.path.parent.mkdir(parents=True, exist_ok=True)
            box = mailbox.Maildir(self.path, factory=None, create=True)
        except OSError as exc:
            error = f"cannot open maildir {self.path}: {exc}"
            log.warning("%s", error)
            return [SendResult(m.id, error=error) for m in messages]
        results = []
        for message in messages:
            try:
                # Maildir.add writes to tmp/ and renames into new/, so a reader never sees half a file.
                box.add(message.data)
            except OSError as exc:  # disk full, permissions: worth retrying later
                error = f"cannot write to maildir {self.path}: {exc}"
                log.warning("message %d: %s", message.id, error)
                results.append(SendResult(message.id, error=error))
            else:
                results.append(SendResult(message.id, accepted=tuple(message.recipients)))
        return results

    async def close(self) -> None:
        return None
