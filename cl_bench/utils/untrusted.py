"""Reading YAML and JSON that somebody else may have written (specs, grids, records).

Limits, each with a message that says which one and what to do: the file's size, UTF-8
text, no duplicate keys (the second would silently win), no YAML aliases (a few hundred
bytes of them expand into gigabytes: the "billion laughs"), and a nesting depth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from cl_bench.utils.errors import ConfigError, shortened

MAX_BYTES = 16 * 2**20  # a record with every matrix of a 200-experience stream is ~2 MB
MAX_DEPTH = 32


class UntrustedFileError(ConfigError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases and with duplicate keys refused."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "aliases (*name) are not accepted; write the value out",
                event.start_mark,
            )  # fmt: skip
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue  # unhashable keys: the base class reports them
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {shortened(key)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _text(path: Path, what: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UntrustedFileError(
                f"{what} {path} is {size / 2**20:.0f} MB, over the {MAX_BYTES // 2**20} MB "
                "limit for such files; is it the right file?"
            )
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise UntrustedFileError(
            f"{what} {path} is not UTF-8 text (byte {error.start}); save it as UTF-8"
        ) from error
    except OSError as error:
        raise UntrustedFileError(f"{what} {path} is unreadable: {error}") from error


def _check_depth(value: Any, path: Path, what: str) -> Any:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UntrustedFileError(
                f"{what} {path} nests values deeper than {MAX_DEPTH} levels; it is not a "
                f"{what} clbench wrote or reads"
            )
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return value


def parse_yaml(text: str) -> Any:
    """YAML text's value without aliases or duplicate keys (``--set`` values are YAML too)."""
    return yaml.load(text, Loader=_StrictLoader)


def read_yaml(path: Path, what: str) -> Any:
    """The value of a YAML file, read with the limits above."""
    text = _text(path, what)
    try:
        value = parse_yaml(text)
    except RecursionError as error:
        raise UntrustedFileError(f"{what} {path} nests values too deeply") from error
    except yaml.YAMLError as error:
        raise UntrustedFileError(f"{what} {path} is not valid YAML: {error}") from error
    return _check_depth(value, path, what)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"duplicate key {shortened(duplicate)}")
    return dict(pairs)


def read_json(path: Path, what: str) -> Any:
    """The value of a JSON file, read with the limits above."""
    text = _text(path, what)
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError as error:
        raise UntrustedFileError(f"{what} {path} nests values too deeply") from error
    except ValueError as error:  # JSONDecodeError too
        raise UntrustedFileError(f"{what} {path} is not valid JSON: {error}") from error
    return _check_depth(value, path, what)
