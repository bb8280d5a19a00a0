"""Errors that reach the user: each message says what is wrong and what to do."""

from __future__ import annotations

from collections.abc import Iterable


class ClbenchError(Exception):
    """Base class; the CLI prints these without a traceback."""


def plural(kind: str) -> str:
    return kind[:-1] + "ies" if kind.endswith("y") else kind + "s"


class UnknownNameError(ClbenchError, KeyError):
    def __init__(self, kind: str, name: str, available: Iterable[str]):
        names = ", ".join(sorted(available)) or "(none installed)"
        super().__init__(f"unknown {kind} {name!r}; available {plural(kind)}: {names}")

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
