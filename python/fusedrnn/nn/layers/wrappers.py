"""Wrappers: Bidirectional (a forward and a backward recurrent layer) and TimeDistributed."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from .base import Layer
from .core import Dense, carry_lengths
from .recurrent import _RNN

__all__ = ["Bidirectional", "TimeDistributed"]

MERGE_MODES = ("concat", "sum", "ave", "mul", None)


class Bidirectional(Layer):
    """Runs a recurrent layer forward and a copy of it backward over the input and merges the two.

    ``forward_layer`` and ``backward_layer`` are fresh copies of ``layer``'s configuration (named
    "forward_<name>" and "backward_<name>", as in Keras); ``backward_layer=`` gives your own. The
    backward direction starts at each row's own last valid step (the kernels' ``reverse`` with the
    input's lengths), so a padded batch gives exactly what each sequence gives alone, and its outputs
    come back in input order before merging. ``merge_mode``: "concat" (B, T, 2H), "sum", "ave",
    "mul", or None for the list [forward, backward]. With ``return_state`` the states follow the
    output: [h_fwd, (c_fwd,) h_bwd, (c_bwd)]; ``initial_state`` takes them in the same order. An
    LSTM with ``proj_size`` P gives outputs and h of size P per direction ("concat": 2P), c of size H."""

    def __init__(self, layer: _RNN, merge_mode: Optional[str] = "concat", backward_layer: Optional[_RNN] = None,
                 **kwargs: Any):
        if not isinstance(layer, _RNN):
            raise TypeError(f"Bidirectional: expected a SimpleRNN, LSTM or GRU layer, got {type(layer).__name__}")
        if layer.built:
            raise ValueError(f"Bidirectional: {layer.name} is already built; wrap a fresh layer")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        kwargs.setdefault("dtype", layer.dtype)
        super().__init__(**kwargs)
        self.merge_mode = merge_mode
        self.forward_layer = layer._clone(f"forward_{layer.name}", go_backwards=False, seed=None)
        if backward_layer is None:
            backward_layer = layer._clone(f"backward_{layer.name}", go_backwards=True, seed=None)
        elif not isinstance(backward_layer, _RNN) or backward_layer.cell != layer.cell:
            raise TypeError(f"Bidirectional: backward_layer must be a {type(layer).__name__}")
        elif (backward_layer.return_sequences, backward_layer.return_state, backward_layer.activation,
              backward_layer.proj_size) != (layer.return_sequences, layer.return_state, layer.activation,
                                            layer.proj_size):
            raise ValueError("Bidirectional: backward_layer must have the same return_sequences, return_state, "
                             "activation and proj_size as the layer")
        self.backward_layer = backward_layer
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        if self.seed is None and layer.seed is not None:  # a seed given to the wrapped layer counts
            self.seed, self._seed_entropy = layer.seed, np.random.SeedSequence(layer.seed).entropy
        self._reseed(np.random.SeedSequence(self._seed_entropy))
        if self._batch_input_shape is None:
            self._batch_input_shape = layer._batch_input_shape

    def build(self, input_shape: Any) -> None:
        self.forward_layer._maybe_build(input_shape)
        self.backward_layer._maybe_build(input_shape)

    def call(self, inputs: Any, training: bool = False, initial_state: Optional[Sequence[Any]] = None) -> Any:
        lengths = inputs.lengths
        forward_state = backward_state = None
        if initial_state is not None:
            half = self.forward_layer.state_count
            if len(initial_state) != 2 * half:
                raise ValueError(f"{self.name}: initial_state needs {2 * half} tensors (forward then backward states), "
                                 f"got {len(initial_state)}")
            forward_state, backward_state = list(initial_state[:half]), list(initial_state[half:])
        fwd, bwd = self.forward_layer, self.backward_layer
        xf, h0f, c0f, mask_f = fwd.prepare(inputs, forward_state, training)
        xb, h0b, c0b, mask_b = bwd.prepare(inputs, backward_state, training)
        # concatenated sequences come out of the node already joined (no copy on the host)
        joined = self.return_sequences and self.merge_mode == "concat"
        outs = F.bidirectional_recurrent(
            fwd.cell, xf, xb, fwd.op_params(), bwd.op_params(), (h0f, c0f), (h0b, c0b), lengths, fwd.activation,
            (mask_f, mask_b), merge_concat=joined)
        if joined:
            y, hf, cf, hb, cb = outs
        else:
            yf, hf, cf, yb, hb, cb = outs
        if self.return_sequences:
            output = y if joined else self._merge(yf, yb)
            for sequence in (output if isinstance(output, list) else [output]):
                sequence.lengths = lengths
        else:
            output = self._merge(hf, hb)
        outputs = output if isinstance(output, list) else [output]
        if not self.return_state:
            return output
        states = [hf, cf, hb, cb] if self.forward_layer._has_cell_state else [hf, hb]
        return outputs + states

    def _merge(self, a: Tensor, b: Tensor) -> Tensor | list[Tensor]:
        if self.merge_mode == "concat":
            return F.concat([a, b], axis=-1)
        if self.merge_mode == "sum":
            return F.add(a, b)
        if self.merge_mode == "ave":
            return F.scale(F.add(a, b), 0.5)
        if self.merge_mode == "mul":
            return F.multiply(a, b)
        return [a, b]

    def compute_output_shape(self, input_shape: Any) -> Any:
        batch, steps = input_shape[0], input_shape[1]
        size = self.forward_layer.output_size  # units, or proj_size with projections
        one = (batch, steps, size) if self.return_sequences else (batch, size)
        if self.merge_mode == "concat":
            outputs = [one[:-1] + (2 * size,)]
        elif self.merge_mode is None:
            outputs = [one, one]
        else:
            outputs = [one]
        if self.return_state:
            outputs += self.forward_layer.state_shapes(batch) * 2
        return outputs if len(outputs) > 1 else outputs[0]


class TimeDistributed(Layer):
    """Applies ``layer`` to every step of x (B, T, ...): the steps are folded into the batch
    ((B*T, ...)), except for Dense, which applies to the last axis directly."""

    def __init__(self, layer: Layer, **kwargs: Any):
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed: expected a layer, got {type(layer).__name__}")
        kwargs.setdefault("dtype", layer.dtype)
        super().__init__(**kwargs)
        self.layer = layer
        if self.seed is not None:
            self._reseed(np.random.SeedSequence(self._seed_entropy))

    def build(self, input_shape: Any) -> None:
        if len(input_shape) < 3:
            raise ValueError(f"{self.name}: expected input (batch, steps, ...), got shape {tuple(input_shape)}")
        self.layer._maybe_build((None,) + tuple(input_shape[2:]))

    def call(self, inputs: Any, training: bool = False) -> Any:
        if inputs.ndim < 3:
            raise ValueError(f"{self.name}: expected input (batch, steps, ...), got shape {tuple(inputs.shape)}")
        if isinstance(self.layer, Dense):
            out = self.layer(inputs)
        else:
            batch, steps = inputs.shape[:2]
            flat = F.reshape(inputs, (batch * steps,) + tuple(inputs.shape[2:]))
            out = self.layer(flat, training=training)
            out = F.reshape(out, (batch, steps) + tuple(out.shape[1:]))
        return carry_lengths(out, inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return tuple(input_shape[:2]) + tuple(inner[1:])
