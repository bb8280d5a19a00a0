"""``python -m cl_bench.cli``: the ``clbench`` command, for environments without the script."""

from cl_bench.cli import main

main()
