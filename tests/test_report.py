"""Report pages: leaderboard table, curves and seed-averaged compatibility heat maps."""

from __future__ import annotations

import re

import pytest
from cli_runner import clbench

from cl_bench.results import report
from cl_bench.results.heatmaps import write_compatibility_heatmap
from cl_bench.results.leaderboard import write_leaderboards
from cl_bench.results.records import RECORD_FORMAT, record_path, write_record
from cl_bench.results.report import mean_matrix, write_reports
from cl_bench.utils.errors import RecordError


def triangle(values: list[float]) -> list[list[float]]:
    """A 3 x 3 lower-triangular C[t][k] from its six entries, row by row."""
    return [values[:1], values[1:3], values[3:6]]


def toy_record(strategy: str, seed: int, last: float, offset: float | None = 0.0) -> dict:
    """A record of a 3-experience stream; its C = base + offset (no C when offset is None)."""
    base = [90.0, 70.0, 80.0, 60.0, 65.0, 75.0]
    metrics = {
        "accuracy_curve": [90.0, 80.0, last],
        "accuracy_matrix": [[90.0, None, None], [70.0, 90.0, None], [40.0, 60.0, last]],
        "last_accuracy": last,
        "average_incremental_accuracy": (170.0 + last) / 3,
        "forgetting_max": 100 - last,
        "forgetting_initial": 90 - last,
        "bwt": last - 90,
    }
    if offset is not None:
        metrics["compatibility"] = {
            score: {"matrix": triangle([v + offset + shift for v in base]), "ac": 1 / 3,
                    "am": sum(base) / 6 + offset + shift, "ecc": [False, True]}
            for score, shift in (("search_top1", 0.0), ("cmc_top1", 1.0), ("cmc_top5", 2.0),
                                 ("map", -10.0))
        }  # fmt: skip
    return {
        "format": RECORD_FORMAT,
        "stream": "toy",
        "strategy": strategy,
        "backbone": "bb",
        "seed": seed,
        "variant": "",
        "metrics": metrics,
        "resources": {"wall_seconds": 1.0, "trainable_parameters": 10, "rehearsal_samples": 0},
    }


def write_runs(root, records) -> None:
    for record in records:
        path = record_path(root, stream="toy", strategy=record["strategy"], backbone="bb",
                           seed=record["seed"], variant="")  # fmt: skip
        write_record(path, record)


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    write_runs(root, [toy_record("a", 1, 50.0, offset=0.0), toy_record("a", 2, 60.0, offset=6.0),
                      toy_record("b", 1, 80.0, offset=None)])  # fmt: skip
    return root


def test_mean_matrix_is_the_entrywise_mean_over_seeds():
    first, second = triangle([90, 70, 80, 60, 65, 75]), triangle([80, 50, 70, 40, 55, 65])
    third = triangle([70, 30, 60, 20, 45, 55])
    assert mean_matrix([first, second, third]) == triangle([80, 50, 70, 40, 55, 65])
    assert mean_matrix([first]) == first
    with pytest.raises(ValueError, match="different shapes"):
        mean_matrix([first, first[:2]])


def test_heatmap_draws_the_mean_over_seeds(runs, tmp_path, monkeypatch):
    drawn = {}

    def capture(panels, title, path):
        drawn[path.name] = (panels, title)
        return path

    monkeypatch.setattr(report, "draw_heatmaps", capture)
    write_reports(runs, tmp_path / "out")
    assert list(drawn) == ["toy-compatibility-a-bb.png"]  # b has no matrices
    panels, title = drawn["toy-compatibility-a-bb.png"]
    assert title == "a / bb on toy: compatibility C[t][k], mean over 2 seeds"
    search, map_ = panels.values()
    assert search == triangle([93.0, 73.0, 83.0, 63.0, 68.0, 78.0])  # offsets 0 and 6
    assert map_ == triangle([83.0, 63.0, 73.0, 53.0, 58.0, 68.0])
    assert list(panels) == ["1:N search top-1 (%): AC 0.33, AM 76.3", "mAP (%): AC 0.33, AM 66.3"]


def test_report_page_table_and_figures(runs, tmp_path):
    out = tmp_path / "out"
    written = {str(path.relative_to(out)) for path in write_reports(runs, out)}
    lb = tmp_path / "lb"
    leaderboard = {str(path.relative_to(lb)) for path in write_leaderboards(runs, lb)}
    assert leaderboard < written  # everything `clbench leaderboard` writes, and the same
    assert "site/index.html" in leaderboard
    for name in leaderboard:
        assert (out / name).read_bytes() == (lb / name).read_bytes()
    assert written - leaderboard == {"toy-report.md", "toy-compatibility-a-bb.png"}
    page = (out / "toy-report.md").read_text()
    assert "| a | continual | bb | default | not recorded | 2 | 0 | 55.00 ± 7.07 |" in page
    assert "| b | continual | bb | default | not recorded | 1 | 0 | 80.00 |" in page
    assert page.index("| b | continual |") < page.index("| a | continual |")  # by last accuracy
    assert "| a / bb | 40.0 | 60.0 | 55.0 |" in page  # a[T][j], mean over seeds
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", page)
    assert figures == ["toy-curves.png", "toy-compatibility-a-bb.png"]
    assert all((out / name).is_file() for name in figures)
    assert "### b / bb\n\nNo compatibility matrices in these records." in page


def test_report_regenerates_byte_identical(runs, tmp_path):
    out = tmp_path / "out"
    code, _, err = clbench("report", "--runs", str(runs), "--out", str(out))
    assert code == 0, err
    first = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert f"wrote {out / 'toy-report.md'}" in err
    write_reports(runs, out)
    second = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert first == second


def test_a_runs_heatmap_is_still_drawn_from_its_record(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr("cl_bench.results.heatmaps._draw", lambda *args: drawn.update(args=args))
    write_compatibility_heatmap(toy_record("a", 7, 50.0), tmp_path / "seed7-compatibility.png")
    panels, title, _ = drawn["args"]
    assert title == "a on toy with bb, seed 7: compatibility C[t][k]"
    assert list(panels) == [
        "1:N search top-1 (%): AC 0.33, AM 73.3",
        "CMC top-1 (%): AC 0.33, AM 74.3",
        "CMC top-5 (%): AC 0.33, AM 75.3",
        "mAP (%): AC 0.33, AM 63.3",
    ]
    assert panels["mAP (%): AC 0.33, AM 63.3"] == triangle([80, 60, 70, 50, 55, 65])


def test_differently_shaped_matrices_are_named(tmp_path):
    short = toy_record("a", 2, 60.0)
    for summary in short["metrics"]["compatibility"].values():
        summary["matrix"] = summary["matrix"][:2]
    write_runs(tmp_path / "runs", [toy_record("a", 1, 50.0), short])
    with pytest.raises(RecordError, match=r"a / bb .*seed1\.json.*seed2\.json"):
        write_reports(tmp_path / "runs", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_no_records_is_the_leaderboard_error(tmp_path):
    with pytest.raises(RecordError, match="no run records") as error:
        write_reports(tmp_path, tmp_path / "out")
    with pytest.raises(RecordError) as leaderboard_error:
        write_leaderboards(tmp_path, tmp_path / "out")
    assert str(error.value) == str(leaderboard_error.value)
    code, _, err = clbench("report", "--runs", str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 2
    assert "no run records" in err
    assert not (tmp_path / "out").exists()
