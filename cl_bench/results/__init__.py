"""Stage 5, results: run records on disk, leaderboards (CSV, Markdown, curves), report
pages and compatibility heat maps. Works on records alone, so it never runs a model.

May import: ``cl_bench.evaluation`` and the stages below it.
"""
