"""One mailbox per address: what a header, an SMTP envelope and a calendar invitation read the same.

The oracle is the standard library's own header parser (``email.headerregistry``): whatever
sopwatch accepts must come back from it as exactly one address, with the display name written.
"""

from __future__ import annotations

import email
import email.policy
import re
import sqlite3
import unicodedata
from contextlib import closing
from datetime import datetime
from email.headerregistry import HeaderRegistry
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from daemon_setup import LATE_RULE
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar
from test_hostile_inputs import CONFIG, make_setup

from sopwatch.config.loader import load_setup
from sopwatch.core.addresses import address_problem, is_address, normalise_sender
from sopwatch.daemon.engine import Engine
from sopwatch.errors import ProblemList
from sopwatch.messages.render import one_line

HEADERS = HeaderRegistry()

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
atoms = st.text(alphabet=ATEXT, min_size=1, max_size=12)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
addresses = st.builds(
    lambda local, domain, tld: f"{'.'.join(local)}@{'.'.join(domain)}.{tld}",
    st.lists(atoms, min_size=1, max_size=3),
    st.lists(labels, min_size=1, max_size=3),
    st.from_regex(r"[a-z]{2,6}", fullmatch=True),
)
# Display names as admins write them: any printable text on one line, commas and quotes included.
names = st.text(  # no "<", ">" or "@": an address in the name is refused (tested below)
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="<>@"),
    max_size=40,
).map(lambda text: " ".join(text.split()))


@settings(max_examples=300, deadline=None)
@given(addresses)
def test_every_plain_address_is_one_mailbox_to_the_header_parser(address: str) -> None:
    assert is_address(address) and address_problem(address) is None
    (parsed,) = HEADERS("To", address).addresses
    assert parsed.addr_spec == address


@settings(max_examples=300, deadline=None)
@given(names, addresses)
def test_a_sender_becomes_one_mailbox_with_the_name_as_written(name: str, address: str) -> None:
    sender = normalise_sender(f"{name} <{address}>")
    (parsed,) = HEADERS("From", sender).addresses
    assert parsed.addr_spec == address
    expected = name
    if len(name) >= 2 and name[0] == name[-1] == '"':  # written quoted: the quotes are syntax
        expected = re.sub(r"\\(.)", r"\1", name[1:-1])
    assert parsed.display_name == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("victim,carol@northwind.example", "not one plain email address"),
        ("x<y>z@northwind.example", "not one plain email address"),
        ('"dan smith"@northwind.example', "not one plain email address"),
        ("lee smith@northwind.example", "not one plain email address"),
        ("jörg@northwind.example", "non-ASCII"),
        ("lee@northwind", "the domain has no dot"),
        ("lee@@northwind.example", "not one plain email address"),
    ],
)
def test_addresses_a_header_would_read_differently_are_refused(text: str, why: str) -> None:
    problem = address_problem(text)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    "sender",
    [
        "Ops\r\nBcc: x@evil.test <ops@example.com>",
        "Ops <a,b@example.com>",
        "Ops <ops@exämple.com>",
        "no address",
        "Ops <ops@example.com>, Other <other@example.com>",  # a second address
        '"ceo@example.com" <ops@example.com>',  # an address posing as the name
        "Ops\u2028Bcc <ops@example.com>",  # a line separator
    ],
)
def test_a_sender_that_cannot_be_one_mailbox_raises(sender: str) -> None:
    with pytest.raises(ValueError):
        normalise_sender(sender)


def test_a_comma_in_the_senders_name_keeps_one_from_address_one_organizer_and_the_org_name(
    tmp_path: Path,
) -> None:
    """`from: Northwind, Inc. <…>` was two mailboxes in From, `MAIL FROM:<Northwind>`, an ORGANIZER
    of mailto:Northwind and Message-IDs @sopwatch.invalid."""
    config_text = CONFIG.replace(
        'from: "sopwatch <sopwatch@example.com>"', 'from: "Northwind, Inc. <sopwatch@example.com>"'
    )
    hold = '      - notify: [owner]\n        calendar_hold: {start: "fire_at + 1 day", duration: 30m}\n'
    rules = LATE_RULE.replace("      - notify: [owner]\n", hold)
    config = make_setup(tmp_path / "s", config=config_text, rules=rules)
    engine = Engine(config, environ={})
    try:
        engine.tick(datetime(2026, 12, 3, 10, tzinfo=ZoneInfo("Europe/Berlin")))
        assert engine.sender == '"Northwind, Inc." <sopwatch@example.com>'
    finally:
        engine.close()
    with closing(sqlite3.connect(tmp_path / "s" / "state.db")) as db:
        envelope = {sender for (sender,) in db.execute("SELECT sender FROM outbox")}
    assert envelope == {"sopwatch@example.com"}
    maildir = tmp_path / "s" / "maildir" / "new"
    messages = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in maildir.iterdir()
    ]
    assert messages
    for message in messages:
        (sender,) = message["From"].addresses
        assert (sender.display_name, sender.addr_spec) == ("Northwind, Inc.", "sopwatch@example.com")
        assert message["Message-ID"].endswith("@example.com>")
        assert "Northwind, Inc." in message.get_body(("plain",)).get_content()
    calendars = [
        Calendar.from_ical(part.get_content())
        for message in messages
        for part in message.walk()
        if part.get_content_type() == "text/calendar"
    ]
    assert calendars
    for calendar in calendars:
        (event,) = calendar.walk("VEVENT")
        assert str(event["ORGANIZER"]) == "mailto:sopwatch@example.com"
        assert event["ORGANIZER"].params["CN"] == "Northwind, Inc."


@pytest.mark.parametrize(
    ("field", "value"),
    [("admin", "ops,admin@example.com"), ("admin", "Ops <ops@example.com>")],
)
def test_an_admin_that_is_not_one_plain_address_is_refused(tmp_path: Path, field: str, value: str) -> None:
    config_text = CONFIG.replace("admin: admin@example.com", f'{field}: "{value}"')
    with pytest.raises(ProblemList) as raised:
        load_setup(make_setup(tmp_path / "s", config=config_text))
    (problem,) = raised.value.problems
    assert "admin" in str(problem) and "not one plain email address" in str(problem)


def test_people_and_role_members_with_addresses_that_break_headers_are_reported_where_they_are(
    tmp_path: Path,
) -> None:
    people = """\
people:
  - {id: ann, name: Ann Example, email: "victim,ann@example.com"}
  - {id: carl, name: Carl Example, email: jörg@example.com, manager: ann}
"""
    config_text = CONFIG + "roles:\n  leads: [carl, 'x<y>z@example.com']\n"
    with pytest.raises(ProblemList) as raised:
        load_setup(make_setup(tmp_path / "s", config=config_text, people=people))
    texts = [str(problem) for problem in raised.value.problems]
    assert any(
        re.search(r"people\.yaml:2:\d+: email 'victim,ann@example\.com' is not one plain", t) for t in texts
    )
    assert any(re.search(r"people\.yaml:3:\d+: email 'jörg@example\.com': .*non-ASCII", t) for t in texts)
    assert any(
        re.search(r"config\.yaml:\d+:\d+: role 'leads': 'x<y>z@example\.com' is not one", t) for t in texts
    )


def test_a_register_cell_that_is_not_one_address_is_not_mailed() -> None:
    from sopwatch.core.model import Directory
    from sopwatch.core.recipients import parse_recipient

    owner = parse_recipient("owner", {"owner"}, set())
    resolution = owner.people({"owner": "victim,carol@example.com"}, Directory())
    assert resolution.recipients == () and "not in the people directory" in (resolution.problem or "")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_one_line_leaves_no_control_character_and_no_line_break(text: str) -> None:
    flat = one_line(text)
    assert not any(unicodedata.category(c) == "Cc" for c in flat), repr(flat)
    assert flat == " ".join(flat.split())


def test_an_empty_admin_means_none(tmp_path: Path) -> None:
    config_text = CONFIG.replace("admin: admin@example.com", 'admin: ""')
    assert load_setup(make_setup(tmp_path / "s", config=config_text)).loaded.config.admin is None
