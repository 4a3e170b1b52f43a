"""Real SMTP servers on 127.0.0.1 for delivery tests (aiosmtpd in a background thread).

Modes: ``plain``; ``starttls`` (self-signed certificate, STARTTLS required before anything
else); ``smtps`` (implicit TLS). Any mode can require AUTH with one user/password (LOGIN and
PLAIN; over TLS only). The ``RecordingHandler`` keeps every accepted message with its envelope,
whether the session was encrypted and who had logged in, counts connections, and refuses the
recipients or DATA it is told to. ``SmtpServer.stop()``/``start()`` take the server down and
bring it back on the same port.

Bind the fixtures explicitly in a test module (tests/ has no conftest of ours), e.g.
``import smtp_server`` then ``certs = smtp_server.certs`` (an assignment, so ruff sees no F811).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServerProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"
Mode = Literal["plain", "starttls", "smtps"]


# --- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path  # the test CA clients must trust
    cert: Path  # server leaf certificate for 127.0.0.1 / localhost, signed by the CA
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certs(folder: Path) -> Certs:
    """A throwaway CA and a leaf for 127.0.0.1, generated now (no certificate files in the repo)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("sopwatch test CA"))
        .issuer_name(_name("sopwatch test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    certs = Certs(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    certs.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certs.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certs


# --- the handler --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    tls: bool  # the session was encrypted when DATA arrived
    user: str | None  # the authenticated login, if any
    mail_options: tuple[str, ...] = ()  # MAIL FROM parameters, e.g. BODY=8BITMIME


@dataclass
class RecordingHandler:
    """aiosmtpd handler; its hooks run in the server thread, so shared state sits behind a lock."""

    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> full reply, e.g. "550 5.1.1 ..."
    data_reply: str | None = None  # answer DATA with this instead of accepting
    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def connected(self) -> None:
        with self.lock:
            self.connections += 1

    async def handle_RCPT(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.refuse.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServerProtocol, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        auth = session.auth_data
        user = auth.login.decode() if session.authenticated and isinstance(auth, LoginPassword) else None
        assert server.transport is not None
        received = Received(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=bytes(envelope.original_content or b""),
            tls=server.transport.get_extra_info("sslcontext") is not None,
            user=user,
            mail_options=tuple(envelope.mail_options),
        )
        with self.lock:
            self.messages.append(received)
        return "250 Message accepted for delivery"


def password_authenticator(user: str, password: str) -> Any:
    def authenticate(
        server: SMTPServerProtocol, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticate


# --- the server ---------------------------------------------------------------------------------


class _CountingController(Controller):
    def __init__(self, handler: RecordingHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.counting = False  # Controller.start() opens one probe connection: not a client's

    def factory(self) -> SMTPServerProtocol:
        # create_server calls the factory once per accepted connection.
        if self.counting:
            self.handler.connected()
        return super().factory()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class SmtpServer:
    def __init__(
        self,
        handler: RecordingHandler | None = None,
        *,
        mode: Mode = "plain",
        certs: Certs | None = None,
        auth: tuple[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        if mode != "plain" and certs is None:
            raise ValueError(f"{mode} needs certificates")
        self.handler = handler or RecordingHandler()
        self.mode = mode
        self.certs = certs
        self.auth = auth
        self.host = HOST
        self.port = port or free_port()
        self._controller: _CountingController | None = None

    def _make_controller(self) -> _CountingController:
        kwargs: dict[str, Any] = {"hostname": HOST, "port": self.port, "ready_timeout": 5.0}
        if self.mode == "starttls":
            assert self.certs is not None
            kwargs.update(tls_context=self.certs.server_context(), require_starttls=True)
        elif self.mode == "smtps":
            assert self.certs is not None
            kwargs.update(ssl_context=self.certs.server_context())
        if self.auth is not None:
            kwargs.update(
                authenticator=password_authenticator(*self.auth),
                auth_required=True,
                # Implicit TLS is encrypted from the first byte, but aiosmtpd only knows about STARTTLS.
                auth_require_tls=self.mode != "smtps",
            )
        return _CountingController(self.handler, **kwargs)

    def start(self) -> SmtpServer:
        assert self._controller is None, "already running"
        # A Controller cannot be restarted (its loop is closed on stop): make a new one, same port.
        controller = self._make_controller()
        controller.start()
        controller.counting = True
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SilentServer:
    """Accepts TCP connections and never says a word: the client must time out, not hang."""

    def __init__(self) -> None:
        self.host = HOST
        self._sock = socket.socket()
        self._sock.bind((HOST, 0))
        self._sock.listen(8)
        self.port = int(self._sock.getsockname()[1])

    def __enter__(self) -> SilentServer:
        return self  # the kernel completes the handshakes from the listen backlog

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def plain_server() -> Iterator[SmtpServer]:
    with SmtpServer(mode="plain") as server:
        yield server


@pytest.fixture
def starttls_server(certs: Certs) -> Iterator[SmtpServer]:
    with SmtpServer(mode="starttls", certs=certs) as server:
        yield server


@pytest.fixture
def smtps_server(certs: Certs) -> Iterator[SmtpServer]:
    with SmtpServer(mode="smtps", certs=certs) as server:
        yield server
