"""Gradient containers returned by the backward ops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass
class Grads:
    """Gradients of one direction of a recurrent layer (arrays of the input's kind and dtype)."""

    dx: Any  # (B, T, I)
    dw_ih: Any  # (G*H, I)
    dw_hh: Any  # (G*H, R)
    db_ih: Any  # (G*H,)
    db_hh: Any  # (G*H,)
    dh0: Any  # (B, R)
    dc0: Optional[Any] = None  # (B, H), LSTM only
    dw_hr: Optional[Any] = None  # (P, H), an LSTM with projections only (R = P; else R = H)


@dataclass
class StackGrads:
    """Gradients of a stacked and/or bidirectional layer built by ``ops.lstm/gru/rnn``.

    ``params[k]`` is ``(dw_ih, dw_hh, db_ih, db_hh)`` for ``params[k]`` of the forward call
    (PyTorch's order: layer 0 forward, layer 0 reverse, layer 1 forward, ...), with ``dw_hr`` fifth
    for an LSTM with projections.
    """

    dx: Any  # (B, T, I)
    params: list  # [(dw_ih, dw_hh, db_ih, db_hh[, dw_hr])] * (num_layers * num_directions)
    dh0: Any  # (num_layers * num_directions, B, R)
    dc0: Optional[Any] = None  # (num_layers * num_directions, B, H), LSTM only
