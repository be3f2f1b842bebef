"""Valid argument sets for the raw compiled functions fusedrnn._core.<cell>_forward/_backward.

The tests break one argument at a time. Also imported by the subprocesses of test_bad_input.py,
so it depends on nothing but NumPy and fusedrnn.
"""

from __future__ import annotations

import numpy as np

from fusedrnn import ops

GATES = {name: cell.gates for name, cell in ops.CELLS.items()}
AUX = {name: cell.aux for name, cell in ops.CELLS.items()}  # values saved per hidden unit besides the gates


def forward_args(cell, B=2, T=3, I=4, H=5, dtype=np.float64, seed=0):
    """kwargs of _core.<cell>_forward: inputs x (B, T, I), w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,),
    lengths (B,) int64; outputs y (B, T, H), h_n, c_n (B, H), gates (B, T, G*H), aux (B, T, AUX*H),
    h_prev (B, T, H)."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    draw = lambda *shape: (0.5 * rng.standard_normal(shape)).astype(dtype)  # noqa: E731
    return dict(x=draw(B, T, I), w_ih=draw(G * H, I), w_hh=draw(G * H, H), b_ih=draw(G * H), b_hh=draw(G * H),
                h0=None, c0=None, lengths=np.full(B, T, np.int64), recurrent_mask=None, reverse=False, activation=0, num_threads=1,
                y=np.empty((B, T, H), dtype), h_n=np.empty((B, H), dtype),
                c_n=np.empty((B, H), dtype) if ops.cell_info(cell).has_cell_state else None,
                gates=np.empty((B, T, G * H), dtype), aux=np.empty((B, T, AUX[cell] * H), dtype),
                h_prev=np.empty((B, T, H), dtype))


def backward_args(core, cell, **shape):
    """kwargs of _core.<cell>_backward after running the forward on forward_args(cell, **shape):
    dy (B, T, H), dh_n, dc_n None; outputs dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0 like their inputs."""
    f = forward_args(cell, **shape)
    getattr(core, f"{cell}_forward")(**f)
    x, w_ih, w_hh = f["x"], f["w_ih"], f["w_hh"]
    B, H = f["h_n"].shape
    return dict(x=x, w_ih=w_ih, w_hh=w_hh, lengths=f["lengths"], recurrent_mask=None, reverse=False, activation=0, num_threads=1,
                gates=f["gates"], aux=f["aux"], h_prev=f["h_prev"], dy=np.ones_like(f["y"]), dh_n=None, dc_n=None,
                dx=np.empty_like(x), dw_ih=np.empty_like(w_ih), dw_hh=np.empty_like(w_hh),
                db_ih=np.empty(w_ih.shape[0], x.dtype), db_hh=np.empty(w_hh.shape[0], x.dtype),
                dh0=np.empty((B, H), x.dtype), dc0=np.empty((B, H), x.dtype) if ops.cell_info(cell).has_cell_state else None)
