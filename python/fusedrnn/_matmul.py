"""2-D matrix products for the training layer, threaded on the CPU without numpy's BLAS pool.

numpy's bundled BLAS runs on one thread while a model trains (nn/_numpy_blas.py says why), which
left a tagger's dense layers on one core. On the host, float32/float64 products go to the compiled
module instead, which splits the output rows over the kernels' threads (csrc/cpu/matmul.h); anything
else (CuPy arrays, other dtypes, no compiled module) goes to ``@``.
"""

from __future__ import annotations

import numpy as np

from . import _native

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def matmul(a, b, transpose_a: bool = False, transpose_b: bool = False):
    """op(a) @ op(b) for 2-D arrays a and b, op transposing where asked -> a new (m, n) array."""
    core = _native.core()
    if (core is None or not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray) or a.dtype != b.dtype
            or a.dtype not in _FLOATS or a.ndim != 2 or b.ndim != 2):
        return (a.T if transpose_a else a) @ (b.T if transpose_b else b)
    out = np.empty((a.shape[1 if transpose_a else 0], b.shape[0 if transpose_b else 1]), a.dtype)
    core.matmul(np.ascontiguousarray(a), np.ascontiguousarray(b), out, transpose_a, transpose_b,
                _native.get_num_threads())
    return out
