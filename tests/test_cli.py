"""The CLI end to end on the real offline default (subsampled), and its error messages."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from cli_runner import clbench, only_record

from cl_bench.data.prepared import prepare
from cl_bench.results.leaderboard import write_leaderboards
from cl_bench.results.provenance import reproduce_argv
from cl_bench.training.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
LEADERBOARD_RUNS = ROOT / "leaderboards" / "runs"


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory) -> Path:
    """Both baselines, two seeds, 6 training images per class, through the real CLI."""
    root = tmp_path_factory.mktemp("runs")
    for strategy in ("simplecil", "finetune-head"):
        for seed in ("1993", "1994"):
            code, _, err = clbench("evaluate", "--strategy", strategy, "--seed", seed,
                                   "--limit-per-class", "6", "--output", str(root))  # fmt: skip
            assert code == 0, err
    return root


def records(root: Path) -> dict[tuple[str, int], dict]:
    found = {}
    for path in root.rglob("*.json"):
        record = json.loads(path.read_text())
        found[record["strategy"], record["seed"]] = record
    return found


def test_evaluate_writes_complete_records(quick_runs):
    found = records(quick_runs)
    assert set(found) == {
        (s, seed) for s in ("simplecil", "finetune-head") for seed in (1993, 1994)
    }
    record = found["simplecil", 1993]
    assert record["variant"] == "limit-per-class=6"
    assert record["stream_info"]["train_images"] == 50 * 6
    matrix = record["metrics"]["accuracy_matrix"]
    assert len(matrix) == 10 and all(len(row) == 10 for row in matrix)
    assert matrix[0][1] is None and matrix[9][9] is not None
    for key in (
        "last_accuracy",
        "average_incremental_accuracy",
        "forgetting_max",
        "forgetting_initial",
        "bwt",
    ):
        assert isinstance(record["metrics"][key], float)
    resources = record["resources"]
    assert len(resources["train_seconds"]) == 10 and resources["peak_rss_mib"] > 0
    assert resources["trainable_parameters"] == 0
    assert resources["rehearsal_samples"] == 0  # exemplar-free
    assert resources["torch_threads"] == 1  # the thread policy: one a run, unless --threads
    assert resources["total_parameters"] > 3_000_000
    assert record["versions"]["torch"] and record["backbone_weights"]["sha256"]
    assert record["config"] == {"batch_size": 256}
    assert record["versions"]["clbench_commit"] == expected_commit()


def expected_commit() -> str | None:
    """The checkout's HEAD (``-dirty`` with changes to tracked files) when clbench runs
    from this checkout; None when it runs from an installed sdist (tox), which has no
    checkout behind it."""
    import cl_bench

    if Path(cl_bench.__file__).resolve().parent != ROOT / "cl_bench":
        return None  # tox's copy lives under .tox/, inside the checkout but not of it
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    changed = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    return head + ("-dirty" if changed else "")


def test_a_records_reproduce_command_makes_the_same_record(quick_runs, tmp_path):
    """The command the leaderboard site shows for a run gives that run's numbers again."""
    record = records(quick_runs)["finetune-head", 1994]
    argv = reproduce_argv(record)
    assert argv[:2] == ["clbench", "evaluate"] and "--limit-per-class" in argv
    code, _, err = clbench(*argv[1:], "--output", str(tmp_path))
    assert code == 0, err
    again = records(tmp_path)["finetune-head", 1994]
    assert again["variant"] == record["variant"] and again["config"] == record["config"]
    assert again["metrics"]["correct"] == record["metrics"]["correct"]


def test_frozen_features_are_compatible_with_themselves_but_not_strictly(quick_runs):
    """SimpleCIL never changes its features: C[t][k] == C[k][k], so AC = 0 (strict)."""
    record = records(quick_runs)["simplecil", 1993]
    compatibility = record["metrics"]["compatibility"]
    assert set(compatibility) == {"search_top1", "cmc_top1", "cmc_top5", "map"}
    for summary in compatibility.values():
        matrix = summary["matrix"]
        assert [len(row) for row in matrix] == list(range(1, 11))
        assert all(row[k] == matrix[k][k] for row in matrix for k in range(len(row)))
        assert summary["ac"] == 0.0 and summary["ecc"] == [False] * 9
        assert summary["am"] == pytest.approx(sum(map(sum, matrix)) / 55)
    pngs = sorted(p.name for p in quick_runs.rglob("*-compatibility.png"))
    assert len(pngs) == 4 and all(p.startswith("seed") for p in pngs)


def test_baselines_behave_as_expected(quick_runs):
    found = records(quick_runs)
    simple, finetune = found["simplecil", 1993]["metrics"], found["finetune-head", 1993]["metrics"]
    assert simple["last_accuracy"] > 25  # 50 classes from 6 images each; chance is 2%
    # No memory: the head overwrites old classes; prototypes barely forget.
    assert finetune["forgetting_max"] > 50 > simple["forgetting_max"]
    assert finetune["last_accuracy"] < simple["last_accuracy"]
    assert found["finetune-head", 1993]["resources"]["trainable_parameters"] == 1280 * 50 + 50


def test_same_seed_same_numbers(quick_runs, tmp_path):
    code, _, _ = clbench(
        "evaluate",
        "--strategy",
        "finetune-head",
        "--seed",
        "1993",
        "--limit-per-class",
        "6",
        "--output",
        str(tmp_path),
    )
    assert code == 0
    again = records(tmp_path)["finetune-head", 1993]["metrics"]
    assert again == records(quick_runs)["finetune-head", 1993]["metrics"]


def test_leaderboard_from_records_is_reproducible(quick_runs, tmp_path):
    code, _, _ = clbench("leaderboard", "--runs", str(quick_runs), "--out", str(tmp_path / "a"))
    assert code == 0
    write_leaderboards(quick_runs, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_file())
    assert names == ["offline-mix-curves.png", "offline-mix.csv", "offline-mix.md"]
    assert (tmp_path / "a" / "site" / "index.html").is_file()  # the site: see test_site
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    csv = (tmp_path / "a" / "offline-mix.csv").read_text().splitlines()
    assert csv[0].startswith("strategy,backbone,variant,kind,code,seeds,n_seeds")
    # code: committed, uncommitted or not recorded, as the checkout the tests run from
    assert re.match(r"simplecil,efficientnet_lite0,limit-per-class=6,continual,"
                    r"(committed|uncommitted|not recorded),1993 1994,2", csv[1])  # fmt: skip


def test_summary_is_printed(tmp_path):
    code, out, err = clbench(
        "evaluate",
        "--strategy",
        "simplecil",
        "--limit-per-class",
        "2",
        "--output",
        str(tmp_path),
    )
    assert code == 0, err
    assert "last accuracy A_T (%)" in out and "forgetting, max-based" in out
    assert "record written to" in err


def test_validation_split_is_its_own_variant(quick_runs, tmp_path):
    args = ["evaluate", "--strategy", "simplecil", "--limit-per-class", "6"]
    code, _, err = clbench(*args, "--split", "validation",
                           "--output", str(tmp_path))  # fmt: skip
    assert code == 0, err
    record = records(tmp_path)["simplecil", 1993]
    assert record["split"] == "validation"
    assert record["variant"] == "limit-per-class=6,split=validation"
    tested = record["stream_info"]["test_images"]
    assert tested != records(quick_runs)["simplecil", 1993]["stream_info"]["test_images"]
    # A fifth of each class's training images (rounded, at least one), whatever the limit.
    data = prepare(Registry.discover().stream("offline-mix"))
    per_class = data.labels[~data.is_test].bincount().tolist()
    assert tested == sum(max(1, round(0.2 * n)) for n in per_class)


def test_sema_end_to_end_records_and_shows_its_expansions(tmp_path):
    quick = ["--limit-per-class", "3", "--set", "func_epochs=1", "--set", "rd_epochs=2",
             "--set", "threshold=0.01", "--output", str(tmp_path)]  # fmt: skip
    code, out, err = clbench("evaluate", "--strategy", "sema", *quick)
    assert code == 0, err
    report = records(tmp_path)["sema", 1993]["strategy_report"]
    layout = report["adapters_per_layer_after_experience"]
    assert len(layout) == 10 and layout[0] == [1, 1, 1]
    assert report["expansions"] and layout[-1] > layout[0]
    assert "sema: strategy report" in out and "adapters per layer after experience" in out
    assert "1 1 1 | " in out


def test_list_prints_a_table(monkeypatch):
    code, out, _ = clbench("list", "backbones")
    assert code == 0
    assert "efficientnet_lite0" in out and "distribution" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "nope"], "unknown strategy 'nope'; available strategies: .*simplecil"),
        (["--strategy", "simplecil", "--stream", "cifar"], "unknown stream 'cifar'; .*offline-mix"),
        (["--strategy", "simplecil", "--backbone", "resnet"], "unknown backbone 'resnet'; .*lite0"),
        (
            ["--strategy", "finetune-head", "--set", "learning_rate=1"],
            "unknown config key 'learning_rate'",
        ),
        (["--strategy", "finetune-head", "--set", "epochs=many"], "'epochs': expected int"),
        (["--strategy", "finetune-head", "--set", "lr=-1"], "'lr': must be positive"),
        (
            ["--strategy", "simplecil", "--limit-per-class", "0"],
            "Invalid value for '--limit-per-class': 0 is not in the range x>=1",
        ),
        (["--strategy", "simplecil", "--device", "cuda:7"], "no CUDA device|not a device"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, args, message):
    import re

    code, _, err = clbench("evaluate", *args, "--output", str(tmp_path))
    assert code == 2
    assert re.search(message, " ".join(err.split())), err
    assert not list(tmp_path.rglob("*"))


def test_crashing_strategy_leaves_no_record(monkeypatch, tmp_path):
    from clbench_baselines.simplecil import SimpleCIL

    def explode(self, experience):
        if experience.index == 2:
            raise RuntimeError("out of ideas")
        return original(self, experience)

    original = SimpleCIL.train
    monkeypatch.setattr(SimpleCIL, "train", explode)
    code, _, err = clbench(
        "evaluate",
        "--strategy",
        "simplecil",
        "--limit-per-class",
        "2",
        "--output",
        str(tmp_path),
    )
    assert code == 2
    assert "strategy 'simplecil' failed during training on experience 2" in err
    assert "out of ideas" in err
    assert not list(tmp_path.rglob("*.json"))


def test_rehearsal_strategy_end_to_end_records_its_memory(tmp_path):
    """OCA keeps a feature memory: the record and the summary say how large."""
    code, out, _ = clbench(
        "evaluate", "--strategy", "oca", "--limit-per-class", "6",
        "--set", "epochs=2", "--set", "warmup_epochs=1", "--set", "memory_per_class=3",
        "--output", str(tmp_path),
    )  # fmt: skip
    assert code == 0
    [path] = tmp_path.rglob("seed1993-*.json")
    record = json.loads(path.read_text())
    assert record["resources"]["rehearsal_samples"] == 3 * 50
    assert "rehearsal memory (samples of past experiences)" in out and "150" in out
    # AC as CL2R defines it, from the recorded matrix: the share of pairs k < t in which
    # model t's queries score higher against model k's gallery than model k's own did.
    search = record["metrics"]["compatibility"]["search_top1"]
    matrix = search["matrix"]
    assert [len(row) for row in matrix] == list(range(1, 11))
    assert all(0 <= value <= 100 for row in matrix for value in row)
    held = [matrix[t][k] > matrix[k][k] for t in range(10) for k in range(t)]
    assert search["ac"] == pytest.approx(sum(held) / len(held))
    assert search["am"] == pytest.approx(sum(map(sum, matrix)) / 55)


def test_help_loads_no_command_and_no_torch():
    """`clbench --help` answers without importing a command module (and torch with it);
    its one-line summaries are each command's own first paragraph."""
    import subprocess
    import sys

    import click

    from cl_bench.cli import COMMANDS, cli

    code = ("import sys; from cl_bench.cli import main; sys.argv = ['clbench', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'avalanche',"
            " 'pandas') or m in ('cl_bench.cli.evaluate', 'cl_bench.cli.sweep')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Commands:" in out.stdout and out.stdout.strip().endswith("[]")
    context = click.Context(cli)
    for name, (_, _, summary) in COMMANDS.items():
        command = cli.get_command(context, name)
        assert " ".join(command.help.split("\n\n")[0].split()) == summary, name


def test_evaluate_says_whether_it_reproduced_the_committed_record(tmp_path, monkeypatch):
    """The quick start's check: a run whose committed record exists is compared with it."""
    import cl_bench.results.comparison as comparison

    # The checkout's committed records (an installed copy, as tox's, has none of its own).
    monkeypatch.setattr(comparison, "COMMITTED_RUNS", LEADERBOARD_RUNS)
    args = ["evaluate", "--strategy", "simplecil", "--seed", "1993"]
    code, _, err = clbench(*args, "--output", str(tmp_path / "a"))
    assert code == 0, err
    assert "identical to the committed record" in " ".join(err.split())

    committed = tmp_path / "committed"  # a committed record that the code no longer gives
    _, record = only_record(tmp_path / "a", 1993)
    record["metrics"]["last_accuracy"] += 3.0
    record["versions"]["torch"] = "0.0.1"
    target = committed / "offline-mix" / "simplecil" / "efficientnet_lite0" / "seed1993.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(record))
    monkeypatch.setattr(comparison, "COMMITTED_RUNS", committed)
    code, _, err = clbench(*args, "--output", str(tmp_path / "b"))
    text = " ".join(err.split())
    assert code == 0 and "differs from the committed record" in text
    assert "last_accuracy" in text and "torch: 0.0.1 -> " in text


def test_python_dash_m_lists_every_stream_spec_with_its_family():
    """``python -m cl_bench`` is the same CLI; ``list streams`` shows each spec file."""
    import sys

    import yaml

    out = subprocess.run([sys.executable, "-m", "cl_bench", "list", "streams"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "250"}).stdout  # fmt: skip
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines()]
    listed = {row[0]: row[3] for row in rows if len(row) == 4 and row[0]}
    specs = [yaml.safe_load(path.read_text()) for path in (ROOT / "streams").glob("*.yaml")]
    assert listed == {spec["name"]: spec.get("family") or "-" for spec in specs}
