"""The threaded matrix product of the compiled module (csrc/cpu/matmul.h) and its Python entry
(fusedrnn._matmul) against NumPy's ``@``."""

from __future__ import annotations

import numpy as np
import pytest

from fusedrnn import _matmul, _native

core = _native.core()
needs_core = pytest.mark.skipif(core is None, reason="the compiled CPU module is not built")


def stored(rng, rows, cols, transposed, dtype):
    """A (rows, cols) operand, stored as its transpose when ``transposed``."""
    a = rng.standard_normal((cols, rows) if transposed else (rows, cols)).astype(dtype)
    return a, (a.T if transposed else a)


@needs_core
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (7, 5, 3), (960, 60, 600), (600, 60, 960), (3, 4, 0), (0, 4, 3)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_matmul_is_numpy_matmul(dtype, tol, m, n, k, trans_a, trans_b, threads):
    rng = np.random.default_rng(m * 100 + n + k)
    a, op_a = stored(rng, m, k, trans_a, dtype)
    b, op_b = stored(rng, k, n, trans_b, dtype)
    out = np.full((m, n), np.nan, dtype)  # every element must be written, also for k = 0
    core.matmul(a, b, out, trans_a, trans_b, threads)
    np.testing.assert_allclose(out, op_a @ op_b, rtol=tol, atol=tol * max(1, k))


@needs_core
def test_threads_split_the_rows_without_changing_them():
    """Each output row is one BLAS call's row whether the rows are split over threads or not."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((960, 600)).astype(np.float32), rng.standard_normal((600, 60)).astype(np.float32)
    one, two = np.empty((960, 60), np.float32), np.empty((960, 60), np.float32)
    core.matmul(a, b, one, False, False, 1)
    core.matmul(a, b, two, False, False, 2)
    np.testing.assert_allclose(one, two, rtol=1e-6, atol=1e-5)


def test_entry_point_agrees_and_falls_back(monkeypatch):
    """fusedrnn._matmul.matmul: the compiled product for host floats, ``@`` otherwise (no compiled
    module, integer or mixed dtypes, views that are not C-contiguous)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 8)).astype(np.float32)
    w = rng.standard_normal((8, 5)).astype(np.float32)
    g = rng.standard_normal((30, 5)).astype(np.float32)
    cases = [((x, w), {}, x @ w), ((g, w), {"transpose_b": True}, g @ w.T), ((x, g), {"transpose_a": True}, x.T @ g),
             ((x[::2], w), {}, x[::2] @ w), ((x.astype(np.float64), w), {}, x.astype(np.float64) @ w),
             ((np.arange(6).reshape(2, 3), np.arange(3).reshape(3, 1)), {}, np.array([[5], [14]]))]
    for args, kwargs, want in cases:
        got = _matmul.matmul(*args, **kwargs)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(_native, "core", lambda: None)
    np.testing.assert_allclose(_matmul.matmul(x, g, transpose_a=True), x.T @ g, rtol=1e-5, atol=1e-5)


@needs_core
def test_compiled_matmul_rejects_bad_arrays():
    f = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="a: expected 2 dimensions"):
        core.matmul(np.zeros(4, np.float32), f, np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="b: expected 2 dimensions"):
        core.matmul(f, np.zeros(4, np.float32), np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="b: its inner dimension"):
        core.matmul(f, f, np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="b: dtype"):
        core.matmul(f, np.zeros((4, 2)), np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="a: dtype"):
        core.matmul(np.zeros((3, 4), np.int32), np.zeros((4, 2), np.int32), np.zeros((3, 2), np.int32))
    with pytest.raises(ValueError, match="out: expected shape"):
        core.matmul(f, f, np.zeros((3, 4), np.float32), False, True)
    with pytest.raises(ValueError, match="a: must be C-contiguous"):
        core.matmul(np.zeros((3, 8), np.float32)[:, ::2], f.T.copy(), np.zeros((3, 3), np.float32))
    read_only = np.zeros((3, 3), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out: must be writable"):
        core.matmul(f, f, read_only, False, True)
