"""Stage 2, models: frozen pretrained backbones, the uniform block view of a network,
adapters, the shared adapter backend, and the on-disk cache of frozen features.

May import: ``cl_bench.data``, ``cl_bench.utils``.
"""
