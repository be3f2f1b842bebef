"""One direction of a recurrent layer: backend dispatch of checked arguments, outputs and context.

``forward`` and ``backward`` are the one-direction ops: they check their arguments (``_validate``)
and choose the backend once, then run ``forward_checked`` / ``backward_checked``, which ``_stack``
calls directly with arguments it has already checked. Below this module are the backends
(``_native``'s compiled CPU module, ``_gpu``, ``reference``) and the leaf ``_context``; nothing
below calls back up (ARCHITECTURE.md, "Layers of the package").
"""

from __future__ import annotations

import contextlib
from typing import Optional

import numpy as np

from . import _gpu, _native, _validate, reference
from ._cells import CELLS
from ._context import ACTIVATION_CODE, Context, allocate_forward, allocate_grads
from ._xp import array_module
from .grads import Grads


def forward(cell, x, w_ih, w_hh, b_ih, b_hh, h0=None, c0=None, lengths=None, reverse=False,
            nonlinearity="tanh", num_threads: Optional[int] = None, recurrent_mask=None, y_out=None,
            need_grad=True, w_hr=None):
    """-> y (B, T, R), h_n (B, R), c_n (B, H) or None, Context (None if not ``need_grad``: an
    inference forward, which keeps nothing for a backward and, on the CPU, saves nothing). R = H,
    or P given projections w_hr (P, H) (a projectable cell, host backends).

    y_out: a host array (B, T, H) for y, whose rows may be one side of a (B, T, 2H) array (where a
    bidirectional layer's two directions write their halves, _validate.rows_evenly_spaced); y is then
    y_out. Host backends only."""
    a = _validate.forward_args(cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse, nonlinearity,
                               recurrent_mask, w_hr=w_hr)
    need_grad = _validate.bool_arg("need_grad", need_grad)
    backend = _native.choose_backend(a.x)
    if backend == "cuda":
        if y_out is not None:
            raise ValueError("y_out: host backends only")
        return forward_cuda(cell, [a], need_grad)[0]
    return forward_checked(cell, a, backend, need_grad, num_threads, y_out)


def forward_checked(cell, a, backend, need_grad, num_threads=None, y_out=None):
    """A host backend's forward of one direction whose arguments ``a`` come from
    _validate.forward_args -> (y, h_n, c_n, ctx) as ``forward``. y_out is checked here."""
    if a.batch == 0:
        y, h_n, c_n, ctx = _empty_forward(cell, a, backend, y_out)
        return y, h_n, c_n, ctx if need_grad else None
    if y_out is not None and not (isinstance(y_out, np.ndarray) and y_out.dtype == a.x.dtype
                                  and y_out.shape == (a.batch, a.steps, a.state) and y_out.flags.writeable
                                  and _validate.rows_evenly_spaced(y_out)):
        raise ValueError("y_out: expected a writable host array (B, T, H) of x's dtype (P for H with "
                         "projections), in C order or one side of a (B, T, 2H) one")
    if backend == "numpy":
        with np.errstate(all="ignore"):  # NaN and inf propagate quietly, as in the compiled kernels
            y, h_n, c_n, saved = _reference_forward(cell, a)
        if y_out is not None:
            y_out[...] = y
            y = y_out
    else:
        y, h_n, c_n, saved = allocate_forward(np, cell, a.batch, a.steps, a.hidden, a.x.dtype, y_out, need_grad,
                                              a.state)
        kernel = getattr(_native.core(), f"{cell}_forward")
        kernel(a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, a.h0, a.c0, a.lengths, a.recurrent_mask, a.reverse,
               ACTIVATION_CODE[a.nonlinearity], num_threads or _native.get_num_threads(), y, h_n, c_n, *saved, a.w_hr)
    if not need_grad:
        return y, h_n, c_n, None
    ctx = Context(cell, backend, a.x, a.w_ih, a.w_hh, a.lengths, a.recurrent_mask, a.reverse, a.nonlinearity,
                  saved, w_hr=a.w_hr)
    return y, h_n, c_n, ctx


def forward_cuda(cell, args, need_grad=True) -> list:
    """Checked directions ``args`` (from _validate.forward_args: one, or the two of a bidirectional
    layer, which the kernels run concurrently) -> [(y, h_n, c_n, Context)] per direction (the
    Context None if not ``need_grad``: the CUDA kernels save in every case, and it is dropped)."""
    if args[0].w_hr is not None:
        raise ValueError("w_hr: the CUDA kernels do not take projections yet; an LSTM with projections runs on "
                         "the host backends (NumPy arrays, the CPU kernels or the NumPy reference)")
    if args[0].batch == 0:
        results = [_empty_forward(cell, a, "cuda") for a in args]
    else:
        results = _gpu.forward(cell, args)
    return results if need_grad else [(y, h_n, c_n, None) for y, h_n, c_n, _ in results]


def _empty_forward(cell, a, backend, y_out=None):
    """An empty batch (B = 0), as torch.nn runs it: empty outputs and a context, no kernel call."""
    xp = array_module(a.x)
    with a.x.device if backend == "cuda" else contextlib.nullcontext():  # on x's GPU, not the current one
        y, h_n, c_n, saved = allocate_forward(xp, cell, 0, a.steps, a.hidden, a.x.dtype, y_out, R=a.state)
    return y, h_n, c_n, Context(cell, backend, a.x, a.w_ih, a.w_hh, a.lengths, a.recurrent_mask, a.reverse,
                                a.nonlinearity, saved, w_hr=a.w_hr)


def _empty_grads(cell, ctx, need_dx) -> Grads:
    """The gradients of an empty batch: zero-size dx, dh0 and dc0, zero weight gradients."""
    xp = array_module(ctx.x)
    with ctx.x.device if ctx.backend == "cuda" else contextlib.nullcontext():
        g = allocate_grads(xp, cell, ctx.x, ctx.w_ih, ctx.w_hh, need_dx, ctx.w_hr)
        for grad in (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh, g.dw_hr):
            if grad is not None:
                grad.fill(0)
    return g


def backward_cuda(cell, contexts, cotangents, need_dx=None) -> list:
    """Checked ``(dy, dh_n, dc_n)`` per forward Context of ``contexts`` (all from one forward_cuda
    call) -> [Grads] per direction, in one launch (dx None where ``need_dx`` says False)."""
    if contexts[0].x.shape[0] == 0:
        return [_empty_grads(cell, ctx, dx) for ctx, dx in zip(contexts, need_dx or [True] * len(contexts))]
    return _gpu.backward(cell, contexts, cotangents, need_dx)


def _reference_forward(cell, a):
    """-> y, h_n, c_n (None without a cell state), reference context. Each cell's reference takes
    c0 only if it has a cell state, and a nonlinearity only if it has a choice of them."""
    extra = {}
    if CELLS[cell].has_cell_state:
        extra["c0"] = a.c0
    if a.w_hr is not None:
        extra["w_hr"] = a.w_hr
    if len(CELLS[cell].nonlinearities) > 1:
        extra["nonlinearity"] = a.nonlinearity
    out = getattr(reference, f"{cell}_forward")(a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, h0=a.h0, lengths=a.lengths,
                                                reverse=a.reverse, recurrent_mask=a.recurrent_mask, **extra)
    if CELLS[cell].has_cell_state:
        return out
    y, h_n, saved = out
    return y, h_n, None, saved


def backward(cell, ctx, dy, dh_n=None, dc_n=None, num_threads: Optional[int] = None, need_dx: bool = True) -> Grads:
    """need_dx=False: the input needs no gradient (a frozen embedding below); g.dx is then None, and
    the CPU kernels skip its GEMM."""
    dy, dh_n, dc_n = _validate.backward_args(cell, ctx, Context, dy, dh_n, dc_n)
    return backward_checked(cell, ctx, dy, dh_n, dc_n, num_threads, _validate.bool_arg("need_dx", need_dx))


def backward_checked(cell, ctx, dy, dh_n, dc_n, num_threads: Optional[int] = None, need_dx: bool = True) -> Grads:
    """``backward`` of cotangents checked by _validate.backward_args against ``ctx``."""
    if ctx.x.shape[0] == 0:
        return _empty_grads(cell, ctx, need_dx)
    if ctx.backend != "cpu":
        if ctx.backend == "cuda":
            g = backward_cuda(cell, [ctx], [(dy, dh_n, dc_n)], [need_dx])[0]
        else:
            extra = {"dc_n": dc_n} if CELLS[cell].has_cell_state else {}
            with np.errstate(all="ignore"):
                g = getattr(reference, f"{cell}_backward")(ctx.saved, dy, dh_n, **extra)
        if not need_dx:
            g.dx = None
        return g
    x, w_ih, w_hh = ctx.x, ctx.w_ih, ctx.w_hh
    g = allocate_grads(np, cell, x, w_ih, w_hh, need_dx, ctx.w_hr)
    kernel = getattr(_native.core(), f"{cell}_backward")
    kernel(x, w_ih, w_hh, ctx.lengths, ctx.recurrent_mask, ctx.reverse, ACTIVATION_CODE[ctx.nonlinearity],
           num_threads or _native.get_num_threads(), *ctx.saved, dy, dh_n, dc_n,
           g.dx, g.dw_ih, g.dw_hh, g.db_ih, g.db_hh, g.dh0, g.dc0, ctx.w_hr, g.dw_hr)
    return g
