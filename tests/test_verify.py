"""`clbench verify` end to end on real runs, and its verdicts on hand-made records."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from cli_runner import clbench, only_record

from cl_bench.experiments.verify import record_files, rerun_spec, sample
from cl_bench.results.comparison import compare, tolerances
from cl_bench.training.registry import Registry

QUICK = ["--limit-per-class", "3"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """Records of a frozen-feature and a trained strategy, the second at 2 threads."""
    root = tmp_path_factory.mktemp("made")
    for args in (["--strategy", "simplecil"], ["--strategy", "finetune-head", "--threads", "2"]):
        code, _, err = clbench("evaluate", *args, *QUICK, "--output", str(root))
        assert code == 0, err
    return root


def record_of(root: Path, strategy: str) -> tuple[Path, dict]:
    return only_record(root / "offline-mix" / strategy, 1993)


def copied(made: Path, tmp_path: Path, strategy: str) -> tuple[Path, dict]:
    """A copy of a made record (with its folder layout), to tamper with."""
    path, record = record_of(made, strategy)
    target = tmp_path / path.relative_to(made)
    target.parent.mkdir(parents=True)
    target.write_text(path.read_text())
    return target, record


def write(path: Path, record: dict) -> None:
    path.write_text(json.dumps(record))


def test_unchanged_records_are_identical_and_exit_0(made):
    code, out, err = clbench("verify", str(made), "--workers", "2")
    assert code == 0, err
    assert "2 identical" in out
    assert "identical" in err and "differs" not in out + err


def test_a_record_whose_numbers_moved_differs_and_exits_1(made, tmp_path):
    path, record = copied(made, tmp_path, "finetune-head")
    record["metrics"]["last_accuracy"] += 5.0
    record["metrics"]["correct"][-1][0] += 1
    record["versions"]["torch"] = "0.0.1"  # an environment difference it must name
    write(path, record)
    code, out, err = clbench("verify", str(path), columns=400)
    assert code == 1, err
    text = " ".join((out + err).split())
    assert (
        "differs" in text and f"last_accuracy {record['metrics']['last_accuracy']:.4g} -> " in text
    )
    assert "(-5, tolerance" in text
    assert "torch: 0.0.1 -> " in text
    assert "1 matrix entries changed" in text


def test_the_rerun_uses_the_records_threads(made):
    _, record = record_of(made, "finetune-head")
    assert record["resources"]["torch_threads"] == 2
    assert rerun_spec(record, Registry.discover()).threads == 2


def test_data_that_is_not_the_records_cannot_be_rerun_exit_2(made, tmp_path):
    path, record = copied(made, tmp_path, "simplecil")
    record["stream_info"]["data_sha256"] = "0" * 64
    write(path, record)
    code, out, err = clbench("verify", str(path))
    assert code == 2
    text = " ".join((out + err).split())
    assert "cannot rerun" in text and "not the data the record was made from" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strategy": "no-such-strategy"}, "strategy 'no-such-strategy' is not installed"),
        ({"stream": "no-such-stream"}, "is not installed here"),
        ({"format": 99}, "not a clbench format-1 record"),
        ({"variant": "weights=0123456789ab"}, "local checkpoint"),
    ],
)
def test_records_that_cannot_be_rerun_stop_everything_with_exit_2(made, tmp_path, change, message):
    path, record = copied(made, tmp_path, "simplecil")
    write(path, {**record, **change})
    code, out, err = clbench("verify", str(tmp_path), str(made))
    assert code == 2
    text = " ".join(err.split())
    assert message in text and "1 of 3 records cannot be rerun, so nothing was run" in text
    assert "identical" not in out + err


def test_sample_draws_the_same_records_for_the_same_seed(tmp_path):
    paths = [tmp_path / f"seed{n}.json" for n in range(10)]
    first = sample(paths, 4, seed=7)
    assert len(first) == 4 and first == sample(paths, 4, seed=7)
    assert first == sorted(first, key=paths.index)  # kept in the given order
    assert any(sample(paths, 4, seed=s) != first for s in range(8))
    assert sample(paths, 20, seed=0) == paths


def test_record_files_walks_folders_and_skips_failure_notes(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("seed1.json", "seed2.json", "seed3.failed.json"):
        (tmp_path / "a" / name).write_text("{}")
    found = record_files([tmp_path, tmp_path / "a" / "seed1.json"])
    assert [p.name for p in found] == ["seed1.json", "seed2.json"]


# Verdicts on hand-made records: 2 experiences of 10 and 30 test images.
def hand_record(last: float, seed: int = 1, **extra) -> dict:
    return {
        "stream": "s", "strategy": "x", "backbone": "b", "variant": "", "seed": seed,
        "metrics": {
            "last_accuracy": last, "average_incremental_accuracy": 50.0,
            "forgetting_max": 1.0, "forgetting_initial": 1.0, "bwt": -1.0,
            "accuracy_curve": [60.0, last], "test_counts": [10, 30],
            "correct": [[6], [3, round(last * 0.4) - 3]], "compatibility": {},
        },
        "versions": {"torch": "2.14.1"}, "resources": {"torch_threads": 1}, **extra,
    }  # fmt: skip


def test_tolerance_is_the_standard_error_of_the_rows_mean_at_least_one_image():
    row = [hand_record(40.0, 1), hand_record(50.0, 2), hand_record(45.0, 3)]
    limits = tolerances(row[0], row)
    assert limits["last_accuracy"] == pytest.approx(5.0 / math.sqrt(3))  # std 5, n 3
    assert limits["bwt"] == pytest.approx(100.0 / 40)  # no spread: one test image of 40


def test_verdicts_against_hand_computed_tolerances():
    row = [hand_record(40.0, 1), hand_record(50.0, 2), hand_record(45.0, 3)]
    assert compare(row[0], copy.deepcopy(row[0]), row).verdict == "identical"
    near = hand_record(42.5, 1)  # moved 2.5 < 2.89
    result = compare(row[0], near, row)
    assert result.verdict == "close" and [m.metric for m in result.moved] == ["last_accuracy"]
    far = hand_record(43.5, 1, versions={"torch": "9.9"})  # moved 3.5 > 2.89
    result = compare(row[0], far, row)
    assert result.verdict == "differs"
    assert result.environment == ("torch: 2.14.1 -> 9.9",)
    assert result.matrix_entries_changed == 1
    alone = compare(row[0], near, [row[0]])  # one seed: only the one-image floor, 2.5
    assert alone.verdict == "close"
    assert compare(row[0], hand_record(43.0, 1), [row[0]]).verdict == "differs"


def test_a_path_that_is_not_there_is_a_clear_error(tmp_path):
    code, _, err = clbench("verify", str(tmp_path / "missing"))
    assert code == 2 and "no record file or folder" in err and "Traceback" not in err
    code, _, err = clbench("verify", str(tmp_path))  # a folder without records
    assert code == 2 and "no run records under" in err


# One committed record of each kind: frozen features, a trained head, Avalanche's
# training loop, and the quick start's SEMA seed. A change that moves a committed number
# fails here until the records are regenerated (docs/reproducing.md).
COMMITTED_SAMPLE = [
    f"leaderboards/runs/offline-mix/{strategy}/efficientnet_lite0/seed1993.json"
    for strategy in ("simplecil", "finetune-head", "avalanche--naive", "sema")
]


@pytest.mark.slow
def test_the_committed_leaderboard_sample_reruns_identically():
    root = Path(__file__).resolve().parent.parent
    paths = [str(root / path) for path in COMMITTED_SAMPLE]
    code, out, err = clbench("verify", "--workers", "2", *paths, columns=400)
    assert code == 0, out + err
    assert "4 identical" in out, out
