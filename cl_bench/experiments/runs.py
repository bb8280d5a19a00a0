"""One run: what names it (:class:`RunSpec`), and the two steps every run goes through.

``clbench evaluate`` and every sweep worker call :func:`evaluate_run`, and the process
that owns the output folder calls :func:`write_run`, so a sweep writes the same
records, under the same paths, that single runs would.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cl_bench.data.streams import build_stream
from cl_bench.evaluation.metrics import summarise
from cl_bench.evaluation.protocol import run
from cl_bench.experiments.checkpoints import Checkpoints
from cl_bench.experiments.models import save_model
from cl_bench.experiments.names import resolve_backbone, resolve_stream, stream_name
from cl_bench.experiments.recipes import resolve_recipe
from cl_bench.experiments.tracking import end_of_run, open_loggers
from cl_bench.experiments.trials import TrialReporter
from cl_bench.models.backbones.base import BackboneOptions
from cl_bench.models.backend import Backend, shared_backend
from cl_bench.models.feature_cache import FeatureCache
from cl_bench.results.heatmaps import write_compatibility_heatmap
from cl_bench.results.records import (
    RECORD_FORMAT,
    checkpoint_sha256,
    machine_description,
    package_versions,
    path_of_record,
    record_path,
    save_elsewhere,
    utc_now,
    variant_of,
    write_record,
)
from cl_bench.training.registry import Registry
from cl_bench.training.tracking import Loggers, RunStart
from cl_bench.utils.config import config_to_dict
from cl_bench.utils.errors import ClbenchError, ConfigError, ProvenanceMismatchError, shortened
from cl_bench.utils.files import CACHE_ENV, cache_dir, folder_problem
from cl_bench.utils.threads import DEFAULT_THREADS, torch_threads


@dataclass(frozen=True)
class RunSpec:
    """One run: what ``clbench evaluate`` takes, and what names its record."""

    strategy: str
    stream: str
    backbone: str
    seed: int
    overrides: Mapping[str, str] = field(default_factory=dict)
    limit_per_class: int | None = None
    split: str = "test"
    weights: Path | None = None
    device: str = "auto"
    use_cache: bool = True
    increment: int | None = None  # for an image folder given by path
    initial_classes: int | None = None
    threads: int = DEFAULT_THREADS  # torch threads: they decide how float sums round
    # Set by `clbench verify`: the run stops before training unless the data and the
    # weights on disk are the ones the record was made from.
    expected_data_sha256: str | None = None
    expected_weights_sha256: str | None = None
    # Checkpoints after every experience (cl_bench.experiments.checkpoints): in this
    # folder, or the cache's checkpoints/ (none with --no-cache and no folder given).
    checkpoints: Path | None = None
    resume: bool = True  # go on from a usable checkpoint
    save_checkpoints: bool = True  # off for `clbench verify`'s reruns
    keep_checkpoints: bool = False  # leave it once the record is written
    save_model: Path | None = None  # the trained strategy's state and provenance, at the end
    # Experiment trackers (`--log NAME[:ARGUMENT]`), made in the process that runs it,
    # and the sweep it belongs to (trackers group its runs by it).
    log: tuple[str, ...] = ()
    group: str | None = None
    # settings chosen by `clbench tune`: its study, trials and space, kept in the record
    tuning: Mapping[str, Any] | None = None
    # a tuning trial that reports each experience's accuracy to its study, which may
    # prune it: (storage URL, study name, trial id)
    trial: tuple[str, str, int] | None = None

    @property
    def study(self) -> str | None:
        """The tuning study that chose a tuned run's settings (part of its variant)."""
        return self.tuning["study"] if self.tuning else None

    @property
    def variant(self) -> str:
        weights = checkpoint_sha256(self.weights.absolute()) if self.weights else None
        return variant_of(self.overrides, self.limit_per_class, self.split, weights, self.study)

    @property
    def label(self) -> str:
        variant = f" [{self.variant}]" if self.variant else ""
        return f"{self.strategy} on {self.stream} with {self.backbone}, seed {self.seed}{variant}"

    def record_path(self, root: Path) -> Path:
        return record_path(
            root,
            stream=stream_name(self.stream, self.increment, self.initial_classes),
            strategy=self.strategy,
            backbone=self.backbone,
            seed=self.seed,
            variant=self.variant,
        )

    def checkpoint_path(self) -> Path | None:
        folder = self.checkpoints or (cache_dir() / "checkpoints" if self.use_cache else None)
        return None if folder is None else self.record_path(folder).with_suffix(".checkpoint")

    def discard_checkpoint(self) -> None:
        """Once the run's record is written: its checkpoint has served."""
        path = self.checkpoint_path()
        if path is not None and not self.keep_checkpoints:
            path.unlink(missing_ok=True)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def resolve_device(name: str, here: bool = True) -> torch.device:
    """``auto`` is CUDA when available; a CUDA device that is not there is a clear error
    (``here=False``: only the name is checked, for runs on other machines)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ClbenchError(
            f"--device {shortened(name)} is not a device; use cpu, cuda, cuda:N or auto"
        ) from error
    if here and device.type == "cuda" and not torch.cuda.is_available():
        raise ClbenchError(f"--device {name}: no CUDA device is available; use --device cpu")
    return device


def evaluate_run(
    spec: RunSpec,
    registry: Registry,
    track: Callable[..., Iterator[Any]] | None = None,
    say: Callable[[str], None] = _to_stderr,
) -> dict[str, Any]:
    """Run ``spec`` and return its complete run record (nothing but its checkpoint
    written); ``say`` gets what the run reports about its checkpoint.

    Names and config are validated before any data is loaded or model built. The run
    uses ``spec.threads`` torch threads, whatever the calling process uses.
    """
    with torch_threads(spec.threads):
        return _evaluate(spec, registry, track, say)


def _evaluate(
    spec: RunSpec,
    registry: Registry,
    track: Callable[..., Iterator[Any]] | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    device = resolve_device(spec.device)
    strategy_spec = registry.strategy(spec.strategy)
    stream_spec = resolve_stream(registry, spec.stream, spec.increment, spec.initial_classes)
    backbone_spec = resolve_backbone(registry, spec.backbone)
    recipe = resolve_recipe(strategy_spec, stream_spec, spec.overrides)
    config, overrides = recipe.config, recipe.overrides
    if spec.use_cache and (problem := folder_problem(cache_dir())):
        raise ConfigError(
            f"cache folder {shortened(str(cache_dir()))} {problem}; set --cache-dir or "
            f"${CACHE_ENV} to a writable folder, or pass --no-cache"
        )
    started, clock = utc_now(), time.perf_counter()
    # The backbone first: a missing checkpoint should fail before images are prepared.
    backend = shared_backend(
        backbone_spec,
        BackboneOptions(device=device, weights=spec.weights, image_size=stream_spec.resolution),
    )
    backend.feature_cache = FeatureCache(enabled=spec.use_cache)
    backend.stats.reset()
    stream_spec = stream_spec.fitted_to(backend.backbone.input_size, backend.backbone.crop_pct)
    built = build_stream(
        stream_spec,
        seed=spec.seed,
        limit_per_class=spec.limit_per_class,
        use_cache=spec.use_cache,
        track=track,
        split=spec.split,
    )
    _check_expected(spec, built.data_sha256, backend.weights)
    provider = registry.provider("strategy", spec.strategy).distribution
    variant = variant_of(overrides, spec.limit_per_class, spec.split,
                         _loaded_sha256(backend, spec.weights), spec.study)  # fmt: skip
    checkpoints = _checkpoints(spec, say, {
        "stream": stream_spec.name, "strategy": spec.strategy, "backbone": spec.backbone,
        "seed": spec.seed, "variant": variant, "config": config_to_dict(config),
        "data_sha256": built.data_sha256, "weights": backend.weights,
        "versions": package_versions(), "device": str(device),
        "torch_threads": torch.get_num_threads(),
    })  # fmt: skip
    progress = checkpoints.load() if checkpoints else None
    loggers = open_loggers(registry, spec.log, say)
    if spec.trial is not None:
        loggers.loggers.append(("tuning", TrialReporter(*spec.trial)))
    start = RunStart(
        identity={"stream": stream_spec.name, "strategy": spec.strategy,
                  "backbone": spec.backbone, "seed": spec.seed, "variant": variant},
        config=config_to_dict(config), recipe=recipe.describe(),
        provenance={"versions": package_versions(), "device": str(device),
                    "data_sha256": built.data_sha256, "backbone_weights": backend.weights,
                    "strategy_provider": provider},
        path=record_path(Path(), stream=stream_spec.name, strategy=spec.strategy,
                         backbone=spec.backbone, seed=spec.seed,
                         variant=variant).with_suffix("").as_posix(),
        group=spec.group,
        resumed_after_experience=None if progress is None else progress.experience,
    )  # fmt: skip
    with loggers.for_run(start):  # a failed run closes its loggers with its error
        record = _run_record(spec, strategy_spec, stream_spec, backend, built, recipe, device,
                             provider, variant, checkpoints, progress, loggers, track,
                             started, clock)  # fmt: skip
        if loggers:
            end_of_run(loggers, record)
    return record


def _run_record(spec: RunSpec, strategy_spec: Any, stream_spec: Any, backend: Backend,
                built: Any, recipe: Any, device: torch.device, provider: str, variant: str,
                checkpoints: Checkpoints | None, progress: Any, loggers: Loggers,
                track: Callable[..., Iterator[Any]] | None, started: str,
                clock: float) -> dict[str, Any]:  # fmt: skip
    """Train and evaluate, and the run's record."""
    config, overrides = recipe.config, recipe.overrides
    result = run(strategy_spec, stream=built, backbone=backend, config=config, seed=spec.seed,
                 track=track, resume=progress, loggers=loggers,
                 after_experience=checkpoints.save if checkpoints else None)  # fmt: skip
    record = {
        "format": RECORD_FORMAT,
        "stream": stream_spec.name,
        "strategy": spec.strategy,
        # A bound such as joint training, not a continual method (leaderboards mark it).
        "reference": strategy_spec.reference,
        "backbone": spec.backbone,
        "seed": spec.seed,
        # the checkpoint as loaded, whatever has happened to its file since
        "variant": variant,
        "split": spec.split,
        "config": config_to_dict(config),
        "overrides": dict(overrides),
        # Where the config's values come from: the official settings of the stream's
        # family (if the strategy's code has them), then --set.
        "recipe": recipe.describe(),
        # how `clbench tune` chose the settings, for a tuned run
        "tuning": dict(spec.tuning) if spec.tuning else None,
        "limit_per_class": spec.limit_per_class,
        "stream_info": {
            "spec_file": stream_spec.path.name if stream_spec.path else None,
            "class_order": built.class_order,
            "class_names": list(built.info.class_names),
            "classes_per_experience": [list(c) for c in built.info.classes_per_experience],
            "resolution": built.info.resolution,
            "fit": [stream_spec.fit, stream_spec.crop_pct] if stream_spec.fit == "crop" else "pad",
            "train_images": built.num_train_images,
            # the prepared images, labels and split: what `clbench verify` checks first
            "data_sha256": built.data_sha256,
            "test_images": sum(result.test_counts),
            # Where this strategy's result should land, in the papers' own setting.
            "published": [
                dataclasses.asdict(p) for p in stream_spec.published if p.strategy == spec.strategy
            ],
        },
        "backbone_weights": backend.weights,
        "strategy_provider": provider,
        "strategy_provider_version": _distribution_version(provider),
        "strategy_report": result.strategy_report,
        "versions": package_versions(),
        "device": str(device),
        "machine": machine_description(
            torch.cuda.get_device_name(device) if device.type == "cuda" else None
        ),
        "started": started,
        "finished": utc_now(),
        "metrics": {
            **summarise(result.correct, result.test_counts),
            "correct": result.correct,
            "test_counts": result.test_counts,
            "compatibility": result.compatibility,
        },
        "resources": {
            "wall_seconds": time.perf_counter() - clock,
            "train_seconds": result.train_seconds,
            "eval_seconds": result.eval_seconds,
            "compatibility_seconds": result.compatibility_seconds,
            "peak_rss_mib": result.peak_rss_mib,
            "peak_accelerator_mib": result.peak_accelerator_mib,
            "trainable_parameters": result.trainable_parameters,
            "total_parameters": result.total_parameters,
            "rehearsal_samples": result.rehearsal_samples,
            "torch_threads": torch.get_num_threads(),
            # Frozen work actually done (cache hits excluded): what the feature cache saves.
            "frozen_images_forwarded": backend.stats.images_forwarded,
            "frozen_block_evaluations": backend.stats.block_evaluations,
            "images_from_cache": backend.stats.images_from_cache,
            # a run resumed from its checkpoint: its times and peaks cover the rest only
            "resumed_after_experience": None if progress is None else progress.experience,
        },
    }
    if spec.save_model is not None and result.strategy is not None:
        save_model(spec.save_model, record, result.strategy)
    return record


def _checkpoints(spec: RunSpec, say: Callable[[str], None],
                 identity: dict[str, Any]) -> Checkpoints | None:  # fmt: skip
    path = spec.checkpoint_path()
    if path is None or not spec.save_checkpoints:
        return None
    return Checkpoints(path, identity, resume=spec.resume, keep=spec.keep_checkpoints, say=say)


def _check_expected(spec: RunSpec, data_sha256: str, weights: Mapping[str, Any] | None) -> None:
    """Stop before training when the data or weights are not the ones a record names."""
    if spec.expected_data_sha256 and spec.expected_data_sha256 != data_sha256:
        raise ProvenanceMismatchError(
            f"the data of stream {shortened(spec.stream)} on disk is not the data the record was "
            f"made from (checksum {data_sha256[:16]}..., the record's "
            f"{spec.expected_data_sha256[:16]}...): install the data set version the record "
            "used, or rerun it with `clbench evaluate` to make a new record"
        )
    loaded = (weights or {}).get("sha256")
    if spec.expected_weights_sha256 and loaded and spec.expected_weights_sha256 != loaded:
        raise ProvenanceMismatchError(
            f"the weights of backbone {shortened(spec.backbone)} on disk are not the ones "
            f"the record was made from (SHA-256 {loaded[:16]}..., the record's "
            f"{spec.expected_weights_sha256[:16]}...): install the weights the record names"
        )


def _distribution_version(name: str) -> str | None:
    """The installed version of the distribution that provides a strategy."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _loaded_sha256(backend: Backend, weights: Path | None) -> str | None:
    """The digest of the checkpoint the backbone loaded (as its plugin reports it)."""
    if weights is None:
        return None
    return (backend.weights or {}).get("sha256") or checkpoint_sha256(weights.absolute())


def write_run(root: Path, record: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``record`` under ``root`` and its compatibility heat map beside it.

    The heat map first: a record on disk means its run is complete, so it goes last,
    and a record that cannot be written takes its heat map with it. Returns the paths of
    the record and of the heat map.
    """
    path = path_of_record(root, record)
    heatmap = path.with_name(f"{path.stem}-compatibility.png")
    try:
        write_compatibility_heatmap(dict(record), heatmap)
        write_record(path, record)
    except OSError as error:
        heatmap.unlink(missing_ok=True)
        raise UnsavedRecordError(record, path, error) from error
    except BaseException:
        heatmap.unlink(missing_ok=True)
        raise
    return path, heatmap


class UnsavedRecordError(ClbenchError):
    """A finished run whose record could not be written where it belonged: it is saved
    in the temporary folder instead, or, failing that, carried here to be printed."""

    def __init__(self, record: Mapping[str, Any], intended: Path, error: OSError):
        self.record, self.saved = record, save_elsewhere(record, intended)
        where = f"it was saved to {self.saved}" if self.saved else "it is printed above"
        super().__init__(
            f"the run finished but its record could not be written to {intended} "
            f"({error.strerror or error}); {where}: move it there once that is fixed"
        )
