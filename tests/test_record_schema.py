"""Every record field clbench reads is typed and ranged (cl_bench/results/schema.py): a
record with a wrong value is refused with its file and field, never coerced (the string
"12.5" is not a number) and never half-used."""

from __future__ import annotations

import json

import pytest
from cli_runner import clbench
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_records import fake_record

from cl_bench.results.records import read_record
from cl_bench.utils.errors import RecordError

BAD = {  # field path -> values it must refuse
    ("stream",): ["", 7, None, ["toy"], "a\nb", "\x7f"],
    ("strategy",): ["", 1.5, {"a": 1}],
    ("backbone",): ["", False],
    ("seed",): ["1993", True, -1, 2**32, 1.0],
    ("variant",): [3, None],
    ("format",): [2, "1"],
    ("reference",): ["no", 0],
    ("config",): [[], "x"],
    ("metrics",): [[], "x"],
    ("metrics", "last_accuracy"): ["12.5", "abc", True, float("nan"), float("inf"), -1, 101],
    ("metrics", "average_incremental_accuracy"): [None, "50"],
    ("metrics", "accuracy_curve"): [[], ["90", 50.0], [90.0, None], 90.0],
    ("metrics", "accuracy_matrix"): [
        [[90.0, None]],
        [[90.0], [50.0, 70.0]],
        [["a", None], [1.0, 2.0]],
    ],
    ("metrics", "bwt"): ["-1", 200.0],
    ("metrics", "correct"): [[[-1]], [["3"]]],
    ("resources", "wall_seconds"): ["1", -1.0],
    ("resources", "rehearsal_samples"): [1.5, -3, "0"],
    # read by verify (to rebuild the run), the site and `clbench evaluate`'s report
    ("limit_per_class",): [0, "5", 2.0],
    ("device",): ["", 0],
    ("split",): ["train", None],
    ("stream_info",): ["x", []],
    ("stream_info", "data_sha256"): ["abc", 12, "A" * 64],
    ("stream_info", "spec_file"): [["a"], "x" * 10_001],
    ("backbone_weights",): ["x"],
    ("backbone_weights", "sha256"): ["not-hex", 1],
    ("recipe",): ["x", []],
    ("recipe", "augmentation"): [3],
    ("recipe", "official_settings"): ["x"],
    ("strategy_provider",): ["", 1],
    ("versions",): ["x", {"torch": 2}],
    ("machine",): ["x"],
    ("strategy_report",): [[1]],
    ("started",): [1],
    # read by the leaderboard's Kind column and the site's Tuning section
    ("tuning",): [
        "x",
        {"study": "s", "objective": "last_accuracy"},  # no trial count
        {"study": "s", "trials": "10", "objective": "last_accuracy"},
        {"study": "", "trials": 10, "objective": "last_accuracy"},
        {"study": "s", "trials": 10, "objective": "a", "history": [[0, "abc"]]},
        {"study": "s", "trials": 10, "objective": "a", "history": [[0, float("inf")]]},
        {"study": "s", "trials": 10, "objective": "a", "importances": {"lr": -1.0}},
        {"study": "s", "trials": 10, "objective": "a", "space": {"lr": 0.1}},
    ],
}
CHECKED_AGAINST = {("metrics", "accuracy_curve"): ("metrics.accuracy_matrix",)}
CASES = [(path, value) for path, values in BAD.items() for value in values]


def with_value(path: tuple[str, ...], value) -> dict:
    record = fake_record("a", 1, 50.0)
    record["metrics"]["accuracy_matrix"] = [[90.0, None], [40.0, 50.0]]
    holder = record
    for key in path[:-1]:
        holder = holder.setdefault(key, {})
    holder[path[-1]] = value
    return record


def test_the_fixture_itself_is_a_valid_record(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(with_value(("variant",), "")))
    assert read_record(path)["metrics"]["last_accuracy"] == 50.0


@pytest.mark.parametrize(("path", "value"), CASES, ids=[f"{'.'.join(p)}={v!r}" for p, v in CASES])
def test_a_wrong_value_in_any_field_is_refused_by_name(tmp_path, path, value):
    file = tmp_path / "r.json"
    file.write_text(json.dumps(with_value(path, value)))
    with pytest.raises(RecordError, match=r"r\.json.*" + r"\.".join(path)):
        read_record(file)


def test_the_leaderboard_refuses_a_string_number_instead_of_dropping_it(tmp_path):
    """It used to drop "abc" silently (3 seeds shown, 2 averaged) and convert "12.5"."""
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed, last in ((1, 50.0), (2, 60.0), (3, "abc")):
        record = fake_record("a", seed, 55.0)
        record["metrics"]["last_accuracy"] = last
        (runs / f"r{seed}.json").write_text(json.dumps(record))
    code, out, err = clbench("leaderboard", "--runs", str(runs), "--out", str(tmp_path / "out"))
    message = " ".join((out + err).split())
    assert code == 2 and "r3.json: metrics.last_accuracy" in message
    assert not (tmp_path / "out").exists()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                      children, max_size=3),
    max_leaves=10,
)  # fmt: skip


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(BAD)), JSON)
@example(("metrics", "accuracy_curve"), [50.0])  # valid alone, not with the 2 x 2 matrix
def test_any_value_in_any_field_is_accepted_whole_or_refused_by_name(tmp_path, path, value):
    """Never another exception, never a coerced value: what is read is what was written."""
    record = with_value(path, value)
    file = tmp_path / "r.json"
    file.write_text(json.dumps(record))
    try:
        back = read_record(file)
    except RecordError as error:
        # the field itself, or one checked against it (the matrix is T x T for the
        # curve's T, so a valid curve of another length is refused at the matrix)
        named = {".".join(path), *CHECKED_AGAINST.get(path, ())}
        assert any(field in str(error) for field in named) and len(str(error)) < 2000
    else:
        assert back == json.loads(file.read_text())
