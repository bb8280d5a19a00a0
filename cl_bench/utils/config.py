"""Strategy hyper-parameters: dataclass defaults overridden by ``--set key=value``.

Values are parsed as YAML scalars (``0.01``, ``true``, ``[1, 2]``) and checked
against the field's type, so that a typo fails before any compute is spent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from cl_bench.utils.errors import ConfigError, shortened
from cl_bench.utils.untrusted import parse_yaml


def require(condition: bool, key: str, message: str) -> None:
    """Validate a config value in ``__post_init__``; the error names the key."""
    if not condition:
        raise ConfigError(f"config key {key!r}: {message}")


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["lr=0.01", "epochs=3"]`` -> ``{"lr": "0.01", "epochs": "3"}``."""
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {shortened(item)}")
        parsed[key] = value.strip()
    return parsed


def build_config(config_cls: type, overrides: Mapping[str, Any]) -> Any:
    """Instantiate ``config_cls`` with ``overrides`` applied (strings are parsed as YAML)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    hints = typing.get_type_hints(config_cls)
    values: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in fields:
            allowed = ", ".join(sorted(fields)) or "(this strategy takes no config)"
            raise ConfigError(f"unknown config key {shortened(key)}; valid keys: {allowed}")
        text = raw if isinstance(raw, str) else None
        value = _parse(raw) if isinstance(raw, str) else raw
        values[key] = _coerce(key, value, hints[key], text)
    try:
        return config_cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid config: {error}") from error


def canonical_overrides(
    config_cls: type, overrides: Mapping[str, Any], base: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """``overrides`` as the one text of each typed value (``lr=0.010`` and ``lr=1e-2`` both
    become ``lr=0.01``), without those equal to the default (the class defaults updated
    with ``base``, a stream's official settings), so that a run's variant, hence its
    record, names its config and not how it was typed. Checks the overrides as
    :func:`build_config` does."""
    base = base or {}
    config = build_config(config_cls, {**base, **overrides})
    default = build_config(config_cls, base)
    return {
        key: yaml_text(getattr(config, key))
        for key in overrides
        if getattr(config, key) != getattr(default, key)
    }


def yaml_text(value: Any) -> str:
    """A value as one line of YAML that reads back as that value (``0.01``, ``true``,
    ``[1, 2]``, ``abc``, and ``'0.010'`` for the string 0.010)."""
    if isinstance(value, str) and _parse(value) == value:
        return value
    text = yaml.safe_dump(_plain(value), default_flow_style=True, width=2**30)
    return text.strip().removesuffix("...").strip()


def _plain(value: Any) -> Any:
    """Tuples as lists: YAML's safe dumper writes lists only."""
    return list(map(_plain, value)) if isinstance(value, tuple | list) else value


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _parse(raw: str) -> Any:
    try:
        return parse_yaml(raw) if raw != "" else ""
    except (yaml.YAMLError, RecursionError):
        return raw


def _coerce(key: str, value: Any, hint: Any, text: str | None = None) -> Any:
    """``value`` as the field's type. ``text`` is what was typed: a string field or a
    string choice takes it as typed (``tag=0.010`` is "0.010", ``mode=on`` is "on"),
    where YAML alone would read a number or a boolean."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            try:
                return _coerce(key, value, option, text)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key!r}: {shortened(value)} is not a valid {_name(hint)}")
    if origin is typing.Literal:
        if value in args:
            return value
        if text in args:
            return text
        raise ConfigError(f"config key {key!r}: {shortened(value)} is not one of {list(args)}")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(
                f"config key {key!r}: expected a list like [1, 2], got {shortened(value)}"
            )
        inner = args[0] if args else Any
        return origin(_coerce(key, item, inner) for item in value)
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"config key {key!r}: expected null, got {shortened(value)}")
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is float:
        number = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is not None:
            if not math.isfinite(number):
                raise ConfigError(f"config key {key!r}: {shortened(value)} is not a finite number")
            return number
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is str:
        return value if isinstance(value, str) else text if text is not None else str(value)
    raise ConfigError(f"config key {key!r}: expected {_name(hint)}, got {shortened(value)}")


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def require_types(instance: Any, where: str) -> None:
    """Every field of the dataclass ``instance`` holds a value of its annotated type, as
    read from an untrusted file: no coercion (``"5"`` is not an int, ``true`` is not a
    number, a float must be finite), with a message naming the field and the value."""
    hints = typing.get_type_hints(type(instance))
    for item in dataclasses.fields(instance):
        value, hint = getattr(instance, item.name), hints[item.name]
        if not _matches(value, hint):
            raise ConfigError(
                f"{where}: {item.name} must be {_describe(hint)}, got {shortened(value)}"
            )


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        items = args[:1] if len(args) == 2 and args[1] is Ellipsis else args
        return isinstance(value, tuple) and all(_matches(v, items[0]) for v in value)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is float:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and math.isfinite(value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(option) for option in args)
    if origin is tuple:
        return f"a list of {_describe(args[0])}"
    if hint is type(None):
        return "null"
    if hint is float:
        return "a finite number"
    return {"int": "an integer", "str": "a string", "bool": "true or false"}.get(
        _name(hint), _name(hint)
    )
