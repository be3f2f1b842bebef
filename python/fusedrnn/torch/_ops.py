"""The stacked recurrent layer as two torch ops, ``fusedrnn::rnn_stack`` and its backward
``fusedrnn::rnn_stack_backward``, over ``fusedrnn.ops``.

Registered with ``torch.library.custom_op``, with fake (shape-only) implementations and an
autograd formula, so that autograd and ``torch.compile`` see one opaque op per layer stack: no
Python loop over time or layers, no graph break. Between the two, autograd keeps only tensors: the
forward returns the saved activations (``ops.saved_arrays``) as extra outputs, and the backward
rebuilds the op context from them (``ops.restore_context``).

Arguments: x (B, T, I); weights: (w_ih (G*H, I), w_hh (G*H, H), b_ih (G*H,), b_hh (G*H,)) per
layer and direction, flat, in torch's order; h0, c0 (L*D, B, H) or None; lengths (B,) int64 on
the CPU or None; masks: L-1 dropout multipliers (B, T, D*H), or none. Results: y (B, T, D*H),
h_n and c_n (L*D, B, H) (c_n empty but for LSTM), and the saved activations (none when
``need_grad`` is False: an inference call keeps nothing).
"""

from typing import Optional

import torch
from torch import Tensor

from .. import ops
from ._arrays import on_device, to_array, to_tensor


def _params(weights):
    """The flat weights as ops' params: [(w_ih, w_hh, b_ih, b_hh)] per layer and direction."""
    arrays = [to_array(w) for w in weights]
    return [tuple(arrays[k:k + 4]) for k in range(0, len(arrays), 4)]


def _masks(masks):
    return [to_array(m) for m in masks] if masks else None


def _empty(x: Tensor) -> Tensor:
    """The placeholder of an absent result (c_n of GRU and RNN, dx not asked for)."""
    return x.new_empty(0)


@torch.library.custom_op("fusedrnn::rnn_stack", mutates_args=())
def rnn_stack(x: Tensor, weights: list[Tensor], h0: Optional[Tensor], c0: Optional[Tensor],
              lengths: Optional[Tensor], masks: list[Tensor], cell: str, nonlinearity: str, num_layers: int,
              bidirectional: bool, need_grad: bool) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
    with on_device(x.device):
        arrays = dict(x=to_array(x), params=_params(weights), h0=to_array(h0), lengths=to_array(lengths),
                      num_layers=num_layers, bidirectional=bidirectional, need_grad=need_grad,
                      dropout_masks=_masks(masks))
        if cell == "lstm":
            y, h_n, c_n, ctx = ops.lstm(c0=to_array(c0), **arrays)
        elif cell == "gru":
            (y, h_n, ctx), c_n = ops.gru(**arrays), None
        else:
            (y, h_n, ctx), c_n = ops.rnn(nonlinearity=nonlinearity, **arrays), None
        saved = [to_tensor(a) for a in ops.saved_arrays(ctx)] if need_grad else []
        return to_tensor(y), to_tensor(h_n), _empty(x) if c_n is None else to_tensor(c_n), saved


@rnn_stack.register_fake
def _rnn_stack_fake(x, weights, h0, c0, lengths, masks, cell, nonlinearity, num_layers, bidirectional, need_grad):
    batch, steps, _ = x.shape
    hidden = weights[1].shape[1]
    D = 2 if bidirectional else 1
    states = (num_layers * D, batch, hidden)
    saved = ops.saved_shapes(cell, batch, steps, hidden, num_layers, bidirectional) if need_grad else []
    return (x.new_empty((batch, steps, D * hidden)), x.new_empty(states),
            x.new_empty(states) if cell == "lstm" else _empty(x), [x.new_empty(s) for s in saved])


@torch.library.custom_op("fusedrnn::rnn_stack_backward", mutates_args=())
def rnn_stack_backward(dy: Optional[Tensor], dh_n: Optional[Tensor], dc_n: Optional[Tensor], x: Tensor,
                       weights: list[Tensor], lengths: Optional[Tensor], masks: list[Tensor], saved: list[Tensor],
                       cell: str, nonlinearity: str, num_layers: int, bidirectional: bool,
                       need_dx: bool) -> tuple[Tensor, list[Tensor], Tensor, Tensor]:
    """None cotangents mean zero. -> dx (empty unless need_dx), the weights' gradients, dh0, dc0
    (empty but for LSTM)."""
    with on_device(x.device):
        params = _params(weights)
        ctx = ops.restore_context(cell, to_array(x), params, to_array(lengths), _masks(masks),
                                  [to_array(s) for s in saved], num_layers, bidirectional, nonlinearity)
        if dy is None:
            batch, steps, _ = x.shape
            dy = x.new_zeros((batch, steps, (2 if bidirectional else 1) * weights[1].shape[1]))
        g = ops.stack_backward(ctx, to_array(dy), to_array(dh_n), to_array(dc_n), need_dx=need_dx)
        return (to_tensor(g.dx) if need_dx else _empty(x), [to_tensor(a) for p in g.params for a in p],
                to_tensor(g.dh0), _empty(x) if g.dc0 is None else to_tensor(g.dc0))


@rnn_stack_backward.register_fake
def _rnn_stack_backward_fake(dy, dh_n, dc_n, x, weights, lengths, masks, saved, cell, nonlinearity, num_layers,
                             bidirectional, need_dx):
    batch = x.shape[0]
    states = (num_layers * (2 if bidirectional else 1), batch, weights[1].shape[1])
    return (torch.empty_like(x) if need_dx else _empty(x), [torch.empty_like(w) for w in weights],
            x.new_empty(states), x.new_empty(states) if cell == "lstm" else _empty(x))


def _setup_context(ctx, inputs, output):
    x, weights, h0, c0, lengths, masks, cell, nonlinearity, num_layers, bidirectional, need_grad = inputs
    saved = output[3]
    ctx.mark_non_differentiable(*saved, *([] if cell == "lstm" else [output[2]]))  # c_n: a placeholder
    ctx.set_materialize_grads(False)  # unused outputs' gradients stay None, not zeros to allocate
    ctx.save_for_backward(x, lengths, *weights, *masks, *saved)
    ctx.counts = (len(weights), len(masks))
    ctx.options = (cell, nonlinearity, num_layers, bidirectional)
    ctx.need_grad = need_grad


def _backward(ctx, dy, dh_n, dc_n, _saved):
    if not ctx.need_grad:
        raise RuntimeError("fusedrnn::rnn_stack ran with need_grad=False and kept nothing for a backward")
    x, lengths, *rest = ctx.saved_tensors
    n_weights, n_masks = ctx.counts
    weights, masks, saved = rest[:n_weights], rest[n_weights:n_weights + n_masks], rest[n_weights + n_masks:]
    need_x, need_weights, need_h0, need_c0 = ctx.needs_input_grad[:4]
    dx, dweights, dh0, dc0 = rnn_stack_backward(dy, dh_n, dc_n, x, weights, lengths, masks, saved, *ctx.options,
                                                need_dx=need_x)
    return (dx if need_x else None, list(dweights) if need_weights else [None] * n_weights,
            dh0 if need_h0 else None, dc0 if need_c0 else None, None, [None] * n_masks, None, None, None, None, None)


def _no_double_backward(ctx, *grads):
    raise RuntimeError("fusedrnn.torch: double backward (gradients of gradients) through the fused recurrent "
                       "layers is not supported; use torch.nn's layers for it")


def _setup_backward_context(ctx, inputs, output):
    pass


rnn_stack.register_autograd(_backward, setup_context=_setup_context)
rnn_stack_backward.register_autograd(_no_double_backward, setup_context=_setup_backward_context)
