"""What a forward keeps for its backward, and the caller-side allocation of outputs, gradients and
saved arrays: a leaf of the data path (ARCHITECTURE.md, "The op API and its contract").

``_stack``, ``_direction`` and the backends (``_native`` through ``_direction``, ``_gpu``) all use
these; they import only the cell table and the gradient containers, so nothing here calls back up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ._cells import CELLS
from .grads import Grads

# The kernels' code for each nonlinearity (csrc/include/fusedrnn/cells.h, Activation).
ACTIVATION_CODE = {"tanh": 0, "relu": 1}


@dataclass
class Context:
    """What a forward op keeps for its backward. Treat as opaque."""

    cell: str
    backend: str
    x: Any  # (B, T, I)
    w_ih: Any  # (G*H, I)
    w_hh: Any  # (G*H, R): R = H, or P with projections
    lengths: Any  # (B,) int64: NumPy, or CuPy on the cuda backend
    recurrent_mask: Any  # (B, H) or None
    reverse: bool
    nonlinearity: str
    saved: Any  # native: (gates, aux, h_prev); numpy: reference.Context
    path: Optional[str] = None  # cuda: the kernels' path the forward took ("persistent" or "steps")
    w_hr: Any = None  # (P, H): an LSTM with projections, else None


@dataclass
class StackContext:
    """What a stacked forward keeps for ``ops.stack_backward``. Treat as opaque."""

    cell: str
    num_layers: int
    num_directions: int
    hidden: int  # R, the size of h and of each direction's output: H, or P with projections
    contexts: list  # one direction Context per params entry
    masks: list  # dropout mask (B, T, D*H) applied to each layer's output, or None


def saved_shapes(cell, B, T, H, R=None) -> list:
    """The shapes of one direction's saved (gates, aux, h_prev); R: the state's size, P with
    projections (default H)."""
    return CELLS[cell].saved_shapes(B, T, H, R)


def allocate_forward(xp, cell, B, T, H, dtype, y=None, need_grad=True, R=None):
    """Outputs and saved arrays of one direction on ``xp``'s device, in the layout every native
    backend writes -> y (B, T, R) (``y`` where given), h_n (B, R), c_n (B, H) or None, saved (gates,
    aux, h_prev), three Nones if not ``need_grad`` (the CPU kernels' inference forward). R: the
    state's size, P for an LSTM with projections (default H)."""
    info = CELLS[cell]
    R = R or H
    y = xp.empty((B, T, R), dtype) if y is None else y
    h_n = xp.empty((B, R), dtype)
    c_n = xp.empty((B, H), dtype) if info.has_cell_state else None
    # Cell.saved_shapes' three arrays, written out: this runs on every call of a small op
    saved = ((xp.empty((B, T, info.gates * H), dtype), xp.empty((B, T, info.aux * H), dtype),
              xp.empty((B, T, R), dtype)) if need_grad else (None, None, None))
    return y, h_n, c_n, saved


def allocate_grads(xp, cell, x, w_ih, w_hh, need_dx: bool = True, w_hr=None) -> Grads:
    """Gradients of one direction, to be filled by a native backward; x (B, T, I), w_hh (G*H, R),
    w_hr (P, H) or None (then R = H)."""
    info = CELLS[cell]
    B, R, dtype = x.shape[0], w_hh.shape[1], x.dtype
    return Grads(dx=xp.empty_like(x) if need_dx else None, dw_ih=xp.empty_like(w_ih), dw_hh=xp.empty_like(w_hh),
                 db_ih=xp.empty(w_ih.shape[0], dtype), db_hh=xp.empty(w_hh.shape[0], dtype),
                 dh0=xp.empty((B, R), dtype),
                 dc0=xp.empty((B, w_hh.shape[0] // info.gates), dtype) if info.has_cell_state else None,
                 dw_hr=None if w_hr is None else xp.empty_like(w_hr))
