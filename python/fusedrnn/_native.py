"""Loading the compiled module, choosing a backend, and thread control."""

from __future__ import annotations

import ctypes
import os
import warnings

BACKENDS = ("numpy", "cpu", "cuda")

_core = None
_core_error = None
_fallback_warned = False


def _load_core():
    global _core, _core_error
    try:
        # The extension links libscipy_openblas.so; loading it by path first makes the import work
        # whatever the install layout (editable installs, relocated site-packages).
        import scipy_openblas32

        lib_dir = scipy_openblas32.get_lib_dir()
        ctypes.CDLL(os.path.join(lib_dir, scipy_openblas32.get_library(True)), mode=ctypes.RTLD_GLOBAL)
        from . import _core as core
    except ImportError as error:  # no compiled module, or its BLAS is missing
        _core_error = error
    else:
        _core = core


_load_core()


def core():
    """The compiled CPU module, or None."""
    return _core


def choose_backend(x):
    """The backend for arrays like ``x``: FUSEDRNN_BACKEND if set, else by the array's kind."""
    global _fallback_warned
    wanted = os.environ.get("FUSEDRNN_BACKEND", "").strip().lower()
    if wanted and wanted not in BACKENDS:
        raise ValueError(f"FUSEDRNN_BACKEND: expected one of {', '.join(BACKENDS)}, got {wanted!r}")
    if type(x).__module__.startswith("cupy") or wanted == "cuda":
        raise RuntimeError("the CUDA backend is not built in this installation of fusedrnn")
    if wanted == "numpy":
        return "numpy"
    if _core is None:
        if not _fallback_warned:
            _fallback_warned = True
            warnings.warn(f"fusedrnn: compiled CPU module unavailable ({_core_error}); "
                          "using the NumPy reference", RuntimeWarning, stacklevel=3)
        return "numpy"
    return "cpu"


def get_num_threads() -> int:
    """Threads the CPU kernels use: OpenBLAS's setting (OPENBLAS_NUM_THREADS, threadpoolctl)."""
    return _core.get_num_threads() if _core is not None else 1


def set_num_threads(n: int) -> None:
    """Sets the threads of the CPU kernels and of the BLAS they call."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: must be at least 1, got {n}")
    if _core is not None:
        _core.set_num_threads(n)


def build_info() -> dict:
    """What was compiled (cpu, cuda, BLAS, compiler, SIMD) and which backend is active."""
    info = {"cpu": False, "cuda": False}
    if _core is not None:
        info.update(_core.build_info())
    else:
        info["cpu_error"] = str(_core_error)
    info["cuda"] = False
    try:
        info["backend"] = choose_backend(None) if _core is not None else "numpy"
    except (ValueError, RuntimeError) as error:
        info["backend"] = f"invalid: {error}"
    info["num_threads"] = get_num_threads()
    return info
