"""GPU-aware local sweeps on logical devices (this machine has no GPU): the pool pins
each run to its slot's GPUs through ``CUDA_VISIBLE_DEVICES``, set before the run's
process imports torch, never gives one slot to two runs at once, and runs as many at
once as fit; impossible requests are refused before any run."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

import pytest
from cli_runner import clbench

from cl_bench.experiments.executors import LocalExecutor, gpu_slots, make_executor
from cl_bench.utils.errors import ClbenchError, ConfigError


def what_the_run_saw(seconds: float) -> tuple[str | None, bool, float, float]:
    """The run's GPUs, whether torch was imported before the run began, and its span."""
    torch_before = "torch" in sys.modules
    start = time.time()
    time.sleep(seconds)
    return os.environ.get("CUDA_VISIBLE_DEVICES"), torch_before, start, time.time()


def lost(item, error):
    raise AssertionError(f"a worker was lost: {error}")


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_slots_give_whole_gpus_or_shares_round_robin():
    assert gpu_slots(["0", "1", "2", "3"], 2) == ["0,1", "2,3"]
    assert gpu_slots(["0", "1", "2", "3"], 1) == ["0", "1", "2", "3"]
    assert gpu_slots(["4", "6"], 0.5) == ["4", "6", "4", "6"]
    assert gpu_slots(["0", "1", "2"], 2) == ["0,1"]  # the odd GPU out stays idle
    with pytest.raises(ClbenchError, match=r"--gpus-per-run 3: this machine has 2 GPUs"):
        gpu_slots(["0", "1"], 3)
    with pytest.raises(ClbenchError, match=r"a share of one GPU .* or a whole number"):
        gpu_slots(["0", "1"], 1.5)


@pytest.mark.parametrize(("per_run", "expected"), [(0.5, {"0": 4, "1": 4}),
                                                   (1, {"0": 4, "1": 4}),
                                                   (2, {"0,1": 8})])  # fmt: skip
def test_each_local_run_sees_only_its_slot_and_no_slot_is_shared(per_run, expected):
    slots = gpu_slots(["0", "1"], per_run)
    executor = LocalExecutor(gpu_slots=slots)
    assert executor.workers == len(slots)  # as many at once as fit: GPUs / G
    results = list(executor.run(what_the_run_saw, [0.6] * 8, lost))
    assert Counter(seen for seen, *_ in results) == expected
    assert not any(torch_before for _, torch_before, *_ in results)
    for slot in set(slots):  # a slot's runs never overlap beyond its copies in the plan
        spans = [(start, end) for seen, _, start, end in results if seen == slot]
        assert most_at_once(spans) <= slots.count(slot)
    if len(slots) > 1:  # and the slots run in parallel
        assert most_at_once([(start, end) for *_, start, end in results]) > 1


def test_more_workers_than_fit_on_the_gpus_is_refused():
    with pytest.raises(ClbenchError, match=r"--workers 5: only 4 runs fit on the GPUs"):
        LocalExecutor(5, gpu_slots=gpu_slots(["0", "1"], 0.5))


def test_gpus_per_run_on_a_machine_without_gpus_is_refused():
    with pytest.raises(ClbenchError, match=r"--gpus-per-run 1: this machine has no GPU"):
        make_executor("local", gpus_per_run=1)


def test_the_sweep_refuses_impossible_gpu_requests_before_any_run(tmp_path):
    base = ["sweep", "--strategy", "simplecil", "--limit-per-class", "2",
            "--output", str(tmp_path / "runs"), "--leaderboards", str(tmp_path / "lb")]  # fmt: skip
    code, _, err = clbench(*base, "--device", "cuda")
    assert code == 2 and "no CUDA device is available" in err
    code, _, err = clbench(*base, "--gpus-per-run", "1")
    assert code == 2 and "--gpus-per-run 1: this machine has no GPU" in " ".join(err.split())
    code, _, err = clbench(*base, "--gpus-per-run", "0.5", "--device", "cuda:1")
    assert code == 2 and "the executor assigns each run its GPUs" in " ".join(err.split())
    assert not (tmp_path / "runs").exists()


def test_a_grid_file_takes_gpus_per_run_and_checks_it(tmp_path):
    from cl_bench.experiments.grid import make_grid

    defaults = {"stream": "offline-mix", "backbone": "efficientnet_lite0", "seed": 1993}
    grid = make_grid({"strategy": "simplecil", "gpus-per-run": 0.25}, {}, defaults)
    assert grid.gpus_per_run == 0.25
    assert make_grid({"strategy": "simplecil", "device": "cuda"}, {}, defaults).gpus_per_run == 1
    assert make_grid({"strategy": "simplecil"}, {}, defaults).gpus_per_run == 0
    with pytest.raises(ConfigError, match="gpus-per-run must be a number above 0"):
        make_grid({"strategy": "simplecil", "gpus-per-run": "two"}, {}, defaults)
