"""The CUDA backend's Python side: CuPy outputs, raw pointers and the stream for ``fusedrnn._cuda``,
and the two switches of its kernels (path and TF32).

Everything runs on CuPy's current stream of the arrays' device, with no host synchronisation: the
caller-side allocations come from CuPy's stream-ordered memory pool, and the (B,) lengths, checked on
the host, reach the GPU by an asynchronous copy. The saved arrays have the CPU layout
(``_context.allocate_forward``), so the same Context serves any path of the backward.

Paths: "persistent" runs a whole sequence in one cooperative launch with ``w_hh`` kept on-chip
(small batches; not every shape fits), "steps" runs one recurrent GEMM and one fused gate kernel per
step, "auto" lets the kernels choose by shape. TF32: float32 GEMMs on tensor cores, about 1e-3
relative error instead of 1e-6; off unless asked for.
"""

from __future__ import annotations

import contextlib
import os

from . import _native
from ._context import ACTIVATION_CODE, Context, allocate_forward, allocate_grads

PATHS = ("auto", "persistent", "steps")

_path = None  # set by cuda_path(); None: FUSEDRNN_CUDA_PATH, else "auto"
_tf32 = None  # set by allow_tf32(); None: FUSEDRNN_TF32, else off


def _path_arg(name, path):
    if path not in PATHS:
        raise ValueError(f"{name}: expected one of {', '.join(PATHS)}, got {path!r}")
    return path


@contextlib.contextmanager
def cuda_path(path: str):
    """Inside the block the CUDA kernels take ``path``: "persistent", "steps" or "auto" (by shape).

    A forced "persistent" raises ValueError for a shape it does not support. Outside any block the
    path is FUSEDRNN_CUDA_PATH's, else "auto". Not thread-local: meant for tests and benchmarks."""
    global _path
    path = _path_arg("path", path)
    previous, _path = _path, path
    try:
        yield
    finally:
        _path = previous


def current_path() -> str:
    """The path the next CUDA op asks for."""
    if _path is not None:
        return _path
    return _path_arg("FUSEDRNN_CUDA_PATH", os.environ.get("FUSEDRNN_CUDA_PATH", "auto").strip().lower() or "auto")


def allow_tf32(enabled: bool = True) -> bool:
    """Lets the CUDA kernels' float32 GEMMs use TF32 (enabled=True) or not; returns the previous
    setting. Default: FUSEDRNN_TF32=1 turns it on, else off. float64 never uses it."""
    global _tf32
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled: expected a bool, got {type(enabled).__name__}")
    previous, _tf32 = tf32_enabled(), enabled
    return previous


def tf32_enabled() -> bool:
    if _tf32 is not None:
        return _tf32
    value = os.environ.get("FUSEDRNN_TF32", "0").strip().lower()
    if value not in ("0", "1", "false", "true", ""):
        raise ValueError(f"FUSEDRNN_TF32: expected 0 or 1, got {value!r}")
    return value in ("1", "true")


def _ptr(a) -> int:
    """The device address of a CuPy array, 0 for None."""
    return 0 if a is None else a.data.ptr


def _checked_path(module, cell, dtype, shape, directions):
    """The path to ask for; a forced "persistent" that the shape does not fit is a ValueError here."""
    path = current_path()
    if path == "persistent" and not module.persistent_supported(cell, dtype, *shape, directions):
        B, T, I, H = shape
        raise ValueError(f"path: 'persistent' does not support {cell} {dtype} with B={B}, T={T}, I={I}, H={H} "
                         f"and {directions} direction(s) on this GPU; use 'steps' or 'auto' "
                         "(fusedrnn.cuda_path, FUSEDRNN_CUDA_PATH)")
    return path


def _workspace(cupy, module, cell, dtype, shape, which):
    """(bytes,) uint8 scratch for one direction, from CuPy's pool; never empty (a size-0 array has no
    address, and the kernels take the pointer as given)."""
    return cupy.empty(max(1, module.workspace_bytes(cell, dtype, *shape, which)), cupy.uint8)


def forward(cell, args) -> list:
    """Checked directions ``args`` (one, or both of a bidirectional layer: one launch runs them
    concurrently), all of the same shape on one device -> [(y, h_n, c_n, Context)] per direction."""
    import cupy

    module = _native.cuda()
    first = args[0]
    dtype = first.x.dtype.name
    shape = (first.batch, first.steps, first.inputs, first.hidden)  # B, T, I, H
    with first.x.device:
        path = _checked_path(module, cell, dtype, shape, len(args))
        device_lengths = {}  # id(host lengths) -> device copy: directions given the same array share it
        results, directions, workspaces = [], [], []  # workspaces: held until the launch is queued
        for a in args:
            lengths = device_lengths.get(id(a.lengths))
            if lengths is None:
                lengths = device_lengths[id(a.lengths)] = cupy.asarray(a.lengths)  # (B,) int64
            y, h_n, c_n, saved = allocate_forward(cupy, cell, first.batch, first.steps, first.hidden, first.x.dtype)
            gates, aux, h_prev = saved
            workspaces.append(_workspace(cupy, module, cell, dtype, shape, "forward"))
            directions.append(dict(
                x=_ptr(a.x), w_ih=_ptr(a.w_ih), w_hh=_ptr(a.w_hh), b_ih=_ptr(a.b_ih), b_hh=_ptr(a.b_hh),
                h0=_ptr(a.h0), c0=_ptr(a.c0), lengths=_ptr(lengths), recurrent_mask=_ptr(a.recurrent_mask),
                y=_ptr(y), h_n=_ptr(h_n), c_n=_ptr(c_n), gates=_ptr(gates), aux=_ptr(aux), h_prev=_ptr(h_prev),
                workspace=_ptr(workspaces[-1]), reverse=a.reverse))
            ctx = Context(cell, "cuda", a.x, a.w_ih, a.w_hh, lengths, a.recurrent_mask, a.reverse, a.nonlinearity,
                          saved)
            results.append((y, h_n, c_n, ctx))
        used = module.forward(cell, dtype, *shape, ACTIVATION_CODE[first.nonlinearity], path, tf32_enabled(),
                              cupy.cuda.get_current_stream().ptr, directions)
    for result in results:
        result[3].path = used
    return results


def backward(cell, contexts, cotangents, need_dx=None) -> list:
    """One launch for the directions of one forward call: ``cotangents`` holds the checked
    (dy (B, T, H), dh_n (B, H) or None, dc_n (B, H) or None) of each Context -> [Grads].
    ``need_dx``: one bool per direction (default all True); False skips that direction's dx."""
    import cupy

    module = _native.cuda()
    first = contexts[0]
    x = first.x  # (B, T, I)
    dtype = x.dtype.name
    shape = (*x.shape, first.w_hh.shape[1])  # B, T, I, H
    with x.device:
        path = _checked_path(module, cell, dtype, shape, len(contexts))
        grads, directions, workspaces = [], [], []  # workspaces: held until the launch is queued
        for ctx, (dy, dh_n, dc_n), dx in zip(contexts, cotangents, need_dx or [True] * len(contexts)):
            g = allocate_grads(cupy, cell, ctx.x, ctx.w_ih, ctx.w_hh, dx)
            gates, aux, h_prev = ctx.saved
            workspaces.append(_workspace(cupy, module, cell, dtype, shape, "backward"))
            directions.append(dict(
                x=_ptr(ctx.x), w_ih=_ptr(ctx.w_ih), w_hh=_ptr(ctx.w_hh), lengths=_ptr(ctx.lengths),
                recurrent_mask=_ptr(ctx.recurrent_mask), gates=_ptr(gates), aux=_ptr(aux), h_prev=_ptr(h_prev),
                dy=_ptr(dy), dh_n=_ptr(dh_n), dc_n=_ptr(dc_n), dx=_ptr(g.dx), dw_ih=_ptr(g.dw_ih),
                dw_hh=_ptr(g.dw_hh), db_ih=_ptr(g.db_ih), db_hh=_ptr(g.db_hh), dh0=_ptr(g.dh0), dc0=_ptr(g.dc0),
                workspace=_ptr(workspaces[-1]), reverse=ctx.reverse))
            grads.append(g)
        module.backward(cell, dtype, *shape, ACTIVATION_CODE[first.nonlinearity], path, tf32_enabled(),
                        cupy.cuda.get_current_stream().ptr, directions)
    return grads
