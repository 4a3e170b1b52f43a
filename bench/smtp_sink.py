"""A loopback SMTP server (aiosmtpd) in a process of its own, for the delivery benchmark.

    python bench/smtp_sink.py PORT [CERT KEY]

Prints ``ready`` once it listens (with CERT and KEY it requires STARTTLS), counts the messages it
accepts, and on SIGTERM prints that count and exits; the benchmark reads its CPU time from /proc.
A real relay never shares the sender's process: run in a thread of the benchmark, the server and
the client took turns on one interpreter lock, and the figures measured that contention more than
either side.
"""

from __future__ import annotations

import signal
import ssl
import sys
from typing import Any

from aiosmtpd.controller import Controller


class Counter:
    received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        Counter.received += 1
        return "250 OK"


def main(argv: list[str]) -> None:
    port = int(argv[0])
    options: dict[str, Any] = {}
    if len(argv) == 3:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(argv[1], argv[2])
        options = {"tls_context": context, "require_starttls": True}
    # Blocked before the server thread starts, so SIGTERM reaches only sigwait below.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    controller = Controller(Counter(), hostname="127.0.0.1", port=port, **options)
    controller.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM})
    controller.stop()
    print(Counter.received, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
