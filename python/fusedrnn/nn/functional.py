"""Coarse differentiable operations: each computes its output and records one backward.

Shapes in comments: B batch, T steps, I input features, U units, H hidden, V vocabulary.
Every function takes and returns ``Tensor`` objects (arrays are wrapped with ``as_tensor``).
"""

from __future__ import annotations

import numpy as np

from .. import ops
from .._dropout import apply_dropout, dropout_key, dropout_mask  # the layers' masks too (F.dropout_mask)
from .._matmul import matmul
from .autograd import Tensor, as_tensor, needs_grad, record, record_many

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax")


def _sigmoid(xp, a):
    return 0.5 * (1.0 + xp.tanh(0.5 * a))  # no overflow for large |a|


def _softmax(xp, a, axis=-1):
    e = xp.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def linear(x: Tensor, kernel: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (..., I) @ kernel (I, U) + bias (U,) -> (..., U)."""
    x, kernel = as_tensor(x), as_tensor(kernel)
    # As one 2-D product over all leading axes: a stacked (batched) matmul of 3-D input is several
    # times slower than one GEMM over the B*T rows.
    flat_x = x.data.reshape(-1, x.shape[-1])
    out = matmul(flat_x, kernel.data)
    if bias is not None:
        out += bias.data
    out = out.reshape(*x.shape[:-1], kernel.shape[1])

    def backward(g):  # g (..., U)
        flat_g = g.reshape(-1, g.shape[-1])
        dx = matmul(flat_g, kernel.data, transpose_b=True).reshape(x.shape)
        return (dx, matmul(flat_x, flat_g, transpose_a=True), None if bias is None else flat_g.sum(axis=0))
    return record(out, (x, kernel, bias), backward)


def activation(x: Tensor, name: str) -> Tensor:
    """Elementwise activation (softmax over the last axis)."""
    x = as_tensor(x)
    xp = x.xp
    if name == "linear":
        return x
    if name == "relu":
        out = xp.maximum(x.data, 0)
        return record(out, (x,), lambda g: (g * (x.data > 0),))
    if name == "tanh":
        out = xp.tanh(x.data)
        return record(out, (x,), lambda g: (g * (1.0 - out * out),))
    if name == "sigmoid":
        out = _sigmoid(xp, x.data)
        return record(out, (x,), lambda g: (g * out * (1.0 - out),))
    if name == "softmax":
        out = _softmax(xp, x.data)
        return record(out, (x,), lambda g: (out * (g - (g * out).sum(axis=-1, keepdims=True)),))
    raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got {name!r}")


def add(a: Tensor, b: Tensor) -> Tensor:
    """a + b, same shapes."""
    a, b = as_tensor(a), as_tensor(b)
    return record(a.data + b.data, (a, b), lambda g: (g, g))


def multiply(a: Tensor, b: Tensor) -> Tensor:
    """a * b, same shapes."""
    a, b = as_tensor(a), as_tensor(b)
    return record(a.data * b.data, (a, b), lambda g: (g * b.data, g * a.data))


def scale(a: Tensor, factor: float) -> Tensor:
    a = as_tensor(a)
    return record(a.data * factor, (a,), lambda g: (g * factor,))


def concat(tensors, axis: int = -1) -> Tensor:
    """Concatenation along ``axis``."""
    tensors = [as_tensor(t) for t in tensors]
    xp = tensors[0].xp
    sizes = [t.shape[axis] for t in tensors]
    bounds = np.cumsum(sizes)[:-1].tolist()
    return record(xp.concatenate([t.data for t in tensors], axis=axis), tensors,
                  lambda g: tuple(xp.split(g, bounds, axis=axis)))


def slice_last(x: Tensor, start: int, stop: int) -> Tensor:
    """x[..., start:stop]."""
    x = as_tensor(x)
    xp = x.xp

    def backward(g):
        full = xp.zeros(x.shape, g.dtype)
        full[..., start:stop] = g
        return (full,)
    return record(x.data[..., start:stop], (x,), backward)


def embedding(ids, table: Tensor) -> Tensor:
    """ids (...,) integers < V, table (V, U) -> (..., U). Repeated ids add their gradients."""
    table = as_tensor(table)
    xp = table.xp
    ids = xp.asarray(ids)

    def backward(g):
        grad = xp.zeros(table.shape, g.dtype)
        xp.add.at(grad, ids.reshape(-1), g.reshape(-1, table.shape[1]))
        return (grad,)
    return record(table.data[ids], (table,), backward)


def dropout(x: Tensor, rate: float, rng) -> Tensor:
    """Inverted dropout: zero a fraction ``rate``, scale the rest by 1 / (1 - rate)."""
    x = as_tensor(x)
    if rate <= 0.0:
        return x
    key = dropout_key(rng)  # the mask is drawn again from its key in the backward, never stored
    return record(apply_dropout(x.data, key, rate), (x,), lambda g: (apply_dropout(g, key, rate),))


def recurrent(cell: str, x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
              h0: Tensor | None = None, c0: Tensor | None = None, lengths=None, reverse: bool = False,
              nonlinearity: str = "tanh", recurrent_mask=None, w_hr: Tensor | None = None):
    """One direction of a fused recurrent layer over the whole sequence, as one graph node.

    x (B, T, I); weights in the op layout (fusedrnn.ops); lengths (B,) or None. w_hr (P, H), LSTM
    only: projections (torch's proj_size), then w_hh (G*H, P) and h0 (B, P).
    -> y (B, T, R), h_n (B, R), c_n (B, H) (None but for LSTM); R = P with projections, else H."""
    x, w_ih, w_hh, b_ih, b_hh = (as_tensor(t) for t in (x, w_ih, w_hh, b_ih, b_hh))
    h0 = None if h0 is None else as_tensor(h0)
    c0 = None if c0 is None else as_tensor(c0)
    parents = (x, w_ih, w_hh, b_ih, b_hh, h0, c0)
    if w_hr is not None:  # a seventh parent and gradient only with projections
        w_hr = as_tensor(w_hr)
        parents += (w_hr,)
    need_grad = needs_grad(parents)  # predict, evaluate, no_grad: an inference forward that saves nothing
    has_cell_state = ops.cell_info(cell).has_cell_state
    y, h_n, c_n, ctx = ops.forward(cell, x.data, w_ih.data, w_hh.data, b_ih.data, b_hh.data,
                                   None if h0 is None else h0.data, None if c0 is None else c0.data,
                                   lengths, reverse, nonlinearity, recurrent_mask, need_grad,
                                   None if w_hr is None else w_hr.data)

    def backward(grads):  # [dy, dh_n, dc_n], None where an output was not used
        dy, dh_n, dc_n = grads
        if dy is None:
            dy = x.xp.zeros(y.shape, y.dtype)
        g = ops.backward(ctx, dy, dh_n, dc_n, need_dx=x.requires_grad)
        out = (g.dx, g.dw_ih, g.dw_hh, g.db_ih, g.db_hh, g.dh0, g.dc0)
        return out if w_hr is None else out + (g.dw_hr,)

    outputs = record_many([y, h_n, c_n], parents, backward)
    return outputs[0], outputs[1], (outputs[2] if has_cell_state else None)


def sequence_mask(xp, lengths, steps, dtype):
    """(B, T) with 1 at t < len_b, else 0."""
    return (xp.arange(steps)[None, :] < xp.asarray(lengths)[:, None]).astype(dtype)


def masked_mean(y: Tensor, lengths) -> Tensor:
    """Mean over the valid steps of y (B, T, H) -> (B, H); all steps when lengths is None."""
    y = as_tensor(y)
    xp = y.xp
    B, T, _ = y.shape
    weights = (sequence_mask(xp, lengths, T, y.dtype) if lengths is not None else xp.ones((B, T), y.dtype))
    weights = weights / weights.sum(axis=1, keepdims=True)
    return record((y.data * weights[:, :, None]).sum(axis=1), (y,), lambda g: (g[:, None, :] * weights[:, :, None],))


def last_valid(y: Tensor, lengths) -> Tensor:
    """y[b, len_b - 1] for each row of y (B, T, H) -> (B, H); the last step when lengths is None."""
    y = as_tensor(y)
    xp = y.xp
    B, T, _ = y.shape
    t = xp.full((B,), T - 1) if lengths is None else xp.asarray(lengths) - 1
    rows = xp.arange(B)

    def backward(g):
        full = xp.zeros(y.shape, g.dtype)
        full[rows, t] = g
        return (full,)
    return record(y.data[rows, t], (y,), backward)


def multiply_constant(x: Tensor, constant) -> Tensor:
    """x * constant, where ``constant`` is an array broadcastable to x (a dropout mask (B, 1, I), a
    sequence mask (B, T, 1)); no gradient flows to the constant."""
    x = as_tensor(x)
    return record(x.data * constant, (x,), lambda g: (g * constant,))


def reshape(x: Tensor, shape) -> Tensor:
    """x viewed with a new shape of the same size."""
    x = as_tensor(x)
    return record(x.data.reshape(shape), (x,), lambda g: (g.reshape(x.shape),))


def identity(x: Tensor) -> Tensor:
    """A new tensor with x's data (gradient passed through): somewhere to attach other ``lengths``
    without changing the caller's tensor."""
    x = as_tensor(x)
    return record(x.data, (x,), lambda g: (g,))


def reverse_sequence(x: Tensor, lengths) -> Tensor:
    """Each row's valid steps in reverse order: out[b, t] = x[b, len_b - 1 - t] for t < len_b; the
    padding steps t >= len_b stay where they are. x (B, T, ...); all T steps when lengths is None.
    A permutation of the steps that is its own inverse, so the backward is the same gather."""
    x = as_tensor(x)
    xp = x.xp
    B, T = x.shape[:2]
    if lengths is None:
        # copies, not reversed views: the fused kernels want C-contiguous arrays
        return record(xp.ascontiguousarray(x.data[:, ::-1]), (x,), lambda g: (xp.ascontiguousarray(g[:, ::-1]),))
    steps = xp.arange(T)[None, :]  # (1, T)
    lens = xp.asarray(lengths)[:, None]  # (B, 1)
    index = xp.where(steps < lens, lens - 1 - steps, steps)  # (B, T)
    rows = xp.arange(B)[:, None]
    return record(x.data[rows, index], (x,), lambda g: (g[rows, index],))


def bidirectional_recurrent(cell: str, x_forward: Tensor, x_backward: Tensor, forward_params, backward_params,
                            forward_states=(None, None), backward_states=(None, None), lengths=None,
                            nonlinearity: str = "tanh", recurrent_masks=(None, None), merge_concat: bool = False):
    """Both directions of a bidirectional fused layer as one graph node: the forward pass over
    x_forward (B, T, I) and the reverse pass (each row from its own last valid step) over x_backward
    (the same tensor unless each direction has its own input dropout). On the CPU backend the two
    directions run at the same time, each on half of the threads, forward and backward; on the CUDA
    backend they go to the kernels in one call (what ``ops.lstm(..., bidirectional=True)`` does).

    params: (w_ih, w_hh, b_ih, b_hh) per direction, or (w_ih, w_hh, b_ih, b_hh, w_hr) for an LSTM with
    projections (both directions alike); states: (h0, c0) per direction (None: zeros);
    recurrent_masks: (B, H) or None per direction.
    -> [y_f, h_f, c_f, y_b, h_b, c_b]: y (B, T, R) in input order, h (B, R), c (B, H); c None but for
    LSTM; R = P with projections, else H.
    merge_concat (Bidirectional's merge_mode "concat"): -> [y, h_f, c_f, h_b, c_b] with y (B, T, 2R),
    [y_f, y_b] on the last axis. On the host the kernels write their halves of y in place and read
    their gradients from the halves of its gradient: no concatenation, no split copies."""
    xs = (as_tensor(x_forward), as_tensor(x_backward))
    params = tuple(tuple(as_tensor(p) for p in ps) for ps in (forward_params, backward_params))
    states = tuple(tuple(None if s is None else as_tensor(s) for s in ss) for ss in (forward_states, backward_states))
    parents = tuple(t for d in range(2) for t in (xs[d],) + params[d] + states[d])
    calls = [dict(x=xs[d].data, w_ih=params[d][0].data, w_hh=params[d][1].data, b_ih=params[d][2].data,
                  b_hh=params[d][3].data, h0=None if states[d][0] is None else states[d][0].data,
                  c0=None if states[d][1] is None else states[d][1].data, lengths=lengths, reverse=bool(d),
                  nonlinearity=nonlinearity, recurrent_mask=recurrent_masks[d], need_grad=needs_grad(parents))
             for d in range(2)]
    projected = len(params[0]) == 5  # w_hr fifth: a parent and a gradient after b_hh in each direction
    if projected:
        for d in range(2):
            calls[d]["w_hr"] = params[d][4].data
    y, results = ops.layer_forward(cell, calls, share_output=merge_concat)
    contexts = [r[3] for r in results]
    hidden = results[0][0].shape[-1]  # R: each direction's half of a joined y
    if merge_concat and y is None:  # the GPU: one concatenation
        y = xs[0].xp.concatenate([results[0][0], results[1][0]], axis=-1)

    def backward(grads):  # [dy_f, dh_f, dc_f, dy_b, dh_b, dc_b], None where unused
        if merge_concat:  # [dy, dh_f, dc_f, dh_b, dc_b]: dy's halves are views, read in place on the host
            dy, *states_grads = grads
            halves = (None, None) if dy is None else (dy[..., :hidden], dy[..., hidden:])
            grads = [halves[0], *states_grads[:2], halves[1], *states_grads[2:]]
        cotangents = []
        for d in range(2):
            dy, dh_n, dc_n = grads[3 * d:3 * d + 3]
            y_d = results[d][0]
            dy = xs[d].xp.zeros(y_d.shape, y_d.dtype) if dy is None else dy
            cotangents.append((dy, dh_n, dc_n))
        g = ops.layer_backward(contexts, cotangents, need_dx=[x.requires_grad for x in xs])
        return tuple(out for d in range(2)
                     for out in (g[d].dx, g[d].dw_ih, g[d].dw_hh, g[d].db_ih, g[d].db_hh)
                     + ((g[d].dw_hr,) if projected else ()) + (g[d].dh0, g[d].dc0))

    has_cell_state = ops.cell_info(cell).has_cell_state
    if merge_concat:
        outputs = record_many([y, results[0][1], results[0][2], results[1][1], results[1][2]], parents, backward)
        if not has_cell_state:
            outputs[2] = outputs[4] = None
        return outputs
    outputs = record_many([results[0][0], results[0][1], results[0][2], results[1][0], results[1][1], results[1][2]],
                          parents, backward)
    if not has_cell_state:
        outputs[2] = outputs[5] = None
    return outputs
