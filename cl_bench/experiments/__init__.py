"""Stage 6, experiments: one run from the names a user types to its written record, and
sweeps of runs over a grid on a local process pool or Ray.

May import: ``cl_bench.results`` and the stages below it.
"""
