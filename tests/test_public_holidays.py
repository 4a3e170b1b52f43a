"""Public holidays through the cache file (``adapters.public_holidays``).

The oracle is the ``holidays`` package itself, asked directly: the cache may change how fast an
answer comes, never the answer. Cache files are real files in a temporary folder; whether the
package was imported is seen in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sopwatch.adapters.public_holidays import (
    YEARS_AFTER,
    YEARS_BEFORE,
    HolidayCache,
    default_holiday_cache,
    public_holidays,
)
from sopwatch.errors import ConfigError

TODAY = date(2026, 11, 27)
KEPT = range(TODAY.year - YEARS_BEFORE, TODAY.year + YEARS_AFTER + 1)
# (country, subdivision as a user might spell it, the package's spelling)
PLACES = [
    ("DE", None, None),
    ("de", "by", "BY"),
    ("US", "ca", "CA"),
    ("SG", None, None),
    ("GB", "sct", "SCT"),
]
PACKAGE = {
    (country.upper(), spelled): holidays.country_holidays(country.upper(), subdiv=spelled)
    for country, _given, spelled in PLACES
}


def oracle(country: str, subdiv: str | None, day: date) -> bool:
    return day in PACKAGE[(country.upper(), subdiv)]


@settings(max_examples=150, deadline=None)
@given(
    place=st.sampled_from(PLACES),
    today=st.dates(date(2020, 1, 1), date(2034, 12, 31)),
    days=st.lists(st.dates(date(2015, 1, 1), date(2040, 12, 31)), min_size=1, max_size=40),
    extra=st.frozensets(st.dates(date(2015, 1, 1), date(2040, 12, 31)), max_size=5),
)
def test_answers_are_the_packages_without_a_cache_from_a_cold_one_and_from_a_warm_one(
    place: tuple[str, str | None, str | None], today: date, days: list[date], extra: frozenset[date]
) -> None:
    country, given_subdiv, subdiv = place
    # Days around ``today`` come from the kept years, the others from the package: every holiday
    # near the edges of the kept years is asked for, and the days on either side of it.
    near = holidays.country_holidays(
        country.upper(), subdiv=subdiv, years=range(today.year - 3, today.year + 5)
    )
    days = [*days, today, *(d + timedelta(days=shift) for d in near for shift in (-1, 0, 1))]
    with tempfile.TemporaryDirectory() as folder:
        cache = HolidayCache(Path(folder) / "holidays.json")
        uncached = public_holidays(country, given_subdiv, extra, today=today)
        cold = public_holidays(country, given_subdiv, extra, cache=cache, today=today)
        assert cache.path.exists()
        warm = public_holidays(country, given_subdiv, extra, cache=cache, today=today)
        for day in days:
            expected = day in extra or oracle(country, subdiv, day)
            assert uncached(day) == cold(day) == warm(day) == expected, day


def write_cache(path: Path, **changes: object) -> None:
    content = json.loads(path.read_text(encoding="utf-8"))
    content.update(changes)
    path.write_text(json.dumps(content), encoding="utf-8")


def test_a_warm_cache_is_read_instead_of_the_package(tmp_path: Path) -> None:
    """A date planted in the file is believed: proof that the file, not the package, answered."""
    cache = HolidayCache(tmp_path / "holidays.json")
    public_holidays("DE", cache=cache, today=TODAY)
    content = json.loads(cache.path.read_text(encoding="utf-8"))
    assert content["holidays"] == holidays.__version__
    entry = content["tables"]["DE"]
    assert entry["years"] == [KEPT.start, KEPT.stop - 1]
    assert set(entry["dates"]) == {d.isoformat() for d in holidays.country_holidays("DE", years=KEPT)}, (
        "the file holds the package's dates of the kept years"
    )
    planted = date(2026, 7, 15)  # an ordinary Wednesday
    entry["dates"].append(planted.isoformat())
    cache.path.write_text(json.dumps(content), encoding="utf-8")
    assert public_holidays("DE", cache=cache, today=TODAY)(planted)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param({"holidays": "0.0.1"}, id="another package version"),
        pytest.param({"format": 99}, id="another file format"),
        pytest.param({"tables": []}, id="tables not a mapping"),
        pytest.param({"tables": {"DE": {"years": [2025, 2028], "dates": [1, 2]}}}, id="dates not text"),
        pytest.param(
            {"tables": {"DE": {"country": "DE", "subdiv": None, "years": "x", "dates": []}}}, id="years"
        ),
    ],
)
def test_an_entry_the_cache_cannot_vouch_for_is_not_used(tmp_path: Path, damage: dict[str, object]) -> None:
    cache = HolidayCache(tmp_path / "holidays.json")
    public_holidays("DE", cache=cache, today=TODAY)
    content = json.loads(cache.path.read_text(encoding="utf-8"))
    content["tables"]["DE"]["dates"].append("2026-07-15")  # planted, as above
    cache.path.write_text(json.dumps({**content, **damage}), encoding="utf-8")
    is_holiday = public_holidays("DE", cache=cache, today=TODAY)
    assert not is_holiday(date(2026, 7, 15)) and is_holiday(date(2026, 10, 3))
    # ...and the file is written again with an entry that is used next time.
    rewritten = json.loads(cache.path.read_text(encoding="utf-8"))
    assert (
        rewritten["holidays"] == holidays.__version__
        and "2026-07-15" not in rewritten["tables"]["DE"]["dates"]
    )


@pytest.mark.parametrize("content", [b"", b"\x00\xff garbage", b"[1, 2]", b'{"format": 1'])
def test_a_damaged_file_means_asking_the_package(tmp_path: Path, content: bytes) -> None:
    cache = HolidayCache(tmp_path / "holidays.json")
    cache.path.write_bytes(content)
    is_holiday = public_holidays("DE", "BY", cache=cache, today=TODAY)
    assert is_holiday(date(2026, 1, 6)) and not is_holiday(date(2026, 1, 7))  # Epiphany in Bavaria
    assert json.loads(cache.path.read_text(encoding="utf-8"))["tables"]["DE/BY"]["subdiv"] == "BY"


def test_a_cache_that_cannot_be_written_changes_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go", encoding="utf-8")
    cache = HolidayCache(blocker / "sopwatch" / "holidays.json")
    is_holiday = public_holidays("DE", cache=cache, today=TODAY)
    assert is_holiday(date(2026, 12, 25)) and not is_holiday(date(2026, 12, 23))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]  # no temporary file left


def test_entries_of_other_years_and_places_are_kept_apart(tmp_path: Path) -> None:
    cache = HolidayCache(tmp_path / "holidays.json")
    public_holidays("DE", cache=cache, today=TODAY)
    public_holidays("DE", "BY", cache=cache, today=TODAY)
    public_holidays("US", cache=cache, today=date(2031, 5, 1))  # other years: a fresh entry
    public_holidays("DE", cache=cache, today=date(2031, 5, 1))  # not covered: replaced
    tables = json.loads(cache.path.read_text(encoding="utf-8"))["tables"]
    assert {name: entry["years"] for name, entry in tables.items()} == {
        "DE": [2030, 2033],
        "DE/BY": [2025, 2028],
        "US": [2030, 2033],
    }
    assert list(tmp_path.iterdir()) == [cache.path]  # the temporary files were renamed or removed


def test_an_unknown_country_or_subdivision_is_refused_and_not_cached(tmp_path: Path) -> None:
    cache = HolidayCache(tmp_path / "holidays.json")
    with pytest.raises(ConfigError, match=r"^holidays: unknown country 'DX' \(use an ISO 3166 code"):
        public_holidays("DX", cache=cache, today=TODAY)
    with pytest.raises(
        ConfigError, match=r"^holidays: country DE has no subdivision 'XX' \(known: BB, BE, BW, BY,"
    ):
        public_holidays("DE", "XX", cache=cache, today=TODAY)
    assert not cache.path.exists()


PROBE = """
import sys
from datetime import date
from pathlib import Path
from sopwatch.adapters.public_holidays import HolidayCache, public_holidays
is_holiday = public_holidays("DE", cache=HolidayCache(Path(sys.argv[1])), today=date(2026, 11, 27))
print(is_holiday(date(2026, 12, 25)), is_holiday(date(2026, 12, 23)), "holidays" in sys.modules)
"""


def test_a_command_with_a_warm_cache_does_not_import_the_package(tmp_path: Path) -> None:
    def probe() -> str:
        path = str(tmp_path / "holidays.json")
        done = subprocess.run([sys.executable, "-c", PROBE, path], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert probe() == "True False True"  # cold: the package answers and fills the cache
    assert probe() == "True False False"  # warm: the same answers, the package never imported


def test_the_default_cache_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_holiday_cache().path == tmp_path / "sopwatch" / "holidays.json"  # type: ignore[union-attr]
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for ignored in ("", "relative/cache"):  # the XDG spec: a relative path is ignored
        monkeypatch.setenv("XDG_CACHE_HOME", ignored)
        assert default_holiday_cache().path == tmp_path / "home" / ".cache" / "sopwatch" / "holidays.json"  # type: ignore[union-attr]


def test_check_fills_the_cache_and_prints_the_same_with_it(example_copy: Path, tmp_path: Path) -> None:
    """End to end: the bundled example's German holidays, first from the package, then the cache."""
    cache_home = tmp_path / "cache-home"
    runs = [
        subprocess.run(
            [
                sys.executable,
                "-m",
                "sopwatch",
                "check",
                "--config",
                "config.yaml",
                "--at",
                "2026-12-23T10:00",
            ],
            cwd=example_copy,
            capture_output=True,
            text=True,
            env={**os.environ, "XDG_CACHE_HOME": str(cache_home)},
            check=True,
        )
        for _ in range(2)
    ]
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout
    tables = json.loads((cache_home / "sopwatch" / "holidays.json").read_text(encoding="utf-8"))["tables"]
    assert "2026-12-25" in tables["DE"]["dates"]
