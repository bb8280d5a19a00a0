"""Import a script of the repository (scripts/, benchmarks/) as a module, for tests."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str) -> ModuleType:
    """``relative`` (e.g. ``scripts/docs_hooks.py``) imported by name, with its folder on
    the path while it imports, as its own neighbours are when it runs."""
    path = ROOT / relative
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(path.stem)
    finally:
        sys.path.remove(folder)
