"""The fused native Adam step (csrc/cpu/adam.h) against the array form of the same update."""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_native_adam_matches_array_form(dtype):
    core = fusedrnn._native.core()
    rng = np.random.default_rng(0)
    var, grad, m, v = (rng.standard_normal(1003).astype(dtype) for _ in range(4))
    v = np.abs(v)
    alpha, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    expect_m = b1 * m + (1 - b1) * grad
    expect_v = b2 * v + (1 - b2) * grad * grad
    expect_var = var - alpha * expect_m / (np.sqrt(expect_v) + eps)
    core.adam_update(var, grad, m, v, alpha, b1, b2, eps)
    # The same arithmetic in another order (and FMA contractions): a few ulps of each dtype.
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for got, want in ((m, expect_m), (v, expect_v), (var, expect_var)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("n", [5, 1 << 18])
def test_native_adam_threads_give_the_same_bits(n):
    """Split over two threads (large arrays) or not (small ones), every element gets the same update."""
    core = fusedrnn._native.core()
    rng = np.random.default_rng(1)
    start = [rng.standard_normal(n).astype(np.float32) for _ in range(4)]
    start[3] = np.abs(start[3])
    results = []
    for threads in (1, 2):
        var, grad, m, v = (a.copy() for a in start)
        core.adam_update(var, grad, m, v, 0.01, 0.9, 0.999, 1e-7, threads)
        results.append((var, m, v))
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
    assert not np.array_equal(results[0][0], start[0])


def test_native_adam_checks_its_arguments():
    core = fusedrnn._native.core()
    a = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="grad"):
        core.adam_update(a, np.zeros(5, np.float32), a.copy(), a.copy(), 0.1, 0.9, 0.999, 1e-7)
    with pytest.raises(TypeError, match="m"):
        core.adam_update(a, a.copy(), np.zeros(4), a.copy(), 0.1, 0.9, 0.999, 1e-7)
    read_only = a.copy()
    read_only.setflags(write=False)
    with pytest.raises(ValueError, match="v"):
        core.adam_update(a, a.copy(), a.copy(), read_only, 0.1, 0.9, 0.999, 1e-7)
    with pytest.raises(TypeError, match="var"):
        core.adam_update(np.zeros(4, np.int32), a, a.copy(), a.copy(), 0.1, 0.9, 0.999, 1e-7)
