"""A setup for tests that run the real daemon on the real clock: every action is already overdue.

One rule (``overdue``: notify the owner when ``due`` has passed), open actions due three days ago,
business hours all day every day, so the first tick sends at once whatever the time of day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

# (id, name, email, manager)
Person = tuple[str, str, str, str | None]


def write_overdue_setup(
    folder: Path, people: Sequence[Person], owners: Sequence[str], config: str, *, id_format: str = "A-{i}"
) -> Path:
    """``people``, one open action per entry of ``owners`` (its owner's id; ids from ``id_format``),
    and config.yaml ending in ``config`` (interval, state, delivery...); returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"  - {{id: {ident}, name: {name}, email: {address}" + (f", manager: {manager}}}" if manager else "}")
        for ident, name, address, manager in people
    ]
    (folder / "people.yaml").write_text(
        "people:\n" + "".join(f"{line}\n" for line in lines), encoding="utf-8"
    )
    due = (date.today() - timedelta(days=3)).isoformat()  # the daemon runs on the real clock
    (folder / "register.csv").write_text(
        "id,title,status,owner,due\n"
        + "".join(
            f"{id_format.format(i=i)},Action {i},open,{owner},{due}\n" for i, owner in enumerate(owners)
        ),
        encoding="utf-8",
    )
    (folder / "rules").mkdir(exist_ok=True)
    (folder / "rules" / "overdue.yaml").write_text(
        "rules:\n  - {id: overdue, when: {status: open}, fire_at: due, escalation: [{notify: [owner]}]}\n",
        encoding="utf-8",
    )
    path = folder / "config.yaml"
    path.write_text(
        "timezone: UTC\n"
        "register: {type: csv, path: register.csv}\n"
        "people: people.yaml\n"
        'business_calendar: {workdays: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}\n'
        "rules: [rules/]\n" + config,
        encoding="utf-8",
    )
    return path
