"""The one rule by which a name (of a stream, strategy, backbone or variant) becomes part
of a path.

Names arrive from stream specs, records, grid files and the command line, and any of
them may have been written by someone else. Each becomes exactly one path component by
one fixed mapping, and every path built from names is checked to lie inside the folder
the user gave. No other code joins a name into a path.

The mapping keeps letters, digits and ``_ . + -``; writes ``:`` as ``--``
(``avalanche:naive`` -> ``avalanche--naive``, the layout of the committed records);
writes every other character as ``%XX`` of its UTF-8 bytes (``/`` as ``%2F``), and also
a leading dot (no hidden files, no ``..``) and a ``-`` next to another ``-`` or a ``:``.
So no two names share a file: in a mapped name a run of two dashes is always a colon.
A name longer than 100 characters keeps its first 80, a ``~`` and a hash of the whole. Empty
names, names with control characters and lone surrogates (which JSON's ``\\ud800``
produces) are refused. (File systems that ignore case, as macOS's does by default, put
``SEMA`` and ``sema`` in one file; name things in lower case.)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cl_bench.utils.errors import ConfigError, shortened

MAX_COMPONENT = 100
_KEPT = re.compile(r"[A-Za-z0-9_.+-]")


def check_name(name: object, field: str) -> str:
    """``name`` if it can name something on disk; ConfigError naming ``field`` otherwise."""
    if not isinstance(name, str):
        raise ConfigError(f"{field} must be a string, got {shortened(name)}")
    if not name.strip():
        raise ConfigError(f"{field} must not be empty, got {shortened(name)}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ConfigError(f"{field} must not contain control characters, got {shortened(name)}")
    if not name.isascii() and not _encodable(name):  # JSON's "\ud800" reads as a lone surrogate
        raise ConfigError(f"{field} must be valid Unicode text, got {shortened(name)}")
    return name


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def file_name(name: object, field: str = "name") -> str:
    """``name`` as one path component, by the module's one mapping."""
    text = check_name(name, field)
    parts = []
    for index, char in enumerate(text):
        beside = text[index - 1 : index] + text[index + 1 : index + 2]
        if char == ":":
            parts.append("--")
        elif (char == "." and index == 0) or (char == "-" and ("-" in beside or ":" in beside)):
            parts.append(f"%{ord(char):02X}")
        elif _KEPT.fullmatch(char):
            parts.append(char)
        else:
            parts.append("".join(f"%{byte:02X}" for byte in char.encode()))
    mapped = "".join(parts)
    if len(mapped) > MAX_COMPONENT:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        mapped = f"{mapped[:80]}~{digest}"  # "~" is escaped in every shorter name
    return mapped


def url_name(*parts: str) -> str:
    """A site page's file name for a row or stream: it is also a URL, so only
    ``[a-z0-9_.-]`` (readable, at most 60 characters) and a hash of the parts that keeps
    names that read alike apart."""
    text = "-".join(p for p in parts if p)
    readable = re.sub(r"[^a-z0-9_.]+", "-", text.lower()).strip("-.")[:60] or "x"
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]
    return f"{readable}-{digest}"


def path_inside(root: Path, *components: str) -> Path:
    """``root / c1 / c2 ...`` for components already made by :func:`file_name` (or fixed
    by clbench), refused unless it resolves inside ``root``."""
    path = root.joinpath(*components)
    if not path.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"{shortened(str(path))} would lie outside {shortened(str(root))}")
    return path
