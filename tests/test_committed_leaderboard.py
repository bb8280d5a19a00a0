"""The committed leaderboard and report are exactly what the committed records regenerate."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from cl_bench.results.leaderboard import write_leaderboards
from cl_bench.results.records import iter_records
from cl_bench.results.report import write_reports
from cl_bench.training.registry import Registry

LEADERBOARDS = Path(__file__).resolve().parents[1] / "leaderboards"
AVALANCHE = {f"avalanche:{name}" for name in ("naive", "ewc", "lwf", "si", "mas", "gem",
             "agem", "replay", "gdumb", "der", "er_ace", "icarl", "streaminglda")}  # fmt: skip
CONTINUAL = {"simplecil", "finetune-head", "sema", "mos", "oca", "lambda-orth",
             "independent-head", "aper", "fecam", "ranpac", "ease"} | AVALANCHE  # fmt: skip
REFERENCES = {"joint", "avalanche:cumulative"}
# Rows of their own: SEMA with classifier alignment, and every trained strategy with its
# official training augmentation (docs/recipes.md).
VARIANTS = {("sema", "classifier_alignment=true"), ("joint", "adapters=true")} | {
    (name, "augment=true") for name in ("sema", "mos", "aper", "ranpac", "ease")
}
# Rows whose settings `clbench tune` chose on the validation split, 10 trials each
# (docs/tuning.md); their records are the tune command's, not the grid's.
TUNED = {"sema", "mos", "lambda-orth", "oca", "avalanche:mas", "avalanche:ewc"}
TUNED_KIND = "continual, tuned on validation (10 trials)"


@pytest.mark.parametrize("name", ["offline-mix.csv", "offline-mix.md"])
def test_committed_leaderboard_matches_its_records(tmp_path, name):
    write_leaderboards(LEADERBOARDS / "runs", tmp_path)
    assert (tmp_path / name).read_bytes() == (LEADERBOARDS / name).read_bytes()


def test_committed_site_matches_its_records(tmp_path):
    """Every page, stylesheet and script, byte for byte, and no stale page."""
    descriptions = {name: p.spec.description for name, p in Registry.discover().strategies.items()}
    write_leaderboards(LEADERBOARDS / "runs", tmp_path, tmp_path / "site", descriptions)

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    fresh, committed = files(tmp_path / "site"), files(LEADERBOARDS / "site")
    assert sorted(fresh) == sorted(committed)
    assert [name for name in fresh if fresh[name] != committed[name]] == []


def test_committed_report_matches_its_records(tmp_path):
    """The report page byte for byte, and exactly the heat maps it names (PNG bytes depend
    on the matplotlib version tox installs, so they are not compared); none stale."""
    written = write_reports(LEADERBOARDS / "runs", tmp_path)
    names = {p.name for p in written if p.name.startswith("offline-mix-compatibility-")}
    committed = {p.name for p in LEADERBOARDS.glob("offline-mix-compatibility-*.png")}
    rows = len(CONTINUAL | REFERENCES) + len(VARIANTS) + len(TUNED)
    assert names == committed and len(names) == rows
    page = (LEADERBOARDS / "offline-mix-report.md").read_text()
    assert (tmp_path / "offline-mix-report.md").read_text() == page
    assert all(name in page for name in names)


def test_committed_leaderboard_has_every_strategy_over_three_seeds():
    with (LEADERBOARDS / "offline-mix.csv").open(newline="") as file:
        rows = {(row["strategy"], row["variant"]): row for row in csv.DictReader(file)}
    assert all(row["n_seeds"] == "3" for row in rows.values())
    tuned = {key: row for key, row in rows.items() if row["kind"] == TUNED_KIND}
    assert {name for name, _ in tuned} == TUNED and len(tuned) == len(TUNED)
    assert all("tuned=" in variant for _, variant in tuned)
    untuned = {key: row for key, row in rows.items() if key not in tuned}
    assert set(untuned) == {(name, "") for name in CONTINUAL | REFERENCES} | VARIANTS
    for (name, _), row in untuned.items():
        assert row["kind"] == ("reference" if name in REFERENCES else "continual"), name


def test_every_committed_record_comes_from_a_clean_commit_of_this_repository():
    """A record made from uncommitted code (``-dirty``), or from a commit this history
    does not hold, cannot be reproduced from any checkout of the repository."""
    commits = {}
    for path, record in iter_records(LEADERBOARDS / "runs"):
        commits.setdefault(record["versions"].get("clbench_commit"), []).append(path.name)
    assert None not in commits, f"records without a commit: {commits.get(None)}"
    dirty = {commit: paths for commit, paths in commits.items() if commit.endswith("-dirty")}
    assert not dirty, f"records made from uncommitted code: {dirty}"
    for commit in commits:
        known = subprocess.run(
            ["git", "-C", str(LEADERBOARDS.parent), "merge-base", "--is-ancestor", commit, "HEAD"],
            capture_output=True,
        )
        assert known.returncode == 0, f"commit {commit} is not in this repository's history"


def test_committed_leaderboard_has_compatibility_columns():
    header = (LEADERBOARDS / "offline-mix.csv").read_text().splitlines()[0].split(",")
    for column in ("search_ac", "search_am", "map_ac", "map_am"):
        assert f"{column}_mean" in header and f"{column}_std" in header


def test_the_grid_file_regenerates_every_committed_record_and_no_other():
    """``clbench sweep --grid sweeps/offline-mix.yaml`` writes exactly the records that
    the committed leaderboard comes from (same strategies, variants, seeds and paths)."""
    from cl_bench.experiments.grid import checked_runs, make_grid, read_grid_file

    root = LEADERBOARDS.parent
    values = read_grid_file(root / "sweeps" / "offline-mix.yaml")
    grid = make_grid(values, {}, {"stream": "offline-mix", "backbone": "efficientnet_lite0",
                                  "seed": (1993,)})  # fmt: skip
    runs = checked_runs(grid.runs(), Registry.discover())
    planned = {run.record_path(root / grid.output) for run in runs}
    committed = {path for path, record in iter_records(LEADERBOARDS / "runs")
                 if not record.get("tuning")}  # fmt: skip
    assert planned == committed
