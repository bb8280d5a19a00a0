"""Run records are written atomically and read strictly; leaderboards aggregate them."""

from __future__ import annotations

import csv
import json
import math

import pytest

from cl_bench.results.leaderboard import aggregate, load_runs, write_leaderboards
from cl_bench.results.records import RECORD_FORMAT, read_record, record_path, write_record
from cl_bench.utils.errors import RecordError
from cl_bench.utils.files import write_atomically


def fake_record(
    strategy: str, seed: int, last: float, curve_head: float = 90.0, rehearsal: int | None = None
) -> dict:
    resources = {"wall_seconds": 1.0 + seed, "trainable_parameters": 10}
    if rehearsal is not None:  # records of before the key existed have none
        resources["rehearsal_samples"] = rehearsal
    return {
        "format": RECORD_FORMAT,
        "stream": "toy",
        "strategy": strategy,
        "backbone": "bb",
        "seed": seed,
        "variant": "",
        "metrics": {
            "accuracy_curve": [curve_head, last],
            "last_accuracy": last,
            "average_incremental_accuracy": (curve_head + last) / 2,
            "forgetting_max": 100 - last,
            "forgetting_initial": 90 - last,
            "bwt": last - 90,
        },
        "resources": resources,
    }


def write_all(root, specs, rehearsal: int | None = None):
    for strategy, seed, last in specs:
        path = record_path(
            root, stream="toy", strategy=strategy, backbone="bb", seed=seed, variant=""
        )
        write_record(path, fake_record(strategy, seed, last, rehearsal=rehearsal))


def test_interrupted_write_leaves_no_file(tmp_path):
    target = tmp_path / "runs" / "record.json"

    def half_then_crash(tmp):
        tmp.write_text('{"format": 1, "str')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, half_then_crash)
    assert list(target.parent.iterdir()) == []


def test_write_replaces_old_record_whole(tmp_path):
    path = tmp_path / "r.json"
    write_record(path, fake_record("a", 1, 50.0))
    write_record(path, fake_record("a", 1, 60.0))
    assert read_record(path)["metrics"]["last_accuracy"] == 60.0


def test_written_files_get_the_umasks_permissions_not_0600(tmp_path):
    """Records in a shared runs folder must be readable by the group, as any new file is."""
    import stat

    target, plain = tmp_path / "record.json", tmp_path / "plain.json"
    write_atomically(target, lambda tmp: tmp.write_text("{}"))
    plain.write_text("{}")  # as any program creates a file
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_non_finite_numbers_are_stored_and_metrics_that_are_refused_by_name(tmp_path):
    """A run that produced NaN or infinity is recorded, not lost at the write; config
    values may be any JSON number, but a metric must be finite or null, so readers
    refuse the record naming the field rather than averaging a NaN."""
    import math

    from cl_bench.results.leaderboard import write_leaderboards

    record = fake_record("a", 1, 50.0)
    record["config"] = {"threshold": float("inf")}
    path = tmp_path / "runs" / "r.json"
    write_record(path, record)
    assert read_record(path)["config"]["threshold"] == math.inf
    record["metrics"]["last_accuracy"] = float("nan")
    write_record(path, record)
    assert math.isnan(json.loads(path.read_text())["metrics"]["last_accuracy"])  # kept
    with pytest.raises(RecordError, match=r"metrics\.last_accuracy: Input should be a finite"):
        read_record(path)
    with pytest.raises(RecordError, match="last_accuracy"):
        write_leaderboards(tmp_path / "runs", tmp_path / "boards")
    assert not (tmp_path / "boards").exists()


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": 99, "stream": "x"})])
def test_corrupt_or_foreign_records_are_named(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(RecordError, match=r"bad\.json"):
        read_record(path)


def test_aggregate_mean_std_and_order(tmp_path):
    write_all(tmp_path, [("a", 1, 50.0), ("a", 2, 60.0), ("a", 3, 70.0), ("b", 1, 80.0)])
    table = aggregate(load_runs(tmp_path))
    assert table["strategy"].tolist() == ["b", "a"]  # sorted by mean last accuracy
    a = table.iloc[1]
    assert a["n_seeds"] == 3 and a["seeds"] == "1 2 3"
    assert a["last_accuracy_mean"] == pytest.approx(60.0)
    assert a["last_accuracy_std"] == pytest.approx(10.0)  # sample std of 50, 60, 70
    assert a["wall_seconds_mean"] == pytest.approx(3.0)
    assert math.isnan(table.iloc[0]["last_accuracy_std"])  # one seed: no std


def test_one_name_for_two_splits_is_refused(tmp_path):
    write_all(tmp_path, [("a", 1, 50.0)])
    other = fake_record("a", 2, 60.0)
    other["metrics"]["accuracy_curve"] = [90.0, 70.0, 60.0]  # three experiences, not two
    write_record(
        record_path(tmp_path, stream="toy", strategy="a", backbone="bb", seed=2, variant=""),
        other,
    )
    with pytest.raises(RecordError, match="different numbers of experiences"):
        load_runs(tmp_path)


def test_duplicate_runs_are_refused(tmp_path):
    write_all(tmp_path / "x", [("a", 1, 50.0)])
    write_all(tmp_path / "y", [("a", 1, 55.0)])
    with pytest.raises(RecordError, match="several records for the same run"):
        load_runs(tmp_path)


def test_leaderboard_markdown_and_byte_identity(tmp_path):
    write_all(tmp_path / "runs", [("a", 1, 50.0), ("a", 2, 60.0), ("b", 1, 80.0)])
    first = {p.name: p.read_bytes() for p in write_leaderboards(tmp_path / "runs", tmp_path / "lb")}
    second = {
        p.name: p.read_bytes() for p in write_leaderboards(tmp_path / "runs", tmp_path / "lb")
    }
    assert first == second
    markdown = first["toy.md"].decode()
    assert "| a | continual | bb | default | not recorded | 2 | 0 | 55.00 ± 7.07 |" in markdown
    assert "| b | continual | bb | default | not recorded | 1 | 0 | 80.00 |" in markdown


def test_leaderboard_shows_the_rehearsal_memory(tmp_path):
    write_all(tmp_path / "runs", [("a", 1, 50.0), ("a", 2, 60.0)], rehearsal=1000)
    write_all(tmp_path / "runs", [("b", 1, 80.0)])
    markdown = next(
        p for p in write_leaderboards(tmp_path / "runs", tmp_path / "lb") if p.suffix == ".md"
    ).read_text()
    assert "| a | continual | bb | default | not recorded | 2 | 1,000 | 55.00 ± 7.07 |" in markdown
    assert "| b | continual | bb | default | not recorded | 1 | 0 | 80.00 |" in markdown


def test_empty_records_folder(tmp_path):
    with pytest.raises(RecordError, match="no run records"):
        write_leaderboards(tmp_path, tmp_path / "out")


def test_reference_rows_are_marked_in_every_leaderboard_output(tmp_path):
    """A reference method (joint training) keeps its rank by accuracy but is labelled as
    a bound in the CSV, the Markdown table and the curves' legend; records of before the
    key existed are continual."""
    runs = tmp_path / "runs"
    write_all(runs, [("cil", 1, 50.0), ("cil", 2, 52.0)])
    for seed in (1, 2):
        record = fake_record("joint", seed, 80.0)
        record["reference"] = True
        path = record_path(runs, stream="toy", strategy="joint", backbone="bb", seed=seed,
                           variant="")  # fmt: skip
        write_record(path, record)
    out = tmp_path / "boards"
    write_leaderboards(runs, out)
    csv = (out / "toy.csv").read_text().splitlines()
    assert csv[0].startswith("strategy,backbone,variant,kind,")
    assert csv[1].startswith("joint,bb,,reference,") and csv[2].startswith("cil,bb,,continual,")
    markdown = (out / "toy.md").read_text()
    assert "| joint | reference | bb |" in markdown and "| cil | continual | bb |" in markdown
    assert "- Kind: continual;" in markdown and "or reference: not a continual method" in markdown


def test_a_row_made_partly_from_uncommitted_code_is_marked_so(tmp_path):
    """The Code column: a row is as trustworthy as its least trustworthy run."""
    commits = {("a", 1): "0" * 40, ("a", 2): "1" * 40 + "-dirty", ("b", 1): "2" * 40,
               ("c", 1): None}  # fmt: skip
    for (strategy, seed), commit in commits.items():
        record = fake_record(strategy, seed, 50.0 + seed)
        record["versions"] = {"clbench_commit": commit}
        write_record(record_path(tmp_path / "runs", stream="toy", strategy=strategy,
                                 backbone="bb", seed=seed, variant=""), record)  # fmt: skip
    written = {p.name: p for p in write_leaderboards(tmp_path / "runs", tmp_path / "lb")}
    rows = {row["strategy"]: row for row in csv.DictReader(written["toy.csv"].open())}
    assert {name: row["code"] for name, row in rows.items()} == {
        "a": "uncommitted", "b": "committed", "c": "not recorded"}  # fmt: skip
    markdown = written["toy.md"].read_text()
    assert "| a | continual | bb | default | uncommitted | 2 |" in markdown
    assert "- Code: the clbench code the runs were made from" in markdown
