"""A broken template edit never reaches a message: the daemon keeps the last good templates."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from test_pipeline import BERLIN, engines, make_setup, of_kind, row  # noqa: F401 - engines is a fixture

GOOD = "Custom reminder for {{ action.id }}: please act.\n"
BROKEN = "Custom reminder for {{ action.id }: please act.\n"  # unbalanced braces: a syntax error


def test_a_broken_template_edit_keeps_the_last_good_copy(tmp_path: Path, engines) -> None:  # noqa: F811
    config = make_setup(
        tmp_path / "s",
        [row("A-1", "ann", "2026-12-01"), row("A-2", "ann", "2026-12-05")],
        templates={"reminder.txt.j2": GOOD},
    )
    engine = engines(config)
    engine.tick(datetime(2026, 12, 2, 10, tzinfo=BERLIN))
    first = of_kind(config, "reminder")
    assert len(first) == 1
    assert "Custom reminder for A-1: please act." in first[0].get_body(("plain",)).get_content()

    (config.parent / "templates" / "reminder.txt.j2").write_text(BROKEN, encoding="utf-8")
    engine.tick(datetime(2026, 12, 6, 10, tzinfo=BERLIN))
    second = [m for m in of_kind(config, "reminder") if str(m["X-Sopwatch-Action"]) == "A-2"]
    assert len(second) == 1
    # The override as it was before the edit, not the built-in and not the broken text.
    assert "Custom reminder for A-2: please act." in second[0].get_body(("plain",)).get_content()
    admin = of_kind(config, "admin")
    assert len(admin) == 1
    body = admin[0].get_body(("plain",)).get_content()
    assert "reminder.txt.j2" in body and str(config.parent / "templates") in body
