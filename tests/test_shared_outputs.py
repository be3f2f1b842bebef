"""A bidirectional layer's two directions writing their outputs into the halves of one (B, T, 2H)
array and reading their gradients from the halves of one: the same numbers as separate C-order
arrays, nothing written outside a direction's half, and bad layouts refused."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import OP_IDS, OPS, make_cotangents, make_data
from fusedrnn import _direction, _native, _stack
from fusedrnn.nn import functional as F
from fusedrnn.nn.autograd import Tensor


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_half_of_a_shared_array_is_the_separate_array(rng, monkeypatch, backend, cell, nonlinearity, with_lengths):
    monkeypatch.setenv("FUSEDRNN_BACKEND", backend)
    B, T, I, H = 5, 4, 3, 7
    x, params, h0, c0 = make_data(rng, cell, B, T, I, H, np.float32)
    lengths = np.array([4, 1, 3, 4, 2]) if with_lengths else None
    dy, dh_n, dc_n = make_cotangents(rng, cell, B, T, H, np.float32)
    for reverse in (False, True):
        args = dict(x=x, w_ih=params[0], w_hh=params[1], b_ih=params[2], b_hh=params[3], h0=h0, c0=c0, lengths=lengths,
                    reverse=reverse, nonlinearity=nonlinearity)
        y, h_n, c_n, ctx = _direction.forward(cell, **args)
        shared = np.full((B, T, 2 * H), 7.0, np.float32)  # a sentinel outside the half
        half = shared[..., H:] if reverse else shared[..., :H]
        y_half, h_half, c_half, ctx_half = _direction.forward(cell, **args, y_out=half)
        assert y_half is half
        np.testing.assert_array_equal(half, y)  # padding steps zeroed within the half too
        np.testing.assert_array_equal(shared[..., :H] if reverse else shared[..., H:], 7.0)
        np.testing.assert_array_equal(h_half, h_n)
        # the gradient read from one side of a (B, T, 2H) array
        dy_shared = np.concatenate([dy, -dy] if not reverse else [-dy, dy], axis=-1)
        dy_half = dy_shared[..., H:] if reverse else dy_shared[..., :H]
        want = _direction.backward(cell, ctx, dy, dh_n, dc_n)
        got = _direction.backward(cell, ctx_half, dy_half, dh_n, dc_n)
        for name in ("dx", "dw_ih", "dw_hh", "db_ih", "db_hh", "dh0"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


@pytest.mark.parametrize("merge_concat", [False, True])
def test_bidirectional_node_joined_or_not(rng, merge_concat):
    """F.bidirectional_recurrent with merge_concat: y is [y_f, y_b] and the gradients are the same."""
    B, T, I, H = 3, 5, 4, 6
    x, pf, _, _ = make_data(rng, "lstm", B, T, I, H, np.float64, states=False)
    pb = make_data(rng, "lstm", B, T, I, H, np.float64, states=False)[1]
    lengths = np.array([5, 2, 4])
    g = rng.standard_normal((B, T, 2 * H))

    def run(joined):
        xt, pts = Tensor(x, requires_grad=True), [[Tensor(p, requires_grad=True) for p in ps] for ps in (pf, pb)]
        outs = F.bidirectional_recurrent("lstm", xt, xt, pts[0], pts[1], lengths=lengths, merge_concat=joined)
        y = outs[0] if joined else F.concat([outs[0], outs[3]])
        y.backward(g)
        return y.data, xt.grad, [p.grad for ps in pts for p in ps]

    y_sep, dx_sep, dp_sep = run(False)
    y_join, dx_join, dp_join = run(merge_concat)
    np.testing.assert_array_equal(y_join, y_sep)
    np.testing.assert_allclose(dx_join, dx_sep, rtol=1e-12, atol=1e-12)
    for a, b in zip(dp_join, dp_sep):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_share_output_only_where_the_kernels_can_write_in_place(rng):
    x, p, _, _ = make_data(rng, "gru", 2, 3, 4, 5, np.float32, states=False)
    call = lambda **kw: dict(dict(x=x, w_hh=p[1]), **kw)  # noqa: E731
    y = _stack.share_output([call(), call()])
    assert y.shape == (2, 3, 10)
    assert _stack.share_output([call()]) is None  # one direction
    assert _stack.share_output([call(), call(w_hh=p[1][:, :4])]) is None  # directions of different H
    assert _stack.share_output([call(w_hh=[[1.0]]), call()]) is None  # malformed: left to validation


@pytest.mark.skipif(_native.core() is None, reason="the compiled CPU module is not built")
def test_kernels_refuse_rows_they_cannot_walk(rng):
    """y and dy may be C-order or evenly spaced rows; anything else is refused by name."""
    x, params, h0, c0 = make_data(rng, "rnn", 2, 3, 4, 5, np.float32, states=False)
    core = _native.core()
    B, T, H = 2, 3, 5
    saved = [np.empty((B, T, H), np.float32), np.empty((B, T, 0), np.float32), np.empty((B, T, H), np.float32)]
    lengths = np.full(B, T, np.int64)

    def forward(y):
        core.rnn_forward(x, *params, None, None, lengths, None, False, 0, 1, y, np.empty((B, H), np.float32), None,
                         *saved)

    forward(np.empty((B, T, 2 * H), np.float32)[..., :H])  # half of a wider array: fine
    for bad in (np.empty((B, T, 2 * H), np.float32)[..., ::2],  # rows not contiguous
                np.empty((2 * B, T, H), np.float32)[::2],  # batch rows not T rows apart
                np.empty((B, T, H), np.float32)[::-1]):  # negative strides
        with pytest.raises(ValueError, match="y: must be C-contiguous, or rows of"):
            forward(bad)
    read_only = np.empty((B, T, 2 * H), np.float32)[..., :H]
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="y: must be writable"):
        forward(read_only)
    with pytest.raises(TypeError, match="y: dtype"):
        forward(np.empty((B, T, 2 * H))[..., :H])
    with pytest.raises(ValueError, match="y: expected shape"):
        forward(np.empty((B, T, 2 * H), np.float32)[..., :H - 1])
    with pytest.raises(ValueError, match="y_out: expected a writable host array"):
        _direction.forward("rnn", x, *params, y_out=np.empty((B, T, 2 * H), np.float32)[..., ::2])
