"""Weight files: one ``.npz`` archive holding every weight under its name plus a JSON metadata entry.

Format "fusedrnn-weights", version 1: a zip archive (NumPy's .npz layout, readable with ``np.load``)
with one ``<name>.npy`` member per weight and a member ``__fusedrnn_metadata__.npy``, a 0-d string
array holding ``{"format": "fusedrnn-weights", "format_version": 1, "fusedrnn_version": ...,
"weights": [{"name", "shape", "dtype"}, ...]}`` in the model's order.

Saving is atomic (fusedrnn._files): the archive is written to a temporary file beside the target,
fsynced, then renamed over the target with ``os.replace``; on any error the target is untouched and
the temporary file removed, and a save killed midway leaves a temporary that the next save of the
same target deletes. The path is used as given (no ``.npz`` is appended).

Loading checks everything before it changes any weight, and names what does not match: an
unreadable or foreign file, a newer format version, missing or extra names, shapes and dtypes.
Every failure to read the file is a ValueError naming it (zipfile's own NotImplementedError for a
damaged header included).
Weights are matched by name, not by position. dtypes must match exactly unless
``allow_float_cast=True``, which converts between floating-point types (e.g. a float64 file into
a float32 model); nothing else is ever cast. A missing file raises FileNotFoundError.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from .. import __version__, _files
from .._xp import array_module
from .autograd import Tensor

FORMAT = "fusedrnn-weights"
FORMAT_VERSION = 1
METADATA_KEY = "__fusedrnn_metadata__"


def _host(value) -> np.ndarray:
    data = value.data if isinstance(value, Tensor) else value
    return data.get() if hasattr(data, "get") else np.asarray(data)


def _check_names(named_weights, what):
    names = []
    for entry in named_weights:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str)):
            raise TypeError(f"{what}: expected a list of (name, Tensor) pairs, got an entry {entry!r:.60}")
        names.append(entry[0])
    seen, repeated = set(), []
    for name in names:
        if name in seen:
            repeated.append(name)
        seen.add(name)
    if repeated:
        raise ValueError(f"{what}: weight names must be unique; repeated: {', '.join(sorted(set(repeated)))}")
    if METADATA_KEY in seen or any(not n for n in names):
        raise ValueError(f"{what}: weight names must be non-empty and not {METADATA_KEY!r}")
    return names


def save_weights(named_weights, path) -> None:
    """Writes ``named_weights`` (a list of (unique name, Tensor or array)) to ``path``, atomically."""
    names = _check_names(named_weights, "save_weights")
    arrays = [np.asarray(_host(value), order="C") for _, value in named_weights]
    for name, array in zip(names, arrays):
        if array.dtype.kind not in "biuf":
            raise TypeError(f"save_weights: {name}: dtype {array.dtype} is not a numeric type")
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "fusedrnn_version": __version__,
                "weights": [{"name": n, "shape": list(a.shape), "dtype": a.dtype.str}
                            for n, a in zip(names, arrays)]}
    with _files.atomic_path(path) as temporary, open(temporary, "wb") as file:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in zip(names, arrays):
                with archive.open(name + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
            with archive.open(METADATA_KEY + ".npy", "w") as member:
                np.lib.format.write_array(member, np.array(json.dumps(metadata)), allow_pickle=False)


def read_weights(path) -> dict:
    """The weights of a file as {name: array} in the saved order, after checking the format."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    unreadable = f"{path}: not a readable fusedrnn weights file"
    try:
        file = open(path, "rb")  # ours to close: np.load leaks the handle when the archive is bad
    except OSError as error:
        raise ValueError(f"{unreadable} ({error.strerror})") from None
    with file:
        try:
            archive = np.load(file, allow_pickle=False)
        except Exception as error:  # noqa: BLE001  zipfile and NumPy raise many types for damage
            raise ValueError(f"{unreadable} (not a .npz archive, or truncated: {error})") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"{unreadable} (a single .npy array, not a .npz archive)")
        with archive:
            return _read_archive(path, archive, unreadable)


def _read_archive(path, archive, unreadable) -> dict:
    if METADATA_KEY not in archive.files:
        raise ValueError(f"{path}: a .npz archive without fusedrnn metadata (not written by save_weights): "
                         f"holds {', '.join(archive.files[:8]) or 'nothing'}")
    try:
        metadata = json.loads(str(archive[METADATA_KEY][()]))
    except Exception as error:  # noqa: BLE001  any damage to the entry reads as one message
        raise ValueError(f"{unreadable} (damaged metadata: {error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else metadata
        raise ValueError(f"{path}: format {found!r}, expected {FORMAT!r}")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: format version {version} was written by a newer fusedrnn "
                         f"(saved with {metadata.get('fusedrnn_version', '?')}); this one reads up to "
                         f"version {FORMAT_VERSION}")
    try:
        entries = [(e["name"], tuple(e["shape"]), np.dtype(e["dtype"])) for e in metadata["weights"]]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{unreadable} (damaged metadata: {error!r})") from None
    weights = {}
    for name, shape, dtype in entries:
        if name not in archive.files:
            raise ValueError(f"{path}: damaged: the metadata lists {name} but the archive has no such array")
        try:
            array = archive[name]
        except Exception as error:  # noqa: BLE001  as above
            raise ValueError(f"{unreadable} ({name}: damaged array: {error})") from None
        if array.shape != shape or array.dtype != dtype:
            raise ValueError(f"{path}: damaged: {name} is {array.dtype} {array.shape} in the archive, "
                             f"{dtype} {shape} in its metadata")
        weights[name] = array
    return weights


def load_weights(named_weights, path, allow_float_cast: bool = False) -> None:
    """Sets each Tensor (or array) of ``named_weights`` in place from the weight of the same name in
    ``path``, after checking that the file matches the model exactly; changes nothing if it does not."""
    names = _check_names(named_weights, "load_weights")
    saved = read_weights(path)
    problems = []
    missing = [n for n in names if n not in saved]
    extra = [n for n in saved if n not in set(names)]
    if missing:
        problems.append(f"in the model but not in the file: {', '.join(missing)}")
    if extra:
        problems.append(f"in the file but not in the model: {', '.join(extra)}")
    for name, value in named_weights:
        if name not in saved:
            continue
        target = value.data if isinstance(value, Tensor) else value
        array = saved[name]
        if tuple(array.shape) != tuple(target.shape):
            problems.append(f"{name}: shape {tuple(array.shape)} in file, {tuple(target.shape)} in model")
        elif array.dtype != target.dtype and not (
                allow_float_cast and array.dtype.kind == "f" and np.dtype(target.dtype).kind == "f"):
            hint = " (allow_float_cast=True converts)" if array.dtype.kind == target.dtype.kind == "f" else ""
            problems.append(f"{name}: dtype {array.dtype} in file, {target.dtype} in model{hint}")
    if problems:
        raise ValueError(f"{os.fspath(path)} does not match the model:\n  " + "\n  ".join(problems))
    for name, value in named_weights:
        target = value.data if isinstance(value, Tensor) else value
        target[...] = array_module(target).asarray(saved[name]).astype(target.dtype, copy=False)
