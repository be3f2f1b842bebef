"""Loading the compiled modules, choosing a backend, and thread control.

``_core`` (C++ CPU) is always built; ``_cuda`` (CUDA) only where CMake found nvcc. Neither being
importable ever breaks ``import fusedrnn``: the error is remembered and reported when a backend
that needs the module is asked for. A refused FUSEDRNN_ISA (csrc/cpu/isa.h) does break it, with a
ValueError saying why."""

from __future__ import annotations

import ctypes
import importlib
import os
import warnings

import numpy as np

BACKENDS = ("numpy", "cpu", "cuda")

_core = None
_core_error = None
_cuda = None
_cuda_error = None
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
        return
    # FUSEDRNN_ISA naming a level this CPU lacks (or no level) is an error, not a quiet fallback:
    # whoever sets it wants that path, and a test of it must not pass on another one.
    refused = core.simd_override_error()
    if refused:
        raise ValueError(refused)
    _core = core


def _load_cuda():
    global _cuda, _cuda_error
    try:  # import_module: a missing module reads "No module named 'fusedrnn._cuda'"
        cuda_module = importlib.import_module(f"{__package__}._cuda")
    except ImportError as error:  # built without CUDA, or its runtime libraries (cuBLAS) are missing
        _cuda_error = error
    else:
        _cuda = cuda_module


_load_core()
_load_cuda()


def core():
    """The compiled CPU module, or None."""
    return _core


def cuda():
    """The compiled CUDA module, with CuPy importable and a device visible; else RuntimeError naming
    what is missing."""
    if _cuda is None:
        raise RuntimeError("the CUDA backend is not built in this installation of fusedrnn (fusedrnn._cuda: "
                           f"{_cuda_error}); reinstall from source with nvcc and FUSEDRNN_CUDA=ON")
    try:
        import cupy  # noqa: F401
    except ImportError as error:
        raise RuntimeError(f"the CUDA backend needs CuPy, which is not importable ({error}); "
                           "install it with `pip install fusedrnn[gpu]`") from None
    if _cuda.device_count() == 0:
        raise RuntimeError("the CUDA backend is built, but no CUDA device is visible "
                           "(fusedrnn._cuda.device_count() == 0: no driver, or CUDA_VISIBLE_DEVICES hides them)")
    return _cuda


def is_device_array(x) -> bool:
    """A CuPy array, or an object CuPy can take without a copy (__cuda_array_interface__, CUDA DLPack)."""
    if isinstance(x, np.ndarray):
        return False
    if type(x).__module__.startswith("cupy") or hasattr(x, "__cuda_array_interface__"):
        return True
    device = getattr(x, "__dlpack_device__", None)
    try:
        return device is not None and device()[0] == 2  # kDLCUDA
    except Exception:  # a foreign object's own failure: not ours to report here
        return False


def choose_backend(x):
    """The backend for arrays like ``x``: "cuda" for GPU arrays, else FUSEDRNN_BACKEND if set, else "cpu"
    (the NumPy reference, with a warning, where the compiled CPU module is missing).

    GPU arrays always run on "cuda" (FUSEDRNN_BACKEND=numpy|cpu with them is an error: the host backends
    cannot read device memory); FUSEDRNN_BACKEND=cuda makes NumPy arrays an error rather than moving
    them, so that a forced GPU run cannot silently compute on the host."""
    global _fallback_warned
    wanted = os.environ.get("FUSEDRNN_BACKEND", "").strip().lower()
    if wanted and wanted not in BACKENDS:
        raise ValueError(f"FUSEDRNN_BACKEND: expected one of {', '.join(BACKENDS)}, got {wanted!r}")
    on_device = x is not None and is_device_array(x)
    if on_device or wanted == "cuda":
        cuda()
        if wanted in ("numpy", "cpu"):
            raise TypeError(f"x: a GPU array, but FUSEDRNN_BACKEND={wanted} runs on the host; "
                            "unset it or pass NumPy arrays")
        if not on_device and x is not None:
            raise TypeError(f"x: FUSEDRNN_BACKEND=cuda needs GPU (CuPy) arrays, got {type(x).__name__}; "
                            "move the arrays with cupy.asarray")
        return "cuda"
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


def empty_cache() -> None:
    """Gives back to the system the large workspaces (4 MiB and more, at most 256 MiB in all) that the
    CPU kernels keep from one call to the next, so that repeated calls of a shape do not fault in
    fresh pages each time (csrc/cpu/workspace.h). The next call allocates again. As
    ``torch.cuda.empty_cache`` does for torch's GPU memory; arrays the calls returned are not touched."""
    if _core is not None:
        _core.release_cached_workspaces()


def build_info() -> dict:
    """What was compiled (cpu, cuda, BLAS, compiler, SIMD) and which backend is active.

    ``cuda`` is True when the CUDA module is importable (whether or not a device is visible);
    then ``cuda_build`` holds its build info (CUDA runtime, cuBLAS, architectures) and
    ``cuda_devices`` the visible device count; else ``cuda_error`` says why it is missing."""
    info = {"cpu": False, "cuda": False}
    if _core is not None:
        info.update(_core.build_info())
    else:
        info["cpu_error"] = str(_core_error)
    info["cuda"] = _cuda is not None
    if _cuda is not None:
        info["cuda_build"] = dict(_cuda.build_info())
        info["cuda_devices"] = int(_cuda.device_count())
    else:
        info["cuda_error"] = str(_cuda_error)
    try:
        info["backend"] = choose_backend(None) if _core is not None else "numpy"
    except (ValueError, RuntimeError) as error:
        info["backend"] = f"invalid: {error}"
    info["num_threads"] = get_num_threads()
    return info
