"""The stacked recurrent layer as a differentiable torch operation, over ``fusedrnn.ops``.

Two entries share one implementation (``forward``, ``restore`` and ``backward`` below):

- eager calls go through ``StackFunction``, a ``torch.autograd.Function`` (tens of microseconds
  of dispatch per call);
- under ``torch.compile`` the module calls ``fusedrnn::rnn_stack`` and its backward
  ``fusedrnn::rnn_stack_backward``, registered with ``torch.library.custom_op`` with fake
  (shape-only) implementations and an autograd formula, so that dynamo and AOTAutograd see one
  opaque op per layer stack and no graph break. Their Python dispatch costs hundreds of
  microseconds per call, which is why eager calls take the Function.

Both keep the forward's saved activations (``ops.saved_arrays``: intermediates of the Function;
extra, non-differentiable outputs of the custom op) with x, the weights and the dropout masks
through ``save_for_backward``. So autograd frees them after the backward, and an in-place change
of x or a weight in between is the error torch.nn gives. The custom op's backward rebuilds the op
context from them (``ops.restore_context``); the Function's first backward takes the context the
forward left it, and drops it (a second backward through a retained graph rebuilds it). Under
saved-tensor hooks (checkpoint, save_on_cpu) the forward leaves none: the hooks alone hold what the
backward needs, and it rebuilds the context from what they give back.

Arguments: x (B, T, I) in C order; weights: (w_ih (G*H, I), w_hh (G*H, R), b_ih (G*H,), b_hh
(G*H,)), with w_hr (P, H) fifth for an LSTM with projections, per layer and direction, flat, in
torch's order; R is h's size: P with projections, else H. h0 (L*D, B, R), c0 (L*D, B, H) or None;
lengths (B,) int64 on the CPU or None; masks (L-1, B, T, D*R): the dropout multipliers of every layer's
output but the last's, or None (one tensor, not a list: AOTInductor passes an empty list as None).
Results: y (B, T, D*R), h_n (L*D, B, R) and c_n (L*D, B, H) (c_n empty but for LSTM), then the
saved activations.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .. import _native, ops
from ._arrays import on_device, to_array, to_tensor, weight_arrays


def _empty(x: Tensor) -> Tensor:
    """The placeholder of an absent result (c_n of GRU and RNN, dx not asked for)."""
    return x.new_empty(0)


def _params(arrays, num_layers, bidirectional):
    """The ops' params, (w_ih, w_hh, b_ih, b_hh) or with projections (..., w_hr) per layer and
    direction, from the flat list."""
    n = len(arrays) // (num_layers * (2 if bidirectional else 1))  # 4, or 5 with projections
    return [tuple(arrays[k:k + n]) for k in range(0, len(arrays), n)]


def _sizes(weights, cell):
    """-> H, R (h's size: P with projections, else H) from the first w_hh (G*H, R)."""
    w_hh = weights[1]
    return w_hh.shape[0] // ops.cell_info(cell).gates, w_hh.shape[1]


def _follow_torch_threads(device: torch.device) -> None:
    """The CPU kernels run on torch's intra-op thread count, as torch.nn's layers do
    (``torch.set_num_threads``; ``OMP_NUM_THREADS``, which torchrun sets): fusedrnn's setting follows it."""
    if device.type == "cpu":
        threads = torch.get_num_threads()
        if threads != _native.get_num_threads():
            _native.set_num_threads(threads)


def _forward(x, weights, h0, c0, lengths, masks, cell, nonlinearity, num_layers, bidirectional, need_grad,
             views=None):
    """-> y, h_n, c_n (c_n empty but for LSTM), the saved activations and the op's context (none and
    None if not need_grad). views: an ArrayViews that keeps the weights' arrays, where the caller has one.
    Every exchange of arrays with torch happens on torch's stream (on_device): made elsewhere, a CUDA
    view would tie that stream to CuPy's default one."""
    _follow_torch_threads(x.device)
    with on_device(x.device):
        params = _params(weight_arrays(weights) if views is None else views(weights), num_layers, bidirectional)
        kwargs = dict(x=to_array(x), params=params, h0=to_array(h0), lengths=to_array(lengths),
                      num_layers=num_layers, bidirectional=bidirectional, need_grad=need_grad,
                      dropout_masks=None if masks is None else list(to_array(masks)))
        y, h_n, c_n, ctx = ops.stack_forward(cell, c0=to_array(c0), nonlinearity=nonlinearity, **kwargs)
        saved = to_tensor(ops.saved_arrays(ctx)) if need_grad else []
        return to_tensor(y), to_tensor(h_n), _empty(x) if c_n is None else to_tensor(c_n), saved, ctx


def forward(x, weights, h0, c0, lengths, masks, cell, nonlinearity, num_layers, bidirectional, need_grad,
            views=None):
    """-> y, h_n, c_n (c_n empty but for LSTM), and the saved activations (none if not need_grad)."""
    return _forward(x, weights, h0, c0, lengths, masks, cell, nonlinearity, num_layers, bidirectional, need_grad,
                    views)[:4]


def restore(x, weights, lengths, masks, saved, cell, nonlinearity, num_layers, bidirectional):
    """The op's context of a forward of these arguments, from its saved activations."""
    with on_device(x.device):
        params = _params(weight_arrays(weights), num_layers, bidirectional)
        return ops.restore_context(cell, to_array(x), params, to_array(lengths),
                                   None if masks is None else list(to_array(masks)),
                                   to_array(saved), num_layers, bidirectional, nonlinearity)


def backward(ctx, x, dy, dh_n, dc_n, need_dx):
    """Gradients of the forward whose op context is ``ctx``, for x; None cotangents mean zero -> dx
    (empty unless need_dx), the weights' gradients (a flat list), dh0, dc0 (empty but for LSTM)."""
    _follow_torch_threads(x.device)
    with on_device(x.device):
        if dy is None:
            dy = x.new_zeros(x.shape[:2] + (ctx.num_directions * ctx.hidden,))
        g = ops.stack_backward(ctx, to_array(dy), to_array(dh_n), to_array(dc_n), need_dx=need_dx)
        return (to_tensor(g.dx) if need_dx else _empty(x), to_tensor([a for p in g.params for a in p]),
                to_tensor(g.dh0), _empty(x) if g.dc0 is None else to_tensor(g.dc0))


def _keep_for_backward(fn_ctx, x, weights, masks, output, cell):
    """What both entries' setup does: marks the placeholder c_n of GRU and RNN as not
    differentiable and saves the tensors the backward reads (the saved activations among them)."""
    if not ops.cell_info(cell).has_cell_state:
        fn_ctx.mark_non_differentiable(output[2])
    fn_ctx.set_materialize_grads(False)  # unused outputs' gradients stay None, not zeros to allocate
    fn_ctx.save_for_backward(x, *weights, masks, *output[3])
    fn_ctx.weight_count = len(weights)


def _kept(fn_ctx):
    """-> x, weights, masks, saved as _keep_for_backward saved them."""
    x, *rest = fn_ctx.saved_tensors
    n = fn_ctx.weight_count
    return x, rest[:n], rest[n], rest[n + 1:]


class StackFunction(torch.autograd.Function):
    """The eager entry: apply(options, x, h0, c0, *weights) with options = (lengths, masks, cell,
    nonlinearity, num_layers, bidirectional, the weights' ArrayViews or None) -> y, h_n, c_n. The saved
    activations are kept as intermediates of the Function, not returned (fewer outputs for autograd
    to wire)."""

    @staticmethod
    def forward(fn_ctx, options, x, h0, c0, *weights):
        # Old-style (ctx in forward, no setup_context): apply() then skips binding its arguments to a
        # signature, some 30 microseconds a call.
        lengths, masks, cell, nonlinearity, num_layers, bidirectional, views = options
        y, h_n, c_n, saved, ctx = _forward(x, weights, h0, c0, lengths, masks, cell, nonlinearity, num_layers,
                                           bidirectional, True, views)
        _keep_for_backward(fn_ctx, x, weights, masks, (y, h_n, c_n, saved), cell)
        # What the backward reads besides the saved tensors; not the masks (saved tensors: under
        # saved-tensor hooks the hooks alone may hold them) nor the weights' arrays.
        fn_ctx.options = (lengths, cell, nonlinearity, num_layers, bidirectional)
        # The op's context itself, for the first backward (which then need not rebuild it from the
        # saved tensors); that backward drops it, so the activations live no longer than autograd keeps them.
        # Not under saved-tensor hooks (checkpoint, save_on_cpu, offloading): those decide where the
        # saved tensors live, and a context kept here would hold their memory beside them.
        fn_ctx.op_context = None if _saved_tensors_hooks_active() else ctx
        if fn_ctx.op_context is not None:  # (what the backward checks before using it)
            fn_ctx.weight_pointers = _pointers(weights)
        return y, h_n, c_n

    @staticmethod
    def backward(fn_ctx, dy, dh_n, dc_n):
        x, weights, masks, saved = _kept(fn_ctx)  # (torch's check that none was changed in place)
        ctx, fn_ctx.op_context = fn_ctx.op_context, None
        if ctx is not None and _pointers(weights) != fn_ctx.weight_pointers:
            # The weights' storage moved since the forward (FSDP frees and regrows it around each
            # use): the context's arrays point at the old memory. Read them again from the tensors.
            ctx = None
        if ctx is None:  # a second backward through a retained graph, saved-tensor hooks, moved weights
            lengths, cell, nonlinearity, num_layers, bidirectional = fn_ctx.options
            ctx = restore(x, weights, lengths, masks, saved, cell, nonlinearity, num_layers, bidirectional)
        need_x, need_h0, need_c0 = fn_ctx.needs_input_grad[1:4]
        with torch.no_grad():
            dx, dweights, dh0, dc0 = backward(ctx, x, dy, dh_n, dc_n, need_x)
        grads = (dx if need_x else None, dh0 if need_h0 else None, dc0 if need_c0 else None, *dweights)
        if torch.is_grad_enabled():  # create_graph=True: these gradients may be differentiated again
            grads = _first_order_only(grads, (x, *weights, dy, dh_n, dc_n))
        return None, *grads

    @staticmethod
    def jvp(fn_ctx, *tangents):
        raise NotImplementedError("fusedrnn.torch: forward-mode AD (torch.autograd.forward_ad) through the fused "
                                  "recurrent layers is not supported; use torch.nn's layers for it")


@torch.library.custom_op("fusedrnn::rnn_stack", mutates_args=())
def rnn_stack(x: Tensor, weights: List[Tensor], h0: Optional[Tensor], c0: Optional[Tensor],
              lengths: Optional[Tensor], masks: Optional[Tensor], cell: str, nonlinearity: str, num_layers: int,
              bidirectional: bool, need_grad: bool) -> Tuple[Tensor, Tensor, Tensor, List[Tensor]]:
    """The torch.compile entry -> y, h_n, c_n and the saved activations."""
    return forward(x, weights, h0, c0, lengths, masks, cell, nonlinearity, num_layers, bidirectional, need_grad)


@rnn_stack.register_fake
def _rnn_stack_fake(x, weights, h0, c0, lengths, masks, cell, nonlinearity, num_layers, bidirectional, need_grad):
    batch, steps, _ = x.shape
    hidden, state = _sizes(weights, cell)
    D = 2 if bidirectional else 1
    saved = ops.saved_shapes(cell, batch, steps, hidden, num_layers, bidirectional,
                             proj_size=state if state != hidden else 0) if need_grad else []
    return (x.new_empty((batch, steps, D * state)), x.new_empty((num_layers * D, batch, state)),
            x.new_empty((num_layers * D, batch, hidden)) if ops.cell_info(cell).has_cell_state else _empty(x),
            [x.new_empty(s) for s in saved])


@torch.library.custom_op("fusedrnn::rnn_stack_backward", mutates_args=())
def rnn_stack_backward(dy: Optional[Tensor], dh_n: Optional[Tensor], dc_n: Optional[Tensor], x: Tensor,
                       weights: List[Tensor], lengths: Optional[Tensor], masks: Optional[Tensor], saved: List[Tensor],
                       cell: str, nonlinearity: str, num_layers: int, bidirectional: bool,
                       need_dx: bool) -> Tuple[Tensor, List[Tensor], Tensor, Tensor]:
    """rnn_stack's backward -> backward()'s results."""
    ctx = restore(x, weights, lengths, masks, saved, cell, nonlinearity, num_layers, bidirectional)
    return backward(ctx, x, dy, dh_n, dc_n, need_dx)


@rnn_stack_backward.register_fake
def _rnn_stack_backward_fake(dy, dh_n, dc_n, x, weights, lengths, masks, saved, cell, nonlinearity, num_layers,
                             bidirectional, need_dx):
    hidden, state = _sizes(weights, cell)
    count = num_layers * (2 if bidirectional else 1)
    # C order, as the kernels' results are whatever the strides of x and the weights
    return (x.new_empty(x.shape) if need_dx else _empty(x), [w.new_empty(w.shape) for w in weights],
            x.new_empty((count, x.shape[0], state)),
            x.new_empty((count, x.shape[0], hidden)) if ops.cell_info(cell).has_cell_state else _empty(x))


def _setup_context(ctx, inputs, output):
    x, weights, h0, c0, lengths, masks, cell, nonlinearity, num_layers, bidirectional, need_grad = inputs
    ctx.mark_non_differentiable(*output[3])  # the saved activations: outputs of the op, for its backward only
    _keep_for_backward(ctx, x, weights, masks, output, cell)
    ctx.options = (lengths, cell, nonlinearity, num_layers, bidirectional)


def _backward(ctx, dy, dh_n, dc_n, _saved):
    x, weights, masks, saved = _kept(ctx)
    lengths, *options = ctx.options
    need_x, need_weights, need_h0, need_c0 = ctx.needs_input_grad[:4]
    dx, dweights, dh0, dc0 = rnn_stack_backward(dy, dh_n, dc_n, x, weights, lengths, masks, saved, *options,
                                                need_dx=need_x)
    return (dx if need_x else None, list(dweights) if need_weights else [None] * len(weights),
            dh0 if need_h0 else None, dc0 if need_c0 else None, None, None, None, None, None, None,
            None)


DOUBLE_BACKWARD = ("fusedrnn.torch: double backward (gradients of gradients) through the fused recurrent layers "
                   "is not supported; use torch.nn's layers for it")


def _no_double_backward(ctx, *grads):
    raise RuntimeError(DOUBLE_BACKWARD)


class _FirstOrderOnly(torch.autograd.Function):
    """apply(count, *gradients, *inputs) -> the gradients, as tensors whose own backward raises the
    double-backward error. Under create_graph=True the eager backward's results pass through it, tied
    to what a second-order gradient would reach (x, the weights, the cotangents): a gradient penalty
    then fails with that message instead of finding no path (or a None gradient with allow_unused)."""

    @staticmethod
    def forward(fn_ctx, count, *tensors):
        return tuple(t.view_as(t) for t in tensors[:count])

    @staticmethod
    def backward(fn_ctx, *grads):
        raise RuntimeError(DOUBLE_BACKWARD)


def _first_order_only(grads, inputs):
    """grads with every tensor replaced by _FirstOrderOnly's view of it, tied to ``inputs`` (Nones skipped)."""
    present = [g for g in grads if g is not None]
    views = iter(_FirstOrderOnly.apply(len(present), *present, *(t for t in inputs if t is not None)))
    return tuple(None if g is None else next(views) for g in grads)


def _pointers(tensors):
    """The data pointers of ``tensors``: equal ones mean the arrays made from them still view their memory."""
    return [t.data_ptr() for t in tensors]


def _saved_tensors_hooks_active() -> bool:
    """True inside torch.autograd.graph.saved_tensors_hooks (which checkpoint and save_on_cpu use).
    torch has no public query; without the private one, assume hooks (the backward then rebuilds
    the op context from the saved tensors, which is always right)."""
    top = getattr(torch._C._autograd, "_top_saved_tensors_default_hooks", None)
    return True if top is None else top(False) is not None


rnn_stack.register_autograd(_backward, setup_context=_setup_context)
rnn_stack_backward.register_autograd(_no_double_backward, setup_context=lambda ctx, inputs, output: None)


def run(x, weights, h0, c0, lengths, masks, cell, nonlinearity, num_layers, bidirectional, views=None):
    """The layer stack on its tensors, by the entry that fits the call -> y, h_n, c_n (c_n None
    but for LSTM). Calls that need no gradient (no_grad, inference_mode, nothing requiring grad)
    keep nothing for a backward. Meta tensors get shapes only (as torch.nn's modules give them).
    views: an ArrayViews that keeps the weights' arrays from call to call (eager calls use it)."""
    args = (x, weights, h0, c0, lengths, masks, cell, nonlinearity, num_layers, bidirectional)
    need_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, h0, c0, *weights))
    device = x.device.type
    if device == "meta":
        y, h_n, c_n, _ = _rnn_stack_fake(*args, False)
    elif device not in ("cpu", "cuda"):
        raise RuntimeError(f"fusedrnn.torch runs on CPU and CUDA tensors, not on {device}; "
                           "use torch.nn's module there")
    elif torch.compiler.is_compiling():
        y, h_n, c_n, _ = rnn_stack(*args, need_grad)
    elif torch.jit.is_tracing():
        # One op in the traced graph (not its result as a constant). The graph is replayed whatever
        # the grad mode and inputs of later calls, so it always keeps what a backward needs.
        y, h_n, c_n, _ = rnn_stack(*args, True)
    elif torch._C._functorch.peek_interpreter_stack() is not None:  # inside torch.func.grad, vmap, ...
        raise RuntimeError("fusedrnn.torch does not support torch.func transforms (grad, vjp, jacrev, vmap): its "
                           "backward runs the compiled kernels, which the transforms cannot trace; use "
                           "loss.backward() or torch.autograd.grad, or torch.nn's module under torch.func")
    else:
        if need_grad:
            if x.is_inference():  # (an inference_mode tensor cannot be saved for the backward)
                x = x.clone()
            y, h_n, c_n = StackFunction.apply((lengths, masks, cell, nonlinearity, num_layers, bidirectional, views),
                                              x, h0, c0, *weights)
        else:
            y, h_n, c_n, _ = forward(*args, False, views)
    return y, h_n, c_n if ops.cell_info(cell).has_cell_state else None
