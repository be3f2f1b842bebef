"""The NumPy reference: the specification of every op, the oracle of the tests, the fallback.

Plain array code, one step at a time, written for clarity. The same functions run on CuPy arrays
(``xp`` is the arrays' module). Conventions (ARCHITECTURE.md, "Conventions"): ``x (B, T, I)``, states ``(B, H)``,
PyTorch weight layout ``w_ih (G*H, I)``, ``w_hh (G*H, H)``, ``b_ih, b_hh (G*H,)``;
gate orders LSTM i, f, g, o and GRU r, z, n (reset applied after the recurrent product). An LSTM
with projections (torch's ``proj_size``) takes ``w_hr (P, H)``: its state and output are
``h = (o * tanh c) W_hr^T`` of size P, so ``w_hh`` is ``(4*H, P)``, ``h0``, ``y`` have P columns and
``c`` keeps H.
``lengths (B,)``: steps ``t >= len`` give zeros in ``y`` and leave the state alone; a reverse pass
starts at each row's own last valid step. ``recurrent_mask (B, H)``: W_hh sees ``h * mask`` at
every step (variational recurrent dropout); the state and GRU's ``z * h`` see ``h`` unmasked.
Arguments are trusted: ``fusedrnn.ops`` validates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._cells import CELLS
from ._xp import array_module  # noqa: F401  (also a public name of this module)
from .grads import Grads


def sigmoid(xp, a):
    # tanh form: no overflow for large |a|, same value as 1 / (1 + exp(-a)).
    return 0.5 * (1.0 + xp.tanh(0.5 * a))


def activation(xp, name, a):
    return xp.tanh(a) if name == "tanh" else xp.maximum(a, 0)  # maximum keeps NaN


def activation_grad(name, h, dh):
    """d act(a) / da times dh, from the output h = act(a)."""
    return dh * (1.0 - h * h) if name == "tanh" else dh * (h > 0)


@dataclass
class Context:
    """What a reference forward saves for its backward."""

    cell: str
    x: object  # (B, T, I)
    w_ih: object  # (G*H, I)
    w_hh: object  # (G*H, H)
    nonlinearity: str = "tanh"
    recurrent_mask: object = None  # (B, H) or None
    w_hr: object = None  # (P, H): an LSTM with projections, else None
    steps: list = field(default_factory=list)  # per step: (rows, t, h_prev, saved activations...)


def _steps(xp, lengths, batch, steps, reverse):
    """Yields (rows, t) per step s: the rows still running and the time index each works on."""
    lengths = xp.full((batch,), steps) if lengths is None else xp.asarray(lengths)
    for s in range(int(lengths.max())):
        rows = xp.nonzero(lengths > s)[0]
        t = lengths[rows] - 1 - s if reverse else xp.full(rows.shape, s)
        yield rows, t


def _recurrent_input(h_prev, mask, rows):
    """What W_hh multiplies: h_prev (N, H), masked for the running rows when there is a mask."""
    return h_prev if mask is None else h_prev * mask[rows]


def _initial(xp, state, batch, hidden, dtype):
    return xp.zeros((batch, hidden), dtype) if state is None else state.copy()


def lstm_cell(xp, pre, c_prev):
    """pre (N, 4H) gate pre-activations, c_prev (N, H) -> (i, f, g, o, c)."""
    i, f, g, o = xp.split(pre, 4, axis=1)
    i, f, g, o = sigmoid(xp, i), sigmoid(xp, f), xp.tanh(g), sigmoid(xp, o)
    return i, f, g, o, f * c_prev + i * g


def gru_cell(xp, gi, gh, h_prev):
    """gi (N, 3H) = x W_ih^T + b_ih, gh (N, 3H) = h W_hh^T + b_hh, h_prev (N, H) -> (r, z, n, h)."""
    xr, xz, xn = xp.split(gi, 3, axis=1)
    hr, hz, hn = xp.split(gh, 3, axis=1)
    r = sigmoid(xp, xr + hr)
    z = sigmoid(xp, xz + hz)
    n = xp.tanh(xn + r * hn)
    return r, z, n, (1.0 - z) * n + z * h_prev


def lstm_forward(x, w_ih, w_hh, b_ih, b_hh, h0=None, c0=None, lengths=None, reverse=False, recurrent_mask=None,
                 w_hr=None):
    """-> y (B, T, R), h_n (B, R), c_n (B, H), ctx; R = H, or P with projections w_hr (P, H)."""
    xp = array_module(x)
    batch, steps, _ = x.shape
    hidden = w_hh.shape[0] // 4
    state = hidden if w_hr is None else w_hr.shape[0]  # R
    h = _initial(xp, h0, batch, state, x.dtype)
    c = _initial(xp, c0, batch, hidden, x.dtype)
    y = xp.zeros((batch, steps, state), x.dtype)
    ctx = Context("lstm", x, w_ih, w_hh, recurrent_mask=recurrent_mask, w_hr=w_hr)
    for rows, t in _steps(xp, lengths, batch, steps, reverse):
        h_prev, c_prev = h[rows], c[rows]
        pre = x[rows, t] @ w_ih.T + b_ih + _recurrent_input(h_prev, recurrent_mask, rows) @ w_hh.T + b_hh
        i, f, g, o, c_new = lstm_cell(xp, pre, c_prev)
        h_new = o * xp.tanh(c_new)
        if w_hr is not None:
            h_new = h_new @ w_hr.T
        h[rows], c[rows], y[rows, t] = h_new, c_new, h_new
        ctx.steps.append((rows, t, h_prev, c_prev, i, f, g, o, c_new))
    return y, h, c, ctx


def lstm_backward(ctx, dy, dh_n=None, dc_n=None):
    """dy (B, T, R), dh_n (B, R), dc_n (B, H) or None -> Grads (with dw_hr (P, H) given projections)."""
    xp = array_module(dy)
    g = _zero_grads(xp, ctx, dy, with_cell=True)
    dh = g.dh0 if dh_n is None else dh_n.copy()
    dc = g.dc0 if dc_n is None else dc_n.copy()
    for rows, t, h_prev, c_prev, i, f, gg, o, c_new in reversed(ctx.steps):
        dh_t = dh[rows] + dy[rows, t]
        tanh_c = xp.tanh(c_new)
        if ctx.w_hr is not None:  # through h = (o * tanh c) W_hr^T: dh_t (N, P) -> (N, H)
            g.dw_hr += dh_t.T @ (o * tanh_c)
            dh_t = dh_t @ ctx.w_hr
        dc_t = dc[rows] + dh_t * o * (1.0 - tanh_c * tanh_c)
        d_pre = xp.concatenate(
            [dc_t * gg * i * (1.0 - i), dc_t * c_prev * f * (1.0 - f),
             dc_t * i * (1.0 - gg * gg), dh_t * tanh_c * o * (1.0 - o)], axis=1)
        dh[rows] = _accumulate(g, ctx, rows, t, h_prev, d_pre, d_pre)
        dc[rows] = dc_t * f
    g.dh0, g.dc0 = dh, dc
    return g


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0=None, lengths=None, reverse=False, recurrent_mask=None):
    """-> y (B, T, H), h_n (B, H), ctx."""
    xp = array_module(x)
    batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    h = _initial(xp, h0, batch, hidden, x.dtype)
    y = xp.zeros((batch, steps, hidden), x.dtype)
    ctx = Context("gru", x, w_ih, w_hh, recurrent_mask=recurrent_mask)
    for rows, t in _steps(xp, lengths, batch, steps, reverse):
        h_prev = h[rows]
        gh = _recurrent_input(h_prev, recurrent_mask, rows) @ w_hh.T + b_hh
        r, z, n, h_new = gru_cell(xp, x[rows, t] @ w_ih.T + b_ih, gh, h_prev)
        h[rows], y[rows, t] = h_new, h_new
        ctx.steps.append((rows, t, h_prev, r, z, n, gh[:, 2 * hidden:]))
    return y, h, ctx


def gru_backward(ctx, dy, dh_n=None):
    """dy (B, T, H), dh_n (B, H) or None -> Grads."""
    xp = array_module(dy)
    g = _zero_grads(xp, ctx, dy, with_cell=False)
    dh = g.dh0 if dh_n is None else dh_n.copy()
    for rows, t, h_prev, r, z, n, hn in reversed(ctx.steps):
        dh_t = dh[rows] + dy[rows, t]
        d_xn = dh_t * (1.0 - z) * (1.0 - n * n)
        d_r = d_xn * hn * r * (1.0 - r)
        d_z = dh_t * (h_prev - n) * z * (1.0 - z)
        d_input_side = xp.concatenate([d_r, d_z, d_xn], axis=1)
        d_recurrent_side = xp.concatenate([d_r, d_z, d_xn * r], axis=1)
        dh[rows] = _accumulate(g, ctx, rows, t, h_prev, d_input_side, d_recurrent_side) + dh_t * z
    g.dh0 = dh
    return g


def rnn_forward(x, w_ih, w_hh, b_ih, b_hh, h0=None, lengths=None, reverse=False, nonlinearity="tanh",
                recurrent_mask=None):
    """-> y (B, T, H), h_n (B, H), ctx."""
    xp = array_module(x)
    batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    h = _initial(xp, h0, batch, hidden, x.dtype)
    y = xp.zeros((batch, steps, hidden), x.dtype)
    ctx = Context("rnn", x, w_ih, w_hh, nonlinearity, recurrent_mask)
    for rows, t in _steps(xp, lengths, batch, steps, reverse):
        h_prev = h[rows]
        h_rec = _recurrent_input(h_prev, recurrent_mask, rows)
        h_new = activation(xp, nonlinearity, x[rows, t] @ w_ih.T + b_ih + h_rec @ w_hh.T + b_hh)
        h[rows], y[rows, t] = h_new, h_new
        ctx.steps.append((rows, t, h_prev, h_new))
    return y, h, ctx


def rnn_backward(ctx, dy, dh_n=None):
    """dy (B, T, H), dh_n (B, H) or None -> Grads."""
    xp = array_module(dy)
    g = _zero_grads(xp, ctx, dy, with_cell=False)
    dh = g.dh0 if dh_n is None else dh_n.copy()
    for rows, t, h_prev, h_new in reversed(ctx.steps):
        d_pre = activation_grad(ctx.nonlinearity, h_new, dh[rows] + dy[rows, t])
        dh[rows] = _accumulate(g, ctx, rows, t, h_prev, d_pre, d_pre)
    g.dh0 = dh
    return g


def _zero_grads(xp, ctx, dy, with_cell):
    batch, _, state = dy.shape  # state R: H, or P with projections
    hidden = ctx.w_hh.shape[0] // CELLS[ctx.cell].gates  # c's size, for a cell with a cell state
    z = lambda like: xp.zeros(like.shape, dy.dtype)  # noqa: E731
    return Grads(dx=z(ctx.x), dw_ih=z(ctx.w_ih), dw_hh=z(ctx.w_hh),
                 db_ih=xp.zeros(ctx.w_ih.shape[0], dy.dtype), db_hh=xp.zeros(ctx.w_hh.shape[0], dy.dtype),
                 dh0=xp.zeros((batch, state), dy.dtype),
                 dc0=xp.zeros((batch, hidden), dy.dtype) if with_cell else None,
                 dw_hr=None if ctx.w_hr is None else z(ctx.w_hr))


def _accumulate(g, ctx, rows, t, h_prev, d_input_side, d_recurrent_side):
    """Adds one step's weight, bias and input gradients; returns dh_prev through W_hh (and the mask).

    d_input_side, d_recurrent_side (N, G*H): pre-activation gradients as seen by W_ih and W_hh.
    """
    g.dx[rows, t] = d_input_side @ ctx.w_ih
    g.dw_ih += d_input_side.T @ ctx.x[rows, t]
    g.db_ih += d_input_side.sum(axis=0)
    g.dw_hh += d_recurrent_side.T @ _recurrent_input(h_prev, ctx.recurrent_mask, rows)
    g.db_hh += d_recurrent_side.sum(axis=0)
    dh_prev = d_recurrent_side @ ctx.w_hh
    return dh_prev if ctx.recurrent_mask is None else dh_prev * ctx.recurrent_mask[rows]
