"""A trained strategy kept for later use: ``clbench evaluate --save-model PATH`` writes
its final state with its record's provenance, ``clbench predict --model PATH`` loads it
and classifies images.

The file is sealed as checkpoints are (a checksum, plain data loaded with
``weights_only``: reading a model file someone sent runs no code from it). Loading
rebuilds the strategy as the run built it (its registered class, the recorded config,
the stream's classes, the backbone and its weights) and loads the state into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cl_bench.data.experience import StreamInfo
from cl_bench.experiments.checkpoints import CheckpointProblem, read_sealed, write_sealed
from cl_bench.experiments.names import resolve_backbone
from cl_bench.models.backbones.base import BackboneOptions
from cl_bench.models.backend import shared_backend
from cl_bench.training.registry import Registry
from cl_bench.training.strategy import Runtime, Strategy
from cl_bench.utils.config import build_config
from cl_bench.utils.errors import ClbenchError, shortened

MAGIC = b"clbench-model 1\n"
# what of the run's record a model file keeps: what rebuilds the strategy, and provenance
PROVENANCE = ("stream", "strategy", "backbone", "seed", "variant", "config", "overrides",
              "stream_info", "backbone_weights", "versions", "finished")  # fmt: skip


def save_model(path: Path, record: Mapping[str, Any], strategy: Strategy) -> None:
    provenance = {key: record[key] for key in PROVENANCE if key in record}
    write_sealed(path, {"record": provenance, "state": strategy.state_dict()}, MAGIC)


@dataclass
class LoadedModel:
    record: dict[str, Any]  # the provenance kept from the run's record
    strategy: Strategy
    fit: str | list[Any]  # how the run's images were fitted to its resolution

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.strategy.stream.class_names


def load_model(path: Path, registry: Registry, *, weights: Path | None = None,
               device: torch.device | None = None) -> LoadedModel:  # fmt: skip
    """The strategy of a model file, ready to predict (``weights``: the backbone's local
    checkpoint, when the run loaded one with ``--weights``)."""
    try:
        saved = read_sealed(path, MAGIC, "a clbench model file")
    except CheckpointProblem as problem:
        raise ClbenchError(f"model file {shortened(str(path))} {problem}") from None
    record = saved.get("record")
    if not isinstance(record, dict) or "state" not in saved:
        raise ClbenchError(f"model file {shortened(str(path))} holds no strategy state")
    spec = registry.strategy(record["strategy"])
    loaded_weights = (record.get("backbone_weights") or {}).get("file")
    if loaded_weights and weights is None and "weights=" in (record.get("variant") or ""):
        raise ClbenchError(
            f"the model was trained on backbone weights from a local file "
            f"({shortened(loaded_weights)}): give that file with --weights"
        )
    info = record["stream_info"]
    stream = StreamInfo(
        record["stream"],
        tuple(info["class_names"]),
        tuple(tuple(classes) for classes in info["classes_per_experience"]),
        info["resolution"],
    )
    device = device or torch.device("cpu")
    backend = shared_backend(
        resolve_backbone(registry, record["backbone"]),
        BackboneOptions(device=device, weights=weights, image_size=stream.resolution),
    )
    config = build_config(spec.strategy.Config, record["config"])
    strategy = spec.strategy(backbone=backend, stream=stream, config=config,
                             runtime=Runtime(device=device, seed=record["seed"]))  # fmt: skip
    strategy.load_state_dict(saved["state"])
    return LoadedModel(record, strategy, info.get("fit", "pad"))
