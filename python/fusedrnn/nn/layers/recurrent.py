"""Recurrent layers: SimpleRNN, LSTM and GRU over the fused sequence ops (one graph node per direction,
no Python loop over time).

Weights live in the op layout (fusedrnn.ops, PyTorch's): ``w_ih (G*H, I)``, ``w_hh (G*H, H)``,
``b_ih (G*H,)``, ``b_hh (G*H,)`` with G = 4 (LSTM, gates i f g o), 3 (GRU, r z n, reset applied
after the recurrent product: Keras's ``reset_after=True``), 1 (SimpleRNN). They are initialised as
Keras initialises its kernel (I, G*H) and recurrent kernel (H, G*H), then transposed. Keras has one
bias for LSTM and SimpleRNN: ``bias_initializer`` fills ``b_ih`` and ``b_hh`` starts at zero; GRU's
two biases are both Keras's. So an LSTM has 4*H*(I+H) + 8*H parameters, as torch.nn.LSTM.

Projections (``LSTM(proj_size=P)``, torch.nn.LSTM's ``proj_size``; Keras has none): the state and the
output are ``h = (o * tanh c) W_hr^T`` of size P < H, while ``c`` keeps size H. The layer gains
``w_hr (P, H)`` (drawn as Keras would draw a kernel (H, P) with ``kernel_initializer``, transposed)
and ``w_hh`` becomes ``(4*H, P)`` (``recurrent_initializer`` on (P, 4*H), transposed): 4*H*(I+P) +
8*H + P*H parameters, as torch's. Outputs (B, T, P) or (B, P), states h (B, P) and c (B, H). The
kernels refuse a recurrent mask with projections, so ``recurrent_dropout`` is refused with them; the
CUDA kernels do not take projections yet (host arrays only).

Padding: the input's ``lengths`` reach the kernels; steps past a row's length give zeros in the
output sequence and leave the state alone, so ``h`` is the state after each row's last valid step.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ... import ops
from ..._typing import Array
from .. import functional as F
from .. import initializers
from ..autograd import Tensor
from .base import Layer
from .core import _positive_int, _rate_arg

__all__ = ["SimpleRNN", "LSTM", "GRU"]

def _transposed(initializer):
    """An initializer for an op-layout weight (G*H, K) that draws the Keras-shaped (K, G*H) one."""
    init = initializers.get(initializer)

    def draw(shape, dtype, rng):
        return np.ascontiguousarray(init((shape[1], shape[0]), dtype, rng).T)
    return draw


class _RNN(Layer):
    """Shared by SimpleRNN, LSTM and GRU (``cell`` is "rnn", "lstm" or "gru")."""

    cell = ""
    proj_size = 0  # P, the size of h and of the outputs when > 0 (LSTM's projections); 0: none, h has size H

    def __init__(self, units: int, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros", dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        allowed = ops.cell_info(self.cell).nonlinearities
        if activation not in allowed:
            raise ValueError(f"{self.name}: activation must be one of {', '.join(allowed)} (the fused kernels' "
                             f"nonlinearities), got {activation!r}")
        if recurrent_activation != "sigmoid":
            raise ValueError(f"{self.name}: recurrent_activation must be 'sigmoid', got {recurrent_activation!r}")
        for flag, value, needed in (("use_bias", use_bias, True), ("stateful", stateful, False),
                                    ("unroll", unroll, False)):
            if bool(value) != needed:
                raise ValueError(f"{self.name}: {flag}={value!r} is not supported (only {needed})")
        self.activation = activation
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.dropout = _rate_arg("dropout", dropout)
        self.recurrent_dropout = _rate_arg("recurrent_dropout", recurrent_dropout)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self._config = dict(units=units, activation=activation, kernel_initializer=kernel_initializer,
                            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                            dropout=dropout, recurrent_dropout=recurrent_dropout, return_sequences=return_sequences,
                            return_state=return_state, dtype=self.dtype, trainable=self.trainable)

    @property
    def _has_cell_state(self) -> bool:
        return ops.cell_info(self.cell).has_cell_state

    @property
    def state_count(self) -> int:
        return len(ops.cell_info(self.cell).states)

    @property
    def output_size(self) -> int:
        """R, the size of h and of each output step: proj_size with projections, else units."""
        return self.proj_size or self.units

    def state_shapes(self, batch: Any) -> list:
        """The states' shapes in the order the layer returns them: h (B, R), then c (B, H) for LSTM."""
        return [(batch, self.output_size), (batch, self.units)][:self.state_count]

    def op_params(self) -> tuple:
        """The op's weight Tensors: (w_ih, w_hh, b_ih, b_hh), and w_hr fifth with projections (torch's order)."""
        params = (self.w_ih, self.w_hh, self.b_ih, self.b_hh)
        return params + (self.w_hr,) if self.proj_size else params

    def _clone(self, name: str, go_backwards: bool, seed: Optional[int]) -> _RNN:
        """A fresh, unbuilt layer of the same configuration (for Bidirectional)."""
        return type(self)(**self._config, **self._extra_config(), go_backwards=go_backwards, name=name, seed=seed)

    def _extra_config(self) -> dict:
        return {}

    def build(self, input_shape: Any) -> None:
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"{self.name}: expected input (batch, steps, features) with known features, "
                             f"got shape {tuple(input_shape)}")
        features, gh = int(input_shape[-1]), ops.cell_info(self.cell).gates * self.units
        self.w_ih = self.add_weight("w_ih", (gh, features), _transposed(self.kernel_initializer))
        # (G*H, R): W_hh reads h, of size P with projections
        self.w_hh = self.add_weight("w_hh", (gh, self.output_size), _transposed(self.recurrent_initializer))
        self.b_ih = self.add_weight("b_ih", (gh,), self._input_bias_initializer())
        self.b_hh = self.add_weight("b_hh", (gh,), self.bias_initializer
                                    if ops.cell_info(self.cell).keras_recurrent_bias_initialized else "zeros")
        if self.proj_size:  # last, as torch's weight_hr_l0: the other weights draw as without projections
            self.w_hr = self.add_weight("w_hr", (self.proj_size, self.units), _transposed(self.kernel_initializer))

    def _input_bias_initializer(self):
        return self.bias_initializer

    def call(self, inputs: Any, training: bool = False, initial_state: Optional[Sequence[Any]] = None) -> Any:
        lengths = inputs.lengths
        y, h, c = self.sequence(inputs, lengths, initial_state, training, reverse=self.go_backwards)
        if self.return_sequences:
            if self.go_backwards:  # Keras returns the sequence in the order it was processed
                y = F.reverse_sequence(y, lengths)
            y.lengths = lengths
            output = y
        else:
            output = h
        if not self.return_state:
            return output
        return [output, h, c] if self._has_cell_state else [output, h]

    def sequence(self, x: Tensor, lengths: Optional[Array], initial_state: Optional[Sequence[Any]], training: bool,
                 reverse: bool) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        """One fused pass over x (B, T, I) -> y (B, T, R) in input order, h (B, R), c (B, H) or None
        (R: proj_size with projections, else H)."""
        x, h0, c0, recurrent_mask = self.prepare(x, initial_state, training)
        return F.recurrent(self.cell, x, self.w_ih, self.w_hh, self.b_ih, self.b_hh, h0, c0, lengths, reverse,
                           self.activation, recurrent_mask, w_hr=self.w_hr if self.proj_size else None)

    def prepare(self, x: Tensor, initial_state: Optional[Sequence[Any]],
                training: bool) -> tuple[Tensor, Optional[Tensor], Optional[Tensor], Optional[Array]]:
        """-> (x after input dropout, h0, c0, recurrent mask): what one fused pass needs. Dropout
        (training only): one input mask (B, 1, I) per sequence, and a variational mask (B, H) on the
        state W_hh sees, both drawn once per batch."""
        xp, batch = x.xp, x.shape[0]
        if x.ndim != 3:
            raise ValueError(f"{self.name}: expected input (batch, steps, features), got shape {tuple(x.shape)}")
        if training and self.dropout > 0.0:
            x = F.multiply_constant(x, F.dropout_mask(xp, (batch, 1, x.shape[2]), self.dropout, self.rng, x.dtype))
        recurrent_mask = None
        if training and self.recurrent_dropout > 0.0:
            recurrent_mask = F.dropout_mask(xp, (batch, self.units), self.recurrent_dropout, self.rng, x.dtype)
        h0, c0 = self._initial_states(initial_state, batch)
        return x, h0, c0, recurrent_mask

    def _initial_states(self, initial_state, batch):
        if initial_state is None:
            return None, None
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != self.state_count:
            raise ValueError(f"{self.name}: initial_state needs {self.state_count} tensor(s) "
                             f"([{', '.join(ops.cell_info(self.cell).states)}]), got {len(states)}")
        states = [s if hasattr(s, "data") else F.as_tensor(np.asarray(s, self.dtype)) for s in states]
        for name, s, shape in zip(ops.cell_info(self.cell).states, states, self.state_shapes(batch)):
            if tuple(s.shape) != shape:
                size = "proj_size" if name == "h" and self.proj_size else "units"
                raise ValueError(f"{self.name}: initial state {name} must have shape (B, {size}) = {shape}, "
                                 f"got {tuple(s.shape)}")
        return states[0], (states[1] if self._has_cell_state else None)

    def compute_output_shape(self, input_shape: Any) -> Any:
        batch, steps = input_shape[0], input_shape[1]
        states = self.state_shapes(batch)
        output = (batch, steps, self.output_size) if self.return_sequences else states[0]
        return [output] + states if self.return_state else output


class SimpleRNN(_RNN):
    """A fully-connected recurrent layer: ``h' = activation(W_ih x + b_ih + W_hh h + b_hh)``,
    activation "tanh" or "relu"."""

    cell = "rnn"


class LSTM(_RNN):
    """Long short-term memory (gates i f g o). ``unit_forget_bias`` sets the forget-gate slice of
    ``b_ih`` to 1 at initialisation, as Keras does. ``proj_size`` P (0 < P < units; 0: none) adds
    torch.nn.LSTM's projections: h and the outputs have size P (see the module's docstring)."""

    cell = "lstm"

    def __init__(self, units: int, unit_forget_bias: bool = True, proj_size: int = 0, **kwargs: Any):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.proj_size = self._proj_size_arg(proj_size)

    def _proj_size_arg(self, proj_size):
        if isinstance(proj_size, bool) or not isinstance(proj_size, (int, np.integer)) or proj_size < 0:
            raise ValueError(f"{self.name}: proj_size must be a non-negative integer (0: no projections), "
                             f"got {proj_size!r}")
        if proj_size >= self.units:  # torch's rule: "proj_size has to be smaller than hidden_size"
            raise ValueError(f"{self.name}: proj_size has to be smaller than units (torch's hidden_size), "
                             f"got proj_size={proj_size} with units={self.units}")
        if proj_size and self.recurrent_dropout > 0.0:  # the kernels take no recurrent mask with projections
            raise ValueError(f"{self.name}: recurrent_dropout is not supported with proj_size (the kernels take "
                             f"no recurrent mask with projections), got recurrent_dropout={self.recurrent_dropout} "
                             f"with proj_size={proj_size}")
        return int(proj_size)

    def _extra_config(self) -> dict:
        return {"unit_forget_bias": self.unit_forget_bias, "proj_size": self.proj_size}

    def _input_bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        units, base = self.units, self.bias_initializer

        def draw(shape, dtype, rng):
            bias = np.array(base(shape, dtype, rng))
            bias[units:2 * units] = 1.0
            return bias
        return draw


class GRU(_RNN):
    """Gated recurrent unit with the reset gate after the recurrent product (cuDNN's and Keras's
    ``reset_after=True``, the only variant the kernels implement); gates r z n."""

    cell = "gru"

    def __init__(self, units: int, reset_after: bool = True, **kwargs: Any):
        if not reset_after:
            raise ValueError("GRU: reset_after=False is not supported (the fused kernels implement reset_after=True)")
        super().__init__(units, **kwargs)

