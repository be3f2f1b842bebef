"""Stacked and bidirectional layers composed from the one-direction ops, with PyTorch's semantics.

Parameters come as a list of ``(w_ih, w_hh, b_ih, b_hh)`` in PyTorch's order (layer 0 forward,
layer 0 reverse, layer 1 forward, ...), with ``w_hr (P, H)`` fifth for an LSTM with projections
(whose h states and outputs then have P columns where H is written below, and c keeps H); states
as ``(num_layers * num_directions, B, H)``. The
output of a bidirectional layer is ``[forward, reverse]`` concatenated on the last axis. Dropout,
when training, applies to the outputs of every layer but the last (its masks come from the
counter-based generator of fusedrnn._dropout, so a seed gives the same masks on every backend). On
the CPU backend the two directions of a layer run at the same time, each on half of the threads; on
the CUDA backend they go to the kernels in one call, which runs them concurrently.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np

from . import _direction, _native, _validate
from ._cells import CELLS
from ._context import Context, StackContext
from ._context import saved_shapes as _direction_saved_shapes
from ._dropout import dropout_mask
from ._xp import array_module
from .grads import StackGrads

__all__ = ["StackContext", "stack_forward", "stack_backward", "forward_directions", "backward_directions",
           "share_output", "saved_arrays", "saved_shapes", "restore_context"]

_pool: Optional[ThreadPoolExecutor] = None
# The layout of stacked states in error messages: h and c; h with projections (True) has P columns.
_STATES = {False: "(num_layers*num_directions, B, H)", True: "(num_layers*num_directions, B, P)"}


def _run_directions(backend, jobs):
    """Runs the callables in ``jobs`` (one per direction) and returns their results in order.

    Each job takes the number of threads it may use."""
    threads = _native.get_num_threads()
    if len(jobs) == 1 or backend != "cpu" or threads < 2:
        return [job(threads) for job in jobs]
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusedrnn-direction")
    half = max(1, threads // 2)
    other = _pool.submit(jobs[1], threads - half)
    first = jobs[0](half)
    return [first, other.result()]


def forward_directions(cell, calls, wrap=None, checked=False):
    """Forward of one layer's directions: ``calls`` holds one dict of _direction.forward's keyword
    arguments per direction (1 or 2; the second is the reverse one) -> [(y, h_n, c_n, ctx)] in order.
    ``wrap(direction, fn, **kwargs)`` calls fn (e.g. to prefix argument errors with their origin).
    checked=True: x, lengths, h0, c0 and nonlinearity of the calls are checked already (stack_forward);
    each direction's own arguments are checked here, once, and the backend chosen once."""
    wrap = wrap or (lambda direction, fn, **kwargs: fn(**kwargs))
    need_grad = [call.get("need_grad", True) for call in calls]
    if not checked:
        need_grad = [_validate.bool_arg("need_grad", value) for value in need_grad]
    y_outs = [call.get("y_out") for call in calls]
    args = [wrap(d, _direction_args, cell=cell, call=call, checked=checked) for d, call in enumerate(calls)]
    backend = _native.choose_backend(args[0].x)
    if backend == "cuda":
        if any(y is not None for y in y_outs):
            raise ValueError("y_out: host backends only")
        return _direction.forward_cuda(cell, args, all(need_grad))
    if len(calls) == 1:  # most calls: no closure, no pool
        return [_direction.forward_checked(cell, args[0], backend, need_grad[0], None, y_outs[0])]
    return _run_directions(backend, [lambda n, d=d: wrap(d, _direction.forward_checked, cell=cell, a=args[d],
                                                         backend=backend, need_grad=need_grad[d], num_threads=n,
                                                         y_out=y_outs[d])
                                     for d in range(len(calls))])


def _direction_args(cell, call, checked):
    """_validate.forward_args of one direction's call dict (_direction.forward's keyword arguments;
    those left out take its defaults)."""
    get = call.get
    return _validate.forward_args(cell, call["x"], call["w_ih"], call["w_hh"], call["b_ih"], call["b_hh"],
                                  get("h0"), get("c0"), get("lengths"), get("reverse", False),
                                  get("nonlinearity", "tanh"), get("recurrent_mask"), checked, get("w_hr"))


def share_output(calls):
    """Two host directions' outputs as the halves of one (B, T, 2H) array: sets each call's ``y_out``
    to its half and returns the array, so that no concatenation follows. None where the kernels
    cannot write in place (GPU arrays, one direction) or the arguments are malformed (the calls'
    validation reports what is wrong)."""
    x, w_hh = calls[0]["x"], calls[0]["w_hh"]
    if not (len(calls) == 2 and isinstance(x, np.ndarray) and x.ndim == 3 and isinstance(w_hh, np.ndarray)
            and w_hh.ndim == 2 and getattr(calls[1]["w_hh"], "shape", None) == w_hh.shape):
        return None
    hidden = w_hh.shape[1]
    y = np.empty(x.shape[:2] + (2 * hidden,), x.dtype)
    for d, call in enumerate(calls):
        call["y_out"] = y[..., d * hidden:(d + 1) * hidden]
    return y


def backward_directions(cell, contexts, cotangents, need_dx=None, checked=False):
    """Backward of the directions of one forward_directions call: ``cotangents`` holds (dy (B, T, H),
    dh_n (B, H) or None, dc_n (B, H) or None) per Context -> [Grads]. ``need_dx``: one bool per
    direction (default all True); False leaves that direction's dx None. checked=True: the
    cotangents are parts of arguments stack_backward has checked."""
    backend = contexts[0].backend
    need_dx = ([True] * len(contexts) if need_dx is None else list(need_dx) if checked
               else [_validate.bool_arg("need_dx", dx) for dx in need_dx])
    cotangents = [_validate.backward_args(cell, ctx, Context, *cot, checked=checked)
                  for ctx, cot in zip(contexts, cotangents)]
    if backend == "cuda":
        return _direction.backward_cuda(cell, contexts, cotangents, need_dx)
    return _run_directions(backend, [lambda n, ctx=ctx, cot=cot, dx=dx: _direction.backward_checked(
                                         cell, ctx, *cot, num_threads=n, need_dx=dx)
                                     for ctx, cot, dx in zip(contexts, cotangents, need_dx)])


def _int_arg(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: must be at least {minimum}, got {value}")
    return int(value)


def _params_arg(params, count, info):
    """Checks the list structure and that every entry has the same H and P -> (H, R): R = P with
    projections (every entry has w_hr), else H."""
    lengths = (4, 5) if info.projectable else (4,)  # entries' allowed sizes
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"params: expected a list of {_entry(info)}, got {type(params).__name__}")
    if len(params) != count:
        raise ValueError(f"params: expected num_layers * num_directions = {count} entries, got {len(params)}")
    sizes = None
    for k, p in enumerate(params):
        if not isinstance(p, (list, tuple)) or len(p) not in lengths:
            raise TypeError(f"params[{k}]: expected a tuple {_entry(info)}")
        if len(p) != len(params[0]):
            raise ValueError(f"params[{k}]: {len(p)} arrays, params[0] has {len(params[0])}; every layer and "
                             "direction has projections (w_hr) or none has")
        w_hh, projected = p[1], len(p) == 5
        if not _validate.is_array(w_hh) or w_hh.ndim != 2:
            raise TypeError(f"params[{k}]: w_hh must be a 2-D array ({info.gates}*H, H)")
        if projected and (not _validate.is_array(p[4]) or p[4].ndim != 2):
            raise TypeError(f"params[{k}]: w_hr must be a 2-D array (P, H)")
        # (H, R); w_hh (G*H, R) of the entries is checked against w_hr with each direction's arguments
        entry_sizes = (p[4].shape[1], p[4].shape[0]) if projected else (w_hh.shape[1], w_hh.shape[1])
        if sizes is not None and entry_sizes != sizes:
            if projected:
                raise ValueError(f"params[{k}]: (H, P) = {entry_sizes}, params[0] has {sizes}; every layer and "
                                 "direction must have the same hidden and projection sizes")
            raise ValueError(f"params[{k}]: w_hh has H = {entry_sizes[0]}, params[0] has H = {sizes[0]}; "
                             "every layer and direction must have the same hidden size")
        sizes = entry_sizes
    return sizes


def _entry(info) -> str:
    """What a params entry of cell ``info`` may be, for error messages."""
    return "(w_ih, w_hh, b_ih, b_hh)" + (" or (w_ih, w_hh, b_ih, b_hh, w_hr)" if info.projectable else "")


def _dropout_arg(dropout):
    if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, (int, float, np.integer, np.floating)):
        raise TypeError(f"dropout: expected a number in [0, 1), got {type(dropout).__name__}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: expected a number in [0, 1), got {dropout!r}")
    return float(dropout)


def _seed_arg(seed):
    if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed: expected None or a non-negative int, got {type(seed).__name__}")
    if seed is not None and seed < 0:
        raise ValueError(f"seed: expected None or a non-negative int, got {seed}")
    return seed


def _in_params(k, layer, direction, fn, *args, **kwargs):
    """Calls fn, prefixing argument errors with the params entry they come from."""
    try:
        return fn(*args, **kwargs)
    except (TypeError, ValueError) as error:
        side = "reverse" if direction else "forward"
        raise type(error)(f"params[{k}] (layer {layer}, {side}): {error}") from None


def stack_forward(cell, x, params, h0=None, c0=None, lengths=None, num_layers=1, bidirectional=False,
                  dropout=0.0, training=True, seed=None, nonlinearity="tanh", need_grad=True, dropout_masks=None):
    """-> y (B, T, D*R), h_n (L*D, B, R), c_n (L*D, B, H) or None, StackContext (None when not
    ``need_grad``: an inference forward, whose CPU kernels save nothing for a backward). R = H, or
    P for an LSTM with projections (params entries of five arrays).

    dropout_masks: num_layers - 1 arrays (B, T, D*H), the multipliers of the layers' outputs (0 or
    1/(1-p)), drawn by the caller (fusedrnn.torch draws them from torch's generator); they replace
    ``dropout``, ``training`` and ``seed``."""
    info = CELLS[cell]
    num_layers = _int_arg("num_layers", num_layers, 1)
    bidirectional = _validate.bool_arg("bidirectional", bidirectional)
    training = _validate.bool_arg("training", training)
    dropout = _dropout_arg(dropout)
    D = 2 if bidirectional else 1
    hidden, state = _params_arg(params, num_layers * D, info)
    projected = len(params[0]) == 5
    x = _validate.x_arg(x)
    xp = array_module(x)
    batch, steps, _ = x.shape
    lengths = _validate.lengths_arg(lengths, batch, steps)  # once for every layer and direction
    h0 = _validate.optional_array_arg("h0", h0, (num_layers * D, batch, state), _STATES[projected], x.dtype, x)
    if info.has_cell_state:
        c0 = _validate.optional_array_arg("c0", c0, (num_layers * D, batch, hidden), _STATES[False], x.dtype, x)
    else:
        c0 = None
    nonlinearity = _validate.nonlinearity_arg(cell, nonlinearity)
    need_grad = _validate.bool_arg("need_grad", need_grad)
    dropout_masks = _masks_arg(dropout_masks, num_layers, (batch, steps, D * state), x)
    seed = _seed_arg(seed)
    draws = training and dropout > 0.0 and num_layers > 1 and dropout_masks is None
    rng = np.random.default_rng(seed) if draws else None  # a Generator costs ~10 us: only where masks are drawn

    contexts, masks, h_n, c_n = [], [], [], []
    layer_input = x
    for layer in range(num_layers):
        def wrap(direction, fn, layer=layer, **kwargs):
            return _in_params(layer * D + direction, layer, direction, fn, **kwargs)
        calls = [dict(x=layer_input, w_ih=params[k][0], w_hh=params[k][1], b_ih=params[k][2], b_hh=params[k][3],
                      h0=None if h0 is None else h0[k], c0=None if c0 is None else c0[k], lengths=lengths,
                      reverse=bool(k % D), nonlinearity=nonlinearity, need_grad=need_grad,
                      w_hr=params[k][4] if projected else None)
                 for k in range(layer * D, (layer + 1) * D)]
        y = share_output(calls) if D == 2 else None
        results = forward_directions(cell, calls, wrap, checked=True)
        if y is None:
            y = results[0][0] if D == 1 else xp.concatenate([r[0] for r in results], axis=-1)
        for _, hn, cn, ctx in results:
            h_n.append(hn)
            c_n.append(cn)
            if need_grad:
                contexts.append(ctx)
        mask = None
        if dropout_masks is not None and layer < num_layers - 1:
            mask = dropout_masks[layer]
        elif draws and layer < num_layers - 1:
            mask = dropout_mask(xp, y.shape, dropout, rng, y.dtype)
        if mask is not None:
            y = y * mask
        masks.append(mask)
        layer_input = y
    ctx = StackContext(cell, num_layers, D, state, contexts, masks) if need_grad else None
    return layer_input, _stacked(xp, h_n), _stacked(xp, c_n) if info.has_cell_state else None, ctx


def _stacked(xp, states):
    """The (B, H) states of the layers and directions as one (L*D, B, H) array; one is viewed so,
    not copied (np.stack costs microseconds that a one-layer call notices)."""
    return states[0][None] if len(states) == 1 else xp.stack(states)


def _masks_arg(masks, num_layers, shape, x):
    """None, or num_layers - 1 arrays ``shape`` (B, T, D*H) of x's dtype and device, in C order."""
    if masks is None:
        return None
    if not isinstance(masks, (list, tuple)):
        raise TypeError(f"dropout_masks: expected None or a list of arrays, got {type(masks).__name__}")
    if len(masks) != num_layers - 1:
        raise ValueError(f"dropout_masks: expected num_layers - 1 = {num_layers - 1} arrays, got {len(masks)}")
    return [_validate.optional_array_arg(f"dropout_masks[{k}]", m, shape, "(B, T, D*H)", x.dtype, x)
            for k, m in enumerate(masks)]


def saved_arrays(ctx: StackContext) -> list:
    """The arrays a native StackContext holds besides the forward's arguments, flat: gates, aux and
    h_prev of every direction in params' order, then the input of every layer after the first. With
    the forward's arguments, restore_context rebuilds the context from them: for frameworks that keep
    only arrays between a forward and its backward (fusedrnn.torch)."""
    if ctx.contexts[0].backend == "numpy":
        raise RuntimeError("saved_arrays: the NumPy reference keeps a context of its own; "
                           "this needs the compiled CPU module or the CUDA one")
    arrays = [a for c in ctx.contexts for a in c.saved]
    return arrays + [ctx.contexts[layer * ctx.num_directions].x for layer in range(1, ctx.num_layers)]


def saved_shapes(cell, batch, steps, hidden, num_layers, bidirectional, proj_size=0) -> list:
    """The shapes of saved_arrays' arrays for a forward of these sizes (x (B, T, .), H, and P =
    proj_size for an LSTM with projections)."""
    D = 2 if bidirectional else 1
    state = proj_size or hidden
    per_direction = _direction_saved_shapes(cell, batch, steps, hidden, state)
    return per_direction * (num_layers * D) + [(batch, steps, D * state)] * (num_layers - 1)


def restore_context(cell, x, params, lengths, masks, saved, num_layers, bidirectional, nonlinearity) -> StackContext:
    """The StackContext of a forward with these arguments (all as the forward took them: x (B, T, I),
    params, lengths (B,) or None, masks: the dropout multipliers, num_layers - 1 arrays or None) and
    the arrays ``saved_arrays`` gave for it."""
    D = 2 if bidirectional else 1
    backend = _native.choose_backend(x)
    batch, steps, _ = x.shape
    lengths = _validate.lengths_arg(lengths, batch, steps)
    if backend == "cuda":
        import cupy

        with x.device:
            lengths = cupy.asarray(lengths)
    count = num_layers * D
    inputs = [_validate.contiguous(x)] + list(saved[3 * count:])  # each layer's input (B, T, I or D*H)
    contexts = [Context(cell, backend, inputs[k // D], _validate.contiguous(params[k][0]),
                        _validate.contiguous(params[k][1]), lengths, None, bool(k % D), nonlinearity,
                        tuple(saved[3 * k:3 * k + 3]),
                        w_hr=_validate.contiguous(params[k][4]) if len(params[k]) == 5 else None)
                for k in range(count)]
    masks = (list(masks) if masks else [None] * (num_layers - 1)) + [None]  # none after the last layer
    return StackContext(cell, num_layers, D, params[0][1].shape[1], contexts, masks)


def stack_backward(ctx, dy, dh_n=None, dc_n=None, need_dx=True) -> StackGrads:
    """dy (B, T, D*R), dh_n (L*D, B, R), dc_n (L*D, B, H) or None -> StackGrads (R = P with
    projections, else H). need_dx=False: the input needs no gradient; g.dx is then None and the
    first layer skips its GEMM."""
    if ctx is None:
        raise TypeError("ctx: None, the forward ran with need_grad=False and kept nothing for a backward")
    if not isinstance(ctx, StackContext):
        raise TypeError(f"ctx: expected the ctx returned by ops.lstm/gru/rnn, got {type(ctx).__name__}")
    first = ctx.contexts[0]
    batch, steps, _ = first.x.shape
    D, H = ctx.num_directions, ctx.hidden  # H here is R: P with projections
    projected = first.w_hr is not None
    dtype = first.x.dtype
    layout = "(B, T, D*P)" if projected else "(B, T, D*H)"
    dy = _validate.array_arg("dy", dy, 3, layout, dtype, first.x)
    _validate.expect_shape("dy", dy, (batch, steps, D * H), layout)
    states = (ctx.num_layers * D, batch, H)
    dh_n = _validate.optional_array_arg("dh_n", dh_n, states, _STATES[projected], dtype, first.x)
    info = CELLS[ctx.cell]
    cell_states = (ctx.num_layers * D, batch, first.w_hh.shape[0] // info.gates) if projected else states
    if info.has_cell_state:
        dc_n = _validate.optional_array_arg("dc_n", dc_n, cell_states, _STATES[False], dtype, first.x)
    need_dx = _validate.bool_arg("need_dx", need_dx)
    xp = array_module(first.x)

    params = [None] * len(ctx.contexts)
    dh0 = xp.empty(states, dtype)
    dc0 = xp.empty(cell_states, dtype) if info.has_cell_state else None
    d_out = dy
    for layer in reversed(range(ctx.num_layers)):
        if ctx.masks[layer] is not None:
            d_out = d_out * ctx.masks[layer]
        ks = range(layer * D, (layer + 1) * D)
        cotangents = [(d_out[..., d * H:(d + 1) * H],  # this direction's part of dy (a view; copied if needed)
                       None if dh_n is None else dh_n[k], None if dc_n is None else dc_n[k]) for d, k in enumerate(ks)]
        grads = backward_directions(ctx.cell, [ctx.contexts[k] for k in ks], cotangents,
                                    [need_dx or layer > 0] * D, checked=True)
        for k, g in zip(ks, grads):
            params[k] = ((g.dw_ih, g.dw_hh, g.db_ih, g.db_hh) if g.dw_hr is None
                         else (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh, g.dw_hr))
            dh0[k] = g.dh0
            if dc0 is not None:
                dc0[k] = g.dc0
        if layer > 0 or need_dx:
            d_out = grads[0].dx if D == 1 else grads[0].dx + grads[1].dx
        else:
            d_out = None
    return StackGrads(dx=d_out, params=params, dh0=dh0, dc0=dc0)
