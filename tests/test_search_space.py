"""Declared search spaces (issue 35, part 1): every built-in strategy that trains
declares the settings `clbench tune` may change, each a valid range of a real config
field; bad spaces are refused with the strategy and key named."""

from __future__ import annotations

import math

import pytest
from cli_runner import clbench

from cl_bench import Choice, Range, StrategySpec
from cl_bench.training.registry import Registry
from cl_bench.training.search import check_space
from cl_bench.utils.config import build_config
from cl_bench.utils.errors import ConfigError

# strategies with nothing to tune: no training (SimpleCIL), one closed-form pass
# (StreamingLDA), or not runnable here
UNTUNED = {"simplecil", "avalanche:streaminglda"}


def runnable() -> dict[str, StrategySpec]:
    specs = {}
    for name, provided in Registry.discover().strategies.items():
        try:
            provided.spec.strategy.Config  # noqa: B018  (an unavailable one raises here)
        except ConfigError:
            continue
        specs[name] = provided.spec
    return specs


def test_every_built_in_strategy_that_trains_declares_a_valid_space():
    specs = runnable()
    assert "sema" in specs and "avalanche:ewc" in specs
    for name, spec in specs.items():
        if name in UNTUNED:
            assert not spec.search, name
            continue
        assert spec.search, f"{name} declares no search space"
        check_space(name, spec.strategy.Config, spec.search)
        assert all(dimension.why for dimension in spec.search.values()), name
    assert {"ewc_lambda", "lr"} <= set(specs["avalanche:ewc"].search)
    assert specs["avalanche:mas"].search["lr"].high == pytest.approx(0.02)  # around 0.002


def test_a_range_around_the_default_is_centred_on_the_config_default():
    """Spaces are declared where the strategy registers, apart from its Config (whose
    defaults, for Avalanche's, come from Avalanche's signatures): a default changed on
    one side only would leave the range around the old value."""
    centred = 0
    for name, spec in runnable().items():
        defaults = build_config(spec.strategy.Config, {})
        for key, dimension in spec.search.items():
            if dimension.why.startswith("a decade each way of the default"):
                middle = math.sqrt(dimension.low * dimension.high)
                assert middle == pytest.approx(getattr(defaults, key)), (name, key)
                centred += 1
    assert centred >= 20  # every learning rate and loss weight of the built-ins


def test_ranges_are_a_decade_each_way_of_the_default_on_a_log_scale():
    lr = Range.around(0.005)
    assert (lr.low, lr.high, lr.log) == (pytest.approx(0.0005), pytest.approx(0.05), True)
    assert Range(1, 8).integer and not Range(0.5, 2.0).integer


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Range(0.1, 0.1), "empty or inverted"),
    (lambda: Range(1.0, 0.1), "empty or inverted"),
    (lambda: Range(0.0, 1.0, log=True), "must stay above 0"),
    (lambda: Range(False, True), "not of booleans"),
    (lambda: Choice(()), "no options"),
])  # fmt: skip
def test_a_malformed_dimension_is_refused_when_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_space_is_checked_against_the_strategy_config():
    config = Registry.discover().strategy("finetune-head").strategy.Config
    with pytest.raises(ConfigError, match=r"'finetune-head': search space key 'lrr' is not a "
                       r"config field; valid keys: .*lr"):  # fmt: skip
        check_space("finetune-head", config, {"lrr": Range.around(0.05)})
    with pytest.raises(ConfigError, match=r"key 'epochs': the config refuses 0"):
        check_space("finetune-head", config, {"epochs": Range(0, 10)})


def test_list_keys_shows_each_range():
    code, out, err = clbench("list", "strategies", "--keys")
    assert code == 0, err
    [row] = [line for line in out.splitlines() if "threshold" in line]
    assert "0.25..4 (log)" in row
