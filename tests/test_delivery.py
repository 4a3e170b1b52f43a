"""Delivery against real loopback SMTP servers (aiosmtpd), the maildir transport, and retry timing."""

from __future__ import annotations

import asyncio
import email
import itertools
import mailbox
import random
import ssl
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import pytest
import smtp_server
from daemon_setup import in_delivery_order
from pydantic import ValidationError
from smtp_server import Certs, RecordingHandler, SilentServer, SmtpServer

from sopwatch.config.schema import DeliveryConfig
from sopwatch.delivery import (
    MaildirTransport,
    OutgoingMessage,
    SendResult,
    SmtpTransport,
    make_transport,
)
from sopwatch.delivery.retry import BASE, CAP, MAX_ATTEMPTS, ceiling, exhausted, next_attempt
from sopwatch.errors import ConfigError

# Fixtures come from the reusable module, explicitly (tests/conftest.py belongs to others).
certs = smtp_server.certs
plain_server = smtp_server.plain_server
starttls_server = smtp_server.starttls_server
smtps_server = smtp_server.smtps_server

T = TypeVar("T")
SENDER = "sopwatch@example.com"
USER, PASSWORD = "sopwatch", "s3cret-Pa55word"


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    """Every test talks to the network through this, so nothing can hang the suite."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def message(id: int, *recipients: str, subject: str = "Reminder") -> OutgoingMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = f"sopwatch <{SENDER}>"
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = f"{subject} {id}"
    msg["Message-ID"] = f"<msg-{id}@sopwatch.test>"
    msg.set_content(f"Action A-{id} is overdue.\n.\nA line with a lone dot above.\n")
    return OutgoingMessage(id=id, sender=SENDER, recipients=tuple(recipients), data=msg.as_bytes())


def transport(server: SmtpServer | SilentServer, **kwargs: Any) -> SmtpTransport:
    kwargs.setdefault("starttls", False)
    kwargs.setdefault("tls", False)
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("local_hostname", "localhost")
    return SmtpTransport(server.host, server.port, **kwargs)


async def send(t: SmtpTransport, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
    try:
        return await t.send_batch(messages)
    finally:
        await t.close()


def delivered_ids(handler: RecordingHandler) -> list[str]:
    return [
        email.message_from_bytes(m.content, policy=policy.default)["Message-ID"] for m in handler.messages
    ]


# --- plain SMTP ---------------------------------------------------------------------------------


def test_batch_of_20_goes_over_one_connection(plain_server: SmtpServer) -> None:
    batch = [message(i, f"user{i}@example.com") for i in range(20)]
    results = run(send(transport(plain_server, concurrency=1), batch))

    assert [r.id for r in results] == list(range(20))
    assert all(r.accepted == (f"user{r.id}@example.com",) and r.error is None for r in results)
    assert plain_server.handler.connections == 1
    assert delivered_ids(plain_server.handler) == [f"<msg-{i}@sopwatch.test>" for i in range(20)]
    first = plain_server.handler.messages[0]
    assert first.mail_from == SENDER and not first.tls
    # The lone dot in the body survived dot-stuffing both ways.
    body = email.message_from_bytes(first.content, policy=policy.default).get_content()
    assert "\n.\n" in body.replace("\r\n", "\n")


def test_8bit_body_is_announced_as_8bitmime_and_ascii_is_not(plain_server: SmtpServer) -> None:
    accented = EmailMessage(policy=policy.SMTP)
    accented["From"], accented["To"], accented["Subject"] = SENDER, "ana@example.com", "Überfällig"
    accented.set_content("Die Freigabe für Zürich ist überfällig.\n", cte="8bit")
    data = accented.as_bytes()
    assert not data.isascii()  # the body travels as raw UTF-8, not quoted-printable
    batch = [OutgoingMessage(1, SENDER, ("ana@example.com",), data), message(2, "bo@example.com")]
    results = run(send(transport(plain_server), batch))

    assert all(r.error is None for r in results)
    body_options = {
        email.message_from_bytes(m.content)["To"]: [o for o in m.mail_options if o.startswith("BODY=")]
        for m in plain_server.handler.messages
    }
    assert body_options == {"ana@example.com": ["BODY=8BITMIME"], "bo@example.com": []}
    arrived = next(m for m in plain_server.handler.messages if b"ana@" in m.content)
    assert "Zürich" in email.message_from_bytes(arrived.content, policy=policy.default).get_content()


def test_concurrency_bounds_connections_and_sends_each_message_once(plain_server: SmtpServer) -> None:
    batch = [message(i, f"user{i}@example.com") for i in range(20)]
    results = run(send(transport(plain_server, concurrency=4), batch))

    assert all(r.error is None for r in results)
    assert plain_server.handler.connections == 4
    assert sorted(delivered_ids(plain_server.handler)) == sorted(
        f"<msg-{i}@sopwatch.test>" for i in range(20)
    )


def test_small_batch_opens_no_more_connections_than_messages(plain_server: SmtpServer) -> None:
    results = run(send(transport(plain_server, concurrency=4), [message(1, "a@example.com")]))
    assert results[0].accepted == ("a@example.com",)
    assert plain_server.handler.connections == 1


def test_per_recipient_refusals_split_and_others_still_receive(plain_server: SmtpServer) -> None:
    plain_server.handler.refuse.update(
        {"gone@example.com": "550 5.1.1 no such user", "busy@example.com": "451 4.3.0 try later"}
    )
    msg = message(7, "ok@example.com", "gone@example.com", "busy@example.com", "ok2@example.com")
    [result] = run(send(transport(plain_server), [msg]))

    assert result.error is None
    assert result.accepted == ("ok@example.com", "ok2@example.com")
    assert result.permanent == {"gone@example.com": "550 5.1.1 no such user"}
    assert result.temporary == {"busy@example.com": "451 4.3.0 try later"}
    [received] = plain_server.handler.messages
    assert received.rcpt_tos == ("ok@example.com", "ok2@example.com")


def test_all_recipients_refused(plain_server: SmtpServer) -> None:
    plain_server.handler.refuse.update(
        {"gone@example.com": "550 5.1.1 no such user", "busy@example.com": "451 4.3.0 try later"}
    )
    batch = [message(1, "gone@example.com", "busy@example.com"), message(2, "fine@example.com")]
    first, second = run(send(transport(plain_server, concurrency=1), batch))

    assert first.accepted == () and first.error is None
    assert first.permanent == {"gone@example.com": "550 5.1.1 no such user"}
    assert first.temporary == {"busy@example.com": "451 4.3.0 try later"}
    # The envelope was reset: the next message on the same connection still goes through.
    assert second.accepted == ("fine@example.com",)
    assert [m.rcpt_tos for m in plain_server.handler.messages] == [("fine@example.com",)]
    assert plain_server.handler.connections == 1


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("552 5.3.4 message too big", True), ("451 4.3.0 queue full, try later", False)],
)
def test_data_refusal_fails_the_whole_message(plain_server: SmtpServer, reply: str, permanent: bool) -> None:
    plain_server.handler.data_reply = reply
    [result] = run(send(transport(plain_server), [message(3, "a@example.com", "b@example.com")]))

    assert result.accepted == ()
    assert result.error == reply
    assert result.error_permanent is permanent
    assert plain_server.handler.messages == []


def test_server_down_then_back_retry_succeeds(plain_server: SmtpServer) -> None:
    batch = [message(i, f"user{i}@example.com") for i in range(5)]
    plain_server.stop()
    failed = run(send(transport(plain_server, concurrency=2), batch))

    assert [r.id for r in failed] == list(range(5))
    assert all(r.error and not r.error_permanent and r.accepted == () for r in failed)
    assert str(plain_server.port) in (failed[0].error or "")

    plain_server.start()  # same port, same handler
    retried = run(send(transport(plain_server, concurrency=2), batch))
    assert all(r.error is None and len(r.accepted) == 1 for r in retried)
    assert sorted(delivered_ids(plain_server.handler)) == sorted(f"<msg-{i}@sopwatch.test>" for i in range(5))


def test_one_transport_reconnects_on_the_next_batch(plain_server: SmtpServer) -> None:
    t = transport(plain_server, concurrency=1)

    async def scenario() -> tuple[list[SendResult], list[SendResult]]:
        first = await t.send_batch([message(1, "a@example.com")])
        await asyncio.to_thread(plain_server.stop)
        down = await t.send_batch([message(2, "a@example.com")])
        await asyncio.to_thread(plain_server.start)
        up = await t.send_batch([message(2, "a@example.com")])
        await t.close()
        return first + down, up

    before, after = run(scenario())
    assert before[0].accepted == ("a@example.com",) and before[1].error
    assert after[0].accepted == ("a@example.com",)
    assert delivered_ids(plain_server.handler) == ["<msg-1@sopwatch.test>", "<msg-2@sopwatch.test>"]


def test_silent_server_times_out_instead_of_hanging() -> None:
    with SilentServer() as server:
        [result] = run(send(transport(server, timeout=0.5), [message(1, "a@example.com")]), timeout=5)
    assert result.error and not result.error_permanent
    assert result.accepted == ()


# --- TLS and AUTH -------------------------------------------------------------------------------


def test_starttls_and_auth(certs: Certs) -> None:
    with SmtpServer(mode="starttls", certs=certs, auth=(USER, PASSWORD)) as server:
        t = transport(
            server,
            starttls=True,
            user=USER,
            password=PASSWORD,
            tls_context=certs.client_context(),
            concurrency=1,
        )
        results = run(send(t, [message(1, "a@example.com"), message(2, "b@example.com")]))

    assert all(r.error is None for r in results), results
    assert [(m.tls, m.user) for m in server.handler.messages] == [(True, USER), (True, USER)]
    assert server.handler.connections == 1


def test_wrong_password_is_an_error_without_the_password(
    certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "hunter2-wrong-Secret"
    with SmtpServer(mode="starttls", certs=certs, auth=(USER, PASSWORD)) as server:
        t = transport(server, starttls=True, user=USER, password=wrong, tls_context=certs.client_context())
        with caplog.at_level("DEBUG"):
            results = run(send(t, [message(1, "a@example.com"), message(2, "b@example.com")]))

    assert all(r.error and "authentication failed" in r.error and not r.error_permanent for r in results)
    assert all(wrong not in (r.error or "") for r in results)
    assert wrong not in caplog.text and wrong not in repr(t)
    assert server.handler.messages == []


def test_starttls_required_but_not_offered_sends_nothing_in_clear(
    plain_server: SmtpServer, certs: Certs
) -> None:
    t = transport(plain_server, starttls=True, tls_context=certs.client_context())
    results = run(send(t, [message(1, "a@example.com")]))

    assert results[0].error and "STARTTLS" in results[0].error
    assert results[0].accepted == ()
    assert plain_server.handler.connections == 1  # it did connect, and then walked away
    assert plain_server.handler.messages == []


def test_starttls_with_untrusted_certificate_sends_nothing(starttls_server: SmtpServer) -> None:
    # The system CAs do not know the test CA: the handshake must fail, with no fallback to plain.
    t = transport(starttls_server, starttls=True, tls_context=ssl.create_default_context())
    [result] = run(send(t, [message(1, "a@example.com")]))

    assert result.error and "certificate" in result.error.lower()
    assert not result.error_permanent
    assert starttls_server.handler.messages == []


def test_starttls_false_never_upgrades_and_server_requiring_it_refuses(starttls_server: SmtpServer) -> None:
    # starttls: false means no opportunistic upgrade either; this server insists, so MAIL is refused.
    [result] = run(send(transport(starttls_server), [message(1, "a@example.com")]))
    assert result.error and result.error.startswith("530")
    assert not result.error_permanent  # a configuration problem: the message is fine once it is fixed
    assert starttls_server.handler.messages == []


def test_auth_required_but_no_user_configured_is_temporary(certs: Certs) -> None:
    with SmtpServer(mode="starttls", certs=certs, auth=(USER, PASSWORD)) as server:
        t = transport(server, starttls=True, tls_context=certs.client_context())
        [result] = run(send(t, [message(1, "a@example.com")]))
    assert result.error and result.error.startswith("530") and not result.error_permanent
    assert server.handler.messages == []


def test_implicit_tls(smtps_server: SmtpServer, certs: Certs) -> None:
    t = transport(smtps_server, tls=True, tls_context=certs.client_context())
    [result] = run(send(t, [message(1, "a@example.com")]))

    assert result.accepted == ("a@example.com",)
    assert [m.tls for m in smtps_server.handler.messages] == [True]


def test_implicit_tls_with_untrusted_certificate_sends_nothing(smtps_server: SmtpServer) -> None:
    t = transport(smtps_server, tls=True, tls_context=ssl.create_default_context())
    [result] = run(send(t, [message(1, "a@example.com")]))

    assert result.error and "certificate" in result.error.lower()
    assert smtps_server.handler.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd ignores implicit TLS
def test_implicit_tls_with_auth(certs: Certs) -> None:
    with SmtpServer(mode="smtps", certs=certs, auth=(USER, PASSWORD)) as server:
        t = transport(server, tls=True, user=USER, password=PASSWORD, tls_context=certs.client_context())
        [result] = run(send(t, [message(1, "a@example.com")]))
    assert result.accepted == ("a@example.com",)
    assert [(m.tls, m.user) for m in server.handler.messages] == [(True, USER)]


# --- maildir ------------------------------------------------------------------------------------


def test_maildir_writes_parseable_messages(tmp_path: Path) -> None:
    box_path = tmp_path / "outbox"
    batch = [message(1, "a@example.com", "b@example.com"), message(2, "c@example.com")]
    results = run(MaildirTransport(box_path).send_batch(batch))

    assert [r.accepted for r in results] == [("a@example.com", "b@example.com"), ("c@example.com",)]
    assert all(r.error is None for r in results)
    files = sorted((box_path / "new").iterdir())
    assert len(files) == 2
    parsed = [email.message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    assert sorted(p["Message-ID"] for p in parsed) == ["<msg-1@sopwatch.test>", "<msg-2@sopwatch.test>"]
    assert all("is overdue" in p.get_content() for p in parsed)
    assert len(mailbox.Maildir(box_path, create=False)) == 2


def test_maildir_folders_are_made_with_their_parents(tmp_path: Path) -> None:
    """`path: demo-out/maildir` in a fresh copy of a setup: nothing of it exists yet."""
    box_path = tmp_path / "demo-out" / "maildir"
    [result] = run(MaildirTransport(box_path).send_batch([message(1, "a@example.com")]))
    assert result.error is None and result.accepted == ("a@example.com",)
    assert len(mailbox.Maildir(box_path, create=False)) == 1


def test_maildir_messages_read_back_in_the_order_written(tmp_path: Path) -> None:
    # The tests read a maildir in the order it was written (daemon_setup.in_delivery_order); plain
    # file-name order is not that order within a second (the microseconds are not zero-padded).
    batch = [message(n, "a@example.com") for n in range(1, 301)]
    run(MaildirTransport(tmp_path / "outbox").send_batch(batch))
    files = in_delivery_order(tmp_path / "outbox" / "new")
    subjects = [email.message_from_bytes(f.read_bytes(), policy=policy.default)["Subject"] for f in files]
    assert subjects == [f"Reminder {n}" for n in range(1, 301)]


def test_maildir_unwritable_reports_a_temporary_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the maildir should be")
    [result] = run(MaildirTransport(blocker).send_batch([message(1, "a@example.com")]))
    assert result.error and not result.error_permanent and result.accepted == ()


# --- make_transport -----------------------------------------------------------------------------


def smtp_config(**values: Any) -> DeliveryConfig:
    return DeliveryConfig.model_validate(
        {"type": "smtp", "host": "mail.example.com", "starttls": False, **values}
    )


def test_make_transport_maildir_is_relative_to_the_config_folder(tmp_path: Path) -> None:
    t = make_transport(DeliveryConfig.model_validate({"path": "box/"}), tmp_path, {})
    assert isinstance(t, MaildirTransport) and t.path == tmp_path / "box"


def test_make_transport_reads_the_password_from_env() -> None:
    cfg = smtp_config(starttls=True, user=USER, password_env="SOPWATCH_SMTP_PASSWORD")
    t = make_transport(cfg, Path("."), {"SOPWATCH_SMTP_PASSWORD": PASSWORD})
    assert isinstance(t, SmtpTransport)
    assert (t.host, t.port, t.starttls, t.tls, t.user) == ("mail.example.com", 587, True, False, USER)
    assert t._password == PASSWORD
    assert PASSWORD not in repr(t)


def test_make_transport_missing_password_env_names_the_variable() -> None:
    cfg = smtp_config(starttls=True, user=USER, password_env="SOPWATCH_SMTP_PASSWORD")
    with pytest.raises(ConfigError, match="SOPWATCH_SMTP_PASSWORD"):
        make_transport(cfg, Path("."), {"OTHER": "x"})


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"host": None}, "host is required"),
        ({"starttls": True, "tls": True}, "not both"),
        ({"user": USER, "password_env": "P"}, "encrypted"),  # no TLS: the password would travel in clear
        ({"tls": True, "user": USER}, "user is set but password_env"),
        ({"tls": True, "password_env": "P"}, "password_env is set but user is not"),
    ],
)
def test_an_unsafe_or_incomplete_smtp_config_is_refused_when_it_loads(
    values: dict[str, Any], match: str
) -> None:
    """In the config model, so `validate` reports it at its place and a running daemon refuses the edit."""
    with pytest.raises(ValidationError, match=match):
        smtp_config(**values)


def test_make_transport_default_ports() -> None:
    ports = [
        make_transport(smtp_config(**flags), Path("."), {}).port  # type: ignore[attr-defined]
        for flags in ({}, {"starttls": True}, {"tls": True}, {"tls": True, "port": 2465})
    ]
    assert ports == [25, 587, 465, 2465]


# --- retry --------------------------------------------------------------------------------------


def test_backoff_grows_then_caps() -> None:
    ceilings = [ceiling(n) for n in range(1, 12)]
    assert ceilings[:4] == [BASE, 2 * BASE, 4 * BASE, 8 * BASE]
    assert all(a <= b for a, b in itertools.pairwise(ceilings))
    assert ceilings[-1] == CAP and ceiling(10_000) == CAP


def test_next_attempt_jitter_stays_within_bounds() -> None:
    rng = random.Random(42)
    now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    for attempts in range(1, 30):
        delays = [next_attempt(attempts, now, rng) - now for _ in range(200)]
        assert all(timedelta(0) <= d <= ceiling(attempts) for d in delays)
        # Full jitter: spread across the range, not bunched at the ceiling.
        assert min(delays) < ceiling(attempts) / 4 and max(delays) > ceiling(attempts) * 3 / 4
    late = [next_attempt(20, now, rng) - now for _ in range(200)]
    assert max(late) <= CAP


def test_next_attempt_is_deterministic_for_a_seed() -> None:
    now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    a = [next_attempt(n, now, random.Random(7)) for n in range(1, 6)]
    b = [next_attempt(n, now, random.Random(7)) for n in range(1, 6)]
    assert a == b


def test_attempts_are_exhausted_at_max() -> None:
    assert not exhausted(MAX_ATTEMPTS - 1)
    assert exhausted(MAX_ATTEMPTS)
