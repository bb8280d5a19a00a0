"""Stage 1, data: stream specs, image sources (packaged and user-provided), the
prepared-image cache, class orders and experiences.

May import: ``cl_bench.utils``.
"""
