"""Stage 3, training: the Strategy contract that every strategy trains under, the hook
specifications, and the plugin registry that finds strategies, streams and backbones.

May import: ``cl_bench.models``, ``cl_bench.data``, ``cl_bench.utils``.
"""
