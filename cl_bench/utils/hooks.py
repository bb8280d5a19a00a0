"""The pluggy markers of clbench's plugin system, at the bottom of the stack so that a
plugin module anywhere (the built-in backbones in ``cl_bench.models`` among them) can
mark its hooks without importing the stage that defines the hook specifications."""

import pluggy

PROJECT_NAME = "cl_bench"  # the entry-point group, and pluggy's project name

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
