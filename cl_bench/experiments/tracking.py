"""``--log NAME[:ARGUMENT]``: the run's experiment trackers, from the logger plugins.

A choice is checked before any run (a logger that is not installed is an error with
its install command); each run makes its own loggers, in the process that runs it (a
sweep's worker), so that curves appear while it trains. The record and its heat map
are handed to the loggers as files written for them in a temporary folder, since the
record itself is written by whoever called the run (the sweep's driver)."""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cl_bench.results.heatmaps import write_compatibility_heatmap
from cl_bench.results.records import record_text
from cl_bench.training.registry import Registry
from cl_bench.training.tracking import Loggers, LoggerSpec, RunEnd
from cl_bench.utils.errors import ClbenchError, shortened


def parse_choice(choice: str) -> tuple[str, str | None]:
    """``"mlflow:http://host:5000"`` -> ``("mlflow", "http://host:5000")``."""
    name, colon, argument = choice.partition(":")
    return name, (argument if colon else None)


def check_loggers(registry: Registry, choices: Sequence[str]) -> list[LoggerSpec]:
    """Every chosen logger exists and can be imported: refused before any run if not."""
    specs = []
    for choice in choices:
        name, _ = parse_choice(choice)
        spec = registry.logger(name)
        missing = [m for m in spec.requires if importlib.util.find_spec(m) is None]
        if missing:
            raise ClbenchError(f"--log {shortened(name)} needs {', '.join(missing)}, which is "
                               f"not installed: {spec.install or 'install it'}")  # fmt: skip
        specs.append(spec)
    return specs


def open_loggers(
    registry: Registry, choices: Sequence[str], warn: Callable[[str], None]
) -> Loggers:
    """A fresh logger of each choice for one run; one that cannot start (a server that
    does not answer) is warned about and left out, as one that fails later would be."""
    loggers = Loggers(warn=warn)
    for choice, spec in zip(choices, check_loggers(registry, choices), strict=True):
        try:
            loggers.loggers.append((spec.name, spec.make(parse_choice(choice)[1])))
        except Exception as error:
            warn(f"warning: logger {spec.name} could not start ({type(error).__name__}: "
                 f"{str(error)[:200]}); the run goes on without it")  # fmt: skip
    return loggers


@contextmanager
def run_artifacts(record: Mapping[str, Any]) -> Iterator[list[Path]]:
    """The record as JSON and its compatibility heat map, as files for the loggers (the
    same content the record's own writer gives them)."""
    with tempfile.TemporaryDirectory(prefix="clbench-artifacts-") as folder:
        record_file = Path(folder) / "record.json"
        record_file.write_text(record_text(record))
        heatmap = Path(folder) / "compatibility.png"
        write_compatibility_heatmap(dict(record), heatmap)
        yield [record_file, heatmap]


def end_of_run(loggers: Loggers, record: Mapping[str, Any]) -> None:
    """Every summary figure and the record's files, to each logger."""
    metrics = {key: value for key, value in record["metrics"].items()
               if isinstance(value, int | float) and not isinstance(value, bool)}  # fmt: skip
    for score, summary in record["metrics"].get("compatibility", {}).items():
        metrics |= {f"compatibility/{score}/{key}": value for key, value in summary.items()
                    if isinstance(value, int | float) and not isinstance(value, bool)}  # fmt: skip
    with run_artifacts(record) as artifacts:
        loggers.end(RunEnd(metrics=metrics, record=record, artifacts=artifacts))
