"""One direction of a recurrent layer: validation, backend dispatch, outputs and saved context."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import _native, _validate, reference
from .grads import Grads

# Values each cell saves per hidden unit besides its gates (csrc/include/fusedrnn/cells.h).
AUX = {"lstm": 2, "gru": 1, "rnn": 0}
ACTIVATION_CODE = {"tanh": 0, "relu": 1}


@dataclass
class Context:
    """What a forward op keeps for its backward. Treat as opaque."""

    cell: str
    backend: str
    x: Any  # (B, T, I)
    w_ih: Any  # (G*H, I)
    w_hh: Any  # (G*H, H)
    lengths: Any  # (B,) int64: NumPy, or CuPy on the cuda backend
    recurrent_mask: Any  # (B, H) or None
    reverse: bool
    nonlinearity: str
    saved: Any  # native: (gates, aux, h_prev); numpy: reference.Context
    path: Optional[str] = None  # cuda: the kernels' path the forward took ("persistent" or "steps")


def allocate_forward(xp, cell, B, T, H, dtype, y=None, need_grad=True):
    """Outputs and saved arrays of one direction on ``xp``'s device, in the layout every native
    backend writes -> y (B, T, H) (``y`` where given), h_n (B, H), c_n (B, H) or None, saved (gates,
    aux, h_prev), three Nones if not ``need_grad`` (the CPU kernels' inference forward)."""
    y = xp.empty((B, T, H), dtype) if y is None else y
    h_n = xp.empty((B, H), dtype)
    c_n = xp.empty((B, H), dtype) if cell == "lstm" else None
    saved = (tuple(xp.empty(shape, dtype) for shape in saved_shapes(cell, B, T, H)) if need_grad
             else (None, None, None))
    return y, h_n, c_n, saved


def saved_shapes(cell, B, T, H) -> list:
    """The shapes of one direction's saved (gates, aux, h_prev)."""
    return [(B, T, _validate.GATES[cell] * H), (B, T, AUX[cell] * H), (B, T, H)]


def allocate_grads(xp, cell, x, w_ih, w_hh, need_dx: bool = True) -> Grads:
    """Gradients of one direction, to be filled by a native backward; x (B, T, I), w_hh (G*H, H)."""
    B, H, dtype = x.shape[0], w_hh.shape[1], x.dtype
    return Grads(dx=xp.empty_like(x) if need_dx else None, dw_ih=xp.empty_like(w_ih), dw_hh=xp.empty_like(w_hh),
                 db_ih=xp.empty(w_ih.shape[0], dtype), db_hh=xp.empty(w_hh.shape[0], dtype),
                 dh0=xp.empty((B, H), dtype), dc0=xp.empty((B, H), dtype) if cell == "lstm" else None)


def forward(cell, x, w_ih, w_hh, b_ih, b_hh, h0=None, c0=None, lengths=None, reverse=False,
            nonlinearity="tanh", num_threads: Optional[int] = None, recurrent_mask=None, y_out=None,
            need_grad=True):
    """-> y (B, T, H), h_n (B, H), c_n (B, H) or None, Context (None if not ``need_grad``: an
    inference forward, which keeps nothing for a backward and, on the CPU, saves nothing).

    y_out: a host array (B, T, H) for y, whose rows may be one side of a (B, T, 2H) array (where a
    bidirectional layer's two directions write their halves, _validate.rows_evenly_spaced); y is then
    y_out. Host backends only."""
    a = _validate.forward_args(cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse, nonlinearity,
                               recurrent_mask)
    need_grad = _validate.bool_arg("need_grad", need_grad)
    backend = _native.choose_backend(a.x)
    if backend == "cuda":
        if y_out is not None:
            raise ValueError("y_out: host backends only")
        y, h_n, c_n, ctx = forward_cuda(cell, [a])[0]  # (the CUDA kernels save in every case)
        return y, h_n, c_n, ctx if need_grad else None
    if a.batch == 0:
        y, h_n, c_n, ctx = _empty_forward(cell, a, backend, y_out)
        return y, h_n, c_n, ctx if need_grad else None
    if y_out is not None and not (isinstance(y_out, np.ndarray) and y_out.dtype == a.x.dtype
                                  and y_out.shape == (a.batch, a.steps, a.hidden) and y_out.flags.writeable
                                  and _validate.rows_evenly_spaced(y_out)):
        raise ValueError("y_out: expected a writable host array (B, T, H) of x's dtype, in C order or one side "
                         "of a (B, T, 2H) one")
    if backend == "numpy":
        ref_lengths = None if lengths is None else a.lengths
        with np.errstate(all="ignore"):  # NaN and inf propagate quietly, as in the compiled kernels
            y, h_n, c_n, saved = _reference_forward(cell, a, ref_lengths)
        if y_out is not None:
            y_out[...] = y
            y = y_out
    else:
        y, h_n, c_n, saved = allocate_forward(np, cell, a.batch, a.steps, a.hidden, a.x.dtype, y_out, need_grad)
        kernel = getattr(_native.core(), f"{cell}_forward")
        kernel(a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.h0, a.c0, a.lengths, a.recurrent_mask, a.reverse,
               ACTIVATION_CODE[a.nonlinearity], num_threads or _native.get_num_threads(), y, h_n, c_n, *saved)
    if not need_grad:
        return y, h_n, c_n, None
    ctx = Context(cell, backend, a.x, a.w_ih, a.w_hh, a.lengths, a.recurrent_mask, a.reverse, a.nonlinearity,
                  saved)
    return y, h_n, c_n, ctx


def forward_cuda(cell, args) -> list:
    """Validated directions ``args`` (from _validate.forward_args: one, or the two of a bidirectional
    layer, which the kernels run concurrently) -> [(y, h_n, c_n, Context)] per direction."""
    from . import _gpu  # here, not at the top: _gpu imports this module

    if args[0].batch == 0:
        return [_empty_forward(cell, a, "cuda") for a in args]
    return _gpu.forward(cell, args)


def _empty_forward(cell, a, backend, y_out=None):
    """An empty batch (B = 0), as torch.nn runs it: empty outputs and a context, no kernel call."""
    xp = reference.array_module(a.x)
    with a.x.device if backend == "cuda" else contextlib.nullcontext():  # on x's GPU, not the current one
        y, h_n, c_n, saved = allocate_forward(xp, cell, 0, a.steps, a.hidden, a.x.dtype, y_out)
    return y, h_n, c_n, Context(cell, backend, a.x, a.w_ih, a.w_hh, a.lengths, a.recurrent_mask, a.reverse,
                                a.nonlinearity, saved)


def _empty_grads(cell, ctx, need_dx) -> Grads:
    """The gradients of an empty batch: zero-size dx, dh0 and dc0, zero weight gradients."""
    xp = reference.array_module(ctx.x)
    with ctx.x.device if ctx.backend == "cuda" else contextlib.nullcontext():
        g = allocate_grads(xp, cell, ctx.x, ctx.w_ih, ctx.w_hh, need_dx)
        for grad in (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh):
            grad.fill(0)
    return g


def backward_cuda(cell, contexts, cotangents, need_dx=None) -> list:
    """Checked ``(dy, dh_n, dc_n)`` per forward Context of ``contexts`` (all from one forward_cuda
    call) -> [Grads] per direction, in one launch (dx None where ``need_dx`` says False)."""
    from . import _gpu

    if contexts[0].x.shape[0] == 0:
        return [_empty_grads(cell, ctx, dx) for ctx, dx in zip(contexts, need_dx or [True] * len(contexts))]
    return _gpu.backward(cell, contexts, cotangents, need_dx)


def _reference_forward(cell, a, lengths):
    """-> y, h_n, c_n (None but for LSTM), reference context."""
    mask = a.recurrent_mask
    if cell == "lstm":
        return reference.lstm_forward(a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.h0, a.c0, lengths, a.reverse, mask)
    if cell == "gru":
        y, h_n, saved = reference.gru_forward(a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.h0, lengths, a.reverse, mask)
    else:
        y, h_n, saved = reference.rnn_forward(a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.h0, lengths, a.reverse,
                                              a.nonlinearity, mask)
    return y, h_n, None, saved


def backward(cell, ctx, dy, dh_n=None, dc_n=None, num_threads: Optional[int] = None, need_dx: bool = True) -> Grads:
    """need_dx=False: the input needs no gradient (a frozen embedding below); g.dx is then None, and
    the CPU kernels skip its GEMM."""
    dy, dh_n, dc_n = _validate.backward_args(cell, ctx, Context, dy, dh_n, dc_n)
    if ctx.x.shape[0] == 0:
        return _empty_grads(cell, ctx, need_dx)
    if ctx.backend != "cpu":
        if ctx.backend == "cuda":
            g = backward_cuda(cell, [ctx], [(dy, dh_n, dc_n)], [need_dx])[0]
        else:
            with np.errstate(all="ignore"):
                g = (reference.lstm_backward(ctx.saved, dy, dh_n, dc_n) if cell == "lstm"
                     else getattr(reference, f"{cell}_backward")(ctx.saved, dy, dh_n))
        if not need_dx:
            g.dx = None
        return g
    x, w_ih, w_hh = ctx.x, ctx.w_ih, ctx.w_hh
    g = allocate_grads(np, cell, x, w_ih, w_hh, need_dx)
    kernel = getattr(_native.core(), f"{cell}_backward")
    kernel(x, w_ih, w_hh, ctx.lengths, ctx.recurrent_mask, ctx.reverse, ACTIVATION_CODE[ctx.nonlinearity],
           num_threads or _native.get_num_threads(), *ctx.saved, dy, dh_n, dc_n,
           g.dx, g.dw_ih, g.dw_hh, g.db_ih, g.db_hh, g.dh0, g.dc0)
    return g
