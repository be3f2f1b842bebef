"""Core layers: Dense, Embedding, Dropout, Masking, Activation and the merge layers.

Layers that keep the time axis carry the input's ``lengths`` (valid steps) to their output, so the
recurrent layers downstream and the loss see the padding.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..._typing import Array, ArrayLike
from ..._xp import array_module
from .. import deferred
from .. import functional as F
from .. import initializers
from ..autograd import Tensor
from .base import Layer, lengths_from_valid, with_lengths

__all__ = ["Dense", "Embedding", "Dropout", "Masking", "Activation", "Concatenate", "Add", "Multiply", "Average"]


def _rate_arg(name, rate):
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: expected a rate in [0, 1), got {rate!r}")
    return float(rate)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _activation_arg(activation):
    name = "linear" if activation is None else activation
    if name not in F.ACTIVATIONS:
        raise ValueError(f"activation: expected one of {', '.join(F.ACTIVATIONS)}, got {activation!r}")
    return name


def _known_last(layer, input_shape, what="features"):
    last = input_shape[-1] if len(input_shape) else None
    if last is None:
        raise ValueError(f"{layer.name}: the last axis ({what}) of its input must be known, got shape {input_shape}")
    return int(last)


def carry_lengths(out: Tensor, source: Tensor) -> Tensor:
    """out with source's lengths (out is a fresh tensor from an op, or source itself)."""
    if source.lengths is not None and out.lengths is None:
        out.lengths = source.lengths
    return out


class Dense(Layer):
    """``activation(x @ kernel + bias)`` on the last axis: (..., I) -> (..., units), so it applies to
    every step of a (B, T, I) sequence as Keras's Dense does. kernel (I, units), bias (units,)."""

    def __init__(self, units: int, activation: Optional[str] = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros", **kwargs: Any):
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        self.activation = _activation_arg(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape: Any) -> None:
        features = _known_last(self, input_shape)
        self.kernel = self.add_weight("kernel", (features, self.units), self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer) if self.use_bias else None

    def call(self, inputs: Any, training: bool = False) -> Any:
        out = F.activation(F.linear(inputs, self.kernel, self.bias), self.activation)
        return carry_lengths(out, inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return tuple(input_shape[:-1]) + (self.units,)


class Embedding(Layer):
    """ids (B, T) integers in [0, input_dim) -> (B, T, output_dim).

    ``mask_zero=True``: id 0 is padding; each row's length is its count of leading non-zero ids
    (sequences must be post-padded: a 0 before a non-zero id raises ValueError). Initial values from
    ``embeddings=matrix`` or ``weights=[matrix]`` (a pretrained table), else ``embeddings_initializer``;
    ``trainable=False`` freezes the table."""

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 mask_zero: bool = False, input_length: Optional[int] = None, embeddings: Optional[ArrayLike] = None,
                 **kwargs: Any):
        if input_length is not None and "input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        self.input_dim = _positive_int("input_dim", input_dim)
        self.output_dim = _positive_int("output_dim", output_dim)
        self.mask_zero = bool(mask_zero)
        if embeddings is not None:
            if self._initial_weights is not None:
                raise ValueError(f"{self.name}: give the initial table as embeddings= or weights=, not both")
            self._initial_weights = [embeddings]
        if self._initial_weights is not None:
            table = np.asarray(self._initial_weights[0]) if len(self._initial_weights) == 1 else None
            if table is None or table.shape != (self.input_dim, self.output_dim):
                got = table.shape if table is not None else f"{len(self._initial_weights)} arrays"
                raise ValueError(f"{self.name}: the initial table must have shape (input_dim, output_dim) = "
                                 f"({self.input_dim}, {self.output_dim}), got {got}")
        self.embeddings_initializer = initializers.get(embeddings_initializer)

    def build(self, input_shape: Any) -> None:
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer)

    def call(self, inputs: Any, training: bool = False) -> Any:
        # checks and padding read the host copy of GPU ids when the model made one (no GPU round trip)
        given = inputs.host if inputs.host is not None else inputs.data
        self._check_ids(given)
        ids = self.embeddings.xp.asarray(inputs.data)
        if ids.dtype.kind == "f":
            ids = ids.astype(np.int64)
        out = F.embedding(ids, self.embeddings)
        if inputs.lengths is not None:
            out.lengths = inputs.lengths
        elif self.mask_zero:
            if ids.ndim != 2:
                raise ValueError(f"{self.name}: mask_zero needs ids of shape (B, T), got {tuple(ids.shape)}")
            out.lengths = lengths_from_valid(given != 0, f"{self.name} (mask_zero)")
        return out

    def _check_ids(self, ids: Array) -> None:
        """Integers (or integral floats) in [0, input_dim); on GPU ids the value checks are deferred."""
        xp = array_module(ids)
        if ids.dtype.kind == "f":
            deferred.check(xp, ~xp.all(ids == xp.floor(ids)),
                           lambda: ValueError(f"{self.name}: ids must be integers, got non-integer values"))
        elif ids.dtype.kind not in "iu":
            raise TypeError(f"{self.name}: ids must be integers, got dtype {ids.dtype}")
        if ids.size:
            deferred.check(xp, (ids.min() < 0) | (ids.max() >= self.input_dim), lambda: ValueError(
                f"{self.name}: ids must be in [0, input_dim) = [0, {self.input_dim}), "
                f"got min {int(ids.min())}, max {int(ids.max())}"))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return tuple(input_shape) + (self.output_dim,)


class Dropout(Layer):
    """Inverted dropout in training (zero a fraction ``rate``, scale the rest by 1 / (1 - rate));
    the identity otherwise. ``noise_shape`` with 1s shares a mask along those axes (None: the input's size)."""

    def __init__(self, rate: float, noise_shape: Optional[Sequence[Optional[int]]] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.rate = _rate_arg("rate", rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not training or self.rate == 0.0:
            return inputs
        if self.noise_shape is None:
            out = F.dropout(inputs, self.rate, self.rng)
        else:
            if len(self.noise_shape) != inputs.ndim:
                raise ValueError(f"{self.name}: noise_shape {self.noise_shape} has {len(self.noise_shape)} axes, "
                                 f"the input {inputs.ndim}")
            shape = tuple(s if n is None else n for n, s in zip(self.noise_shape, inputs.shape))
            out = F.multiply_constant(inputs, F.dropout_mask(inputs.xp, shape, self.rate, self.rng, inputs.dtype))
        return carry_lengths(out, inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


class Masking(Layer):
    """Marks the steps of x (B, T, F) whose features all equal ``mask_value`` as padding (post-padding
    only), setting the output's lengths; the values pass through unchanged."""

    def __init__(self, mask_value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.mask_value = mask_value

    def call(self, inputs: Any, training: bool = False) -> Any:
        if inputs.ndim != 3:
            raise ValueError(f"{self.name}: expected input (B, T, features), got shape {tuple(inputs.shape)}")
        values = inputs.host if inputs.host is not None else inputs.data  # the host copy: no GPU round trip
        valid = (values != self.mask_value).any(axis=-1)
        return with_lengths(inputs, lengths_from_valid(valid, self.name))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


class Activation(Layer):
    """An activation (linear, relu, tanh, sigmoid, softmax over the last axis) as a layer."""

    def __init__(self, activation: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = _activation_arg(activation)

    def call(self, inputs: Any, training: bool = False) -> Any:
        return carry_lengths(F.activation(inputs, self.activation), inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


class _Merge(Layer):
    """Combines a list of tensors of one shape; the first input's lengths carry over."""

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ValueError(f"{self.name}: expected a list of at least 2 inputs")
        shapes = {tuple(t.shape) for t in inputs}
        if len(shapes) != 1 and not isinstance(self, Concatenate):
            raise ValueError(f"{self.name}: inputs must have one shape, got {sorted(shapes)}")
        return carry_lengths(self.merge(list(inputs)), inputs[0])

    def merge(self, inputs: list[Tensor]) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.merge")

    def compute_output_shape(self, input_shape: Any) -> Any:
        return tuple(input_shape[0])


class Concatenate(_Merge):
    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = axis

    def merge(self, inputs: list[Tensor]) -> Tensor:
        return F.concat(inputs, axis=self.axis)

    def compute_output_shape(self, input_shape: Any) -> Any:
        sizes = [s[self.axis] for s in input_shape]
        out = list(input_shape[0])
        out[self.axis] = None if any(s is None for s in sizes) else int(sum(sizes))
        return tuple(out)


class Add(_Merge):
    def merge(self, inputs: list[Tensor]) -> Tensor:
        out = inputs[0]
        for t in inputs[1:]:
            out = F.add(out, t)
        return out


class Multiply(_Merge):
    def merge(self, inputs: list[Tensor]) -> Tensor:
        out = inputs[0]
        for t in inputs[1:]:
            out = F.multiply(out, t)
        return out


class Average(Add):
    def merge(self, inputs: list[Tensor]) -> Tensor:
        return F.scale(super().merge(inputs), 1.0 / len(inputs))
