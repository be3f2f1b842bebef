"""Type stub of fusedrnn._core, the compiled CPU kernels (csrc/bindings/module.cpp).

Call them through fusedrnn.ops, which validates the arguments and allocates the outputs; these
functions check only what keeps a direct call from crashing (dtype, shape, C order, writable
outputs). Arrays are float32 or float64 (lengths int64), one dtype per call; outputs are written in
place. Shapes (ARCHITECTURE.md, "Shapes and weights"): x (B, T, I), w_ih (G*H, I), w_hh (G*H, H),
b_ih and b_hh (G*H,), states (B, H), y and dy (B, T, H), saved gates (B, T, G*H), aux (B, T, A*H),
h_prev (B, T, H). activation: 0 tanh, 1 relu (the vanilla RNN only). c0, c_n, dc_n and dc0 are
the LSTM's; the other cells take None. An LSTM with projections (torch's proj_size) also takes
w_hr (P, H), and its backward writes dw_hr (P, H); its w_hh is (4*H, P) and its h0, h_n, y, dy,
h_prev, dh_n and dh0 have P where the others have H (c0, c_n, dc_n, dc0 keep H).
"""

from typing import Any, Optional

import numpy

def lstm_forward(
    x: numpy.ndarray,
    w_ih: numpy.ndarray,
    w_hh: numpy.ndarray,
    b_ih: numpy.ndarray,
    b_hh: numpy.ndarray,
    h0: Optional[numpy.ndarray],
    c0: Optional[numpy.ndarray],
    lengths: numpy.ndarray,
    recurrent_mask: Optional[numpy.ndarray],
    reverse: bool,
    activation: int,
    num_threads: int,
    y: numpy.ndarray,
    h_n: numpy.ndarray,
    c_n: Optional[numpy.ndarray],
    gates: Optional[numpy.ndarray],
    aux: Optional[numpy.ndarray],
    h_prev: Optional[numpy.ndarray],
    w_hr: Optional[numpy.ndarray] = None,
) -> None:
    """One LSTM direction over a whole sequence: writes y, h_n, c_n and the saved gates, aux, h_prev (all three None: inference)."""

def lstm_backward(
    x: numpy.ndarray,
    w_ih: numpy.ndarray,
    w_hh: numpy.ndarray,
    lengths: numpy.ndarray,
    recurrent_mask: Optional[numpy.ndarray],
    reverse: bool,
    activation: int,
    num_threads: int,
    gates: numpy.ndarray,
    aux: numpy.ndarray,
    h_prev: numpy.ndarray,
    dy: numpy.ndarray,
    dh_n: Optional[numpy.ndarray],
    dc_n: Optional[numpy.ndarray],
    dx: Optional[numpy.ndarray],
    dw_ih: numpy.ndarray,
    dw_hh: numpy.ndarray,
    db_ih: numpy.ndarray,
    db_hh: numpy.ndarray,
    dh0: numpy.ndarray,
    dc0: Optional[numpy.ndarray],
    w_hr: Optional[numpy.ndarray] = None,
    dw_hr: Optional[numpy.ndarray] = None,
) -> None:
    """BPTT of one LSTM direction from what its forward saved: writes every gradient (dx only when given)."""

def gru_forward(
    x: numpy.ndarray,
    w_ih: numpy.ndarray,
    w_hh: numpy.ndarray,
    b_ih: numpy.ndarray,
    b_hh: numpy.ndarray,
    h0: Optional[numpy.ndarray],
    c0: Optional[numpy.ndarray],
    lengths: numpy.ndarray,
    recurrent_mask: Optional[numpy.ndarray],
    reverse: bool,
    activation: int,
    num_threads: int,
    y: numpy.ndarray,
    h_n: numpy.ndarray,
    c_n: Optional[numpy.ndarray],
    gates: Optional[numpy.ndarray],
    aux: Optional[numpy.ndarray],
    h_prev: Optional[numpy.ndarray],
    w_hr: Optional[numpy.ndarray] = None,
) -> None:
    """One GRU direction over a whole sequence: writes y, h_n and the saved gates, aux, h_prev (all three None: inference)."""

def gru_backward(
    x: numpy.ndarray,
    w_ih: numpy.ndarray,
    w_hh: numpy.ndarray,
    lengths: numpy.ndarray,
    recurrent_mask: Optional[numpy.ndarray],
    reverse: bool,
    activation: int,
    num_threads: int,
    gates: numpy.ndarray,
    aux: numpy.ndarray,
    h_prev: numpy.ndarray,
    dy: numpy.ndarray,
    dh_n: Optional[numpy.ndarray],
    dc_n: Optional[numpy.ndarray],
    dx: Optional[numpy.ndarray],
    dw_ih: numpy.ndarray,
    dw_hh: numpy.ndarray,
    db_ih: numpy.ndarray,
    db_hh: numpy.ndarray,
    dh0: numpy.ndarray,
    dc0: Optional[numpy.ndarray],
    w_hr: Optional[numpy.ndarray] = None,
    dw_hr: Optional[numpy.ndarray] = None,
) -> None:
    """BPTT of one GRU direction from what its forward saved: writes every gradient (dx only when given)."""

def rnn_forward(
    x: numpy.ndarray,
    w_ih: numpy.ndarray,
    w_hh: numpy.ndarray,
    b_ih: numpy.ndarray,
    b_hh: numpy.ndarray,
    h0: Optional[numpy.ndarray],
    c0: Optional[numpy.ndarray],
    lengths: numpy.ndarray,
    recurrent_mask: Optional[numpy.ndarray],
    reverse: bool,
    activation: int,
    num_threads: int,
    y: numpy.ndarray,
    h_n: numpy.ndarray,
    c_n: Optional[numpy.ndarray],
    gates: Optional[numpy.ndarray],
    aux: Optional[numpy.ndarray],
    h_prev: Optional[numpy.ndarray],
    w_hr: Optional[numpy.ndarray] = None,
) -> None:
    """One vanilla RNN direction over a whole sequence: writes y, h_n and the saved gates, aux, h_prev (all three None: inference)."""

def rnn_backward(
    x: numpy.ndarray,
    w_ih: numpy.ndarray,
    w_hh: numpy.ndarray,
    lengths: numpy.ndarray,
    recurrent_mask: Optional[numpy.ndarray],
    reverse: bool,
    activation: int,
    num_threads: int,
    gates: numpy.ndarray,
    aux: numpy.ndarray,
    h_prev: numpy.ndarray,
    dy: numpy.ndarray,
    dh_n: Optional[numpy.ndarray],
    dc_n: Optional[numpy.ndarray],
    dx: Optional[numpy.ndarray],
    dw_ih: numpy.ndarray,
    dw_hh: numpy.ndarray,
    db_ih: numpy.ndarray,
    db_hh: numpy.ndarray,
    dh0: numpy.ndarray,
    dc0: Optional[numpy.ndarray],
    w_hr: Optional[numpy.ndarray] = None,
    dw_hr: Optional[numpy.ndarray] = None,
) -> None:
    """BPTT of one vanilla RNN direction from what its forward saved: writes every gradient (dx only when given)."""

def adam_update(
    var: numpy.ndarray,
    grad: numpy.ndarray,
    m: numpy.ndarray,
    v: numpy.ndarray,
    alpha: float,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    num_threads: int = 1,
) -> None:
    """Adam's update of var, m and v in place, in one pass (Keras's form, alpha carrying the bias corrections)."""

def matmul(
    a: numpy.ndarray,
    b: numpy.ndarray,
    out: numpy.ndarray,
    trans_a: bool = False,
    trans_b: bool = False,
    num_threads: int = 1,
) -> None:
    """out (m, n) = op(a) @ op(b), op transposing where asked; output rows split over the threads."""

def dropout_mask(
    out: numpy.ndarray,
    key: int,
    threshold: int,
    scale: float,
    x: Optional[numpy.ndarray] = None,
    num_threads: int = 1,
) -> None:
    """Fills out with the counter-based dropout mask (scale or 0) keyed by key, or with x times it where x is given."""

def build_info() -> dict[str, Any]:
    """What this module was compiled with: version, BLAS, compiler, SIMD variants and the one in use."""

def simd_override_error() -> str:
    """Why FUSEDRNN_ISA was refused, or an empty string (fusedrnn raises it at import)."""

def get_num_threads() -> int:
    """Threads the kernels use (OpenBLAS's setting)."""

def set_num_threads(n: int) -> None:
    """Sets the threads the kernels and their BLAS use (n >= 1)."""

def cached_workspace_bytes() -> int:
    """Bytes of large workspaces kept between calls for the next (csrc/cpu/workspace.h)."""

def release_cached_workspaces() -> None:
    """Gives the workspaces kept between calls back to the system."""
