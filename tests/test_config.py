from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from cl_bench.utils.config import build_config, canonical_overrides, parse_assignments, require
from cl_bench.utils.errors import ConfigError


@dataclass(frozen=True)
class Example:
    lr: float = 0.1
    epochs: int = 3
    nesterov: bool = False
    optimiser: Literal["sgd", "adam"] = "sgd"
    blocks: tuple[int, ...] = (9, 10, 11)
    threshold: float | None = None

    def __post_init__(self):
        require(self.lr > 0, "lr", "must be positive")


def test_defaults_and_typed_overrides():
    assert build_config(Example, {}) == Example()
    config = build_config(
        Example,
        parse_assignments(
            [
                "lr=0.01",
                "epochs=5",
                "nesterov=true",
                "optimiser=adam",
                "blocks=[1, 2]",
                "threshold=2",
            ]
        ),
    )
    assert config == Example(0.01, 5, True, "adam", (1, 2), 2.0)


def test_overrides_typed_differently_have_one_canonical_text():
    """The text names the run's variant and record file: 0.010 and 1e-2 are one run, and
    a value set to its default is the default run."""
    for typed in ("0.01", "0.010", "1e-2", "1.0e-2"):
        assert canonical_overrides(Example, {"lr": typed}) == {"lr": "0.01"}
    assert canonical_overrides(
        Example, {"lr": "1", "nesterov": "yes", "blocks": "[ 1,2 ]", "threshold": "2"}
    ) == {"lr": "1.0", "nesterov": "true", "blocks": "[1, 2]", "threshold": "2.0"}
    assert canonical_overrides(Example, {"lr": "0.10", "epochs": "3", "blocks": "[9,10,11]"}) == {}
    with pytest.raises(ConfigError, match="unknown config key 'lrr'"):
        canonical_overrides(Example, {"lrr": "0.1"})


@dataclass(frozen=True)
class Texts:
    tag: str = "a"
    mode: Literal["on", "off"] = "off"
    note: str | None = None


def test_text_fields_take_what_was_typed_and_canonical_text_is_a_fixed_point():
    """YAML alone would read 0.010 as a number and on as true; a text field keeps the text.
    A sweep canonicalises before the skip check and again in the worker: both must agree."""
    typed = {"tag": "0.010", "mode": "on", "note": "null"}
    assert build_config(Texts, typed) == Texts(tag="0.010", mode="on", note=None)
    once = canonical_overrides(Texts, typed)
    assert build_config(Texts, once) == build_config(Texts, typed)
    assert canonical_overrides(Texts, once) == once
    for overrides in ({"tag": "'true'"}, {"tag": "[1, 2]"}, {"lr": "1e-2", "blocks": "[3]"}):
        config = Texts if "tag" in overrides else Example
        first = canonical_overrides(config, overrides)
        assert canonical_overrides(config, first) == first


def test_int_is_accepted_for_float_but_not_the_reverse():
    assert build_config(Example, {"lr": "1"}).lr == 1.0
    assert build_config(Example, {"lr": "1e-3"}).lr == 0.001  # YAML 1.1 reads it as text
    with pytest.raises(ConfigError, match=r"'epochs'.*expected int"):
        build_config(Example, {"epochs": "2.5"})


def test_unknown_key_lists_valid_keys():
    with pytest.raises(
        ConfigError, match=r"unknown config key 'learning_rate'.*valid keys: blocks"
    ):
        build_config(Example, {"learning_rate": "0.1"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("lr", "fast", "'lr'"),
        ("lr", "-1", "'lr': must be positive"),
        ("optimiser", "rmsprop", "'optimiser'.*one of"),
        ("blocks", "3", "'blocks'.*list"),
        ("nesterov", "maybe", "'nesterov'"),
    ],
)
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        build_config(Example, {key: value})


@pytest.mark.parametrize("item", ["lr", "=3", ""])
def test_malformed_assignment(item):
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments([item])
