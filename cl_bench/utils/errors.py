"""Errors that reach the user: each message says what is wrong and what to do."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable

_BOUNDED = reprlib.Repr()
_BOUNDED.maxstring = _BOUNDED.maxother = 180
_BOUNDED.maxlist = _BOUNDED.maxtuple = _BOUNDED.maxdict = _BOUNDED.maxset = 8
_BOUNDED.maxlevel = 3


def shortened(value: object, limit: int = 200) -> str:
    """A repr of ``value`` of at most ``limit`` characters, built without the full repr (a
    YAML alias bomb's value has one of tens of MB), so a message stays smaller than its
    cause."""
    text = _BOUNDED.repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


class ClbenchError(Exception):
    """Base class; the CLI prints these without a traceback."""


def plural(kind: str) -> str:
    return kind[:-1] + "ies" if kind.endswith("y") else kind + "s"


class UnknownNameError(ClbenchError, KeyError):
    def __init__(self, kind: str, name: str, available: Iterable[str]):
        names = ", ".join(sorted(available)) or "(none installed)"
        super().__init__(f"unknown {kind} {shortened(name)}; available {plural(kind)}: {names}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateNameError(ClbenchError):
    pass


class ConfigError(ClbenchError, ValueError):
    pass


class MissingDataError(ClbenchError):
    pass


class BackboneUnavailableError(ClbenchError):
    pass


class WeightsMismatchError(ClbenchError):
    pass


class RecordError(ClbenchError):
    pass


class PluginError(ClbenchError):
    """A plugin broke during a run (as opposed to at registration, which only warns)."""


class ProvenanceMismatchError(ClbenchError):
    """What a record names (its stream's data, its weights) is not what is on disk here:
    rerunning it would not test the code, so the run stops before training."""
