"""SMTP delivery with aiosmtplib: one connection per worker for a whole batch.

Guarantees the outbox relies on:
- a message is reported accepted for a recipient only after the server said 250 to it;
- 4xx answers and network trouble are temporary, 5xx answers permanent, per recipient where the
  server refused recipients and for the whole message where it refused MAIL or DATA;
- with ``starttls`` or ``tls`` set, nothing (neither the password nor a message) is ever sent
  before TLS is up and the certificate verified — a TLS failure is an error, never a fallback;
- the password never appears in a log line or an error text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Sequence

import aiosmtplib

from sopwatch.delivery.base import OutgoingMessage, SendResult, is_permanent

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
# "530 Must issue STARTTLS / Authentication required" refuses the session, not the message: it
# goes away once the admin fixes the configuration, so it must not fail the outbox for good.
SESSION_REFUSALS = frozenset({530})


class _ConnectFailure(Exception):
    """Could not get a usable (connected, encrypted as configured, logged-in) session."""


class SmtpTransport:
    """Sends batches over up to ``concurrency`` connections, kept open between batches.

    A batch's workers share one queue of messages. A connection that served its batch well is kept
    idle for the next one and checked with NOOP first (servers drop idle sessions, and the daemon's
    ticks are minutes apart); one that failed is closed, so the next batch reconnects.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls: bool,
        tls: bool,
        user: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        concurrency: int = 4,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if starttls and tls:
            raise ValueError("starttls and tls are exclusive: tls means implicit TLS (SMTPS, port 465)")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.host = host
        self.port = port
        self.starttls = starttls
        self.tls = tls
        self.user = user
        self._password = password
        self.timeout = timeout
        self.concurrency = concurrency
        self.tls_context = tls_context if tls_context is not None else ssl.create_default_context()
        self.local_hostname = local_hostname
        self._open: set[aiosmtplib.SMTP] = set()
        # Healthy connections kept between batches: a TLS handshake and AUTH per connection, not
        # per batch. Each is checked with NOOP before reuse; servers drop idle sessions.
        self._idle: list[aiosmtplib.SMTP] = []

    def __repr__(self) -> str:  # spelled out so no future field dump can show the password
        return f"SmtpTransport({self.host}:{self.port}, starttls={self.starttls}, tls={self.tls}, user={self.user!r})"

    @property
    def encrypted(self) -> bool:
        return self.starttls or self.tls

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        queue: deque[tuple[int, OutgoingMessage]] = deque(enumerate(messages))
        results: dict[int, SendResult] = {}
        failures: list[str] = []
        # A shared queue rather than fixed slices: when one connection dies the healthy ones take
        # over its remaining messages; when all die, what is left gets the connection error.
        workers = min(self.concurrency, len(messages))
        await asyncio.gather(*(self._worker(queue, results, failures) for _ in range(workers)))
        error = failures[-1] if failures else "not attempted: no SMTP connection available"
        return [results.get(i) or SendResult(m.id, error=error) for i, m in enumerate(messages)]

    async def close(self) -> None:
        self._idle.clear()
        for client in list(self._open):
            await self._quit(client)

    async def _checkout(self) -> aiosmtplib.SMTP:
        """An idle connection that still answers NOOP, else a new one."""
        while self._idle:
            client = self._idle.pop()
            try:
                if client.is_connected:
                    await client.noop(timeout=min(self.timeout, 5.0))
                    return client
            except Exception:  # a stale session, or one from a closed event loop: drop it
                pass
            self._open.discard(client)
            with contextlib.suppress(Exception):
                client.close()
        return await self._connect()

    async def _worker(
        self,
        queue: deque[tuple[int, OutgoingMessage]],
        results: dict[int, SendResult],
        failures: list[str],
    ) -> None:
        try:
            client = await self._checkout()
        except _ConnectFailure as exc:
            failures.append(str(exc))
            return
        healthy = False
        try:
            while queue:
                index, message = queue.popleft()
                results[index] = await self._send_one(client, message)
                if not client.is_connected:
                    # Dropped mid-batch (or a 421): leave the rest to the other workers or,
                    # if none is left, to the next batch.
                    failures.append(results[index].error or "connection closed by the server")
                    return
            healthy = True
        finally:
            if healthy and client.is_connected:
                self._idle.append(client)
            else:
                await self._quit(client)

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.tls,
            # Explicit both ways: False never upgrades (no opportunistic STARTTLS), True requires it.
            start_tls=self.starttls,
            tls_context=self.tls_context,
            local_hostname=self.local_hostname,
        )
        where = f"{self.host}:{self.port}"
        self._open.add(client)
        try:
            await client.connect()
            # Defence in depth: whatever the library did, refuse to talk in clear when TLS is configured.
            if self.encrypted and client.get_transport_info("sslcontext") is None:
                raise _ConnectFailure(f"SMTP {where}: TLS is configured but the session is not encrypted")
            if self.user is not None:
                await client.login(self.user, self._password or "")
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()
        except _ConnectFailure:
            await self._quit(client)
            raise
        except aiosmtplib.SMTPAuthenticationError as exc:
            await self._quit(client)
            raise _ConnectFailure(
                self._scrub(f"SMTP {where}: authentication failed for user {self.user!r}: {_reply(exc)}")
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # ssl.SSLError is an OSError: a bad certificate lands here, and the session is dropped.
            await self._quit(client)
            raise _ConnectFailure(self._scrub(f"SMTP {where}: {_describe(exc)}")) from None
        except Exception as exc:  # same reasoning as in _send_one: report, never abort the batch
            await self._quit(client)
            raise _ConnectFailure(
                self._scrub(f"SMTP {where}: unexpected {type(exc).__name__}: {exc}")
            ) from None
        return client

    async def _send_one(self, client: aiosmtplib.SMTP, message: OutgoingMessage) -> SendResult:
        recipients = list(message.recipients)
        try:
            refused, _ = await client.sendmail(
                message.sender, recipients, message.data, mail_options=self._mail_options(client, message)
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # aiosmtplib raises only when every recipient was refused; sort them like partial refusals.
            return _split(message, {e.recipient: (e.code, e.message) for e in exc.recipients})
        except aiosmtplib.SMTPResponseException as exc:
            # MAIL FROM or DATA refused: the whole message, whatever the recipients.
            text = self._scrub(_reply(exc))
            log.warning("message %d refused: %s", message.id, text)
            if exc.code == 421:
                # "Closing transmission channel": aiosmtplib closes on a 421 to most commands but
                # not to the end of DATA. Sending the next message into a channel the server is
                # closing can lose its 250, and the retry then delivers it twice.
                client.close()
            permanent = is_permanent(exc.code) and exc.code not in SESSION_REFUSALS
            return SendResult(message.id, error=text, error_permanent=permanent)
        except (aiosmtplib.SMTPNotSupported, ValueError) as exc:
            # A bad address or SMTPUTF8 the server lacks: retrying cannot help.
            text = self._scrub(f"cannot send: {exc}")
            log.warning("message %d: %s", message.id, text)
            return SendResult(message.id, error=text, error_permanent=True)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Disconnects and timeouts: the message may or may not have arrived; at-least-once says retry.
            client.close()
            text = self._scrub(f"SMTP {self.host}:{self.port}: {_describe(exc)}")
            log.warning("message %d: %s", message.id, text)
            return SendResult(message.id, error=text)
        except Exception as exc:
            # A library surprise must not abort the batch: the results of messages already
            # accepted would be lost and they would all go out again.
            client.close()
            text = self._scrub(f"SMTP {self.host}:{self.port}: unexpected {type(exc).__name__}: {exc}")
            log.error("message %d: %s", message.id, text)
            return SendResult(message.id, error=text)
        return _split(message, {r: (response.code, response.message) for r, response in refused.items()})

    @staticmethod
    def _mail_options(client: aiosmtplib.SMTP, message: OutgoingMessage) -> list[str]:
        options = []
        # bytes.isascii runs in C: a generator over every byte cost more than the SMTP exchange.
        if not message.data.isascii() and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        if not all(a.isascii() for a in (message.sender, *message.recipients)):
            options.append("SMTPUTF8")  # refused by aiosmtplib if unsupported -> permanent
        return options

    async def _quit(self, client: aiosmtplib.SMTP) -> None:
        self._open.discard(client)
        if not client.is_connected:
            return
        try:
            await client.quit(timeout=min(self.timeout, 5.0))
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()

    def _scrub(self, text: str) -> str:
        """Server replies are echoed into errors; make sure none of them can carry the password."""
        if self._password:
            text = text.replace(self._password, "***")
        return text


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {' '.join(exc.message.split())}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _reply(exc)
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLError | aiosmtplib.SMTPConnectError) and "certificate" in text.lower():
        return f"TLS certificate rejected: {text}"
    return text


def _split(message: OutgoingMessage, refused: dict[str, tuple[int, str]]) -> SendResult:
    temporary: dict[str, str] = {}
    permanent: dict[str, str] = {}
    for recipient, (code, text) in refused.items():
        reply = f"{code} {' '.join(text.split())}"
        (permanent if is_permanent(code) else temporary)[recipient] = reply
    accepted = tuple(r for r in message.recipients if r not in refused)
    if refused:
        log.info("message %d: %d recipient(s) refused: %s", message.id, len(refused), refused)
    return SendResult(message.id, accepted=accepted, temporary=temporary, permanent=permanent)
