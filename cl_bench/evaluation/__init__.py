"""Stage 4, evaluation: the class-incremental protocol (train each experience, test on
all seen), the accuracy-matrix metrics, and the compatibility of representations.

May import: ``cl_bench.training`` and the stages below it.
"""
