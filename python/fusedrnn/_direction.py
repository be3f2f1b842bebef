"""One direction of a recurrent layer: validation, backend dispatch, outputs and saved context."""

from __future__ import annotations

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
    lengths: np.ndarray  # (B,) int64
    recurrent_mask: Any  # (B, H) or None
    reverse: bool
    nonlinearity: str
    saved: Any  # native: (gates, aux, h_prev); numpy: reference.Context


def forward(cell, x, w_ih, w_hh, b_ih, b_hh, h0=None, c0=None, lengths=None, reverse=False,
            nonlinearity="tanh", num_threads: Optional[int] = None, recurrent_mask=None):
    """-> y (B, T, H), h_n (B, H), c_n (B, H) or None, Context."""
    a = _validate.forward_args(cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse, nonlinearity,
                               recurrent_mask)
    backend = _native.choose_backend(a.x)
    if backend == "numpy":
        ref_lengths = None if lengths is None else a.lengths
        with np.errstate(all="ignore"):  # NaN and inf propagate quietly, as in the compiled kernels
            y, h_n, c_n, saved = _reference_forward(cell, a, ref_lengths)
    else:
        B, T, H, dtype = a.batch, a.steps, a.hidden, a.x.dtype
        y = np.empty((B, T, H), dtype)
        h_n = np.empty((B, H), dtype)
        c_n = np.empty((B, H), dtype) if cell == "lstm" else None
        saved = (np.empty((B, T, _validate.GATES[cell] * H), dtype),  # gates
                 np.empty((B, T, AUX[cell] * H), dtype),  # aux
                 np.empty((B, T, H), dtype))  # h_prev
        kernel = getattr(_native.core(), f"{cell}_forward")
        kernel(a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.h0, a.c0, a.lengths, a.recurrent_mask, a.reverse,
               ACTIVATION_CODE[a.nonlinearity], num_threads or _native.get_num_threads(), y, h_n, c_n, *saved)
    ctx = Context(cell, backend, a.x, a.w_ih, a.w_hh, a.lengths, a.recurrent_mask, a.reverse, a.nonlinearity,
                  saved)
    return y, h_n, c_n, ctx


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


def backward(cell, ctx, dy, dh_n=None, dc_n=None, num_threads: Optional[int] = None) -> Grads:
    dy, dh_n, dc_n = _validate.backward_args(cell, ctx, Context, dy, dh_n, dc_n)
    if ctx.backend == "numpy":
        with np.errstate(all="ignore"):
            if cell == "lstm":
                return reference.lstm_backward(ctx.saved, dy, dh_n, dc_n)
            return getattr(reference, f"{cell}_backward")(ctx.saved, dy, dh_n)
    x, w_ih, w_hh = ctx.x, ctx.w_ih, ctx.w_hh
    B, _, H = dy.shape
    g = Grads(dx=np.empty_like(x), dw_ih=np.empty_like(w_ih), dw_hh=np.empty_like(w_hh),
              db_ih=np.empty(w_ih.shape[0], x.dtype), db_hh=np.empty(w_hh.shape[0], x.dtype),
              dh0=np.empty((B, H), x.dtype), dc0=np.empty((B, H), x.dtype) if cell == "lstm" else None)
    kernel = getattr(_native.core(), f"{cell}_backward")
    kernel(x, w_ih, w_hh, ctx.lengths, ctx.recurrent_mask, ctx.reverse, ACTIVATION_CODE[ctx.nonlinearity],
           num_threads or _native.get_num_threads(), *ctx.saved, dy, dh_n, dc_n,
           g.dx, g.dw_ih, g.dw_hh, g.db_ih, g.db_hh, g.dh0, g.dc0)
    return g
