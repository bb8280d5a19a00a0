"""Avalanche's strategies on clbench: the accuracy matrix clbench records for
avalanche:naive equals, entry for entry, what Avalanche's own EvaluationPlugin reports
for the same run; hyper-parameters come from the constructors; unavailable strategies
are listed with their reason and refused with a clear error; importing clbench loads
no Avalanche module."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from clbench_avalanche.catalogue import BY_NAME
from clbench_avalanche.strategy import strategy_class
from cli_runner import clbench

from cl_bench.data.streams import build_stream
from cl_bench.evaluation.metrics import summarise
from cl_bench.evaluation.protocol import run
from cl_bench.models.backend import Backend
from cl_bench.training.registry import Registry
from cl_bench.training.strategy import StrategySpec
from cl_bench.utils.config import build_config
from cl_bench.utils.errors import ConfigError


@pytest.fixture(scope="module")
def small_stream(offline_spec):
    return build_stream(offline_spec, seed=1993, limit_per_class=4)


def test_naive_matrix_equals_avalanche_evaluation_plugin(small_stream, lite0):
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin

    test_stream = small_stream.benchmark.test_stream
    reported: list[dict] = []

    class Checked(strategy_class(BY_NAME["naive"])):
        """avalanche:naive, also evaluated by Avalanche after each experience."""

        def _evaluator(self):
            return EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])

        def train(self, experience):
            super().train(experience)
            self.template_.eval(test_stream[: experience.index + 1])
            reported.append(dict(self.template_.evaluator.get_last_metrics()))

    spec = StrategySpec("avalanche:naive", "checked", Checked)
    config = build_config(Checked.Config, {"epochs": "2"})
    result = run(spec, stream=small_stream, backbone=Backend(lite0), config=config, seed=0)
    matrix = summarise(result.correct, result.test_counts)["accuracy_matrix"]
    assert len(reported) == len(matrix) == 10
    for t, row in enumerate(matrix):
        for j in range(t + 1):
            [key] = [k for k in reported[t] if k.startswith("Top1_Acc_Exp") and
                     k.endswith(f"Exp{j:03d}")]  # fmt: skip
            assert row[j] == pytest.approx(100 * reported[t][key], abs=1e-9), (t, j)
    assert matrix[0][0] > 20  # it learned something: chance is 20% on five classes


def test_hyper_parameters_come_from_the_constructors():
    ewc = Registry.discover().strategy("avalanche:ewc").strategy.Config()
    assert ewc.ewc_lambda == 1.0  # no Avalanche default: the baselines' value
    assert ewc.mode == "separate"  # Avalanche's default
    assert (ewc.epochs, ewc.lr, ewc.batch_size) == (10, 0.05, 64)  # finetune-head's
    agem = Registry.discover().strategy("avalanche:agem").strategy.Config()
    assert (agem.patterns_per_exp, agem.sample_size) == (65, 1300)  # baselines over 64


def test_unavailable_strategies_are_listed_and_refused_clearly(tmp_path):
    code, out, _ = clbench("list", "strategies")
    assert code == 0 and "avalanche:pnn" in out and "unavailable" in out
    code, _, err = clbench("evaluate", "--strategy", "avalanche:pnn", "--output", str(tmp_path))
    assert code == 2 and "avalanche:pnn is unavailable" in " ".join(err.split())
    assert "Traceback" not in err and not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="task labels"):
        _ = Registry.discover().strategy("avalanche:pnn").strategy.Config


def test_importing_clbench_loads_no_avalanche_module():
    code = ("import sys, cl_bench, cl_bench.cli; from cl_bench.training.registry import "
            "Registry; Registry.discover(); "
            "print(sorted(m for m in sys.modules if m.startswith('avalanche')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# name -> samples kept after the last experience of the small stream (4 per class, 200)
MEMORY = {"icarl": 200, "streaminglda": 0, "replay": 200, "gem": 200, "agem": 200}


@pytest.mark.parametrize("name", sorted(MEMORY))
def test_model_shapes_run_and_predict_seen_classes(name, small_stream, lite0):
    """Each model shape trains, predicts, and reports the memory it keeps."""
    spec = Registry.discover().strategy(f"avalanche:{name}")
    config = build_config(spec.strategy.Config, {"epochs": "1"})
    result = run(spec, stream=small_stream, backbone=Backend(lite0), config=config, seed=0)
    matrix = summarise(result.correct, result.test_counts)["accuracy_matrix"]
    assert matrix[-1][-1] is not None and len(matrix) == 10
    assert torch.tensor(result.correct[-1]).sum() > 0
    assert result.rehearsal_samples == MEMORY[name]


def test_cumulative_is_marked_as_a_reference():
    registry = Registry.discover()
    assert registry.strategy("avalanche:cumulative").reference
    assert not registry.strategy("avalanche:naive").reference

def test_list_keys_shows_the_constructor_keys():
    code, out, _ = clbench("list", "strategies", "--keys")
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines()]
    ewc = [row for row in rows if len(row) == 3 and row[1] == "ewc_lambda"]
    assert code == 0 and ewc == [["", "ewc_lambda", "1.0"]]
    assert any(row[:2] == ["simplecil", "batch_size"] for row in rows if len(row) == 3)
