"""Training recipes: the official augmentation (seeded by the run, never cached) and the
official per-stream-family settings (applied by `clbench evaluate`, overridden by --set,
recorded with their source)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import yaml
from cli_runner import clbench, only_record

from cl_bench.data.augmentation import RandomResizedCropFlip
from cl_bench.data.spec import StreamSpec
from cl_bench.evaluation.protocol import seed_everything
from cl_bench.experiments.recipes import resolve_recipe
from cl_bench.models.backend import Backend
from cl_bench.models.feature_cache import FeatureCache
from cl_bench.training.registry import Registry
from cl_bench.training.strategy import OfficialSettings, Runtime, Strategy, StrategySpec
from cl_bench.utils.errors import ConfigError

CROP = RandomResizedCropFlip()
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


# --- augmentation -----------------------------------------------------------------------
def test_augmentation_is_fixed_by_the_run_seed_and_differs_between_seeds(domains):
    images = domains.experiences[0].images[:16]

    def augmented(seed: int) -> torch.Tensor:
        return CROP(images, Runtime(device=CPU, seed=seed).augmentation_generator)

    first = augmented(1993)
    assert first.dtype == torch.uint8 and first.shape == images.shape
    assert torch.equal(first, augmented(1993))
    assert not torch.equal(first, augmented(1994))
    assert not torch.equal(first, images)


def test_augmentation_draws_from_its_own_generator():
    """Switching augmentation on must not move the shuffles and initialisations."""
    runtime = Runtime(device=CPU, seed=7)
    CROP(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), runtime.augmentation_generator)
    assert torch.equal(torch.rand(5, generator=runtime.generator),
                       torch.rand(5, generator=Runtime(device=CPU, seed=7).generator))  # fmt: skip


def test_crop_windows_follow_random_resized_crop():
    """Inside the image; area within scale and aspect within ratio (up to rounding)."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(500):
        top, left, h, w = CROP.window(64, 48, generator)
        assert top >= 0 and top + h <= 64 and left >= 0 and left + w <= 48
        assert CROP.scale[0] * 0.8 <= h * w / (64 * 48) <= CROP.scale[1] + 1e-9
        slack = 1 / min(h, w)  # one pixel of rounding on either side
        assert math.log(CROP.ratio[0]) - 2 * slack <= math.log(w / h)
        assert math.log(w / h) <= math.log(CROP.ratio[1]) + 2 * slack


def test_flip_probability_is_the_declared_one():
    never, always = RandomResizedCropFlip(scale=(1, 1), ratio=(1, 1), flip=0.0), \
        RandomResizedCropFlip(scale=(1, 1), ratio=(1, 1), flip=1.0)  # fmt: skip
    image = torch.arange(3 * 8 * 8, dtype=torch.uint8).reshape(1, 3, 8, 8)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(never(image, generator), image)  # the whole image, unflipped
    assert torch.equal(always(image, generator), image.flip(-1))


def test_augmented_images_never_reach_the_feature_cache(lite0, domains, tmp_path):
    """They are computed afresh, and the cache holds exactly the registered images'."""
    images = domains.experiences[0].images
    backend = Backend(lite0, FeatureCache(root=tmp_path))
    backend.register(images)
    augmented = CROP(images[:8], torch.Generator().manual_seed(0))
    fresh = Backend(lite0, FeatureCache(enabled=False))
    assert torch.equal(backend.block_input(augmented, 3), fresh.block_input(augmented, 3))
    assert backend.stats.images_from_cache == 0 and backend.feature_cache.info().entries == 0
    backend.block_input(images[:8], 3)  # registered images: the entry is written
    assert backend.feature_cache.info().entries == 1
    reader = Backend(lite0, FeatureCache(root=tmp_path))  # reads that entry back from disk
    reader.register(images)
    torch.testing.assert_close(
        reader.block_input(images, 3), fresh.batched(lambda x: fresh.block_input(x, 3), images)
    )
    assert reader.stats.images_from_cache == len(images) and reader.stats.images_forwarded == 0


def _sema(registry: Registry, backbone: Backend, domains, seed: int, **settings) -> Strategy:
    seed_everything(seed)  # as a run does: adapters initialise from the global RNG
    spec = registry.strategy("sema")
    config = spec.strategy.Config(**{"func_epochs": 1, "rd_epochs": 1, **settings})
    return spec.strategy(backbone=backbone, stream=domains.info, config=config,
                         runtime=Runtime(device=CPU, seed=seed))  # fmt: skip


def test_sema_trains_on_augmented_images_and_keeps_only_registered_ones(registry, lite0, domains):
    """With augment on, the training images are new pixels every epoch; the memo of the
    frozen prefix holds the registered images' values only, equal to fresh computation."""
    backend = Backend(lite0)
    backend.register(torch.cat([experience.images for experience in domains.experiences]))
    sema = _sema(registry, backend, domains, 0, augment=True, threshold=0.01)
    seen: list[torch.Tensor] = []
    real = backend.block_input
    backend.block_input = lambda images, block: (seen.append(images), real(images, block))[1]
    for experience in domains.experiences[:2]:
        sema.train(experience)
    _, rows = backend.dataset_rows(torch.cat(seen))
    assert (rows < 0).any() and (rows >= 0).any()  # augmented batches and the plain images
    memo = sema._tail_inputs
    filled = memo._filled.nonzero().squeeze(1)
    assert len(filled) and memo.computed > len(filled)  # augmented images ran, unstored
    registered = backend._dataset.images[filled]
    torch.testing.assert_close(memo._values[filled], sema._prefix_output(registered))


def test_an_augmented_strategy_is_deterministic(registry, lite0, domains):
    def trained(seed: int) -> torch.Tensor:
        sema = _sema(registry, Backend(lite0), domains, seed, augment=True)
        sema.train(domains.experiences[0])
        return torch.cat([p.flatten() for p in sema.adapters_.parameters()])

    assert torch.equal(trained(3), trained(3))
    assert not torch.equal(trained(3), trained(4))


def test_without_augmentation_training_sees_only_the_streams_own_images(registry, lite0, domains):
    backend = Backend(lite0)
    backend.register(torch.cat([experience.images for experience in domains.experiences]))
    sema = _sema(registry, backend, domains, 0, augment=False, threshold=0.01)
    seen: list[torch.Tensor] = []
    real = backend.block_input
    backend.block_input = lambda images, block: (seen.append(images), real(images, block))[1]
    for experience in domains.experiences[:2]:
        sema.train(experience)
    _, rows = backend.dataset_rows(torch.cat(seen))
    assert (rows >= 0).all()
    assert sema._tail_inputs.computed == int(sema._tail_inputs._filled.sum())  # each once


# --- official settings ----------------------------------------------------------------
def _family_stream(registry: Registry, family: str | None) -> StreamSpec:
    return dataclasses.replace(registry.stream("offline-mix"), family=family)


def test_a_family_stream_runs_the_official_settings_and_set_overrides_them(registry):
    sema = registry.strategy("sema")
    recipe = resolve_recipe(sema, _family_stream(registry, "imagenet-a"), {})
    assert (recipe.config.func_epochs, recipe.config.threshold, recipe.config.augment) == (
        20, 1.0, True)  # fmt: skip
    assert recipe.overrides == {}  # the official recipe is this stream's default
    assert recipe.describe()["official_source"] == "SEMA-CL 5a45512 exps/sema_ina.json"
    assert recipe.describe()["augmentation"].startswith("RandomResizedCropFlip(")

    changed = resolve_recipe(sema, _family_stream(registry, "imagenet-a"),
                             {"threshold": "3", "func_epochs": "20"})  # fmt: skip
    assert changed.config.threshold == 3.0 and changed.config.func_epochs == 20
    assert changed.overrides == {"threshold": "3.0"}  # equal to the official: no variant

    plain = resolve_recipe(sema, _family_stream(registry, None), {})
    assert plain.config == sema.strategy.Config() and plain.official is None
    assert plain.describe()["augmentation"] is None


def test_a_family_without_official_settings_keeps_the_defaults(registry):
    recipe = resolve_recipe(registry.strategy("sema"), _family_stream(registry, "cub"), {})
    assert recipe.official is None and recipe.config == registry.strategy("sema").strategy.Config()


def test_every_official_setting_is_a_valid_config(registry):
    for name, provided in registry.strategies.items():
        for entry in provided.spec.official:
            recipe = resolve_recipe(provided.spec, _family_stream(registry, entry.family), {})
            for key, value in entry.settings.items():
                assert getattr(recipe.config, key) == value, (name, entry.family, key)


def test_bad_declarations_fail_at_registration(registry):
    sema = registry.strategy("sema").strategy
    with pytest.raises(ValueError, match="stream families are"):
        OfficialSettings("imagenet-21k", {}, "x.json")
    with pytest.raises(ConfigError, match="unknown config key 'epochs'"):
        StrategySpec("s", "d", sema, official=(OfficialSettings("vtab", {"epochs": 3}, "x"),))
    with pytest.raises(ValueError, match="twice"):
        entry = OfficialSettings("vtab", {}, "x")
        StrategySpec("s", "d", sema, official=(entry, entry))

    class NoSwitch(Strategy):
        augmentation = CROP

        def train(self, experience): ...
        def predict(self, images): ...
        def embed(self, images): ...

    with pytest.raises(TypeError, match="augment: bool"):
        StrategySpec("s", "d", NoSwitch)


def test_a_stream_spec_names_a_known_family(registry):
    raw = {**yaml.safe_load((Path(registry.stream("offline-mix").path)).read_text()),
           "family": "imagenet"}  # fmt: skip
    with pytest.raises(ConfigError, match="invalid family: 'imagenet'"):
        StreamSpec.from_dict(raw)


@pytest.mark.slow
def test_evaluate_records_the_official_settings_and_the_user_overrides(registry, tmp_path):
    """End to end: the offline default declared a CIFAR-100 stream gets SEMA-CL's CIFAR
    file (augmentation on) in its record; --set still wins and names the variant."""
    raw = yaml.safe_load(Path(registry.stream("offline-mix").path).read_text())
    spec = tmp_path / "offline-as-cifar.yaml"
    spec.write_text(yaml.safe_dump({**raw, "name": "offline-as-cifar", "family": "cifar100"}))
    code, out, err = clbench("evaluate", "--strategy", "sema", "--stream", str(spec),
                           "--limit-per-class", "3", "--set", "func_epochs=1",
                           "--set", "rd_epochs=1", "--output", str(tmp_path / "runs"))  # fmt: skip
    assert code == 0, err
    _, record = only_record(tmp_path / "runs", 1993)
    recipe = record["recipe"]
    assert recipe["family"] == "cifar100"
    assert recipe["official_source"] == "SEMA-CL 5a45512 exps/sema_cifar.json"
    assert recipe["official_settings"] == {"func_epochs": "5", "threshold": "2.0",
                                           "augment": "true"}  # fmt: skip
    assert recipe["overrides"] == {"func_epochs": "1", "rd_epochs": "1"}
    assert record["config"]["augment"] is True and record["config"]["func_epochs"] == 1
    assert record["variant"].startswith("func_epochs=1,rd_epochs=1")
    assert "official settings" in out and "exps/sema_cifar.json" in out
    assert "training augmentation" in out and "RandomResizedCropFlip(" in out


def test_list_shows_official_settings_and_their_source():
    code, out, _ = clbench("list", "strategies", "--official", columns=240)
    assert code == 0
    assert "imagenet-r" in out and "exps/sema_inr_10task.json" in out
    assert "class_statistics=variance" in out  # MOS on ImageNet-A


def test_a_row_page_says_where_its_settings_come_from():
    """The site's provenance: the official source and settings, the augmentation, and
    "not recorded" for records older than the recipe field."""
    from cl_bench.results.records import read_record
    from cl_bench.results.site.build import provenance

    runs = Path(__file__).resolve().parents[1] / "leaderboards/runs/offline-mix"
    record = read_record(runs / "sema/efficientnet_lite0/seed1993-175d23c2.json")
    official = {**record, "recipe": {
        **record["recipe"], "family": "imagenet-r", "official_source": "X 1234 exps/a.json",
        "official_settings": {"epochs": "10"}}}  # fmt: skip
    plain = {**record, "recipe": {**record["recipe"], "augmentation": None}}
    old = {key: value for key, value in record.items() if key != "recipe"}
    lines = {name: dict(provenance([r])) for name, r in
             (("official", official), ("plain", plain), ("old", old))}  # fmt: skip
    key, augmentation = "official settings (stream family)", "training augmentation"
    assert lines["official"][key] == ['{"epochs": "10", "source": "X 1234 exps/a.json"}']
    assert lines["official"][augmentation] == [record["recipe"]["augmentation"]]
    assert record["recipe"]["augmentation"].startswith("RandomResizedCropFlip(")
    assert lines["plain"][key] == ["none: the strategy's defaults"]
    assert lines["plain"][augmentation] == ["none"]
    assert lines["old"][key] == lines["old"][augmentation] == ["not recorded"]
