"""What sopwatch takes for one mailbox: the address a header, an SMTP envelope and a calendar
invitation all read the same way.

A plain ``local@domain`` in ASCII (RFC 5322 dot-atom): no spaces, commas, angle brackets or
quotes, which a header would read as two addresses or a display name while the envelope sends to
one. Non-ASCII local parts need SMTPUTF8, which sopwatch does not speak.
"""

from __future__ import annotations

import re
from email.utils import quote

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# Recipients need a dotted domain (a typo such as lee@northwind is caught); a sender may be
# sopwatch@localhost, the default.
_RECIPIENT = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+", re.ASCII)
_SENDER = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*", re.ASCII)
_NAME_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
# Control characters, and the Unicode line and paragraph separators a header would break at.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def is_address(text: str) -> bool:
    """Whether ``text`` is one plain recipient address such as ``lee@example.com``."""
    return _RECIPIENT.fullmatch(text) is not None


def address_problem(text: str, *, sender: bool = False) -> str | None:
    """Why ``text`` is not one plain address, None when it is."""
    if (_SENDER if sender else _RECIPIENT).fullmatch(text):
        return None
    if not text.isascii():
        return (
            f"{text!r}: addresses with non-ASCII characters are not supported "
            "(write the domain in its xn-- form)"
        )
    if "@" in text and not sender and _SENDER.fullmatch(text):
        return f"{text!r}: the domain has no dot (a typo for {text}.com?)"
    return f"{text!r} is not one plain email address such as lee@example.com"


def normalise_sender(text: str) -> str:
    """``delivery.from`` as one RFC 5322 mailbox: ``Northwind, Inc. <ops@example.com>`` becomes
    ``"Northwind, Inc." <ops@example.com>``, which every later reader takes for one address with
    that display name, not for two addresses. Raises ValueError for what cannot be one mailbox."""
    if _CONTROL.search(text):
        raise ValueError("the sender must be one line without control characters")
    source = text.strip()
    match = re.fullmatch(r"(?s)(.*?)\s*<([^<>]*)>", source)
    if match is None:
        name, address = "", source
    else:
        name, address = match.group(1).strip(), match.group(2).strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = re.sub(r"\\(.)", r"\1", name[1:-1])
        if re.search(r"[<>@]", name):  # `Ops <a@x>, Other <b@y>`: a second address, or one posing as the name
            raise ValueError(
                "the sender is one mailbox: write it as Name <address>, with no address in the name"
            )
    problem = address_problem(address, sender=True)
    if problem is not None:
        raise ValueError(f"sender {problem}; write it as Name <address>")
    if not name:
        return address
    return f'"{quote(name)}" <{address}>' if _NAME_SPECIALS.search(name) else f"{name} <{address}>"
