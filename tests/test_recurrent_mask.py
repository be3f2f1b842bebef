"""recurrent_mask (variational recurrent dropout): W_hh sees h * mask; the state does not.

Gradients by float64 central differences on both backends (every input, the mask held fixed), the
CPU kernels against the reference, and two identities: an all-ones mask changes nothing, and a mask
folded into W_hh (W_hh * mask over its columns) gives the same outputs for LSTM and RNN.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_cotangents, make_data
from fusedrnn import ops
from test_gradients import assert_grad_close, numeric_grad

B, T, I, H = 3, 4, 3, 4
CELLS = list(ops.CELLS)  # every registered cell


def run(cell, x, params, h0, c0, lengths, reverse, mask):
    return ops.forward(cell, x, *params, h0, c0, lengths, reverse, recurrent_mask=mask)


def grads(cell, ctx, dy, dh_n, dc_n):
    return ops.backward(ctx, dy, dh_n, dc_n)


def data(cell, seed=7):
    rng = np.random.default_rng(seed)
    x, params, h0, c0 = make_data(rng, cell, B, T, I, H)
    # Inverted-dropout style mask: zeros and 1/keep, fixed for the whole sequence.
    mask = (rng.random((B, H)) > 0.3) / 0.7
    return rng, x, list(params), h0, c0 if ops.cell_info(cell).has_cell_state else None, mask


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_gradients_with_mask(backend, cell, reverse):
    rng, x, params, h0, c0, mask = data(cell)
    lengths = np.array([4, 1, 3])
    dy, dh_n, dc_n = make_cotangents(rng, cell, B, T, H)
    arrays = {"x": x, "w_ih": params[0], "w_hh": params[1], "b_ih": params[2], "b_hh": params[3], "h0": h0}
    if c0 is not None:
        arrays["c0"] = c0

    def loss(a):
        y, h_n, c_n, _ = run(cell, a["x"], [a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"]], a["h0"], a.get("c0"),
                             lengths, reverse, mask)
        return float(np.sum(y * dy) + np.sum(h_n * dh_n) + (np.sum(c_n * dc_n) if c_n is not None else 0.0))

    *_, ctx = run(cell, x, params, h0, c0, lengths, reverse, mask)
    g = grads(cell, ctx, dy, dh_n, dc_n)
    analytic = {"x": g.dx, "w_ih": g.dw_ih, "w_hh": g.dw_hh, "b_ih": g.db_ih, "b_hh": g.db_hh, "h0": g.dh0,
                "c0": g.dc0}
    for name in arrays:
        assert_grad_close(numeric_grad(loss, arrays, name), analytic[name], name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_cpu_matches_reference_with_mask(monkeypatch, cell, dtype):
    rng, x, params, h0, c0, mask = data(cell, seed=3)
    x, h0, mask = x.astype(dtype), h0.astype(dtype), mask.astype(dtype)
    params = [p.astype(dtype) for p in params]
    c0 = None if c0 is None else c0.astype(dtype)
    dy, dh_n, dc_n = (None if a is None else a.astype(dtype) for a in make_cotangents(rng, cell, B, T, H))
    results = {}
    for backend in ("numpy", "cpu"):
        monkeypatch.setenv("FUSEDRNN_BACKEND", backend)
        y, h_n, c_n, ctx = run(cell, x, params, h0, c0, [2, 4, 3], True, mask)
        g = grads(cell, ctx, dy, dh_n, dc_n)
        results[backend] = [y, h_n, g.dx, g.dw_ih, g.dw_hh, g.db_ih, g.db_hh, g.dh0]
    # float64: both sum the same terms in a different order (~1e-15); float32: ~1e-7 per op, grown
    # through 4 steps and sums of a few dozen terms, far below a wrong mask (O(1) differences).
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for cpu, ref in zip(results["cpu"], results["numpy"]):
        np.testing.assert_allclose(cpu, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("cell", CELLS)
def test_all_ones_mask_changes_nothing(backend, cell):
    rng, x, params, h0, c0, _ = data(cell)
    with_mask = run(cell, x, params, h0, c0, None, False, np.ones((B, H)))
    without = run(cell, x, params, h0, c0, None, False, None)
    for a, b in zip(with_mask[:3], without[:3]):
        if a is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_mask_is_the_same_as_masking_w_hh_columns(backend, cell):
    """For a batch of one, h * m @ W_hh^T = h @ (W_hh * m)^T; LSTM and RNN see h only through W_hh."""
    rng, x, params, h0, c0, mask = data(cell)
    x, h0, mask = x[:1], h0[:1], mask[:1]
    c0 = None if c0 is None else c0[:1]
    masked = run(cell, x, params, h0, c0, None, False, mask)
    folded = run(cell, x, [params[0], params[1] * mask[0], params[2], params[3]], h0, c0, None, False, None)
    np.testing.assert_allclose(masked[0], folded[0], rtol=1e-12, atol=1e-14)  # same sums, other order


def test_mask_is_validated():
    rng, x, params, h0, c0, mask = data("lstm")
    with pytest.raises(ValueError, match="recurrent_mask"):
        ops.lstm_forward(x, *params, recurrent_mask=mask[:, :-1])
    with pytest.raises(TypeError, match="recurrent_mask"):
        ops.lstm_forward(x, *params, recurrent_mask=mask.astype(np.float32))
