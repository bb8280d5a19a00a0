"""Shared by every stage: the error types, file handling (atomic writes, digests, the
cache and data folders) and typed configs built from ``--set`` values.

Imports nothing else from clbench.
"""
