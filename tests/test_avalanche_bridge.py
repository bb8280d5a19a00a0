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
from chance import above_chance
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
from cl_bench.utils.errors import ConfigError, PluginError


@pytest.fixture(scope="module")
def small_stream(offline_spec):
    return build_stream(offline_spec, seed=1993, limit_per_class=4)


def test_naive_matrix_equals_avalanche_evaluation_plugin(small_stream, cached_backend):
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
    result = run(spec, stream=small_stream, backbone=cached_backend, config=config, seed=0)
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
    # A None default takes its type from the annotation: DER's Optional[int] stays an
    # int (it was read as a float, and a float batch size stops the DataLoader).
    der = Registry.discover().strategy("avalanche:der").strategy.Config
    assert build_config(der, {"batch_size_mem": "8"}).batch_size_mem == 8
    assert type(build_config(der, {"batch_size_mem": "8"}).batch_size_mem) is int
    with pytest.raises(ConfigError, match="batch_size_mem"):
        build_config(der, {"batch_size_mem": "8.5"})
    assert build_config(type(ewc), {"decay_factor": "0.5"}).decay_factor == 0.5


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


@pytest.mark.slow
def test_a_run_of_a_strategy_that_does_not_use_avalanche_never_imports_it(tmp_path):
    """Streams are sliced by clbench; only Avalanche strategies build the benchmark."""
    code = ("import sys; from cl_bench.cli import main\n"
            "sys.argv = ['clbench', 'evaluate', '--strategy', 'simplecil', "
            f"'--limit-per-class', '2', '--output', {str(tmp_path)!r}]\n"
            "try:\n"
            "    main()\n"
            "except SystemExit as exit:\n"
            "    assert not exit.code, exit.code\n"
            "print(sorted(m for m in sys.modules if m.startswith('avalanche')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert list(tmp_path.rglob("seed1993-*.json"))  # the run happened and was recorded


# name -> samples kept after the last experience of the small stream (4 per class, 200)
MEMORY = {"icarl": 200, "streaminglda": 0, "replay": 200, "gem": 200, "agem": 200}


@pytest.mark.parametrize("name", sorted(MEMORY))
def test_model_shapes_run_and_predict_seen_classes(name, small_stream, cached_backend):
    """Each model shape trains, predicts, and reports the memory it keeps."""
    spec = Registry.discover().strategy(f"avalanche:{name}")
    config = build_config(spec.strategy.Config, {"epochs": "1"})
    result = run(spec, stream=small_stream, backbone=cached_backend, config=config, seed=0)
    assert len(result.correct) == 10 and all(len(r) == t + 1 for t, r in enumerate(result.correct))
    # Above guessing: on the first experience among its 5 classes, and at the end over
    # all the stream's test images among its 50 classes.
    assert above_chance(result.correct[0][0], result.test_counts[0], classes=5)
    assert above_chance(sum(result.correct[-1]), sum(result.test_counts), classes=50)
    assert result.rehearsal_samples == MEMORY[name]


def test_cumulative_is_marked_as_a_reference():
    registry = Registry.discover()
    assert registry.strategy("avalanche:cumulative").reference
    assert not registry.strategy("avalanche:naive").reference


def test_list_keys_shows_the_constructor_keys():
    code, out, _ = clbench("list", "strategies", "--keys")
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines()]
    ewc = [row for row in rows if len(row) == 4 and row[1] == "ewc_lambda"]
    assert code == 0 and ewc == [["", "ewc_lambda", "1.0", "0.1..10 (log)"]]
    assert any(row[:2] == ["simplecil", "batch_size"] for row in rows if len(row) == 4)


def test_stable_ace_loss_equals_avalanches_where_that_is_finite():
    """Where Avalanche's ACE loss is finite ours is the same number; where its log of a
    softmax underflows (logits 1000 apart) it is NaN and ours is not."""
    from avalanche.training.regularization import ACECriterion
    from clbench_avalanche.fixes import asymmetric_cross_entropy

    generator = torch.Generator().manual_seed(0)
    incoming, replayed = torch.randn(2, 16, 10, generator=generator)
    labels = torch.tensor([7, 9, 8] * 5 + [7])
    replayed_labels = torch.randint(0, 10, (16,), generator=generator)
    ours = asymmetric_cross_entropy(incoming, labels, replayed, replayed_labels)
    theirs = ACECriterion()(incoming, labels, replayed, replayed_labels)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    incoming[:, 8] += 1000
    assert torch.isnan(ACECriterion()(incoming, labels, replayed, replayed_labels))
    assert torch.isfinite(asymmetric_cross_entropy(incoming, labels, replayed, replayed_labels))


def test_copying_the_model_copies_adapters_but_shares_the_backend(lite0):
    """LwF deep-copies its model every experience: the backbone must not be copied."""
    import copy

    from clbench_avalanche.strategy import BackboneFeatures

    from cl_bench import AdapterConfig, AdapterSet

    backend = Backend(lite0)
    adapters = AdapterSet.build(backend.view, [len(backend.view) - 1], AdapterConfig())
    features = BackboneFeatures(backend, adapters)
    copied = copy.deepcopy(features)
    assert copied.backend is backend and copied.adapters is not adapters
    for ours, theirs in zip(adapters.parameters(), copied.parameters(), strict=True):
        assert torch.equal(ours, theirs) and ours.data_ptr() != theirs.data_ptr()


def test_a_diverged_strategy_stops_with_a_clear_error(small_stream, cached_backend):
    """Non-finite weights after an experience (as MAS reaches at lr 0.05) stop the run,
    by clbench's own check after every experience, naming strategy and experience."""

    class Poisoned(strategy_class(BY_NAME["naive"])):
        def train(self, experience):
            with torch.no_grad():
                self.template_.model[1].classifier.bias[0] = float("nan")
            super().train(experience)

    spec = StrategySpec("avalanche:naive", "poisoned", Poisoned)
    config = build_config(Poisoned.Config, {"epochs": "1"})
    with pytest.raises(PluginError, match=r"'avalanche:naive' diverged while training on "
                       r"experience 0: NaN or infinite weights in .*bias"):  # fmt: skip
        run(spec, stream=small_stream, backbone=cached_backend, config=config, seed=0)


def test_adapters_true_trains_adapters_and_leaves_the_backbone_frozen(small_stream, lite0):
    from cl_bench.training.strategy import Runtime

    backend = Backend(lite0)
    frozen = {k: v.clone() for k, v in lite0.model.state_dict().items()}
    cls = strategy_class(BY_NAME["naive"])
    config = build_config(cls.Config, {"epochs": "1", "adapters": "true"})
    runtime = Runtime(device=backend.device, seed=0)
    strategy = cls(backbone=backend, stream=small_stream.info, config=config, runtime=runtime)
    adapters = strategy.template_.model[0].adapters
    before = [p.detach().clone() for p in adapters.parameters()]
    experience, _ = next(iter(small_stream.experiences()))
    strategy.train(experience)
    assert any(not torch.equal(a, p) for a, p in zip(before, adapters.parameters(), strict=True))
    assert all(torch.equal(frozen[k], v) for k, v in lite0.model.state_dict().items())


def test_si_learns_importances_where_avalanches_plugin_learns_none(small_stream, lite0):
    """Avalanche 0.6's SI snapshots weights as views on a CPU, so its importances stay 0
    and it trains as Naive; avalanche:si keeps copies and learns them."""
    from dataclasses import replace

    from cl_bench.training.strategy import Runtime

    backend = Backend(lite0)
    experience, _ = next(iter(small_stream.experiences()))
    importance = {}
    ours = BY_NAME["si"]
    for entry in (
        ours,
        replace(ours, class_name="SynapticIntelligence", module="avalanche.training"),
    ):
        cls = strategy_class(entry)
        config = build_config(cls.Config, {"epochs": "1"})
        runtime = Runtime(device=backend.device, seed=0)
        strategy = cls(backbone=backend, stream=small_stream.info, config=config, runtime=runtime)
        strategy.train(experience)
        [plugin] = [p for p in strategy.template_.plugins if hasattr(p, "ewc_data")]
        importance[entry.class_name] = sum(d.data.abs().sum() for d in plugin.ewc_data[1].values())
    assert importance["SynapticIntelligence"] == 0  # the defect, as shipped
    assert importance["StableSynapticIntelligence"] > 0


def test_mas_adds_its_penalty_to_a_zero_loss_where_avalanches_plugin_stops():
    """Avalanche 0.6's MAS plugin tests ``not strategy.loss``, so a minibatch whose loss
    is exactly 0 stops the run; avalanche:mas adds lambda * sum(importance * (w - w_old)^2)."""
    from types import SimpleNamespace

    from avalanche.training.plugins import MASPlugin
    from clbench_avalanche.fixes import ZeroLossMASPlugin

    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 3.0]]))
    old = {"weight": torch.tensor([[0.0, 1.0]])}
    importance = {"weight": torch.tensor([[0.5, 2.0]])}
    for plugin_class in (MASPlugin, ZeroLossMASPlugin):
        plugin = plugin_class(lambda_reg=0.1, alpha=0.5)
        plugin.params, plugin.importance = dict(old), dict(importance)
        strategy = SimpleNamespace(clock=SimpleNamespace(train_exp_counter=1), model=model,
                                   loss=torch.tensor(0.0))  # fmt: skip
        if plugin_class is MASPlugin:
            with pytest.raises(ValueError, match="Loss is not available"):
                plugin.before_backward(strategy)
        else:
            plugin.before_backward(strategy)
            # 0.1 * (0.5 * 1^2 + 2.0 * 2^2) = 0.85
            assert strategy.loss.item() == pytest.approx(0.85)


def test_mas_runs_with_its_own_defaults(small_stream, cached_backend):
    """At finetune-head's lr 0.05 MAS diverges on experience 1; its default is the
    largest learning rate measured stable (docs/avalanche.md)."""
    spec = Registry.discover().strategy("avalanche:mas")
    config = build_config(spec.strategy.Config, {})
    assert config.lr == 0.002
    result = run(spec, stream=small_stream, backbone=cached_backend, config=config, seed=0)
    assert len(result.correct) == 10
