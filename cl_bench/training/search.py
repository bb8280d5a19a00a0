"""Search spaces: which of a strategy's settings ``clbench tune`` may change, and within
what. A strategy declares them on its :class:`~cl_bench.training.strategy.StrategySpec`
(``search={"lr": Range(1e-3, 0.1, log=True, why=...)}``), so that every method is tuned
the same way, by the same tool, within ranges that say where they come from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cl_bench.utils.config import build_config
from cl_bench.utils.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """A number from ``low`` to ``high``: integers when both bounds are, on a log scale
    with ``log`` (learning rates, regularisation weights). ``why`` says where it comes
    from (the official value and how far around it)."""

    low: float
    high: float
    log: bool = False
    why: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.low, bool) or isinstance(self.high, bool):
            raise ValueError("a range of numbers, not of booleans")
        if not self.low < self.high:
            raise ValueError(f"the range {self.low!r}..{self.high!r} is empty or inverted "
                             "(low must be below high)")  # fmt: skip
        if self.log and self.low <= 0:
            raise ValueError(f"the log range {self.low!r}..{self.high!r} must stay above 0")

    @classmethod
    def around(cls, value: float, factor: float = 10.0, why: str = "") -> Range:
        """``value / factor .. value * factor`` on a log scale: the rule for learning
        rates and loss weights, a decade each way of the default (the official value
        where there is one), so that every method gets the same latitude."""
        return cls(value / factor, value * factor, log=True,
                   why=why or f"a decade each way of the default {value:g}")  # fmt: skip

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def describe(self) -> str:
        scale = "log" if self.log else "linear"
        return f"{self.low:g}..{self.high:g} ({'integer, ' if self.integer else ''}{scale})"


@dataclass(frozen=True)
class Choice:
    """One of ``options``."""

    options: tuple[Any, ...]
    why: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if not self.options:
            raise ValueError("a choice of no options")

    def describe(self) -> str:
        return " | ".join(map(str, self.options))


Dimension = Range | Choice


def setting_text(value: Any) -> str:
    """A value of a space as ``--set`` text (``true``, not Python's ``True``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def check_space(name: str, config_type: type, space: Mapping[str, Dimension]) -> None:
    """Every key is a config field whose checks accept both ends of its range and every
    option: an error naming the strategy and the key otherwise. (A range's own shape,
    empty, inverted or a log range through zero, is refused when it is made.) Checked
    where a space is used, not at registration: reading some strategies' Config imports
    a library (Avalanche's) that starting clbench should not."""
    fields = {field.name for field in dataclasses.fields(config_type)}
    for key, dimension in space.items():
        where = f"strategy {name!r}: search space key {key!r}"
        if key not in fields:
            raise ConfigError(f"{where} is not a config field; valid keys: "
                              f"{', '.join(sorted(fields))}")  # fmt: skip
        if isinstance(dimension, Range):
            values = (dimension.low, dimension.high)
        elif isinstance(dimension, Choice):
            values = dimension.options
        else:
            raise ConfigError(f"{where}: {dimension!r} is neither a Range nor a Choice")
        for value in values:  # the config's own checks accept both ends and every option
            try:
                build_config(config_type, {key: setting_text(value)})
            except ConfigError as error:
                raise ConfigError(f"{where}: the config refuses {value!r}: {error}") from error
