"""The committed leaderboard and report are exactly what the committed records regenerate."""

from __future__ import annotations

from pathlib import Path

import pytest

from cl_bench.results.leaderboard import write_leaderboards
from cl_bench.results.report import write_reports

LEADERBOARDS = Path(__file__).resolve().parents[1] / "leaderboards"


@pytest.mark.parametrize("name", ["offline-mix.csv", "offline-mix.md"])
def test_committed_leaderboard_matches_its_records(tmp_path, name):
    write_leaderboards(LEADERBOARDS / "runs", tmp_path)
    assert (tmp_path / name).read_bytes() == (LEADERBOARDS / name).read_bytes()


def test_committed_report_matches_its_records(tmp_path):
    """The report page byte for byte, and exactly the heat maps it names (PNG bytes depend
    on the matplotlib version tox installs, so they are not compared); none stale."""
    written = write_reports(LEADERBOARDS / "runs", tmp_path)
    names = {p.name for p in written if p.name.startswith("offline-mix-compatibility-")}
    committed = {p.name for p in LEADERBOARDS.glob("offline-mix-compatibility-*.png")}
    assert names == committed and len(names) == 10
    page = (LEADERBOARDS / "offline-mix-report.md").read_text()
    assert (tmp_path / "offline-mix-report.md").read_text() == page
    assert all(name in page for name in names)


def test_committed_leaderboard_has_every_strategy_over_three_seeds():
    rows = (LEADERBOARDS / "offline-mix.csv").read_text().splitlines()[1:]
    by_strategy = {row.split(",")[0]: row.split(",") for row in rows}
    assert set(by_strategy) == {"simplecil", "finetune-head", "sema", "mos", "oca",
                                "lambda-orth", "independent-head", "aper", "fecam",
                                "joint"}  # fmt: skip
    for row in by_strategy.values():
        assert row[2] == "" and row[5] == "3"  # default variant, three seeds
    assert by_strategy["joint"][3] == "reference" and by_strategy["mos"][3] == "continual"


def test_committed_leaderboard_has_compatibility_columns():
    header = (LEADERBOARDS / "offline-mix.csv").read_text().splitlines()[0].split(",")
    for column in ("search_ac", "search_am", "map_ac", "map_am"):
        assert f"{column}_mean" in header and f"{column}_std" in header
