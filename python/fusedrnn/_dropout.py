"""Dropout masks from a counter-based generator: the same bits on every backend.

Element i (C order) of the mask keyed by ``key`` is ``scale`` when the top 24 bits of SplitMix64's
output at position i of the stream that starts at ``key`` are at least ``threshold = ceil(rate *
2**24)``, else 0: kept with probability ``1 - threshold / 2**24``, within 6e-8 of ``1 - rate``.
The compiled CPU module (csrc/cpu/dropout.h) draws it on the host and a CuPy kernel on the GPU;
``numpy_mask`` below is its specification and the fallback without the compiled module. A mask
costs its caller's NumPy generator one draw (the key), so a seeded run draws the same masks on
the CPU and the GPU, and nothing crosses from the host to the GPU but the key."""

from __future__ import annotations

import math

import numpy as np

from . import _native
from ._xp import array_module

KEEP_BITS = 24
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)

_cupy_kernel = None


def dropout_key(rng) -> int:
    """A mask's key: one draw from ``rng``, a NumPy Generator."""
    return int(rng.integers(0, 2**64, dtype=np.uint64))


def dropout_mask(xp, shape, rate: float, rng, dtype):
    """-> an array of ``shape`` and ``dtype`` on xp's device (NumPy or CuPy): 0 with probability
    ``rate`` (0 <= rate < 1), else 1 / (1 - rate). ``rng``: a NumPy Generator, drawn once."""
    return _draw(xp, shape, np.dtype(dtype), dropout_key(rng), rate)


def apply_dropout(x, key: int, rate: float):
    """x * the mask of x's shape keyed by ``key``, in one pass where compiled: the forward of
    dropout, and its backward on the gradient with the same key (no mask is kept)."""
    return _draw(array_module(x), x.shape, x.dtype, key, rate, x)


def _draw(xp, shape, dtype, key, rate, x=None):
    """The mask keyed by ``key`` (or x times it, x of ``shape`` and ``dtype``) on xp's device."""
    threshold = min(1 << KEEP_BITS, math.ceil(float(rate) * (1 << KEEP_BITS)))
    scale = 1.0 / (1.0 - float(rate))
    if xp is not np:
        out = xp.empty(shape, dtype)
        _kernel()(dtype.type(1) if x is None else xp.ascontiguousarray(x), np.uint64(key), np.uint32(threshold),
                  dtype.type(scale), out)
        return out
    core = _native.core()
    if core is None:
        mask = numpy_mask(shape, key, threshold, scale, dtype)
        return mask if x is None else x * mask
    out = np.empty(shape, dtype)
    core.dropout_mask(out, key, threshold, scale, None if x is None else np.ascontiguousarray(x),
                      _native.get_num_threads())
    return out


def numpy_mask(shape, key: int, threshold: int, scale: float, dtype) -> np.ndarray:
    """The generator in NumPy: the specification of the compiled and GPU versions, bit for bit."""
    index = np.arange(1, math.prod(shape) + 1, dtype=np.uint64)  # uint64 arithmetic wraps, as in C
    z = np.uint64(key) + index * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    z ^= z >> np.uint64(31)
    dtype = np.dtype(dtype)
    return np.where(z >> np.uint64(64 - KEEP_BITS) >= threshold, dtype.type(scale), dtype.type(0)).reshape(shape)


def _kernel():
    """The generator as a CuPy elementwise kernel (compiled at the first GPU dropout): out = x times
    the mask (x = 1 for the mask alone); i is the element's C-order index in the fresh contiguous
    output."""
    global _cupy_kernel
    if _cupy_kernel is None:
        import cupy

        _cupy_kernel = cupy.ElementwiseKernel(
            "T x, uint64 key, uint32 threshold, T scale", "T out",
            """
            unsigned long long z = key + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ull;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
            out = x * ((z >> 40) >= threshold ? scale : (T)0);
            """,
            "fusedrnn_dropout_mask")
    return _cupy_kernel
