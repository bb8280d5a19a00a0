"""Sweeps on a real multi-node Ray cluster on this machine (Ray's own
``ray.cluster_utils.Cluster``: a head and a worker node, each a raylet of its own, each
declaring two logical GPUs on its CPUs).

- Runs are spread over both nodes, each sees only the GPU id Ray assigned it, and every
  record lands in the driver's output folder, which no task is even told of.
- The two nodes share one feature-cache folder: the stream's frozen features are
  computed once in all, and every other run reads them whole.
- A worker node removed mid-sweep has its run retried on the node left; the sweep
  finishes with every record and reports the retry, and a second sweep skips all.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import pytest
from test_standard_streams import write_image_folder

from cl_bench.experiments.executors import RayExecutor
from cl_bench.experiments.runs import RunSpec
from cl_bench.experiments.sweep import run_sweep
from cl_bench.results.records import iter_records
from cl_bench.utils.files import CACHE_ENV

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    write_image_folder(folder, classes=4, per_split=3)
    return folder


@pytest.fixture
def cluster(monkeypatch, tmp_path, ray_tmpdir):
    """A head and a worker node with 2 logical GPUs each; the driver connected."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "shared-cache"))  # one folder for both nodes
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 2,
                                                          "include_dashboard": False})  # fmt: skip
    worker = nodes.add_node(num_cpus=1, num_gpus=2)
    ray.init(address=nodes.address)
    try:
        yield nodes, worker
    finally:
        ray.shutdown()
        nodes.shutdown()


def runs(photos: Path, seeds: range) -> list[RunSpec]:
    return [RunSpec(strategy="simplecil", stream=str(photos), backbone="efficientnet_lite0",
                    seed=seed, increment=2, device="cpu") for seed in seeds]  # fmt: skip


class Watched(RayExecutor):
    """Ray's executor, keeping what the driver sends each task."""

    def run(self, fn, items, lost, retried):
        self.sent = pickle.dumps((fn, list(items)))
        return super().run(fn, items, lost, retried)


def test_runs_spread_over_the_nodes_each_on_its_own_gpu_and_records_come_home(
    cluster, photos, tmp_path
):
    output = tmp_path / "driver-records"
    executor = Watched(gpus_per_task=1)
    outcomes = list(run_sweep(runs(photos, range(4)), output, executor))

    assert [o.status for o in outcomes] == ["ran"] * 4
    records = [record for _, record in iter_records(output)]
    assert len(records) == 4  # written by the driver: no task was given the folder
    assert str(output).encode() not in executor.sent
    assert len({r["machine"]["ray_node"] for r in records}) == 2  # both nodes ran runs
    assert all(r["machine"]["gpu_ids"] in ("0", "1") for r in records)  # one assigned GPU
    # one shared cache folder: the stream's frozen features computed once in all
    forwarded = sorted(r["resources"]["frozen_images_forwarded"] for r in records)
    images = records[0]["stream_info"]["train_images"] + records[0]["stream_info"]["test_images"]
    assert forwarded == [0, 0, 0, images]
    assert all(r["resources"]["images_from_cache"] > 0 for r in records if not
               r["resources"]["frozen_images_forwarded"])  # fmt: skip


def test_a_lost_node_has_its_run_retried_and_the_sweep_finishes(cluster, photos, tmp_path):
    nodes, worker = cluster
    output = tmp_path / "records"
    retries: list[str] = []
    outcomes = []
    sweep = run_sweep(runs(photos, range(6)), output, RayExecutor(gpus_per_task=1),
                      on_retry=lambda spec, why: retries.append(why))  # fmt: skip
    for outcome in sweep:
        outcomes.append(outcome)
        if len(outcomes) == 1:  # both nodes are busy now (one CPU each, runs queued)
            time.sleep(1)
            nodes.remove_node(worker, allow_graceful=False)
    assert sorted(o.status for o in outcomes) == ["ran"] * 6
    assert len(list(iter_records(output))) == 6
    assert retries and sum(o.retries for o in outcomes) == len(retries)
    assert all(o.retries == 0 for o in outcomes[:1])

    again = list(run_sweep(runs(photos, range(6)), output, RayExecutor(gpus_per_task=1)))
    assert [o.status for o in again] == ["skipped"] * 6


def test_more_gpus_per_run_than_any_node_has_is_refused_before_any_run(cluster, photos,
                                                                       tmp_path):  # fmt: skip
    from cli_runner import clbench

    code, _, err = clbench("sweep", "--strategy", "simplecil", "--stream", str(photos),
                           "--increment", "2", "--executor", "ray", "--gpus-per-run", "3",
                           "--output", str(tmp_path / "runs"),
                           "--leaderboards", str(tmp_path / "lb"))  # fmt: skip
    assert code == 2, err
    assert "--gpus-per-run 3: the largest node of the Ray cluster has 2 GPUs" in " ".join(
        err.split()
    )
    assert not (tmp_path / "runs").exists()
