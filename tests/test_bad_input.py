"""Bad arguments raise TypeError/ValueError naming the argument; odd but valid arrays work; NaN and inf
propagate; nothing a caller passes (to fusedrnn.ops or to the raw fusedrnn._core) crashes the process.

Shapes: x (B, T, I) = (2, 3, 4); H = 5; w_ih (G*H, I); w_hh (G*H, H); b_ih, b_hh (G*H,); h0, c0 (B, H).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fusedrnn
import raw_core
from conftest import BACKENDS, OP_IDS, OPS, make_cotangents, make_data, make_params, run_cell
from fusedrnn import ops

B, T, I, H = 2, 3, 4, 5
CELLS = list(ops.CELLS)  # every registered cell
HAS_CELL_STATE = {name: cell.has_cell_state for name, cell in ops.CELLS.items()}  # takes c0 and dc_n
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def names(arg):
    """Regex for a message naming ``arg``: the package writes "arg: what was expected"."""
    return rf"(^|\s){re.escape(arg)}:"


def forward_kwargs(cell, dtype=np.float64):
    """Valid keyword arguments of ops.<cell>_forward, with lengths and states."""
    x, (w_ih, w_hh, b_ih, b_hh), h0, c0 = make_data(np.random.default_rng(0), cell, B, T, I, H, dtype)
    kw = dict(x=x, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, h0=h0, lengths=[3, 2], reverse=False)
    if ops.cell_info(cell).has_cell_state:
        kw["c0"] = c0
    return kw


def call_forward(cell, kw):
    return getattr(ops, f"{cell}_forward")(**kw)


def arrays_of(cell):
    return ["x", "w_ih", "w_hh", "b_ih", "b_hh", "h0"] + (["c0"] if ops.cell_info(cell).has_cell_state else [])


def cell_arg_cases():
    return [(cell, arg) for cell in CELLS for arg in arrays_of(cell)]


CELL_ARG_IDS = [f"{c}-{a}" for c, a in cell_arg_cases()]


# ---- forward: wrong kind, dtype, ndim, shape of each array argument ----

@pytest.mark.parametrize("cell,arg", cell_arg_cases(), ids=CELL_ARG_IDS)
def test_forward_rejects_extra_dimension(cell, arg):
    kw = forward_kwargs(cell)
    kw[arg] = kw[arg][None]
    with pytest.raises(ValueError, match=names(arg)):
        call_forward(cell, kw)


@pytest.mark.parametrize("cell,arg", cell_arg_cases(), ids=CELL_ARG_IDS)
def test_forward_rejects_missing_dimension(cell, arg):
    kw = forward_kwargs(cell)
    kw[arg] = np.asarray(kw[arg][0])  # one dimension fewer (a 0-d array for the biases)
    with pytest.raises(ValueError, match=names(arg)):
        call_forward(cell, kw)


@pytest.mark.parametrize("cell,arg", cell_arg_cases(), ids=CELL_ARG_IDS)
def test_forward_rejects_lists(cell, arg):
    kw = forward_kwargs(cell)
    kw[arg] = kw[arg].tolist()
    with pytest.raises(TypeError, match=names(arg)):
        call_forward(cell, kw)


@pytest.mark.parametrize("bad_dtype", [np.int64, np.int32, np.float16, np.complex128, np.bool_])
@pytest.mark.parametrize("cell,arg", cell_arg_cases(), ids=CELL_ARG_IDS)
def test_forward_rejects_non_float_dtypes(cell, arg, bad_dtype):
    kw = forward_kwargs(cell)
    kw[arg] = kw[arg].astype(bad_dtype)
    with pytest.raises(TypeError, match=names(arg)):
        call_forward(cell, kw)


@pytest.mark.parametrize("cell,arg", [c for c in cell_arg_cases() if c[1] != "x"],
                         ids=[i for i in CELL_ARG_IDS if not i.endswith("-x")])
def test_forward_rejects_dtype_different_from_x(cell, arg):
    kw = forward_kwargs(cell)
    kw[arg] = kw[arg].astype(np.float32)  # x is float64
    with pytest.raises(TypeError, match=names(arg)):
        call_forward(cell, kw)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_rejects_float32_x_with_float64_weights(cell):
    kw = forward_kwargs(cell)
    kw["x"] = kw["x"].astype(np.float32)
    with pytest.raises(TypeError, match="x's dtype float32"):
        call_forward(cell, kw)


def _rows_plus_one(v):
    return np.concatenate([v, v[:1]])


# (argument, change, id): each makes one array's shape disagree with the others.
SHAPE_CASES = [
    ("w_ih", _rows_plus_one, "w_ih-rows-not-G*H"),
    ("w_ih", lambda v: v[:, :-1], "w_ih-cols-not-I"),
    ("w_hh", lambda v: v[: v.shape[0] - v.shape[1]] if v.shape[0] > v.shape[1] else _rows_plus_one(v),
     "w_hh-wrong-gate-count"),
    ("w_hh", lambda v: v[:, :-1], "w_hh-not-square-per-gate"),
    ("b_ih", lambda v: v[:-1], "b_ih-short"),
    ("b_hh", _rows_plus_one, "b_hh-long"),
    ("h0", lambda v: v[:1], "h0-wrong-B"),
    ("h0", lambda v: v[:, :-1], "h0-wrong-H"),
    ("c0", _rows_plus_one, "c0-wrong-B"),
    ("c0", lambda v: v[:, :-1], "c0-wrong-H"),
    ("x", lambda v: v[:, :0], "x-T-zero"),  # (B = 0 is an empty batch, not an error: test_reliability.py)
    ("x", lambda v: v[:, :, :0], "x-I-zero"),
]


@pytest.mark.parametrize(
    "cell,arg,change", [(cell, arg, change) for arg, change, _ in SHAPE_CASES for cell in CELLS if arg in arrays_of(cell)],
    ids=[f"{cell}-{i}" for arg, _, i in SHAPE_CASES for cell in CELLS if arg in arrays_of(cell)])
def test_forward_rejects_mismatched_shapes(cell, arg, change):
    kw = forward_kwargs(cell)
    kw[arg] = change(kw[arg])
    with pytest.raises(ValueError, match=names(arg)):
        call_forward(cell, kw)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_rejects_zero_hidden_size(cell):
    kw = forward_kwargs(cell)
    kw.update(w_ih=np.empty((0, I)), w_hh=np.empty((0, 0)), b_ih=np.empty(0), b_hh=np.empty(0), h0=None)
    kw.pop("c0", None)
    with pytest.raises(ValueError, match=names("w_hh")):
        call_forward(cell, kw)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_rejects_huge_inconsistent_hidden_size_without_allocating(cell):
    kw = forward_kwargs(cell)
    kw["w_hh"] = np.empty((0, 2**40))  # zero-size, but claims H = 2**40
    with pytest.raises(ValueError, match=names("w_hh")):
        call_forward(cell, kw)


# ---- lengths, nonlinearity, reverse ----

LENGTH_CASES = [
    ([0, 2], ValueError, "zero"),
    ([3, 4], ValueError, "above-T"),
    ([-1, 2], ValueError, "negative"),
    ([3.0, 2.0], TypeError, "float"),
    (np.array([3.0, 2.0]), TypeError, "float-array"),
    ([True, True], TypeError, "bool"),
    ([3], ValueError, "too-few"),
    ([3, 2, 1], ValueError, "too-many"),
    ([[3, 2]], ValueError, "2-d"),
    (3, ValueError, "scalar"),
    (["a", "b"], TypeError, "strings"),
    (np.array([2**63 - 1, 1], np.int64), ValueError, "huge"),
    (np.array([2**64 - 1, 1], np.uint64), ValueError, "huge-unsigned"),
]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("lengths,error", [c[:2] for c in LENGTH_CASES], ids=[c[2] for c in LENGTH_CASES])
def test_forward_rejects_bad_lengths(cell, lengths, error):
    kw = forward_kwargs(cell)
    kw["lengths"] = lengths
    with pytest.raises(error, match=names("lengths")):
        call_forward(cell, kw)


@pytest.mark.parametrize("bad", ["sigmoid", "TANH", None, 1])
def test_rnn_rejects_unknown_nonlinearity(bad):
    kw = forward_kwargs("rnn")
    with pytest.raises(ValueError, match=names("nonlinearity")):
        ops.rnn_forward(**kw, nonlinearity=bad)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bad", ["yes", None, "False"])
def test_forward_rejects_non_bool_reverse(cell, bad):
    kw = forward_kwargs(cell)
    kw["reverse"] = bad
    with pytest.raises(TypeError, match=names("reverse")):
        call_forward(cell, kw)


# ---- backward ----

def backward_call(cell, ctx, dy, dh_n=None, dc_n=None):
    if HAS_CELL_STATE[cell]:
        return ops.lstm_backward(ctx, dy, dh_n, dc_n)
    return getattr(ops, f"{cell}_backward")(ctx, dy, dh_n)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_rejects_ctx_of_another_kind(cell):
    ctxs = {c: call_forward(c, forward_kwargs(c))[-1] for c in CELLS}
    dy = np.ones((B, T, H))
    for other in CELLS:
        if other != cell:
            with pytest.raises(TypeError, match=names("ctx")):
                backward_call(cell, ctxs[other], dy)
    *_, stack_ctx = ops.lstm(np.ones((B, T, I)), [make_params(np.random.default_rng(0), "lstm", I, H)])
    for bad in (None, stack_ctx, "ctx", ctxs[cell].saved):
        with pytest.raises(TypeError, match=names("ctx")):
            backward_call(cell, bad, dy)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_stack_backward_rejects_direction_ctx(backend_name, monkeypatch):
    monkeypatch.setenv("FUSEDRNN_BACKEND", backend_name)
    *_, ctx = call_forward("gru", forward_kwargs("gru"))
    with pytest.raises(TypeError, match=names("ctx")):
        ops.stack_backward(ctx, np.ones((B, T, H)))


BACKWARD_CASES = [
    ("dy", lambda dy, s: dy[..., :-1], ValueError, "dy-wrong-H"),
    ("dy", lambda dy, s: dy[:, :-1], ValueError, "dy-wrong-T"),
    ("dy", lambda dy, s: dy[0], ValueError, "dy-2d"),
    ("dy", lambda dy, s: dy.astype(np.float32), TypeError, "dy-float32"),
    ("dy", lambda dy, s: dy.tolist(), TypeError, "dy-list"),
    ("dy", lambda dy, s: dy.astype(np.int64), TypeError, "dy-int"),
    ("dh_n", lambda dy, s: s[:, :-1], ValueError, "dh_n-wrong-H"),
    ("dh_n", lambda dy, s: s[None], ValueError, "dh_n-3d"),
    ("dh_n", lambda dy, s: s.astype(np.float32), TypeError, "dh_n-float32"),
    ("dc_n", lambda dy, s: s[:1], ValueError, "dc_n-wrong-B"),
    ("dc_n", lambda dy, s: s.tolist(), TypeError, "dc_n-list"),
]


@pytest.mark.parametrize(
    "cell,arg,change,error", [(cell, *c[:3]) for c in BACKWARD_CASES for cell in CELLS if c[0] != "dc_n" or HAS_CELL_STATE[cell]],
    ids=[f"{cell}-{c[3]}" for c in BACKWARD_CASES for cell in CELLS if c[0] != "dc_n" or HAS_CELL_STATE[cell]])
def test_backward_rejects_bad_gradients(backend, cell, arg, change, error):
    *_, ctx = call_forward(cell, forward_kwargs(cell))
    dy, dh_n, dc_n = make_cotangents(np.random.default_rng(1), cell, B, T, H)
    grads = {"dy": dy, "dh_n": dh_n, "dc_n": dc_n}
    grads[arg] = change(dy, grads[arg] if arg != "dy" else None)
    with pytest.raises(error, match=names(arg)):
        backward_call(cell, ctx, **grads)


# ---- stacked / bidirectional ----

def stack_call(cell, x, params, **kw):
    return getattr(ops, cell)(x, params, **kw)


def stack_params(cell, num_layers=1, bidirectional=False):
    rng = np.random.default_rng(2)
    D = 2 if bidirectional else 1
    return [make_params(rng, cell, I if layer == 0 else D * H, H) for layer in range(num_layers) for _ in range(D)]


@pytest.mark.parametrize("cell", CELLS)
def test_stack_rejects_bad_arguments(cell):
    x = np.ones((B, T, I))
    p1, p2 = stack_params(cell), stack_params(cell, 2)
    cases = [
        (dict(params=p2), ValueError, "params"),  # 2 entries for num_layers=1
        (dict(params=p1, num_layers=2), ValueError, "params"),
        (dict(params=p1, bidirectional=True), ValueError, "params"),
        (dict(params=[p1[0][:3]]), TypeError, re.escape("params[0]")),  # a 3-tuple
        (dict(params=[p1[0] + (p1[0][3],)]), TypeError, re.escape("params[0]")),  # a 5-tuple
        (dict(params=p1[0]), ValueError, "params"),  # the tuple itself instead of a list of tuples
        (dict(params={"w": 1}), TypeError, "params"),
        (dict(params=None), TypeError, "params"),
        (dict(params=p1, num_layers=0), ValueError, "num_layers"),
        (dict(params=p1, num_layers=-1), ValueError, "num_layers"),
        (dict(params=p1, num_layers=1.5), TypeError, "num_layers"),
        (dict(params=p1, num_layers=True), TypeError, "num_layers"),
        (dict(params=p2, num_layers=2, dropout=1.0), ValueError, "dropout"),
        (dict(params=p2, num_layers=2, dropout=-0.1), ValueError, "dropout"),
        (dict(params=p2, num_layers=2, dropout=float("nan")), ValueError, "dropout"),
        (dict(params=p1, bidirectional="yes"), TypeError, "bidirectional"),
        (dict(params=p1, training="no"), TypeError, "training"),
        (dict(params=p1, h0=np.zeros((B, H))), ValueError, "h0"),  # needs (L*D, B, H)
        (dict(params=p2, num_layers=2, h0=np.zeros((1, B, H))), ValueError, "h0"),
        (dict(params=p1, lengths=[0, 3]), ValueError, "lengths"),
        (dict(params=p1, lengths=[1.5, 3]), TypeError, "lengths"),
        # layer 1 of a 2-layer stack gets layer 0's output (H features), not x's I = 4
        (dict(params=[p2[0], p2[0]], num_layers=2), ValueError, re.escape("params[1]") + ".*" + names("w_ih")),
        (dict(params=[p1[0], (p1[0][0], p1[0][1], p1[0][2][:-1], p1[0][3])], bidirectional=True), ValueError,
         re.escape("params[1]") + ".*" + names("b_ih")),
    ]
    if HAS_CELL_STATE[cell]:
        cases.append((dict(params=p1, c0=np.zeros((2, B, H))), ValueError, "c0"))
    if cell == "rnn":
        cases.append((dict(params=p1, nonlinearity="sigmoid"), ValueError, "nonlinearity"))
    for kw, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            stack_call(cell, x, **kw)


@pytest.mark.parametrize("cell", CELLS)
def test_stack_rejects_hidden_size_mismatch_between_entries(cell):
    """Every params entry must have the same H (states are (L*D, B, H)): a mismatch names params."""
    rng = np.random.default_rng(3)
    x = np.ones((B, T, I))
    bidir = [make_params(rng, cell, I, H), make_params(rng, cell, I, H + 1)]
    with pytest.raises(ValueError, match="params"):
        stack_call(cell, x, bidir, bidirectional=True)
    layers = [make_params(rng, cell, I, H), make_params(rng, cell, H, H + 1)]
    with pytest.raises(ValueError, match="params"):
        stack_call(cell, x, layers, num_layers=2)


@pytest.mark.parametrize("cell", CELLS)
def test_stack_rejects_bad_seed_naming_it(cell):
    """A bad seed is rejected by the op, naming seed, not by np.random.default_rng."""
    with pytest.raises((TypeError, ValueError), match="seed"):
        stack_call(cell, np.ones((B, T, I)), stack_params(cell, 2), num_layers=2, dropout=0.5, seed="abc")


@pytest.mark.parametrize("cell", CELLS)
def test_stack_accepts_numpy_scalar_dropout(cell):
    """NumPy scalars are accepted for num_layers (np.integer) and bools (np.bool_); dropout must accept
    np.float32 like np.float64 and give the same masks."""
    x = np.random.default_rng(4).standard_normal((B, T, I))
    params = stack_params(cell, 2)
    expected = stack_call(cell, x, params, num_layers=np.int64(2), dropout=0.25, seed=5)[0]
    actual = stack_call(cell, x, params, num_layers=np.int64(2), dropout=np.float32(0.25), seed=5)[0]
    np.testing.assert_array_equal(actual, expected)  # same masks, same arithmetic: same bits


@pytest.mark.parametrize("cell", CELLS)
def test_stack_backward_rejects_bad_gradients(cell):
    *_, ctx = stack_call(cell, np.ones((B, T, I)), stack_params(cell, 1, True), bidirectional=True)
    good_dy = np.ones((B, T, 2 * H))
    cases = [(dict(dy=np.ones((B, T, H))), ValueError, "dy"),  # needs D*H
             (dict(dy=good_dy.astype(np.float32)), TypeError, "dy"),
             (dict(dy=good_dy.tolist()), TypeError, "dy"),
             (dict(dy=good_dy, dh_n=np.ones((1, B, H))), ValueError, "dh_n"),
             (dict(dy=good_dy, dh_n=np.ones((2, B, H), np.float32)), TypeError, "dh_n")]
    if HAS_CELL_STATE[cell]:
        cases.append((dict(dy=good_dy, dc_n=np.ones((2, B, H + 1))), ValueError, "dc_n"))
    for kw, error, arg in cases:
        with pytest.raises(error, match=names(arg)):
            ops.stack_backward(ctx, **kw)


# ---- environment and threads ----

def test_unknown_backend_is_rejected(monkeypatch):
    monkeypatch.setenv("FUSEDRNN_BACKEND", "bogus")
    with pytest.raises(ValueError, match="FUSEDRNN_BACKEND"):
        call_forward("lstm", forward_kwargs("lstm"))


def test_cuda_backend_reports_it_is_not_built(monkeypatch):
    if fusedrnn.build_info()["cuda"]:
        pytest.skip("this installation has the CUDA module; the test is about one without it")
    monkeypatch.setenv("FUSEDRNN_BACKEND", "cuda")
    with pytest.raises(RuntimeError, match="CUDA.*not built"):
        call_forward("gru", forward_kwargs("gru"))


@pytest.mark.parametrize("n,error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError),
                                     ("2", TypeError), (None, TypeError)])
def test_set_num_threads_rejects_bad_counts(restore_threads, n, error):
    with pytest.raises(error):
        fusedrnn.set_num_threads(n)
    assert fusedrnn.get_num_threads() == restore_threads  # unchanged by the failed call


# ---- odd but valid arrays: same results as their contiguous copies ----

# Same arithmetic on the same values; only where the copies land in memory differs (SIMD loop peeling
# may depend on alignment), so allow a few ulps at float64.
LAYOUT_RTOL = 1e-13


def strided(a):
    """A non-contiguous view equal to ``a``: every other element of a twice-as-long last axis."""
    big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    big[..., 1::2] = np.nan if a.dtype.kind == "f" else -1  # never to be read: poison
    return big[..., ::2]


def time_strided(x):
    """x[:, ::2] of a (B, 2T, I) array: non-contiguous along time."""
    big = np.full((x.shape[0], 2 * x.shape[1], x.shape[2]), np.nan, x.dtype)
    big[:, ::2] = x
    return big[:, ::2]


LAYOUTS = {"x[:, ::2]": time_strided, "last-axis-strided": strided, "fortran": np.asfortranarray,
           "negative-strides": lambda a: np.ascontiguousarray(a[::-1])[::-1]}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_non_contiguous_arrays_give_the_same_results(backend, cell, nonlinearity, layout):
    rng = np.random.default_rng(6)
    x, params, h0, c0 = make_data(rng, cell, 3, 4, 5, 6)
    dy, dh_n, dc_n = make_cotangents(rng, cell, 3, 4, 6)
    lengths = np.array([4, 1, 3])
    expected = run_cell(backend, cell, x, params, h0, c0, lengths, True, nonlinearity, dy, dh_n, dc_n)
    change = LAYOUTS[layout] if layout != "x[:, ::2]" else (lambda a: time_strided(a) if a.ndim == 3 else strided(a))
    odd = [change(a) for a in (x, *params, h0, dy, dh_n)]
    odd_c0, odd_dc_n = (change(c0), change(dc_n)) if HAS_CELL_STATE[cell] else (None, None)
    odd_lengths = strided(lengths) if layout != "fortran" else lengths
    assert not odd[0].flags.c_contiguous  # the case under test
    actual = run_cell(backend, cell, odd[0], tuple(odd[1:5]), odd[5], odd_c0, odd_lengths, True, nonlinearity,
                      odd[6], odd[7], odd_dc_n)
    for k in expected:
        np.testing.assert_allclose(actual[k], expected[k], rtol=LAYOUT_RTOL, atol=LAYOUT_RTOL, err_msg=k)


@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_read_only_inputs_work(backend, cell, nonlinearity):
    rng = np.random.default_rng(7)
    x, params, h0, c0 = make_data(rng, cell, 2, 3, 4, 5)
    dy, dh_n, dc_n = make_cotangents(rng, cell, 2, 3, 5)
    expected = run_cell(backend, cell, x, params, h0, c0, [3, 1], False, nonlinearity, dy, dh_n, dc_n)
    for a in (x, *params, h0, c0, dy, dh_n, dc_n):
        if a is not None:
            a.flags.writeable = False
    actual = run_cell(backend, cell, x, params, h0, c0, [3, 1], False, nonlinearity, dy, dh_n, dc_n)
    for k in expected:
        np.testing.assert_array_equal(actual[k], expected[k], err_msg=k)  # the very same computation


# ---- NaN and inf ----

@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_nan_in_x_propagates_from_its_step(backend, cell, nonlinearity, reverse):
    rng = np.random.default_rng(8)
    x, params, h0, c0 = make_data(rng, cell, 3, 5, 4, 6)
    lengths = [5, 4, 2]
    x[1, 2, 0] = np.nan  # row 1, a valid step (len 4)
    with np.errstate(invalid="ignore"):  # the NumPy backend's arithmetic on NaN is expected here
        out = run_cell(backend, cell, x, params, h0, c0, lengths, reverse, nonlinearity)
    y = out["y"]
    # The recurrence carries the NaN to every later step of that row (earlier ones in reverse).
    touched = slice(0, 3) if reverse else slice(2, 4)
    untouched = slice(3, 4) if reverse else slice(0, 2)
    assert np.isnan(y[1, touched]).all()
    assert np.isfinite(y[1, untouched]).all()
    assert np.all(y[1, 4:] == 0)  # padding stays exactly zero
    assert np.isnan(out["h_n"][1]).all() and np.isfinite(out["h_n"][[0, 2]]).all()
    assert np.isfinite(y[[0, 2]]).all(), "rows are independent"
    assert np.isfinite(out["dx"][[0, 2]]).all()


@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_nan_in_h0_propagates(backend, cell, nonlinearity):
    rng = np.random.default_rng(9)
    x, params, h0, c0 = make_data(rng, cell, 3, 4, 4, 6)
    h0[0, 1] = np.nan
    with np.errstate(invalid="ignore"):
        out = run_cell(backend, cell, x, params, h0, c0, [4, 2, 3], False, nonlinearity)
    assert np.isnan(out["y"][0]).all() and np.isnan(out["h_n"][0]).all()
    assert np.isfinite(out["y"][1:]).all() and np.isfinite(out["dx"][1:]).all()


@pytest.mark.parametrize("where", ["x", "h0", "b_ih", "w_hh"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan], ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_non_finite_inputs_match_the_reference(cell, nonlinearity, value, where):
    """The compiled kernels treat inf and NaN as the reference (the specification) does."""
    rng = np.random.default_rng(10)
    x, params, h0, c0 = make_data(rng, cell, 3, 4, 4, 6)
    arrays = {"x": x, "h0": h0, "w_hh": params[1], "b_ih": params[2]}
    target = arrays[where]
    target[(1,) * target.ndim] = value  # x[1, 1, 1] is a valid step of row 1 (length 3)
    dy, dh_n, dc_n = make_cotangents(rng, cell, 3, 4, 6)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = run_cell("reference", cell, x, params, h0, c0, [4, 3, 2], False, nonlinearity, dy, dh_n, dc_n)
    actual = run_cell("cpu", cell, x, params, h0, c0, [4, 3, 2], False, nonlinearity, dy, dh_n, dc_n)
    # With a non-finite recurrent weight only the forward is compared: the backward's dh @ W_hh then
    # holds 0 * inf terms wherever a gate is saturated, and whether a saturated gate's derivative is
    # exactly 0 (NaN) or 1e-300 (inf), or a ReLU mask multiplies or selects, is not a property of the API.
    keys = ["y", "h_n", "c_n"][: 3 if HAS_CELL_STATE[cell] else 2] if where == "w_hh" else list(expected)
    for k in keys:
        # Same NaN and inf positions; finite entries within float64 rounding (see test_cpu_vs_reference).
        np.testing.assert_array_equal(np.isnan(actual[k]), np.isnan(expected[k]), err_msg=k)
        np.testing.assert_allclose(actual[k], expected[k], rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=k)


@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_non_finite_padding_is_never_read(backend, cell, nonlinearity):
    """Steps t >= len are padding: whatever x holds there (NaN from np.empty, inf) changes nothing,
    not even dW_ih, whose GEMM sums 0 * x over the padding rows."""
    rng = np.random.default_rng(11)
    x, params, h0, c0 = make_data(rng, cell, 3, 5, 4, 6)
    lengths = [5, 2, 3]
    dy, dh_n, dc_n = make_cotangents(rng, cell, 3, 5, 6)
    clean = run_cell(backend, cell, x, params, h0, c0, lengths, False, nonlinearity, dy, dh_n, dc_n)
    x[1, 2:] = np.nan
    x[2, 3:] = np.inf
    dirty = run_cell(backend, cell, x, params, h0, c0, lengths, False, nonlinearity, dy, dh_n, dc_n)
    for k in clean:
        np.testing.assert_array_equal(dirty[k], clean[k], err_msg=k)  # padding is not an input at all


# ---- the raw compiled module: it checks what reaches it ----

core = fusedrnn._native.core()

# (change to the forward kwargs, expected error, id)
RAW_FORWARD_CASES = [
    (lambda a: a.update(x=np.asfortranarray(a["x"])), ValueError, "x-not-C-contiguous"),
    (lambda a: a.update(x=a["x"][:, ::-1]), ValueError, "x-negative-strides"),
    (lambda a: a.update(x=a["x"][0]), ValueError, "x-2d"),
    (lambda a: a.update(x=a["x"].tolist()), TypeError, "x-list"),
    (lambda a: a.update(x=a["x"].astype(np.int64)), TypeError, "x-int"),
    (lambda a: a.update(w_ih=a["w_ih"].astype(np.float32)), TypeError, "w_ih-float32"),
    (lambda a: a.update(w_ih=a["w_ih"][:, :-1]), ValueError, "w_ih-shape"),
    (lambda a: a.update(w_hh=a["w_hh"][:-1]), ValueError, "w_hh-shape"),
    (lambda a: a.update(b_hh=a["b_hh"][:-1]), ValueError, "b_hh-shape"),
    (lambda a: a.update(h0=np.zeros((1, 5))), ValueError, "h0-shape"),
    (lambda a: a.update(y=a["y"][:, :-1]), ValueError, "y-shape"),
    (lambda a: a.update(y=np.zeros(a["y"].shape, np.float32)), TypeError, "y-float32"),  # (not a cast of np.empty)
    (lambda a: a["y"].setflags(write=False), ValueError, "y-read-only"),
    (lambda a: a["h_n"].setflags(write=False), ValueError, "h_n-read-only"),
    (lambda a: a["gates"].setflags(write=False), ValueError, "gates-read-only"),
    (lambda a: a.update(gates=a["gates"][..., :-1]), ValueError, "gates-shape"),
    (lambda a: a.update(h_prev=np.empty((2, 3, 6))), ValueError, "h_prev-shape"),
    (lambda a: a.update(aux=None), ValueError, "saved-some-not-all"),  # all three None is inference
    (lambda a: a.update(gates=None, h_prev=None), ValueError, "saved-one-of-three"),
    (lambda a: a.update(lengths=np.array([0, 3])), ValueError, "lengths-zero"),
    (lambda a: a.update(lengths=np.array([3, 4])), ValueError, "lengths-above-T"),
    (lambda a: a.update(lengths=np.array([-5, 3])), ValueError, "lengths-negative"),
    (lambda a: a.update(lengths=np.array([3, 3], np.int32)), TypeError, "lengths-int32"),
    (lambda a: a.update(lengths=np.array([3])), ValueError, "lengths-count"),
]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("change,error", [c[:2] for c in RAW_FORWARD_CASES], ids=[c[2] for c in RAW_FORWARD_CASES])
def test_raw_forward_rejects_bad_arguments(cell, change, error):
    a = raw_core.forward_args(cell)
    change(a)
    with pytest.raises(error):
        getattr(core, f"{cell}_forward")(**a)


def test_raw_lstm_forward_requires_c_n():
    a = raw_core.forward_args("lstm")
    a["c_n"] = None
    with pytest.raises(ValueError, match="c_n"):
        core.lstm_forward(**a)


RAW_BACKWARD_CASES = [
    (lambda a: a["dx"].setflags(write=False), ValueError, "dx-read-only"),
    (lambda a: a["dw_hh"].setflags(write=False), ValueError, "dw_hh-read-only"),
    (lambda a: a.update(dy=a["dy"][..., :-1]), ValueError, "dy-shape"),
    (lambda a: a.update(dy=np.asfortranarray(a["dy"])), ValueError, "dy-not-C-contiguous"),
    (lambda a: a.update(gates=a["gates"][:, :-1]), ValueError, "gates-shape"),
    (lambda a: a.update(dh0=np.zeros(a["dh0"].shape, np.float32)), TypeError, "dh0-float32"),
    (lambda a: a.update(dh_n=np.zeros((2, 4))), ValueError, "dh_n-shape"),
    (lambda a: a.update(db_ih=np.empty(1)), ValueError, "db_ih-shape"),
    (lambda a: a.update(lengths=np.array([4, 1])), ValueError, "lengths-above-T"),
    (lambda a: a.update(x=None), TypeError, "x-none"),
]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("change,error", [c[:2] for c in RAW_BACKWARD_CASES], ids=[c[2] for c in RAW_BACKWARD_CASES])
def test_raw_backward_rejects_bad_arguments(cell, change, error):
    a = raw_core.backward_args(core, cell)
    change(a)
    with pytest.raises(error):
        getattr(core, f"{cell}_backward")(**a)


def run_isolated(code, timeout=120):
    """Runs ``code`` in a fresh interpreter (a crash there fails the test instead of killing pytest)."""
    env = dict(os.environ, PYTHONPATH=TESTS_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("FUSEDRNN_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, f"exit code {proc.returncode} (negative: killed by signal)\n{proc.stdout}\n{proc.stderr}"
    return dict(line.split(" -> ", 1) for line in proc.stdout.splitlines() if " -> " in line)


CRASH_PRONE = """
    import numpy as np, warnings
    import raw_core
    from fusedrnn import _core, ops
    warnings.simplefilter("error")

    def attempt(label, fn):
        try:
            fn()
            print(label, "-> ok", flush=True)
        except (TypeError, ValueError) as error:
            print(label, "->", type(error).__name__, flush=True)

    def raw(cell, change, **shape):
        a = raw_core.forward_args(cell, **shape)
        change(a)
        getattr(_core, cell + "_forward")(**a)

    def raw_backward(cell, change, **shape):
        a = raw_core.backward_args(_core, cell, **shape)
        change(a)
        getattr(_core, cell + "_backward")(**a)

    huge = lambda shape: np.broadcast_to(np.float64(0), shape)  # no memory behind it
    for cell in raw_core.GATES:  # every registered cell
        G = raw_core.GATES[cell]
        attempt(cell + " raw B=0", lambda: raw(cell, lambda a: None, B=0))
        attempt(cell + " raw T=0", lambda: raw(cell, lambda a: None, T=0))
        attempt(cell + " raw I=0", lambda: raw(cell, lambda a: None, I=0))
        attempt(cell + " raw H=0", lambda: raw(cell, lambda a: None, H=0))
        attempt(cell + " raw huge x view", lambda: raw(cell, lambda a: a.update(x=huge((2, 3, 2**40)),
                                                                              w_ih=huge((G * 5, 2**40)))))
        attempt(cell + " raw huge lengths", lambda: raw(cell, lambda a: a.update(lengths=np.array([2**62, 3]))))
        attempt(cell + " raw min lengths", lambda: raw(cell, lambda a: a.update(lengths=np.array([-2**63, 3]))))
        attempt(cell + " raw outputs too small", lambda: raw(cell, lambda a: a.update(y=np.empty((1, 1, 1)),
                                                                                     gates=np.empty(1))))
        attempt(cell + " raw many threads", lambda: raw(cell, lambda a: a.update(num_threads=10**6)))
        attempt(cell + " raw negative threads", lambda: raw(cell, lambda a: a.update(num_threads=-3)))
        attempt(cell + " raw unknown activation", lambda: raw(cell, lambda a: a.update(activation=99)))
        attempt(cell + " raw nan inputs", lambda: raw(cell, lambda a: (a["x"].fill(np.nan), a["w_hh"].fill(np.inf))))
        attempt(cell + " raw backward saved arrays of another shape",
                lambda: raw_backward(cell, lambda a: a.update(gates=np.empty((1, 1, 1)), aux=np.empty(0))))
        attempt(cell + " raw backward read-only dx", lambda: raw_backward(cell, lambda a: a["dx"].setflags(write=False)))
        attempt(cell + " raw backward nan dy", lambda: raw_backward(cell, lambda a: a["dy"].fill(np.nan)))
        forward = getattr(ops, cell + "_forward")
        w = [np.zeros(s) for s in ((G * 5, 4), (G * 5, 5), (G * 5,), (G * 5,))]
        attempt(cell + " ops zero-size x", lambda: forward(np.zeros((0, 3, 4)), *w))
        attempt(cell + " ops zero-size weights", lambda: forward(np.zeros((2, 3, 4)), np.zeros((0, 4)),
                                                                 np.zeros((0, 0)), np.zeros(0), np.zeros(0)))
        attempt(cell + " ops zero-size h0", lambda: forward(np.zeros((2, 3, 4)), *w, h0=np.zeros((0, 5))))
        attempt(cell + " ops huge w_hh claim", lambda: forward(np.zeros((2, 3, 4)), w[0], np.empty((0, 2**40)),
                                                               *w[2:]))
        def nan_and_inf_round_trip():
            x = np.full((2, 3, 4), np.nan)
            x[1] = np.inf
            y, h_n, *rest = forward(x, *w, h0=np.full((2, 5), -np.inf))
            getattr(ops, cell + "_backward")(rest[-1], np.full_like(y, np.nan))
        attempt(cell + " ops nan and inf", nan_and_inf_round_trip)
"""


def test_crash_prone_calls_raise_or_finish_in_a_subprocess():
    results = run_isolated(CRASH_PRONE)
    for cell in CELLS:
        expected = {
            "raw B=0": {"ValueError"}, "raw T=0": {"ValueError"},
            # I = 0 or H = 0 is meaningless but harmless: rejecting it or computing on empty arrays are both fine
            "raw I=0": {"ValueError", "ok"}, "raw H=0": {"ValueError", "ok"},
            "raw huge x view": {"ValueError"}, "raw huge lengths": {"ValueError"}, "raw min lengths": {"ValueError"},
            "raw outputs too small": {"ValueError"},
            # a thread count is a request: clamping it or rejecting it are both fine
            "raw many threads": {"ok", "ValueError"}, "raw negative threads": {"ok", "ValueError"},
            "raw unknown activation": {"ValueError", "ok"}, "raw nan inputs": {"ok"},
            "raw backward saved arrays of another shape": {"ValueError"}, "raw backward read-only dx": {"ValueError"},
            "raw backward nan dy": {"ok"},
            "ops zero-size x": {"ok"},  # B = 0: an empty batch, as in torch (test_reliability.py)
            "ops zero-size weights": {"ValueError"},
            "ops zero-size h0": {"ValueError"}, "ops huge w_hh claim": {"ValueError"}, "ops nan and inf": {"ok"},
        }
        for label, allowed in expected.items():
            got = results.get(f"{cell} {label}")
            assert got in allowed, f"{cell} {label}: got {got}, expected one of {sorted(allowed)}"


def test_huge_broadcast_x_is_rejected_before_it_is_copied():
    """x past the BLAS index limit (B*T*I = 2**32) must raise the package's ValueError naming x.

    The sizes are checked before the non-contiguous view is copied (here 32 GiB): otherwise a view
    whose copy fits in virtual memory but not in RAM gets the process killed. The subprocess caps its
    address space at 3 GiB so that this test cannot hurt the machine."""
    results = run_isolated("""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        import numpy as np
        from fusedrnn import ops
        w = [np.zeros(s) for s in ((20, 2**12), (20, 5), (20,), (20,))]
        x = np.broadcast_to(np.float64(0), (1, 2**20, 2**12))
        try:
            ops.lstm_forward(x, *w)
            print("result -> ok")
        except Exception as error:
            print("result ->", type(error).__name__, str(error).splitlines()[0])
    """)
    assert re.match(r"ValueError x:", results["result"]), results["result"]
