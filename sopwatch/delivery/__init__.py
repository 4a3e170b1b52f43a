"""Delivery of outbox messages: a maildir folder (the default) or SMTP.

The outbox hands a batch of ``OutgoingMessage`` to a ``Transport`` and gets one ``SendResult``
per message back; ``retry`` decides when temporary failures are tried again.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

from sopwatch.config.schema import DeliveryConfig
from sopwatch.delivery.base import OutgoingMessage, SendResult, Transport, is_permanent
from sopwatch.delivery.maildir import MaildirTransport
from sopwatch.delivery.smtp import SmtpTransport
from sopwatch.errors import ConfigError

__all__ = [
    "MaildirTransport",
    "OutgoingMessage",
    "SendResult",
    "SmtpTransport",
    "Transport",
    "is_permanent",
    "make_transport",
    "trusting",
]


def trusting(ca_file: Path) -> ssl.SSLContext:
    """A TLS client context that trusts the CA certificates in ``ca_file`` (PEM); ValueError says
    why it cannot. The loader calls it too, so that ``validate`` reports the file at its key."""
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:  # missing file, or not PEM certificates
        raise ValueError(f"{ca_file}: cannot load CA certificates ({exc})") from None


def make_transport(cfg: DeliveryConfig, base_dir: Path, env: Mapping[str, str]) -> Transport:
    """Build the configured transport; ``env`` is ``os.environ`` (passed in so tests need no monkeypatching)."""
    if cfg.type == "maildir":
        return MaildirTransport(Path(base_dir) / cfg.path)
    # DeliveryConfig checked host, TLS and the user/password_env pair when the config loaded.
    assert cfg.host is not None
    password: str | None = None
    if cfg.password_env is not None:
        password = env.get(cfg.password_env)
        if not password:  # an empty value is a deployment mistake, not a password
            raise ConfigError(
                f"the SMTP password environment variable {cfg.password_env} is not set or empty "
                "(named by delivery.password_env)"
            )
    tls_context: ssl.SSLContext | None = None
    if cfg.ca_file is not None:
        ca_file = Path(base_dir) / cfg.ca_file
        try:
            tls_context = trusting(ca_file)
        except ValueError as exc:
            raise ConfigError(f"delivery.ca_file {exc}") from None
    return SmtpTransport(
        cfg.host,
        cfg.port_or_default,
        starttls=cfg.starttls,
        tls=cfg.tls,
        user=cfg.user,
        password=password,
        tls_context=tls_context,
    )
