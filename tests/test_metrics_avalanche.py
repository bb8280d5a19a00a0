"""Our metrics against Avalanche's own, computed on the same run of the same strategy."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from cl_bench.data.streams import build_stream
from cl_bench.evaluation import metrics
from cl_bench.evaluation.protocol import run
from cl_bench.training.registry import Registry
from cl_bench.training.strategy import Runtime


@pytest.fixture(scope="module")
def both_runs(offline_spec, cached_backend):
    from avalanche.evaluation.metrics import accuracy_metrics, bwt_metrics, forgetting_metrics
    from avalanche.training.plugins import EvaluationPlugin, SupervisedPlugin
    from avalanche.training.templates import SupervisedTemplate

    spec = Registry.discover().strategy("simplecil")
    config = spec.strategy.Config()
    stream = build_stream(offline_spec, seed=1993, limit_per_class=4)
    backend = cached_backend
    ours = run(spec, stream=stream, backbone=backend, config=config, seed=1993)

    strategy = spec.strategy(
        backbone=backend,
        stream=stream.info,
        config=config,
        runtime=Runtime(device=torch.device("cpu"), seed=1993),
    )

    class Predictions(nn.Module):
        """Avalanche sees the clbench strategy as a model emitting one-hot logits."""

        def __init__(self):
            super().__init__()
            self.anchor = nn.Parameter(torch.zeros(()))  # lets Avalanche's backward run

        def forward(self, x):
            hot = nn.functional.one_hot(strategy.predict(x), stream.info.num_classes).float()
            return hot + 0 * self.anchor

    trains = [train for train, _ in stream.experiences()]  # the same as Avalanche's (tested)

    class TrainClbenchStrategy(SupervisedPlugin):
        def before_training_exp(self, template, **kwargs):
            strategy.train(trains[template.experience.current_experience])

    evaluator = EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        bwt_metrics(experience=True, stream=True),
        loggers=[],
    )
    model = Predictions()
    template = SupervisedTemplate(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        criterion=nn.CrossEntropyLoss(),
        train_mb_size=256,
        train_epochs=1,
        eval_mb_size=256,
        plugins=[TrainClbenchStrategy()],
        evaluator=evaluator,
        device="cpu",
    )
    theirs = []
    benchmark = stream.benchmark
    for t, experience in enumerate(benchmark.train_stream):
        template.train(experience)
        theirs.append(template.eval(benchmark.test_stream[: t + 1]))
    return ours, theirs


def value(results: dict, pattern: str) -> float:
    [hit] = [v for k, v in results.items() if re.fullmatch(pattern, k)]
    return float(hit)


pytestmark = pytest.mark.filterwarnings("ignore:No loggers specified")


def test_accuracy_matrix_and_curve_match_avalanche(both_runs):
    ours, theirs = both_runs
    matrix = metrics.accuracy_matrix(ours.correct, ours.test_counts)
    curve = metrics.accuracy_curve(ours.correct, ours.test_counts)
    for t, results in enumerate(theirs):
        for j in range(t + 1):
            expected = value(results, rf"Top1_Acc_Exp/eval_phase/test_stream/Exp{j:03d}")
            assert matrix[t, j] == pytest.approx(100 * expected)
        stream_accuracy = value(results, r"Top1_Acc_Stream/eval_phase/test_stream")
        assert curve[t] == pytest.approx(100 * stream_accuracy)


def test_forgetting_and_bwt_match_avalanche_definitions(both_runs):
    ours, theirs = both_runs
    matrix = metrics.accuracy_matrix(ours.correct, ours.test_counts)
    final = theirs[-1]
    steps = len(matrix)
    for j in range(steps - 1):
        forgetting = value(final, rf"ExperienceForgetting/eval_phase/test_stream/Exp{j:03d}")
        assert matrix[j, j] - matrix[-1, j] == pytest.approx(100 * forgetting)
    stream_forgetting = value(final, r"StreamForgetting/eval_phase/test_stream")
    stream_bwt = value(final, r"StreamBWT/eval_phase/test_stream")
    assert metrics.forgetting_initial(matrix) == pytest.approx(100 * stream_forgetting)
    assert metrics.backward_transfer(matrix) == pytest.approx(100 * stream_bwt)
    assert metrics.forgetting_max(matrix) >= metrics.forgetting_initial(matrix)
