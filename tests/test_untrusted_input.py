"""Files and plugins are untrusted: records and specs of the wrong shape are refused with a
message, text from them renders as text (Markdown, terminal, plots), and a plugin that
breaks is listed as broken while every other strategy still runs."""

from __future__ import annotations

import json
import re

import pytest
from cli_runner import clbench, only_record
from test_records import fake_record
from test_registry import fake_distribution

from cl_bench.results.records import read_record, write_record
from cl_bench.results.report import write_reports
from cl_bench.results.text import markdown_text
from cl_bench.utils.errors import RecordError

HOSTILE = "<script>alert(1)</script>|$x$ [bold]*"


def cells(line: str) -> list[str]:
    """A Markdown table row's cells: split at pipes that are not escaped."""
    return re.split(r"(?<!\\)\|", line)[1:-1]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("a|b", "a\\|b"),
        ("[link](http://x) **b**", "\\[link\\](http://x) \\*\\*b\\*\\*"),
        ("efficientnet_lite0", "efficientnet_lite0"),
        ("_italic_", "\\_italic\\_"),
        ("two\nlines", "two lines"),
    ],
)
def test_markdown_text_is_literal(text, shown):
    assert markdown_text(text) == shown


def test_hostile_names_render_as_text_in_leaderboards_and_reports(tmp_path):
    for seed in (1, 2):
        record = fake_record(HOSTILE, seed, 50.0)
        record["variant"] = "k=<b>|"
        write_record(tmp_path / "runs" / f"r{seed}.json", record)
    written = write_reports(tmp_path / "runs", tmp_path / "out")  # CSV, MD, curves, report
    assert any(path.suffix == ".png" for path in written)  # plots drew the $x$ as text
    for page in ("toy.md", "toy-report.md"):
        text = (tmp_path / "out" / page).read_text()
        assert "<script>" not in text and "&lt;script&gt;" in text and "<b>" not in text
        header = next(line for line in text.splitlines() if line.startswith("| Strategy"))
        row = next(line for line in text.splitlines() if line.startswith("| &lt;script"))
        assert len(cells(row)) == len(cells(header))  # the name's | split no cell


@pytest.mark.parametrize(
    ("field", "value"),
    [("seed", "1993"), ("seed", True), ("strategy", 7), ("metrics", []), ("reference", "no")],
)
def test_a_record_of_the_wrong_shape_is_refused(tmp_path, field, value):
    record = fake_record("a", 1, 50.0)
    record[field] = value
    path = tmp_path / "r.json"
    path.write_text(json.dumps(record))
    with pytest.raises(RecordError, match=field):
        read_record(path)
    code, out, err = clbench("leaderboard", "--runs", str(tmp_path), "--out", str(tmp_path / "o"))
    assert code == 2 and field in " ".join((out + err).split()) and "Traceback" not in out + err


def test_broken_plugins_are_listed_and_the_others_still_run(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "crashing-plugin", "crashing_mod", "raise OSError('no GPU')\n")
    malformed = (
        "from cl_bench import StrategySpec, hookimpl\n"
        "from clbench_baselines.simplecil import SimpleCIL\n"
        "@hookimpl\n"
        "def cl_bench_strategies():\n"
        "    return [StrategySpec(123, 'a number for a name', SimpleCIL)]\n"
    )
    fake_distribution(tmp_path, "malformed-plugin", "malformed_mod", malformed)
    hostile = (
        "from cl_bench import StrategySpec, hookimpl\n"
        "from clbench_baselines.simplecil import SimpleCIL\n"
        "@hookimpl\n"
        "def cl_bench_strategies():\n"
        f"    return [StrategySpec('hostile', {HOSTILE + ' [/]'!r}, SimpleCIL)]\n"
    )
    fake_distribution(tmp_path, "hostile-plugin", "hostile_mod", hostile)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning):
        code, out, err = clbench("list", "strategies", columns=400)
    assert code == 0 and "Traceback" not in out + err
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "no GPU" in rows["crashing_mod (broken)"]
    assert "name must be a string" in rows["malformed_mod (broken)"]
    assert HOSTILE + " [/]" in rows["hostile"]  # as written, not as markup
    assert "simplecil" in rows
    with pytest.warns(UserWarning):
        code, out, err = clbench("evaluate", "--strategy", "simplecil", "--limit-per-class", "2",
                                 "--output", str(tmp_path / "runs"))  # fmt: skip
    assert code == 0, out + err
    _, record = only_record(tmp_path / "runs", 1993)  # the run was made and recorded
    assert record["strategy"] == "simplecil" and len(record["metrics"]["accuracy_matrix"]) == 10
