"""Derived data cached under the cache folder, never used when damaged.

An entry is one file (written atomically, fusedrnn._files) and, beside it, ``<entry>.json``:
``{"params": ..., "sha256": ..., "bytes": ...}``, the parameters it was built from and the sum of
its bytes, written after the entry. ``cached`` checks both before it loads an entry; an entry whose
sidecar is missing or unreadable, whose parameters differ, whose bytes do not match, or whose loader
fails is reported in one line, deleted and rebuilt: a damaged cache costs a rebuild, never a result.
A cache folder that cannot be written (read-only, full) is reported too, and the value used uncached.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .. import _files

T = TypeVar("T")


def _sidecar(entry: Path) -> Path:
    return entry.with_name(entry.name + ".json")


def _remove(entry: Path) -> None:
    """Deletes an entry and its sidecar where the folder allows (a left entry without a valid sidecar is never used)."""
    for path in (entry, _sidecar(entry)):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _problem(entry: Path, params: dict) -> str | None:
    """Why the entry cannot be used, or None."""
    if not entry.is_file():
        return "has no data file"
    try:
        meta = json.loads(_sidecar(entry).read_text(encoding="utf-8"))
        recorded, digest, size = meta["params"], meta["sha256"], meta["bytes"]
    except FileNotFoundError:
        return "has no checksum (an interrupted write?)"
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, OSError) as error:
        return f"has an unreadable checksum file ({type(error).__name__})"
    if recorded != params:
        return "was built from other parameters"
    if entry.stat().st_size != size or _files.sha256(entry) != digest:
        return "is damaged (its sha256 differs from the recorded one)"
    return None


def cached(entry: str | os.PathLike, params: dict[str, Any], build: Callable[[], T],
           save: Callable[[T, Path], None], load: Callable[[Path], T],
           log: Callable[[str], None] | None = None) -> tuple[T, bool]:
    """The value of ``entry`` if it is whole and was built from ``params`` (JSON-able), else
    ``build()``, saved there with ``save(value, path)`` -> (value, whether it came from the cache).
    ``load(path)`` reads an entry back."""
    entry = Path(entry)
    if entry.exists() or _sidecar(entry).exists():
        problem = _problem(entry, params)
        if problem is None:
            try:
                return load(entry), True
            except Exception as error:  # noqa: BLE001  a loader's every failure means: rebuild
                problem = f"is unreadable ({type(error).__name__}: {error})"
        if log:
            log(f"cache entry {entry} {problem}: deleted, rebuilding it")
        _remove(entry)
    value = build()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with _files.atomic_path(entry) as path:
            save(value, path)
            meta = {"params": params, "sha256": _files.sha256(path), "bytes": path.stat().st_size}
        _files.write_text(_sidecar(entry), json.dumps(meta, indent=1) + "\n")
    except OSError as error:  # a read-only or full cache folder: the value is good, only not kept
        _remove(entry)
        if log:
            log(f"cache entry {entry} cannot be written ({error}); using it without caching")
    return value, False
