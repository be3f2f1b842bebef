"""Argument checks run before any native code: each failure names the argument and what it expected.

Arrays are NumPy (host) or CuPy (GPU); objects with ``__cuda_array_interface__`` or a CUDA DLPack
capsule are taken as CuPy views (no copy). Every array of one call must be where ``x`` is: the
same kind (host or GPU) and, on the GPU, the same device."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ._cells import CELLS, NONLINEARITIES, gate_counts
from ._native import is_device_array

GATES = gate_counts()  # name -> G, from the cell table
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# scipy-openblas32 indexes with 32-bit integers.
MAX_BLAS_DIM = 2**31 - 1


def is_array(a) -> bool:
    return isinstance(a, np.ndarray) or type(a).__module__.startswith("cupy")


def as_array(name, a):
    """``a`` itself if it is a NumPy or CuPy array (or not an array at all: the caller reports that);
    a GPU array of another library as a CuPy view."""
    if isinstance(a, np.ndarray) or a is None or not is_device_array(a) or type(a).__module__.startswith("cupy"):
        return a
    try:
        import cupy
    except ImportError:
        raise RuntimeError(f"{name}: a GPU array ({type(a).__name__}) needs CuPy, which is not installed "
                           "(pip install fusedrnn[gpu])") from None
    if hasattr(a, "__cuda_array_interface__"):
        return cupy.asarray(a)
    return cupy.from_dlpack(a)


def _where(a) -> str:
    return "NumPy (host)" if isinstance(a, np.ndarray) else f"CuPy (GPU {a.device.id})"


def same_device(name, a, like):
    """``a`` lives where ``like`` (x) does: TypeError for host vs GPU, ValueError for two GPUs."""
    if like is None or isinstance(a, np.ndarray) and isinstance(like, np.ndarray):
        return
    if isinstance(a, np.ndarray) != isinstance(like, np.ndarray):
        raise TypeError(f"{name}: a {_where(a)} array, but x is a {_where(like)} array; every array of a call "
                        "must be on the same device")
    if a.device.id != like.device.id:
        raise ValueError(f"{name}: on GPU {a.device.id}, but x is on GPU {like.device.id}; every array of a call "
                         "must be on the same device")


def array_arg(name, a, ndim, layout, dtype=None, like=None):
    """Checks ``a`` is an array of ``ndim`` dims and a float dtype (``dtype`` if given), on the device
    of ``like`` if given.

    Returns it as it is (GPU arrays of other libraries as CuPy views): ``contiguous`` copies, once
    every size has been checked."""
    a = as_array(name, a)
    if not is_array(a):
        raise TypeError(f"{name}: expected a NumPy or CuPy array {layout}, got {type(a).__name__}")
    same_device(name, a, like)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: dtype must be float32 or float64, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name}: dtype {a.dtype} does not match x's dtype {dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions {layout}, got shape {tuple(a.shape)}")
    return a


def contiguous(a):
    """``a`` in C order (a copy only if needed), for the native kernels."""
    return a if a is None or a.flags.c_contiguous else a.copy(order="C")


def rows_evenly_spaced(a) -> bool:
    """a (B, T, W) whose (b, t) rows are each contiguous and evenly spaced: C order, or one side of a
    (B, T, k*W) array in C order. The CPU kernels read and write such arrays in place (module.cpp's
    checked_rows)."""
    if a.flags.c_contiguous:
        return True
    B, T, W = a.shape
    item = a.itemsize
    stride = a.strides[1] // item if T > 1 else a.strides[0] // item if B > 1 else W
    return ((W == 1 or a.strides[2] == item) and stride >= W and (T == 1 or a.strides[1] == stride * item)
            and (B == 1 or a.strides[0] == T * stride * item))


def optional_array_arg(name, a, shape, layout, dtype, like=None):
    if a is None:
        return None
    a = array_arg(name, a, len(shape), layout, dtype, like)
    expect_shape(name, a, shape, layout)
    return contiguous(a)


def expect_shape(name, a, shape, layout):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {layout} = {tuple(shape)}, got {tuple(a.shape)}")


def lengths_arg(lengths, batch, steps):
    """(B,) int64 lengths on the host, each in 1..T; all T when None.

    GPU lengths are copied to the host for the range check: that waits for the GPU (a
    synchronisation). Give NumPy lengths to avoid it; the CUDA backend moves them to the GPU."""
    if lengths is None:
        return np.full(batch, steps, np.int64)
    if is_device_array(lengths):
        lengths = as_array("lengths", lengths).get()
    try:
        arr = np.asarray(lengths)
    except (TypeError, ValueError) as error:
        raise TypeError(f"lengths: expected a sequence of integers, got {type(lengths).__name__}") from error
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"lengths: expected shape (B,) = ({batch},), got {arr.shape}")
    if arr.size and (arr.min() < 1 or arr.max() > steps):
        raise ValueError(f"lengths: every length must be in 1..T = 1..{steps}, got min {arr.min()}, max {arr.max()}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def bool_arg(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def x_arg(x):
    """Checks x (B, T, I): an array with T and I at least 1 (B = 0 is an empty batch, as in torch:
    empty outputs, zero weight gradients)."""
    x = array_arg("x", x, 3, "(B, T, I)")
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"x: T and I must be at least 1, got shape {tuple(x.shape)}")
    return x


def nonlinearity_arg(cell, nonlinearity):
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity


def forward_args(cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse, nonlinearity, recurrent_mask=None,
                 checked=False, w_hr=None):
    """Checks one direction's forward arguments; returns them normalised in a namespace (``state``:
    R, the size of h and y: H, or P given projections w_hr (P, H), which make w_hh (G*H, P)).

    checked=True: the caller (a stacked layer) has checked x (x_arg, or it is a layer's own output),
    lengths ((B,) int64 from lengths_arg), h0 and c0 ((B, H) rows of checked states) and
    nonlinearity; they are taken as they are, and only this direction's own arguments are checked."""
    info = CELLS[cell]
    gates = info.gates
    if not checked:
        x = array_arg("x", x, 3, "(B, T, I)")
        if x.shape[1] < 1 or x.shape[2] < 1:  # x_arg, inline: this runs on every call of a small op
            raise ValueError(f"x: T and I must be at least 1, got shape {tuple(x.shape)}")
    batch, steps, inputs = x.shape
    w_hh = array_arg("w_hh", w_hh, 2, f"({gates}*H, H)", x.dtype, x)
    if w_hr is None:
        hidden = state = w_hh.shape[1]
        if hidden < 1:
            raise ValueError(f"w_hh: H must be at least 1, got shape {tuple(w_hh.shape)}")
        expect_shape("w_hh", w_hh, (gates * hidden, hidden), f"({gates}*H, H)")
    else:
        w_hr, hidden, state = _projection_arg(cell, w_hr, w_hh, recurrent_mask, x)
    w_ih = array_arg("w_ih", w_ih, 2, f"({gates}*H, I)", x.dtype, x)
    expect_shape("w_ih", w_ih, (gates * hidden, inputs), f"({gates}*H, I)")
    b_ih = array_arg("b_ih", b_ih, 1, f"({gates}*H,)", x.dtype, x)
    expect_shape("b_ih", b_ih, (gates * hidden,), f"({gates}*H,)")
    b_hh = array_arg("b_hh", b_hh, 1, f"({gates}*H,)", x.dtype, x)
    expect_shape("b_hh", b_hh, (gates * hidden,), f"({gates}*H,)")
    if batch * steps * max(inputs, gates * hidden) > MAX_BLAS_DIM:
        raise ValueError(f"x: B*T*max(I, {gates}*H) exceeds {MAX_BLAS_DIM}, the BLAS index limit")
    if not checked:
        h0 = optional_array_arg("h0", h0, (batch, state), "(B, H)" if w_hr is None else "(B, P)", x.dtype, x)
        c0 = optional_array_arg("c0", c0, (batch, hidden), "(B, H)", x.dtype, x) if info.has_cell_state else None
        lengths = lengths_arg(lengths, batch, steps)
        if nonlinearity not in NONLINEARITIES:  # nonlinearity_arg, inline
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    elif not info.has_cell_state:
        c0 = None
    recurrent_mask = optional_array_arg("recurrent_mask", recurrent_mask, (batch, hidden), "(B, H)", x.dtype, x)
    x, w_ih, w_hh, b_ih, b_hh = map(contiguous, (x, w_ih, w_hh, b_ih, b_hh))
    return SimpleNamespace(x=x, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, h0=h0, c0=c0,
                           lengths=lengths, recurrent_mask=recurrent_mask,
                           reverse=bool_arg("reverse", reverse),
                           nonlinearity=nonlinearity, batch=batch, steps=steps, inputs=inputs, hidden=hidden,
                           state=state, w_hr=w_hr)


def _projection_arg(cell, w_hr, w_hh, recurrent_mask, x):
    """Checks projections w_hr (P, H) and w_hh (G*H, P) against each other -> (w_hr in C order, H, P)."""
    info = CELLS[cell]
    if not info.projectable:
        projectable = ", ".join(c.name for c in CELLS.values() if c.projectable)
        raise ValueError(f"w_hr: {cell} has no projections (cells that take w_hr: {projectable})")
    w_hr = array_arg("w_hr", w_hr, 2, "(P, H)", x.dtype, x)
    proj, hidden = w_hr.shape
    if proj < 1 or hidden < 1:
        raise ValueError(f"w_hr: P and H must be at least 1, got shape {tuple(w_hr.shape)}")
    expect_shape("w_hh", w_hh, (info.gates * hidden, proj), f"({info.gates}*H, P) with w_hr (P, H)")
    if recurrent_mask is not None:
        raise ValueError("recurrent_mask: not supported with projections (w_hr)")
    return contiguous(w_hr), hidden, proj


def backward_args(cell, ctx, context_type, dy, dh_n, dc_n, checked=False):
    """Checks one direction's backward arguments against the forward's ``ctx``.

    checked=True: the caller (a stacked layer) has checked them as parts of its own (dy a (B, T, H)
    view of its dy, dh_n and dc_n rows of its states, ctx its own); only their layout is settled."""
    if not checked:
        if ctx is None:
            raise TypeError("ctx: None, the forward ran with need_grad=False and kept nothing for a backward")
        if not isinstance(ctx, context_type) or ctx.cell != cell:
            raise TypeError(f"ctx: expected the ctx returned by {cell}_forward, got {type(ctx).__name__}")
        batch, steps, _ = ctx.x.shape
        state = ctx.w_hh.shape[1]  # R: H, or P with projections
        r = "H" if ctx.w_hr is None else "P"
        dy = array_arg("dy", dy, 3, f"(B, T, {r})", ctx.x.dtype, ctx.x)
        expect_shape("dy", dy, (batch, steps, state), f"(B, T, {r})")
        dh_n = optional_array_arg("dh_n", dh_n, (batch, state), f"(B, {r})", ctx.x.dtype, ctx.x)
        if CELLS[cell].has_cell_state:
            hidden = ctx.w_hh.shape[0] // CELLS[cell].gates
            dc_n = optional_array_arg("dc_n", dc_n, (batch, hidden), "(B, H)", ctx.x.dtype, ctx.x)
    if not (ctx.backend == "cpu" and rows_evenly_spaced(dy)):  # the CPU kernels read such rows in place
        dy = contiguous(dy)
    return dy, dh_n, dc_n
