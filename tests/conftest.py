"""Shared helpers: seeded data, random parameters, and one forward+backward call through any implementation.

Shapes (ARCHITECTURE.md, "Shapes and weights"): x (B, T, I); h0, c0, h_n, c_n (B, H); y (B, T, H);
w_ih (G*H, I); w_hh (G*H, H); b_ih, b_hh (G*H,) with G the cell's gates (fusedrnn.ops.CELLS).
"""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from fusedrnn import ops, reference

# From the cell table, so that a registered cell gets every test parametrized over these.
CELLS = list(ops.CELLS)  # "lstm", "gru", "rnn"
GATES = {name: cell.gates for name, cell in ops.CELLS.items()}
# (cell, nonlinearity): every op of the API, each cell with each of its nonlinearities.
OPS = [(name, nl) for name, cell in ops.CELLS.items() for nl in cell.nonlinearities]
OP_IDS = [name if len(ops.cell_info(name).nonlinearities) == 1 else f"{name}_{nl}" for name, nl in OPS]
BACKENDS = ["numpy", "cpu"]

# Compiled CPU vs reference, relative to each array's scale (max_rel_diff below). The two sides do the same
# arithmetic in a different order (blocked BLAS, SIMD, fused loops), so they differ by rounding that
# grows with the length of the sums (up to B*T = 85 terms for dW) and through T steps of recurrence,
# measured at most ~1e-15 (float64) and ~8e-7 (float32) over several seeds. 1e-12 and 1e-5 leave room
# for other BLAS builds and ISA paths (AVX2 vs AVX-512 FMA contractions) while a wrong formula,
# index or missed step is off by 1e-3 or more.
REFERENCE_RTOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture
def rng():
    return np.random.default_rng(20261126)


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """The backend name, with FUSEDRNN_BACKEND set to it for the test."""
    monkeypatch.setenv("FUSEDRNN_BACKEND", request.param)
    return request.param


@pytest.fixture(scope="module")
def torch_threads():
    """torch on two threads for a module's tests (its default follows the machine), then as before."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def restore_threads():
    """Puts fusedrnn's thread count back after a test that changes it."""
    before = fusedrnn.get_num_threads()
    yield before
    fusedrnn.set_num_threads(before)


def make_params(rng, cell, inputs, hidden, dtype=np.float64, scale=None):
    """(w_ih (G*H, I), w_hh (G*H, H), b_ih (G*H,), b_hh (G*H,)) with entries ~ N(0, scale^2).

    The default scale is 0.5 up to I + H = 8 (all the gradient-check shapes), then shrinks like
    1/sqrt(I + H): pre-activations stay O(1), so sigmoid and tanh are not saturated and gradients
    are not vanishingly small, and the recurrence stays contracting-ish for large H, so that it
    does not amplify rounding by orders of magnitude over T steps (which would make any float32
    comparison a test of chaos rather than of the kernels)."""
    if scale is None:
        scale = 0.5 * min(1.0, np.sqrt(8.0 / (inputs + hidden)))
    g = GATES[cell] * hidden
    draw = lambda *shape: (scale * rng.standard_normal(shape)).astype(dtype)  # noqa: E731
    return draw(g, inputs), draw(g, hidden), draw(g), draw(g)


def make_data(rng, cell, B, T, I, H, dtype=np.float64, states=True):
    """x (B, T, I), params, h0 (B, H), c0 (B, H) or None (c0 only for LSTM; both None without states)."""
    x = rng.standard_normal((B, T, I)).astype(dtype)
    params = make_params(rng, cell, I, H, dtype)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(dtype) if states else None
    c0 = (0.5 * rng.standard_normal((B, H))).astype(dtype) if states and ops.cell_info(cell).has_cell_state else None
    return x, params, h0, c0


def make_cotangents(rng, cell, B, T, H, dtype=np.float64):
    """Random dy (B, T, H), dh_n (B, H), dc_n (B, H) or None: a linear functional of all outputs."""
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    dh_n = rng.standard_normal((B, H)).astype(dtype)
    dc_n = rng.standard_normal((B, H)).astype(dtype) if ops.cell_info(cell).has_cell_state else None
    return dy, dh_n, dc_n


def forward(impl, cell, x, params, h0=None, c0=None, lengths=None, reverse=False, nonlinearity="tanh"):
    """One direction's forward through ``impl`` ("numpy" or "cpu": fusedrnn.ops with that backend
    forced; "reference": fusedrnn.reference directly) -> (y, h_n, c_n or None, ctx)."""
    module = reference if impl == "reference" else ops
    if impl == "reference" and lengths is not None:
        lengths = np.asarray(lengths, np.int64)  # the reference trusts its arguments
    with pytest.MonkeyPatch.context() as mp:
        if impl != "reference":
            mp.setenv("FUSEDRNN_BACKEND", impl)
        out = getattr(module, f"{cell}_forward")(x, *params, **cell_kwargs(cell, c0=c0, nonlinearity=nonlinearity),
                                                 h0=h0, lengths=lengths, reverse=reverse)
    return out if ops.cell_info(cell).has_cell_state else (out[0], out[1], None, out[2])


def cell_kwargs(cell, c0=None, nonlinearity="tanh", dc_n=None, backward=False):
    """The per-cell keyword arguments of <cell>_forward (c0 with a cell state, nonlinearity where a
    cell has several) or, with backward=True, of <cell>_backward (dc_n with a cell state)."""
    info = ops.cell_info(cell)
    if backward:
        return {"dc_n": dc_n} if info.has_cell_state else {}
    kw = {"c0": c0} if info.has_cell_state else {}
    if len(info.nonlinearities) > 1:
        kw["nonlinearity"] = nonlinearity
    return kw


def backward(impl, cell, ctx, dy, dh_n=None, dc_n=None):
    """The matching backward -> Grads."""
    module = reference if impl == "reference" else ops
    return getattr(module, f"{cell}_backward")(ctx, dy, dh_n, **cell_kwargs(cell, dc_n=dc_n, backward=True))


def run_cell(impl, cell, x, params, h0=None, c0=None, lengths=None, reverse=False, nonlinearity="tanh",
             dy=None, dh_n=None, dc_n=None):
    """Forward then backward -> dict of every output and gradient (names as in the op API).

    dy defaults to ones (B, T, H); dh_n, dc_n to None (zero)."""
    y, h_n, c_n, ctx = forward(impl, cell, x, params, h0, c0, lengths, reverse, nonlinearity)
    g = backward(impl, cell, ctx, np.ones_like(y) if dy is None else dy, dh_n, dc_n)
    out = {"y": y, "h_n": h_n, "dx": g.dx, "dw_ih": g.dw_ih, "dw_hh": g.dw_hh, "db_ih": g.db_ih,
           "db_hh": g.db_hh, "dh0": g.dh0}
    if ops.cell_info(cell).has_cell_state:
        out.update(c_n=c_n, dc0=g.dc0)
    return out


def max_rel_diff(actual, expected):
    """max |actual - expected| / max(max |expected|, 1): the error relative to the array's scale, so
    that entries that happen to be tiny do not dominate. The floor of 1 is the scale of the terms
    every test sums (inputs, weights and cotangents are O(1)): a gradient that is small because its
    O(1) terms cancel (e.g. db for H = 1) carries the rounding of those terms, not of its own size."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    if actual.size == 0:
        return 0.0
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1.0))


def assert_close_scaled(actual: dict, expected: dict, rtol, label=""):
    """Every key of ``expected`` matches in ``actual`` to ``rtol`` relative to that array's scale."""
    assert set(actual) == set(expected), (sorted(actual), sorted(expected))
    worst = {k: max_rel_diff(actual[k], expected[k]) for k in expected}
    bad = {k: v for k, v in worst.items() if not v <= rtol}
    assert not bad, f"{label} relative differences above {rtol}: {bad}"


def make_stack_params(rng, cell, inputs, hidden, layers, directions, dtype=np.float64, scale=None):
    """A stack's params in the ops' order (layer 0 fwd, layer 0 rev, layer 1 fwd, ...): make_params for
    each entry, layer 0 on ``inputs`` features and every later layer on the previous one's directions * hidden."""
    return [make_params(rng, cell, inputs if layer == 0 else directions * hidden, hidden, dtype, scale)
            for layer in range(layers) for _ in range(directions)]


def torch_kwargs(cell, nonlinearity="tanh"):
    """The keyword arguments torch.nn.<torch_class> needs for one op (cell, nonlinearity): its
    ``nonlinearity`` where the cell has a choice of them (RNN), nothing otherwise."""
    return {"nonlinearity": nonlinearity} if len(ops.cell_info(cell).nonlinearities) > 1 else {}
