"""float64 central finite differences against the analytic backward, on both backends.

Every op (each registered cell with each of its nonlinearities: conftest.OPS), every input (x, w_ih,
w_hh, b_ih, b_hh, h0, c0) and every output (y, h_n, c_n) through the random linear functional
L = sum(y*Gy) + sum(h_n*Gh) + sum(c_n*Gc), whose gradient with respect to the outputs is (Gy, Gh, Gc):
the analytic gradients are backward(ctx, dy=Gy, dh_n=Gh, dc_n=Gc).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import OP_IDS, OPS, backward, forward, make_cotangents, make_data, make_stack_params
from fusedrnn import ops

B, T, I, H = 3, 4, 3, 4
EPS = 1e-6
# Central differences at EPS = 1e-6 in float64: truncation error ~EPS^2 * |L'''| ~ 1e-12, rounding
# error ~ 1e-16 * sum|terms of L| / EPS ~ 1e-9 for |L| ~ 10. So 1e-8 absolute covers rounding and
# 1e-6 relative covers the largest gradients (|dL/dp| up to ~10) with room to spare; a wrong
# gradient term is off by O(0.1) or more.
ATOL, RTOL = 1e-8, 1e-6
# ReLU is not differentiable at 0: a perturbation of EPS moves a pre-activation by at most
# ~EPS * (sum of |weights| along the path) < 1e-4, so every pre-activation must stay 1e-3 away
# from 0 for the finite difference to stay on one side of the kink.
RELU_MARGIN = 1e-3


def relu_margin(ref_ctx, b_ih, b_hh):
    """min |pre-activation| over every valid step of a reference RNN forward's context."""
    margin = np.inf
    for rows, t, h_prev, _ in ref_ctx.steps:
        pre = ref_ctx.x[rows, t] @ ref_ctx.w_ih.T + b_ih + h_prev @ ref_ctx.w_hh.T + b_hh
        margin = min(margin, float(np.min(np.abs(pre))))
    return margin


def numeric_grad(loss, arrays, name):
    """dL/d arrays[name] by central differences, perturbing one entry at a time in place."""
    a = arrays[name]
    grad = np.empty_like(a)
    for idx in np.ndindex(a.shape):
        saved = a[idx]
        a[idx] = saved + EPS
        plus = loss(arrays)
        a[idx] = saved - EPS
        minus = loss(arrays)
        a[idx] = saved
        grad[idx] = (plus - minus) / (2 * EPS)
    return grad


def assert_grad_close(numeric, analytic, name):
    assert numeric.shape == analytic.shape, name
    err = np.abs(numeric - analytic)
    bad = err > ATOL + RTOL * np.abs(numeric)
    assert not bad.any(), f"{name}: max error {err.max():.3e}, at {np.argwhere(bad)[:5].tolist()}"
    # The check is not vacuous: the functional depends on every input through some valid step.
    assert np.abs(numeric).max() > 1e-3, f"{name}: gradient is ~0, the check proves nothing"


def draw_op_case(rng, cell, nonlinearity, lengths, reverse):
    """x, params, h0, c0 for one op; for ReLU, redrawn (deterministically) until no pre-activation
    is near the kink."""
    for _ in range(50):
        x, params, h0, c0 = make_data(rng, cell, B, T, I, H)
        if nonlinearity != "relu":
            return x, params, h0, c0
        *_, ref_ctx = forward("reference", cell, x, params, h0, c0, lengths, reverse, nonlinearity)
        if relu_margin(ref_ctx, params[2], params[3]) > RELU_MARGIN:
            return x, params, h0, c0
    raise AssertionError("no ReLU case away from the kink in 50 draws")


# lengths (B,) = (4, 1, 3): unsorted, and includes both 1 and T = 4.
@pytest.mark.parametrize("lengths", [None, [4, 1, 3]], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_op_gradients_match_finite_differences(backend, rng, cell, nonlinearity, lengths, reverse):
    x, (w_ih, w_hh, b_ih, b_hh), h0, c0 = draw_op_case(rng, cell, nonlinearity, lengths, reverse)
    gy, gh, gc = make_cotangents(rng, cell, B, T, H)
    has_cell_state = ops.cell_info(cell).has_cell_state
    arrays = {"x": x, "w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh, "h0": h0}
    if has_cell_state:
        arrays["c0"] = c0

    def run(a):
        params = (a["x"], (a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"]))
        return forward(backend, cell, *params, a["h0"], a.get("c0"), lengths, reverse, nonlinearity)

    def loss(a):
        y, h_n, c_n, _ = run(a)
        total = np.sum(y * gy) + np.sum(h_n * gh)
        return total + np.sum(c_n * gc) if has_cell_state else total

    *_, ctx = run(arrays)
    g = backward(backend, cell, ctx, gy, gh, gc)
    analytic = {"x": g.dx, "w_ih": g.dw_ih, "w_hh": g.dw_hh, "b_ih": g.db_ih, "b_hh": g.db_hh, "h0": g.dh0,
                "c0": g.dc0}
    for name in arrays:
        assert_grad_close(numeric_grad(loss, arrays, name), analytic[name], name)


@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_none_output_gradients_equal_zeros(backend, rng, cell, nonlinearity):
    x, params, h0, c0 = make_data(rng, cell, B, T, I, H)
    lengths = [2, 4, 1]
    dy, _, _ = make_cotangents(rng, cell, B, T, H)
    *_, ctx = forward(backend, cell, x, params, h0, c0, lengths, False, nonlinearity)
    with_none = backward(backend, cell, ctx, dy, None, None)
    zero = np.zeros((B, H))
    has_cell_state = ops.cell_info(cell).has_cell_state
    with_zeros = backward(backend, cell, ctx, dy, zero, zero if has_cell_state else None)
    # Adding an exact zero changes nothing in IEEE arithmetic: the two must agree bit for bit.
    for name in ("dx", "dw_ih", "dw_hh", "db_ih", "db_hh", "dh0", "dc0"):
        a, b = getattr(with_none, name), getattr(with_zeros, name)
        if not has_cell_state and name == "dc0":
            assert a is None and b is None
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


# ---- stacked, bidirectional, with dropout: ops.stack_forward + ops.stack_backward ----

SB, ST, SI, SH, LAYERS, DIRS = 3, 4, 3, 3, 2, 2
STACK_LENGTHS = [4, 1, 3]  # unsorted, includes 1 and T
DROPOUT, SEED = 0.3, 1234  # the mask is drawn from default_rng(SEED): the same on every call


def stack_forward(cell, x, params, h0, c0, nonlinearity):
    return ops.stack_forward(cell, x, params, h0, c0, lengths=STACK_LENGTHS, num_layers=LAYERS, bidirectional=True,
                             dropout=DROPOUT, seed=SEED, nonlinearity=nonlinearity)


def draw_stack_case(rng, cell, nonlinearity, monkeypatch):
    """x (B, T, I), params [layer0 fwd, layer0 rev, layer1 fwd, layer1 rev], h0, c0 (L*D, B, H);
    ReLU cases redrawn until every direction's pre-activations avoid the kink."""
    states = (LAYERS * DIRS, SB, SH)
    for _ in range(50):
        x = rng.standard_normal((SB, ST, SI))
        params = make_stack_params(rng, cell, SI, SH, LAYERS, DIRS)
        h0 = 0.5 * rng.standard_normal(states)
        c0 = 0.5 * rng.standard_normal(states) if ops.cell_info(cell).has_cell_state else None
        if nonlinearity != "relu":
            return x, params, h0, c0
        with monkeypatch.context() as mp:
            mp.setenv("FUSEDRNN_BACKEND", "numpy")  # its contexts hold the reference's saved steps
            *_, ctx = stack_forward(cell, x, params, h0, c0, nonlinearity)
        margins = [relu_margin(c.saved, p[2], p[3]) for c, p in zip(ctx.contexts, params)]
        if min(margins) > RELU_MARGIN:
            return x, params, h0, c0
    raise AssertionError("no ReLU case away from the kink in 50 draws")


@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_stack_gradients_match_finite_differences(backend, rng, monkeypatch, cell, nonlinearity):
    x, params, h0, c0 = draw_stack_case(rng, cell, nonlinearity, monkeypatch)
    gy = rng.standard_normal((SB, ST, DIRS * SH))
    gh = rng.standard_normal((LAYERS * DIRS, SB, SH))
    has_cell_state = ops.cell_info(cell).has_cell_state
    gc = rng.standard_normal((LAYERS * DIRS, SB, SH)) if has_cell_state else None
    arrays = {"x": x, "h0": h0}
    if has_cell_state:
        arrays["c0"] = c0
    for k, p in enumerate(params):
        arrays.update({f"params[{k}].{n}": a for n, a in zip(("w_ih", "w_hh", "b_ih", "b_hh"), p)})

    def run(a):
        ps = [tuple(a[f"params[{k}].{n}"] for n in ("w_ih", "w_hh", "b_ih", "b_hh")) for k in range(len(params))]
        return stack_forward(cell, a["x"], ps, a["h0"], a.get("c0"), nonlinearity)

    def loss(a):
        y, h_n, c_n, _ = run(a)
        total = np.sum(y * gy) + np.sum(h_n * gh)
        return total + np.sum(c_n * gc) if has_cell_state else total

    y, *_, ctx = run(arrays)
    assert ctx.masks[0] is not None and (ctx.masks[0] == 0).any(), "dropout must actually drop something"
    g = ops.stack_backward(ctx, gy, gh, gc)
    analytic = {"x": g.dx, "h0": g.dh0, "c0": g.dc0}
    for k, dp in enumerate(g.params):
        analytic.update({f"params[{k}].{n}": d for n, d in zip(("w_ih", "w_hh", "b_ih", "b_hh"), dp)})
    for name in arrays:
        assert_grad_close(numeric_grad(loss, arrays, name), analytic[name], name)


@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_stack_none_output_gradients_equal_zeros(backend, rng, monkeypatch, cell, nonlinearity):
    x, params, h0, c0 = draw_stack_case(rng, cell, "tanh", monkeypatch)
    *_, ctx = stack_forward(cell, x, params, h0, c0, nonlinearity)
    dy = rng.standard_normal((SB, ST, DIRS * SH))
    zeros = np.zeros((LAYERS * DIRS, SB, SH))
    has_cell_state = ops.cell_info(cell).has_cell_state
    with_none = ops.stack_backward(ctx, dy)
    with_zeros = ops.stack_backward(ctx, dy, zeros, zeros if has_cell_state else None)
    # Adding an exact zero changes nothing in IEEE arithmetic: bit-for-bit equal.
    np.testing.assert_array_equal(with_none.dx, with_zeros.dx)
    np.testing.assert_array_equal(with_none.dh0, with_zeros.dh0)
    if has_cell_state:
        np.testing.assert_array_equal(with_none.dc0, with_zeros.dc0)
    for a, b in zip(with_none.params, with_zeros.params):
        for da, db in zip(a, b):
            np.testing.assert_array_equal(da, db)
