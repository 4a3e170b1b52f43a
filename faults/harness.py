"""What the fault scenarios share: result rows, setups, SMTP servers, daemon processes, state probes.

The SMTP servers are the test suite's own (``tests/smtp_server.py``: aiosmtpd in a thread, a
throwaway CA), extended here with handlers that are slow, flaky or refusing, and with a raw
socket server that speaks just enough SMTP to catch a client that talks in clear text.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import ipaddress
import json
import logging
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
smtp_server: Any = importlib.import_module("smtp_server")  # the test suite's aiosmtpd helpers
# aiosmtpd logs a deprecation notice of its own at every AUTH; the server side's chatter is noise here.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)
# In-process engines log every refusal they meet; the rows say what matters (pytest still captures).
logging.getLogger("sopwatch").addHandler(logging.NullHandler())

USER, PASSWORD, PASSWORD_ENV = "u", "faults-Pa55word", "SOPWATCH_TEST_PW"
ENV = {**os.environ, PASSWORD_ENV: PASSWORD, "PYTHONIOENCODING": "utf-8"}
PEOPLE = 20
LEAD = "lead@example.com"
ADMIN = "admin@example.com"
MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.I | re.M)
ACTION_HEADER = re.compile(rb"^X-Sopwatch-Action:[ \t]*(\S+)", re.I | re.M)
TICK_LINE = re.compile(r"INFO tick \S+: \d+ actions, ")


# --- results ------------------------------------------------------------------------------------


@dataclass
class Result:
    """One row of the table: what was tried, what held, the figures, and the checks behind them.

    ``checks`` maps a statement to whether it held; the row is ok when every check held. A
    ``known_gap`` row records a behaviour that is known to be wrong and is reported, not hidden.
    """

    scenario: str
    tried: str
    held: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    known_gap: str | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)  # results.json only, not the table

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, held in self.checks.items() if not held]

    def check(self, name: str, held: bool) -> bool:
        self.checks[name] = bool(held)
        return bool(held)

    @property
    def status(self) -> str:
        if not self.ok:
            return "FAILED: " + "; ".join(self.failed) if self.checks else "FAILED: no checks ran"
        return "known gap" if self.known_gap else "held"

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "tried": self.tried,
            "held": self.held,
            "figures": self.figures,
            "checks": self.checks,
            "known_gap": self.known_gap,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "details": self.details,
        }


@contextlib.contextmanager
def timed(result: Result) -> Iterator[Result]:
    started = time.monotonic()
    try:
        yield result
    except Exception as exc:  # a scenario that blows up is a failed row, not a lost table
        result.check(f"scenario ran without an exception ({type(exc).__name__}: {exc})", False)
    finally:
        result.seconds = time.monotonic() - started


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"sopwatch-faults-{prefix}-") as folder:
        yield Path(folder)


# --- setups -------------------------------------------------------------------------------------


def person(i: int) -> str:
    return f"p{i:02d}@example.com"


def write_people(folder: Path) -> None:
    (folder / "people.yaml").write_text(
        "people:\n"
        + "".join(f"  - {{id: p{i:02d}, name: Person {i}, email: {person(i)}}}\n" for i in range(PEOPLE)),
        encoding="utf-8",
    )


def write_register(folder: Path, actions: int, due: dt.date | None = None) -> None:
    due = due or (dt.date.today() - dt.timedelta(days=3))  # the daemon runs on the real clock
    (folder / "register.csv").write_text(
        "id,title,status,owner,due\n"
        + "".join(f"A-{i:04d},Action {i},open,p{i % PEOPLE:02d},{due.isoformat()}\n" for i in range(actions)),
        encoding="utf-8",
    )


def write_smtp_setup(
    folder: Path,
    port: int,
    ca: Path | None,
    actions: int,
    *,
    admin: str | None = None,
    cc: bool = False,
    starttls: bool = True,
    tls: bool = False,
    auth: bool = True,
    repeat: str | None = None,
) -> Path:
    """A setup like tests/test_daemon.py's: open all week and day, every action overdue; returns config."""
    folder.mkdir(parents=True, exist_ok=True)
    write_people(folder)
    write_register(folder, actions)
    (folder / "rules").mkdir(exist_ok=True)
    step = f"{{notify: [owner], cc: [{LEAD}]}}" if cc else "{notify: [owner]}"
    extra = f", repeat: {repeat}" if repeat else ""
    (folder / "rules" / "overdue.yaml").write_text(
        f"rules:\n  - {{id: overdue, when: {{status: open}}, fire_at: due, escalation: [{step}]{extra}}}\n",
        encoding="utf-8",
    )
    lines = [
        "timezone: UTC",
        "register: {type: csv, path: register.csv}",
        "people: people.yaml",
        'business_calendar: {workdays: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}',
        "rules: [rules/]",
        "interval: 1m",
        "max_messages_per_tick: 5000",
        "state: state.db",
        "delivery:",
        "  type: smtp",
        "  from: sopwatch <sopwatch@example.com>",
        "  host: 127.0.0.1",
        f"  port: {port}",
        f"  starttls: {'true' if starttls else 'false'}",
        f"  tls: {'true' if tls else 'false'}",
    ]
    if admin:
        lines.insert(1, f"admin: {admin}")
    if auth:
        lines += [f"  user: {USER}", f"  password_env: {PASSWORD_ENV}"]
    if ca is not None:
        lines.append(f"  ca_file: {ca}")
    config = folder / "config.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def write_maildir_setup(folder: Path, actions: int, *, repeat: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_people(folder)
    write_register(folder, actions)
    (folder / "rules").mkdir(exist_ok=True)
    extra = f", repeat: {repeat}" if repeat else ""
    (folder / "rules" / "overdue.yaml").write_text(
        f"rules:\n  - {{id: overdue, when: {{status: open}}, fire_at: due, escalation: [{{notify: [owner]}}]{extra}}}\n",
        encoding="utf-8",
    )
    config = folder / "config.yaml"
    config.write_text(
        "timezone: UTC\n"
        "register: {type: csv, path: register.csv}\n"
        "people: people.yaml\n"
        'business_calendar: {workdays: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}\n'
        "rules: [rules/]\n"
        "interval: 1m\n"
        "max_messages_per_tick: 5000\n"
        "state: state.db\n"
        'delivery: {type: maildir, path: maildir, from: "sopwatch <sopwatch@example.com>"}\n',
        encoding="utf-8",
    )
    return config


# --- SMTP servers -------------------------------------------------------------------------------


def make_certs(folder: Path) -> Any:
    return smtp_server.make_certs(folder)


def tls_server(certs: Any, handler: Any) -> Any:
    """STARTTLS required, AUTH required over TLS: a production relay."""
    return smtp_server.SmtpServer(handler, mode="starttls", certs=certs, auth=(USER, PASSWORD))


@dataclass
class TrackingHandler(smtp_server.RecordingHandler):  # type: ignore[misc,name-defined]
    """Records (Message-ID, recipient) per accepted message; optionally slow, flaky or refusing.

    ``delay`` seconds per DATA; ``flaky`` is the chance a MAIL/RCPT/DATA command is refused with
    451 (a quarter of those refusals are 421 and the connection is closed); ``size_refused`` are
    actions whose DATA is answered 552.
    """

    delay: float = 0.0
    flaky: float = 0.0
    seed: int = 0
    size_refused: frozenset[str] = frozenset()
    ids: list[tuple[str, str]] = field(default_factory=list)  # (Message-ID, recipient) per accepted copy
    refusals: Counter[str] = field(default_factory=Counter)
    after_421: int = 0  # commands a client sent on a channel after the server said 421 on it

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _refuse(self, server: Any, command: str) -> str | None:
        if getattr(server, "faults_said_421", False):  # on the protocol object: one per connection
            with self.lock:
                self.after_421 += 1
        if self.flaky <= 0:
            return None
        with self.lock:
            roll, kind = self.rng.random(), self.rng.random()
        if roll >= self.flaky:
            return None
        if kind < 0.25:
            with self.lock:
                self.refusals["421"] += 1
            server.faults_said_421 = True
            # Say 421 and hang up, as a server shutting down does.
            asyncio.get_running_loop().call_later(0.01, server.transport.close)
            return "421 4.3.2 service shutting down, closing transmission channel"
        with self.lock:
            self.refusals[f"451 {command}"] += 1
        return "451 4.3.0 temporary failure, try again later"

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        refusal = self._refuse(server, "MAIL")
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        refusal = self._refuse(server, "RCPT")
        if refusal:
            return refusal
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        content = bytes(envelope.original_content or b"")
        action = ACTION_HEADER.search(content)
        if action and action.group(1).decode() in self.size_refused:
            with self.lock:
                self.refusals["552"] += 1
            return "552 5.3.4 message size exceeds fixed maximum message size"
        refusal = self._refuse(server, "DATA")
        if refusal:
            return refusal
        reply = await super().handle_DATA(server, session, envelope)
        found = MESSAGE_ID.search(content)
        message_id = found.group(1).decode() if found else "<none>"
        with self.lock:
            self.ids.extend((message_id, rcpt.lower()) for rcpt in envelope.rcpt_tos)
        return str(reply)

    def unique(self) -> int:
        with self.lock:
            return len({mid for mid, _ in self.ids})

    def copies(self) -> Counter[tuple[str, str]]:
        with self.lock:
            return Counter(self.ids)


class RawSmtpServer:
    """Speaks just enough SMTP to accept a whole message in clear text, and records every byte.

    ``mode="plain"``: no STARTTLS offered, AUTH PLAIN/LOGIN accepted, MAIL/RCPT/DATA accepted
    (a server a downgrade attack would put in the path). ``mode="broken-tls"``: STARTTLS offered
    and answered 220, then garbage instead of a TLS handshake.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.received = bytearray()
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)  # accept() wakes up to notice stop()
        self.port = int(self.sock.getsockname()[1])
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawSmtpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        reader = conn.makefile("rb")
        try:
            conn.sendall(b"220 raw.example.com ESMTP\r\n")
            in_data = False
            for line in reader:
                with self.lock:
                    self.received.extend(line)
                if in_data:
                    if line == b".\r\n":
                        in_data = False
                        conn.sendall(b"250 OK queued\r\n")
                    continue
                verb = line.split(b" ", 1)[0].strip().upper()
                if verb in (b"EHLO", b"HELO"):
                    offer = b"250-STARTTLS\r\n" if self.mode == "broken-tls" else b""
                    conn.sendall(
                        b"250-raw.example.com\r\n" + offer + b"250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
                    )
                elif verb == b"STARTTLS" and self.mode == "broken-tls":
                    conn.sendall(b"220 2.0.0 go ahead\r\n")
                    conn.sendall(os.urandom(64) + b"\r\n")  # not a TLS ServerHello
                    with self.lock:
                        self.received.extend(conn.recv(65536))
                    return
                elif verb == b"AUTH":
                    conn.sendall(b"235 2.7.0 authenticated\r\n")
                elif verb == b"DATA":
                    in_data = True
                    conn.sendall(b"354 go ahead\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 OK\r\n")
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                reader.close()
                conn.close()


def make_leaf(folder: Path, ca_folder: Path, names: list[str]) -> tuple[Path, Path]:
    """A leaf certificate signed by the CA in ``ca_folder`` (from make_certs) for other names only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    # make_certs does not keep the CA key, so build a CA of our own and return its PEM too.
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "faults CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder / "ca.pem", folder / "server.pem"


# --- running sopwatch ---------------------------------------------------------------------------


def sopwatch(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sopwatch", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=ENV,
        timeout=timeout,
        check=False,
    )


def spawn_daemon(config: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """``sopwatch run`` in loop mode; its log goes to a file so no pipe can fill up."""
    return subprocess.Popen(
        [sys.executable, "-m", "sopwatch", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=ENV,
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> int | None:
    """SIGTERM and wait; SIGKILL if it does not go. Returns the exit status of the SIGTERM stop."""
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return None


def wait_for(condition: Callable[[], Any], timeout: float, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def tick_lines(log_path: Path) -> list[str]:
    try:
        text = log_path.read_text("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if TICK_LINE.search(line)]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process from /proc (psutil is not installed)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rpartition(")")[2].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


# --- the state file -----------------------------------------------------------------------------


def connect(state: Path) -> sqlite3.Connection:
    db = sqlite3.connect(state, timeout=30)
    db.row_factory = sqlite3.Row
    return db


def outbox_rows(state: Path) -> list[dict[str, Any]]:
    with contextlib.closing(connect(state)) as db:
        return [
            dict(row)
            for row in db.execute(
                "SELECT id, key, episode, step, repeat, kind, action, recipients, status, attempts, next_attempt,"
                " last_error, accepted, refused, message FROM outbox ORDER BY id"
            )
        ]


def integrity(state: Path) -> str:
    with contextlib.closing(sqlite3.connect(state, timeout=30)) as db:
        return ", ".join(str(row[0]) for row in db.execute("PRAGMA integrity_check"))


def fast_forward(state: Path) -> int:
    """Move every retry row's next_attempt into the past: what waiting out the backoff would do."""
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    with contextlib.closing(sqlite3.connect(state, timeout=30)) as db, db:
        return db.execute("UPDATE outbox SET next_attempt = ? WHERE status = 'retry'", (past,)).rowcount


def message_id_of(data: bytes | None) -> str | None:
    found = MESSAGE_ID.search(data or b"")
    return found.group(1).decode() if found else None


def statuses(rows: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(row["status"] for row in rows))


def recipients_of(row: dict[str, Any]) -> list[str]:
    return [str(r).lower() for r in json.loads(row["accepted"] or "[]")]


def intended(row: dict[str, Any]) -> list[str]:
    """Every address a row was meant for (to and cc), lower-cased."""
    data = json.loads(row["recipients"] or "{}")
    return [str(r).lower() for r in (*data.get("to", []), *data.get("cc", []))]
