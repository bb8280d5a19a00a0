"""Plugin discovery: built-ins and the template plugin through entry points; broken and
duplicate plugins handled as documented."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from clbench_baselines.simplecil import SimpleCIL

from cl_bench import Origin, StrategySpec, hookimpl
from cl_bench.training.registry import PluginWarning, Registry
from cl_bench.utils.errors import DuplicateNameError, UnknownNameError

ROOT = Path(__file__).resolve().parents[1]


def plugin_module(name: str, strategies) -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl
    def cl_bench_strategies():
        return strategies()

    module.cl_bench_strategies = cl_bench_strategies
    return module


def good(name="alpha"):
    return plugin_module("good", lambda: [StrategySpec(name, "fine", SimpleCIL)])


def test_builtins_are_found_through_entry_points():
    registry = Registry.discover()
    assert {"simplecil", "finetune-head"} <= set(registry.strategies)
    assert registry.strategies["simplecil"].distribution == "clbench"
    assert "offline-mix" in registry.streams
    assert {"efficientnet_lite0", "mobilenetv2_100", "vit_tiny_random"} <= set(registry.backbones)


def test_duplicate_names_name_both_distributions():
    plugins = [("dist-one", "p1", good), ("dist-two", "p2", good)]
    with pytest.raises(DuplicateNameError, match=r"'alpha'.*'dist-one'.*'dist-two'"):
        Registry.from_plugins(plugins)


def test_plugin_failing_to_import_is_skipped_with_a_warning():
    def broken():
        raise ImportError("no module named 'missing_dependency'")

    with pytest.warns(PluginWarning, match="'bad' of distribution 'dist-bad' failed to load"):
        registry = Registry.from_plugins([("dist-bad", "bad", broken), ("dist-ok", "ok", good)])
    assert list(registry.strategies) == ["alpha"]
    assert "missing_dependency" in str(registry.problems[0])


def test_plugin_raising_while_registering_is_skipped_with_a_warning():
    def explode():
        raise RuntimeError("boom")

    crashing = plugin_module("crashing", explode)
    with pytest.warns(PluginWarning, match="'crash'.*failed to register its strategies.*boom"):
        registry = Registry.from_plugins(
            [("dist-crash", "crash", lambda: crashing), ("dist-ok", "ok", good)]
        )
    assert list(registry.strategies) == ["alpha"]


def test_plugin_returning_the_wrong_type_is_skipped():
    wrong = plugin_module("wrong", lambda: ["not a spec"])
    with pytest.warns(PluginWarning, match="not a StrategySpec"):
        registry = Registry.from_plugins([("dist-wrong", "wrong", lambda: wrong)])
    assert registry.strategies == {}


def test_plugin_with_a_misspelled_hook_is_rejected():
    module = types.ModuleType("typo")

    @hookimpl
    def cl_bench_strategys():
        return []

    module.cl_bench_strategys = cl_bench_strategys
    with pytest.warns(PluginWarning, match="'typo'.*failed to load"):
        Registry.from_plugins([("dist-typo", "typo", lambda: module)])


def test_unknown_name_lists_what_exists():
    registry = Registry.from_plugins([("dist", "p", good)])
    with pytest.raises(
        UnknownNameError, match="unknown strategy 'sema'; available strategies: alpha"
    ):
        registry.strategy("sema")


@pytest.fixture(scope="module")
def template_install(tmp_path_factory) -> Path:
    """The template plugin pip-installed (really built and installed) into a private folder."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("source") / "template"
    # Only the sources (not what an editable install left there): the build leaves the repo clean.
    shutil.copytree(ROOT / "plugins" / "template", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info"))  # fmt: skip
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
    )
    return target


def _clbench(args, site: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-c", "from cl_bench.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        **kwargs,
    )


def test_template_plugin_is_listed(template_install):
    result = _clbench(["list", "strategies"], template_install)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "template-ncm" in line)
    assert "clbench-template-plugin" in line
    assert "nearest class mean" in line


@pytest.mark.slow
def test_template_plugin_runs_end_to_end(template_install, tmp_path):
    result = _clbench(
        [
            "evaluate",
            "--strategy",
            "template-ncm",
            "--limit-per-class",
            "4",
            "--output",
            str(tmp_path / "runs"),
            "--log",
            f"template-csv:{tmp_path / 'csv'}",
        ],
        template_install,
    )
    assert result.returncode == 0, result.stderr
    [path] = (tmp_path / "runs").rglob("*.json")
    record = json.loads(path.read_text())
    assert record["strategy_provider"] == "clbench-template-plugin"
    assert len(record["metrics"]["accuracy_curve"]) == 10
    assert record["metrics"]["last_accuracy"] > 10  # 50 classes: chance is 2%
    # the template's logger plugin wrote the run's events
    [events] = (tmp_path / "csv").rglob("*.csv")
    rows = events.read_text().splitlines()
    assert sum(row.startswith("accuracy/seen,") for row in rows) == 10
    assert f"final/last_accuracy,,{record['metrics']['last_accuracy']}" in rows


def fake_distribution(site: Path, name: str, module: str, source: str) -> None:
    """An installed distribution as importlib.metadata sees it: dist-info plus a module."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[cl_bench]\n{module} = {module}\n")
    (site / f"{module}.py").write_text(source)


def test_discovery_survives_a_broken_installed_plugin(tmp_path, monkeypatch):
    fake_distribution(
        tmp_path, "broken-plugin", "broken_plugin_mod", "raise RuntimeError('cannot import me')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(PluginWarning, match="'broken_plugin_mod' of distribution 'broken-plugin'"):
        registry = Registry.discover()
    assert "simplecil" in registry.strategies and "offline-mix" in registry.streams


def test_discovery_refuses_an_installed_duplicate(tmp_path, monkeypatch):
    source = (
        "from cl_bench import StrategySpec, hookimpl\n"
        "from clbench_baselines.simplecil import SimpleCIL\n"
        "@hookimpl\n"
        "def cl_bench_strategies():\n"
        "    return [StrategySpec('simplecil', 'impostor', SimpleCIL)]\n"
    )
    fake_distribution(tmp_path, "impostor-plugin", "impostor_mod", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        DuplicateNameError,
        match=r"'simplecil'.*'clbench'.*'impostor-plugin'|"
        r"'simplecil'.*'impostor-plugin'.*'clbench'",
    ):
        Registry.discover()


def test_a_strategys_origin_is_checked_at_registration():
    """The docs' strategy tables are generated from it, so a malformed one is refused
    where the plugin declares it, not when the docs are built."""
    with pytest.raises(ValueError, match="paper"):
        Origin("")
    with pytest.raises(TypeError, match=r"Origin\.commit"):
        Origin("X (Someone, 2024)", commit=5)
    with pytest.raises(TypeError, match="origin must be an Origin"):
        StrategySpec("x", "a strategy", SimpleCIL, origin="X (Someone, 2024)")
    built_in = Registry.discover().strategy("simplecil").origin
    assert built_in is not None and built_in.commit == "2647455"
