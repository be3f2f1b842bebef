"""Losses: each is one graph node with an analytic backward, masked over padding.

A loss is called as ``loss(y_true, y_pred, mask=None) -> Tensor`` (a scalar). ``y_pred`` is (B, C) or
(B, T, C) (a sequence output); ``y_true`` has the same shape (one-hot or probabilities) or, for the
sparse loss, holds integer ids of shape (B,) or (B, T) (a trailing axis of 1 is accepted, as in Keras).

Weighting (the same rule for the metrics): the loss has one value per position (categorical losses:
per (b) or (b, t); elementwise losses, binary and MSE: per element). ``mask`` is None or an array of
non-negative weights whose axes line up with the leading axes of those values ((B,) per row,
(B, T) per step, 0 at padding); the loss is ``sum(w * l) / sum(w)``, the mean over the unmasked
positions (0 when every weight is 0). With ``mask=None`` and ``y_pred.lengths`` set by a masking
layer, the (B, T) mask comes from the lengths. For an elementwise loss the mean over the last axis
that Keras takes per position comes out the same, because every position has the same number of
elements.

From probabilities, the losses clip to [1e-7, 1 - 1e-7] like Keras (and categorical cross-entropy
first renormalizes each row to sum to 1, as Keras does); from logits, they use a stable
log-softmax / log-sigmoid. Shapes in comments: B batch, T steps, C classes.
"""

from __future__ import annotations

import inspect
from typing import Callable

import numpy as np

from . import deferred
from .autograd import Tensor, as_tensor, record
from .functional import _sigmoid, sequence_mask

EPSILON = 1e-7  # Keras's backend epsilon: the clipping of probabilities


def _data(value):
    return value.data if isinstance(value, Tensor) else value


def position_weights(xp, mask, lengths, shape, dtype):
    """Weights of the per-position values of ``shape``: from ``mask`` (its axes aligned with the
    leading axes of ``shape``), else from ``lengths`` (B,) over axis 1, else all ones. -> array of ``shape``."""
    if mask is None and lengths is not None and len(shape) >= 2:
        lengths = xp.asarray(lengths)
        if lengths.shape != (shape[0],):
            raise ValueError(f"lengths: expected shape ({shape[0]},), got {tuple(lengths.shape)}")
        mask = sequence_mask(xp, lengths, shape[1], dtype)  # (B, T)
    if mask is None:
        return xp.ones(shape, dtype)
    mask = xp.asarray(_data(mask), dtype=dtype)
    while mask.ndim > len(shape) and mask.shape[-1] == 1:  # (B, T, 1) for per-step values (B, T)
        mask = mask[..., 0]
    if mask.ndim <= len(shape):
        aligned = mask.reshape(mask.shape + (1,) * (len(shape) - mask.ndim))
        if all(m in (1, s) for m, s in zip(aligned.shape, shape)):
            return xp.broadcast_to(aligned, shape)
    raise ValueError(f"mask: shape {tuple(mask.shape)} does not line up with the per-position values of shape "
                     f"{tuple(shape)} (expected e.g. {tuple(shape[:1])} or {tuple(shape[:2])})")


def weighted_mean(xp, values, weights):
    """sum(w * v) / sum(w) as a 0-d array, 0 when sum(w) == 0; also returns the denominator."""
    total = weights.sum()
    denominator = xp.where(total > 0, total, xp.ones_like(total))
    return (weights * values).sum() / denominator, denominator


def _targets_like(xp, y_true, y_pred, what):
    """y_true as y_pred's dtype and shape; (B,) or (B, T) is taken as (..., 1) when C == 1."""
    y_true = xp.asarray(_data(y_true), dtype=y_pred.dtype)
    if y_true.shape != y_pred.shape and y_pred.shape[-1:] == (1,) and y_true.shape == y_pred.shape[:-1]:
        y_true = y_true[..., None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true: {what} expects the shape of y_pred {tuple(y_pred.shape)}, "
                         f"got {tuple(y_true.shape)}")
    return y_true


def sparse_ids(xp, y_true, y_pred_shape):
    """Integer ids of shape y_pred_shape[:-1] (a trailing axis of 1 is dropped), as int64."""
    ids = xp.asarray(_data(y_true))
    if ids.ndim == len(y_pred_shape) and ids.shape[-1:] == (1,):
        ids = ids[..., 0]
    if ids.shape != tuple(y_pred_shape[:-1]):
        raise ValueError(f"y_true: sparse targets expect integer ids of shape {tuple(y_pred_shape[:-1])} "
                         f"for y_pred of shape {tuple(y_pred_shape)}, got {tuple(ids.shape)}")
    if ids.dtype.kind == "f":
        deferred.check(xp, ~xp.all(ids == xp.floor(ids)),
                       lambda: ValueError("y_true: sparse targets must be integer class ids, got non-integer values"))
    elif ids.dtype.kind not in "iub":
        raise TypeError(f"y_true: sparse targets must be integer class ids, got dtype {ids.dtype}")
    return ids.astype(np.int64)


def one_hot(xp, ids, classes, dtype):
    """ids (...,) -> (..., classes); rows of ids outside 0..classes-1 are all zeros."""
    return (ids[..., None] == xp.arange(classes)).astype(dtype)


class Loss:
    """Base class: subclasses give the per-position values and their local derivative."""

    name = "loss"
    from_logits = False
    # True: one value per position (the class axis is reduced); False: one value per element.
    reduces_last_axis = True

    def __call__(self, y_true, y_pred, mask=None) -> Tensor:
        y_pred = as_tensor(y_pred)
        if y_pred.ndim < 1:
            raise ValueError(f"y_pred: expected at least 1 axis, got shape {tuple(y_pred.shape)}")
        xp = y_pred.xp
        p = y_pred.data
        shape = p.shape[:-1] if self.reduces_last_axis else p.shape
        weights = position_weights(xp, mask, y_pred.lengths, shape, p.dtype)
        values, local_grad = self.values(xp, y_true, p, weights)
        loss, denominator = weighted_mean(xp, values, weights)

        def backward(g):  # g: 0-d
            coeff = weights * (g / denominator)
            if self.reduces_last_axis:
                coeff = coeff[..., None]
            return (coeff * local_grad(),)
        return record(loss, (y_pred,), backward, name=self.name)

    def values(self, xp, y_true, y_pred, weights):
        """-> (per-position values of the shape of ``weights``, a function returning
        d values / d y_pred (shape of y_pred))."""
        raise NotImplementedError

    def __repr__(self):
        extra = "from_logits=True" if self.from_logits else ""
        return f"{type(self).__name__}({extra})"


def _categorical(xp, targets, z, from_logits):
    """Cross-entropy -sum(t * log p) over the last axis of targets t and predictions z (..., C)."""
    if from_logits:
        shifted = z - z.max(axis=-1, keepdims=True)
        log_norm = xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
        values = -(targets * (shifted - log_norm)).sum(axis=-1)
        # d/dz -sum_j t_j log_softmax_j = softmax * sum(t) - t
        return values, lambda: xp.exp(shifted - log_norm) * targets.sum(axis=-1, keepdims=True) - targets
    total = z.sum(axis=-1, keepdims=True)
    p = z / total
    q = xp.clip(p, EPSILON, 1.0 - EPSILON)
    values = -(targets * xp.log(q)).sum(axis=-1)

    def local_grad():
        # through the clip (zero outside it) and the renormalization p = z / sum(z)
        dq = -targets / q * ((p > EPSILON) & (p < 1.0 - EPSILON))
        return (dq - (dq * p).sum(axis=-1, keepdims=True)) / total
    return values, local_grad


class CategoricalCrossentropy(Loss):
    """-sum(y_true * log y_pred) over classes; y_true one-hot or probabilities, shape of y_pred."""

    name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def values(self, xp, y_true, y_pred, weights):
        return _categorical(xp, _targets_like(xp, y_true, y_pred, self.name), y_pred, self.from_logits)


class SparseCategoricalCrossentropy(Loss):
    """Categorical cross-entropy with integer class ids (B,) or (B, T) as targets. Ids outside
    0..C-1 are an error, except at positions of weight 0 (padding may hold any id, e.g. -1)."""

    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def values(self, xp, y_true, y_pred, weights):
        classes = y_pred.shape[-1]
        ids = sparse_ids(xp, y_true, y_pred.shape)
        out_of_range = ((ids < 0) | (ids >= classes)) & (weights != 0)
        deferred.check(xp, out_of_range.any(), lambda: ValueError(
            f"y_true: class id {int(ids[out_of_range].ravel()[0])} outside 0..{classes - 1} at an unmasked position"))
        return _categorical(xp, one_hot(xp, ids, classes, y_pred.dtype), y_pred, self.from_logits)


class BinaryCrossentropy(Loss):
    """-(t log p + (1 - t) log(1 - p)) per element; y_true of the shape of y_pred (or without its
    trailing axis of 1)."""

    name = "binary_crossentropy"
    reduces_last_axis = False

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def values(self, xp, y_true, y_pred, weights):
        t = _targets_like(xp, y_true, y_pred, self.name)
        z = y_pred
        if self.from_logits:
            # log(1 + exp(z)) - t z, written so that exp never overflows
            values = xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z)))
            return values, lambda: _sigmoid(xp, z) - t
        q = xp.clip(z, EPSILON, 1.0 - EPSILON)
        values = -(t * xp.log(q) + (1.0 - t) * xp.log(1.0 - q))
        return values, lambda: ((1.0 - t) / (1.0 - q) - t / q) * ((z > EPSILON) & (z < 1.0 - EPSILON))


class MeanSquaredError(Loss):
    """(y_pred - y_true)^2 per element."""

    name = "mean_squared_error"
    reduces_last_axis = False

    def values(self, xp, y_true, y_pred, weights):
        diff = y_pred - _targets_like(xp, y_true, y_pred, self.name)
        return diff * diff, lambda: 2.0 * diff


class LossFunctionWrapper(Loss):
    """A user's callable ``fn(y_true, y_pred[, mask]) -> Tensor`` (a scalar recorded in the graph).
    A mask reaches only a function that takes a ``mask`` argument; any other refuses masked data
    rather than silently averaging over padding."""

    def __init__(self, fn: Callable, name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "loss")
        try:
            parameters = inspect.signature(fn).parameters
        except (TypeError, ValueError):  # some builtins have no signature
            parameters = {}
        self.takes_mask = "mask" in parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())

    def __call__(self, y_true, y_pred, mask=None) -> Tensor:
        if self.takes_mask:
            return self.fn(y_true, y_pred, mask=mask)
        if mask is not None or getattr(y_pred, "lengths", None) is not None:
            raise TypeError(f"loss {self.name}: the data is masked (padding), but the function takes no "
                            "mask argument; give it a `mask=None` parameter (weights, 0 at padding)")
        return self.fn(y_true, y_pred)

    def __repr__(self):
        return f"LossFunctionWrapper({self.name})"


_BY_NAME = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
}
_BY_NAME.update({cls.__name__.lower(): cls for cls in set(_BY_NAME.values())})


def get(obj) -> Loss:
    """A Loss from a name (Keras's, or the class name), a Loss instance or a callable."""
    if isinstance(obj, Loss):
        return obj
    if isinstance(obj, str):
        cls = _BY_NAME.get(obj.lower())
        if cls is None:
            names = ", ".join(sorted(n for n in _BY_NAME if "_" in n or n == "mse"))
            raise ValueError(f"loss: unknown name {obj!r}; expected one of {names}")
        return cls()
    if isinstance(obj, type) and issubclass(obj, Loss):
        return obj()
    if callable(obj):
        return LossFunctionWrapper(obj)
    raise TypeError(f"loss: expected a name, a Loss or a callable, got {type(obj).__name__}")
