"""The op API: fused recurrent layers over whole sequences, forward and backward-through-time.

One direction (ARCHITECTURE.md, "The op API and its contract")::

    y, h_n, c_n, ctx = lstm_forward(x, w_ih, w_hh, b_ih, b_hh, h0=None, c0=None, lengths=None, reverse=False,
                                    recurrent_mask=None, need_grad=True, w_hr=None)
    g = lstm_backward(ctx, dy, dh_n=None, dc_n=None)   # g.dx g.dw_ih g.dw_hh g.db_ih g.db_hh g.dh0 g.dc0 (g.dw_hr)
    y, h_n, ctx = gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0=None, lengths=None, reverse=False)
    g = gru_backward(ctx, dy, dh_n=None)
    y, h_n, ctx = rnn_forward(x, w_ih, w_hh, b_ih, b_hh, h0=None, lengths=None, reverse=False, nonlinearity="tanh")
    g = rnn_backward(ctx, dy, dh_n=None)

Stacked and bidirectional, PyTorch's semantics (params in torch's order, states (L*D, B, H))::

    y, h_n, c_n, ctx = lstm(x, params, h0=None, c0=None, lengths=None, num_layers=1, bidirectional=False,
                            dropout=0.0, training=True, seed=None, need_grad=True, dropout_masks=None)
    y, h_n, ctx = gru(x, params, h0=None, lengths=None, ...)
    y, h_n, ctx = rnn(x, params, h0=None, lengths=None, ..., nonlinearity="tanh")
    g = stack_backward(ctx, dy, dh_n=None, dc_n=None, need_dx=True)   # g.dx, g.params[k] = (dw_ih, dw_hh, db_ih, db_hh), g.dh0, g.dc0

LSTM with projections (torch's ``proj_size``; host backends: the CPU kernels and the NumPy
reference): ``w_hr (P, H)`` makes the state and output ``h = (o * tanh c) W_hr^T`` of size P. Then
``w_hh`` is ``(4*H, P)``; ``h0``, ``h_n``, ``dh_n``, ``dh0`` are ``(B, P)`` and ``y``, ``dy`` ``(B, T, P)``;
``c`` stays ``(B, H)``; the backward adds ``g.dw_hr (P, H)``. Stacked, each params entry is
``(w_ih, w_hh, b_ih, b_hh, w_hr)`` (torch's order of ``weight_hr_l{k}``) and its gradient entry has
``dw_hr`` fifth. ``recurrent_mask`` is refused with projections; so are GPU arrays (ValueError).

``need_grad=False`` (inference), on every forward op: the context is None and, on the CPU, the
kernels save nothing for a backward (no gates, cell states or previous states of size T); the
outputs are bitwise those of the training forward. (The CUDA kernels still write those arrays;
the op drops them at once.) ``dropout_masks``: the caller's dropout
multipliers for the outputs of every layer but the last (num_layers - 1 arrays (B, T, D*H)), used
instead of drawing them from ``seed``. ``need_dx=False``: x needs no gradient, g.dx is None.
For frameworks that keep only arrays between a forward and its backward (fusedrnn.torch)::

    arrays = saved_arrays(ctx)            # flat list of the context's own arrays, shaped as
                                          # saved_shapes(cell, B, T, H, num_layers, bidirectional, proj_size=0)
    ctx = restore_context(cell, x, params, lengths, dropout_masks, arrays, num_layers, bidirectional, nonlinearity)

By cell name, for code that serves every cell (``CELLS`` lists them, ``cell_info(name)`` gives a
cell's facts: gates, cell state, torch and Keras names)::

    y, h_n, c_n, ctx = forward(cell, x, w_ih, w_hh, b_ih, b_hh, ...)   # c_n None without a cell state
    g = backward(ctx, dy, dh_n=None, dc_n=None, need_dx=True)
    y, h_n, c_n, ctx = stack_forward(cell, x, params, ...)             # lstm/gru/rnn by name
    y, results = layer_forward(cell, directions, share_output=False)   # one layer's 1 or 2 directions
    grads = layer_backward(contexts, cotangents, need_dx=None)

Shapes: x (B, T, I); h0, c0, h_n, c_n (B, H); y (B, T, H); w_ih (G*H, I); w_hh (G*H, H);
b_ih, b_hh (G*H,) with G = 4 (LSTM, gates i f g o), 3 (GRU, r z n), 1 (RNN). ``lengths (B,)``:
integers in 1..T; steps past a row's length give zeros in y and leave its state unchanged, and a
reverse pass starts at the row's last valid step. ``recurrent_mask (B, H)``, optional: W_hh sees
``h * mask`` at every step (variational recurrent dropout, Keras's ``recurrent_dropout``); the
state itself is not masked. ``None`` gradients mean zero.
B = 0 is an empty batch, as in torch.nn: empty outputs, a zero-size dx and zero weight gradients
(T = 0 is an error). float32 and float64; every array of a call has the same dtype. Invalid arguments raise
``TypeError`` or ``ValueError`` naming the argument. NaN and inf propagate through valid steps.
The forward keeps references to x and the weights for the backward: do not change them in place
in between. Backend: NumPy arrays run on the compiled CPU kernels (the NumPy reference when the
module is missing, with a warning), or as FUSEDRNN_BACKEND=numpy|cpu says.

GPU: CuPy arrays (or any with ``__cuda_array_interface__`` or a CUDA DLPack capsule, taken as CuPy
views) run on the CUDA kernels and give CuPy outputs; every array of a call must be on x's device
(a NumPy array among CuPy ones is a TypeError naming it). ``lengths`` may be NumPy (checked on the
host, then copied to the GPU asynchronously) or CuPy (copied to the host for the range check: a
synchronisation, so prefer NumPy). Work is queued on CuPy's current stream; nothing waits for the
GPU. FUSEDRNN_BACKEND=cuda makes host arrays an error instead of running them on the CPU; a
missing CUDA module, CuPy or device is a RuntimeError saying which. Two switches, for tests and
benchmarks: ``with fusedrnn.cuda_path("persistent" | "steps" | "auto"):`` forces the kernels' path
(also FUSEDRNN_CUDA_PATH; a forced "persistent" on a shape it does not fit is a ValueError), and
``fusedrnn.allow_tf32(True)`` (or FUSEDRNN_TF32=1) lets float32 GEMMs use TF32 (relative error
about 1e-3 instead of 1e-6; off by default). A bidirectional layer's two directions go to the GPU
in one call, which runs them concurrently.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import _direction, _native, _stack, _validate
from ._cells import CELLS as _CELLS
from ._cells import Cell
from ._cells import cell as _cell
from ._context import Context, StackContext
from ._typing import Array, ArrayLike, ParamsLike
from .grads import Grads, StackGrads

__all__ = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "rnn_forward", "rnn_backward",
           "lstm", "gru", "rnn", "stack_backward", "saved_arrays", "saved_shapes", "restore_context", "Grads",
           "StackGrads",
           "forward", "backward", "stack_forward", "layer_forward", "layer_backward", "CELLS", "Cell", "cell_info",
           "Context", "StackContext", "check_lengths", "is_device_array", "as_array", "require_cuda"]

# name -> Cell: the registered cells and their facts (read only; fusedrnn._cells is the table).
CELLS: Mapping[str, Cell] = _CELLS


def cell_info(name: str) -> Cell:
    """The facts of cell ``name`` (gates G, aux A, has_cell_state, projectable, nonlinearities,
    torch_class, keras_class, ...); ValueError naming the known cells for anything else."""
    return _cell(name)


def lstm_forward(x: Array, w_ih: Array, w_hh: Array, b_ih: Array, b_hh: Array, h0: Optional[Array] = None,
                 c0: Optional[Array] = None, lengths: Optional[ArrayLike] = None, reverse: bool = False,
                 recurrent_mask: Optional[Array] = None,
                 need_grad: bool = True, w_hr: Optional[Array] = None) -> Tuple[Array, Array, Array, Optional[Context]]:
    """-> y (B, T, R), h_n (B, R), c_n (B, H), ctx (None if not need_grad); R = H, or P given
    projections w_hr (P, H) (then w_hh (4*H, P), h0 (B, P))."""
    return _direction.forward("lstm", x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse,
                              recurrent_mask=recurrent_mask, need_grad=need_grad, w_hr=w_hr)


def lstm_backward(ctx: Context, dy: Array, dh_n: Optional[Array] = None, dc_n: Optional[Array] = None,
                  need_dx: bool = True) -> Grads:
    """dy (B, T, R); dh_n (B, R), dc_n (B, H) or None -> Grads with dc0, and dw_hr (P, H) given
    projections (dx None if not need_dx)."""
    return _direction.backward("lstm", ctx, dy, dh_n, dc_n, need_dx=need_dx)


def gru_forward(x: Array, w_ih: Array, w_hh: Array, b_ih: Array, b_hh: Array, h0: Optional[Array] = None,
                lengths: Optional[ArrayLike] = None, reverse: bool = False, recurrent_mask: Optional[Array] = None,
                need_grad: bool = True) -> Tuple[Array, Array, Optional[Context]]:
    """-> y (B, T, H), h_n (B, H), ctx (None if not need_grad)."""
    y, h_n, _, ctx = _direction.forward("gru", x, w_ih, w_hh, b_ih, b_hh, h0, None, lengths, reverse,
                                        recurrent_mask=recurrent_mask, need_grad=need_grad)
    return y, h_n, ctx


def gru_backward(ctx: Context, dy: Array, dh_n: Optional[Array] = None, need_dx: bool = True) -> Grads:
    """dy (B, T, H); dh_n (B, H) or None -> Grads (dx None if not need_dx)."""
    return _direction.backward("gru", ctx, dy, dh_n, need_dx=need_dx)


def rnn_forward(x: Array, w_ih: Array, w_hh: Array, b_ih: Array, b_hh: Array, h0: Optional[Array] = None,
                lengths: Optional[ArrayLike] = None, reverse: bool = False, nonlinearity: str = "tanh",
                recurrent_mask: Optional[Array] = None,
                need_grad: bool = True) -> Tuple[Array, Array, Optional[Context]]:
    """-> y (B, T, H), h_n (B, H), ctx (None if not need_grad). nonlinearity: "tanh" or "relu"."""
    y, h_n, _, ctx = _direction.forward("rnn", x, w_ih, w_hh, b_ih, b_hh, h0, None, lengths, reverse,
                                        nonlinearity, recurrent_mask=recurrent_mask, need_grad=need_grad)
    return y, h_n, ctx


def rnn_backward(ctx: Context, dy: Array, dh_n: Optional[Array] = None, need_dx: bool = True) -> Grads:
    """dy (B, T, H); dh_n (B, H) or None -> Grads (dx None if not need_dx)."""
    return _direction.backward("rnn", ctx, dy, dh_n, need_dx=need_dx)


def forward(cell: str, x: Array, w_ih: Array, w_hh: Array, b_ih: Array, b_hh: Array, h0: Optional[Array] = None,
            c0: Optional[Array] = None, lengths: Optional[ArrayLike] = None, reverse: bool = False,
            nonlinearity: str = "tanh", recurrent_mask: Optional[Array] = None,
            need_grad: bool = True, w_hr: Optional[Array] = None,
            ) -> Tuple[Array, Array, Optional[Array], Optional[Context]]:
    """One direction of cell ``cell`` -> y (B, T, H), h_n (B, H), c_n (B, H) (None without a cell
    state), ctx (None if not need_grad). c0 is read only by a cell with a cell state; w_hr (P, H)
    only by a projectable one (ValueError for another)."""
    info = _cell(cell)
    return _direction.forward(cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0 if info.has_cell_state else None, lengths,
                              reverse, nonlinearity, recurrent_mask=recurrent_mask, need_grad=need_grad, w_hr=w_hr)


def backward(ctx: Context, dy: Array, dh_n: Optional[Array] = None, dc_n: Optional[Array] = None,
             need_dx: bool = True) -> Grads:
    """The backward of ``forward`` (or of any one-direction forward): dy (B, T, H); dh_n, dc_n (B, H)
    or None (dc_n read only by a cell with a cell state) -> Grads (dx None if not need_dx)."""
    if ctx is None:
        raise TypeError("ctx: None, the forward ran with need_grad=False and kept nothing for a backward")
    if not isinstance(ctx, Context):
        raise TypeError(f"ctx: expected the ctx of a one-direction forward, got {type(ctx).__name__}")
    has_cell_state = _CELLS[ctx.cell].has_cell_state
    return _direction.backward(ctx.cell, ctx, dy, dh_n, dc_n if has_cell_state else None, need_dx=need_dx)


def lstm(x: Array, params: Sequence[ParamsLike], h0: Optional[Array] = None, c0: Optional[Array] = None,
         lengths: Optional[ArrayLike] = None, num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
         training: bool = True, seed: Optional[int] = None, need_grad: bool = True,
         dropout_masks: Optional[Sequence[Array]] = None,
         ) -> Tuple[Array, Array, Array, Optional[StackContext]]:
    """-> y (B, T, D*H), h_n (L*D, B, H), c_n (L*D, B, H), ctx for stack_backward (None if not need_grad)."""
    return _stack.stack_forward("lstm", x, params, h0, c0, lengths, num_layers, bidirectional, dropout,
                                training, seed, need_grad=need_grad, dropout_masks=dropout_masks)


def gru(x: Array, params: Sequence[ParamsLike], h0: Optional[Array] = None, lengths: Optional[ArrayLike] = None,
        num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0, training: bool = True,
        seed: Optional[int] = None, need_grad: bool = True,
        dropout_masks: Optional[Sequence[Array]] = None) -> Tuple[Array, Array, Optional[StackContext]]:
    """-> y (B, T, D*H), h_n (L*D, B, H), ctx for stack_backward (None if not need_grad)."""
    y, h_n, _, ctx = _stack.stack_forward("gru", x, params, h0, None, lengths, num_layers, bidirectional,
                                          dropout, training, seed, need_grad=need_grad, dropout_masks=dropout_masks)
    return y, h_n, ctx


def rnn(x: Array, params: Sequence[ParamsLike], h0: Optional[Array] = None, lengths: Optional[ArrayLike] = None,
        num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0, training: bool = True,
        seed: Optional[int] = None, nonlinearity: str = "tanh", need_grad: bool = True,
        dropout_masks: Optional[Sequence[Array]] = None) -> Tuple[Array, Array, Optional[StackContext]]:
    """-> y (B, T, D*H), h_n (L*D, B, H), ctx for stack_backward (None if not need_grad)."""
    y, h_n, _, ctx = _stack.stack_forward("rnn", x, params, h0, None, lengths, num_layers, bidirectional,
                                          dropout, training, seed, nonlinearity, need_grad, dropout_masks)
    return y, h_n, ctx


def stack_forward(cell: str, x: Array, params: Sequence[ParamsLike], h0: Optional[Array] = None,
                  c0: Optional[Array] = None, lengths: Optional[ArrayLike] = None, num_layers: int = 1,
                  bidirectional: bool = False, dropout: float = 0.0, training: bool = True, seed: Optional[int] = None,
                  nonlinearity: str = "tanh", need_grad: bool = True, dropout_masks: Optional[Sequence[Array]] = None,
                  ) -> Tuple[Array, Array, Optional[Array], Optional[StackContext]]:
    """lstm/gru/rnn by name -> y (B, T, D*H), h_n (L*D, B, H), c_n (L*D, B, H) (None without a cell
    state), ctx for stack_backward (None if not need_grad). c0 is read only by a cell with a cell state."""
    info = _cell(cell)
    return _stack.stack_forward(cell, x, params, h0, c0 if info.has_cell_state else None, lengths, num_layers,
                                bidirectional, dropout, training, seed, nonlinearity, need_grad, dropout_masks)


def stack_backward(ctx: StackContext, dy: Array, dh_n: Optional[Array] = None,
                   dc_n: Optional[Array] = None, need_dx: bool = True) -> StackGrads:
    """dy (B, T, D*H); dh_n, dc_n (L*D, B, H) or None -> StackGrads (dx None if not need_dx)."""
    return _stack.stack_backward(ctx, dy, dh_n, dc_n, need_dx)


def layer_forward(cell: str, directions: Sequence[Dict[str, Any]], share_output: bool = False,
                  ) -> Tuple[Optional[Array], List[Tuple[Array, Array, Optional[Array], Optional[Context]]]]:
    """One layer's directions at once: ``directions`` holds one dict of ``forward``'s keyword
    arguments (x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse, nonlinearity, recurrent_mask,
    need_grad) per direction, 1 or 2 (the second the reverse one, which may have its own x and mask).
    On the CPU two directions run at the same time on half of the threads each; on the GPU they go to
    the kernels in one call. -> (y, [(y_d (B, T, H), h_n (B, H), c_n (B, H) or None, ctx) per direction]).

    share_output=True, two host directions of one H: they write their halves of one y (B, T, 2H),
    returned first, so that no concatenation follows; y is None where that cannot be (GPU arrays)."""
    info = _cell(cell)
    calls = [dict(d) for d in directions]
    for call in calls:
        if not info.has_cell_state:
            call["c0"] = None  # read only by a cell with a cell state
        if "y_out" in call:
            raise TypeError("directions: y_out is not an argument of layer_forward (see share_output)")
    y = _stack.share_output(calls) if share_output else None
    return y, _stack.forward_directions(cell, calls)


def layer_backward(contexts: Sequence[Context], cotangents: Sequence[Tuple[Array, Optional[Array], Optional[Array]]],
                   need_dx: Optional[Sequence[bool]] = None) -> List[Grads]:
    """The backward of one layer_forward call: ``cotangents`` holds (dy (B, T, H), dh_n (B, H) or
    None, dc_n (B, H) or None) per context; ``need_dx`` one bool per direction (default all True),
    False leaving that direction's dx None -> [Grads] per direction, run as layer_forward ran them."""
    if not contexts or not all(isinstance(ctx, Context) for ctx in contexts):
        raise TypeError("contexts: expected the contexts returned by layer_forward")
    return _stack.backward_directions(contexts[0].cell, list(contexts), list(cotangents), need_dx)


def check_lengths(lengths: Optional[ArrayLike], batch: int, steps: int) -> Array:
    """The ops' check of ``lengths``: (B,) int64 on the host, each in 1..T (all T when None);
    TypeError or ValueError naming ``lengths`` otherwise. GPU lengths are copied to the host."""
    return _validate.lengths_arg(lengths, batch, steps)


def is_device_array(x: Any) -> bool:
    """True for a CuPy array or any object CuPy can take without a copy (__cuda_array_interface__,
    a CUDA DLPack capsule): what the ops run on the CUDA backend."""
    return _native.is_device_array(x)


def as_array(name: str, a: Any) -> Any:
    """``a`` as the ops take it: NumPy and CuPy arrays as they are, another library's GPU array as a
    CuPy view (RuntimeError naming ``name`` where CuPy is missing), anything else unchanged."""
    return _validate.as_array(name, a)


def require_cuda() -> None:
    """Nothing if the CUDA backend can run (module built, CuPy importable, a device visible); else
    RuntimeError saying what is missing."""
    _native.cuda()


# saved_arrays(ctx) -> [Array];
# saved_shapes(cell, batch, steps, hidden, num_layers, bidirectional, proj_size=0) -> [shape];
# restore_context(cell, x, params, lengths, masks, saved, num_layers, bidirectional, nonlinearity) -> StackContext
saved_arrays: Callable[[StackContext], List[Array]] = _stack.saved_arrays
saved_shapes: Callable[..., List[Tuple[int, ...]]] = _stack.saved_shapes
restore_context: Callable[..., StackContext] = _stack.restore_context
