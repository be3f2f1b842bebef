"""numpy's own BLAS on one thread while the training loop runs.

numpy's wheels bundle their own OpenBLAS; its thread pool, once woken by a Dense layer's matmul,
spins for ~0.1 s on every core and slows the fused kernels' threads that run next by up to 2x
(measured at the tagger's shape). The training layer's matmuls are small, so one thread costs them
little.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os

_numpy_blas_threads = None  # (get, set) of numpy's own OpenBLAS, False if not found; looked up once


def _find_numpy_openblas():
    """ctypes getters/setters of the thread count of the OpenBLAS numpy's wheels bundle, or False."""
    import numpy

    pattern = os.path.join(os.path.dirname(numpy.__file__), os.pardir, "numpy.libs", "*openblas*")
    for path in glob.glob(pattern):
        try:
            lib = ctypes.CDLL(path)  # already loaded by numpy: the same handle
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"), ("openblas", "")):
            getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if getter is not None and setter is not None:
                setter.argtypes = [ctypes.c_int]
                return getter, setter
    return False


@contextlib.contextmanager
def single_threaded_numpy_blas():
    """numpy's BLAS on one thread inside; restored afterwards; a no-op where numpy uses another BLAS."""
    global _numpy_blas_threads
    if _numpy_blas_threads is None:
        _numpy_blas_threads = _find_numpy_openblas()
    if not _numpy_blas_threads:
        yield
        return
    get, set_ = _numpy_blas_threads
    before = get()
    set_(1)
    try:
        yield
    finally:
        set_(before)
