"""Metrics: weighted means of per-position values, accumulated over batches.

``metric.update(y_true, y_pred, mask=None)`` adds a batch (``y_pred`` an array, or a Tensor whose
``lengths`` then count as the mask); ``metric.result()`` is the mean over every unmasked position
seen since ``metric.reset()``. Positions and masks follow the losses' rule (fusedrnn.nn.losses):
accuracies have one value per (b) or (b, t), elementwise metrics (binary accuracy, mse, mae) one
per element. The sums stay on the arrays' device until ``result()``.
"""

from __future__ import annotations

from typing import Callable

from .._xp import array_module
from . import losses as _losses
from .autograd import Tensor


class Metric:
    """A running weighted mean of ``values(xp, y_true, y_pred, weights_for) -> per-position values``
    (``weights_for(shape)`` gives the weights of values of that shape, for metrics that need them)."""

    def __init__(self, name: str):
        self.name = name
        self.reset()

    def reset(self):
        self._total = 0.0
        self._count = 0.0

    def update(self, y_true, y_pred, mask=None):
        lengths = None
        if isinstance(y_pred, Tensor):
            lengths, y_pred = y_pred.lengths, y_pred.data
        xp = array_module(y_pred)
        y_pred = xp.asarray(y_pred)
        if y_pred.ndim < 1:
            raise ValueError(f"y_pred: expected at least 1 axis, got shape {tuple(y_pred.shape)}")
        dtype = y_pred.dtype if y_pred.dtype.kind == "f" else xp.float64

        def weights_for(shape):
            return _losses.position_weights(xp, mask, lengths, shape, dtype)
        values = self.values(xp, y_true, y_pred, weights_for)
        weights = weights_for(values.shape)
        self._total = self._total + (weights * values).sum(dtype=xp.float64)  # float64: many batches
        self._count = self._count + weights.sum(dtype=xp.float64)

    def result(self) -> float:
        count = float(self._count)
        return float(self._total) / count if count > 0 else 0.0

    def values(self, xp, y_true, y_pred, weights_for):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class CategoricalAccuracy(Metric):
    """argmax(y_pred) == argmax(y_true) per position."""

    def __init__(self, name: str = "categorical_accuracy"):
        super().__init__(name)

    def values(self, xp, y_true, y_pred, weights_for):
        y_true = xp.asarray(y_true.data if isinstance(y_true, Tensor) else y_true)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"y_true: categorical accuracy expects the shape of y_pred {tuple(y_pred.shape)}, "
                             f"got {tuple(y_true.shape)}")
        return (y_true.argmax(axis=-1) == y_pred.argmax(axis=-1)).astype(xp.float64)


class SparseCategoricalAccuracy(Metric):
    """argmax(y_pred) == id per position; ids (B,) or (B, T)."""

    def __init__(self, name: str = "sparse_categorical_accuracy"):
        super().__init__(name)

    def values(self, xp, y_true, y_pred, weights_for):
        ids = _losses.sparse_ids(xp, y_true, y_pred.shape)
        return (ids == y_pred.argmax(axis=-1)).astype(xp.float64)


class BinaryAccuracy(Metric):
    """(y_pred > threshold) == y_true per element (y_true 0/1, thresholded at 0.5 too)."""

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5):
        self.threshold = float(threshold)
        super().__init__(name)

    def values(self, xp, y_true, y_pred, weights_for):
        y_true = _losses._targets_like(xp, y_true, y_pred.astype(xp.float64), "binary accuracy")
        return ((y_pred > self.threshold) == (y_true > 0.5)).astype(xp.float64)


class Accuracy(Metric):
    """Keras's "accuracy": binary, sparse categorical or categorical, decided from the loss when one
    is given, else from the shapes of the first batch (as Keras does: one output unit -> binary;
    ids with fewer axes than y_pred -> sparse; else categorical)."""

    def __init__(self, name: str = "accuracy", loss=None):
        self._impl = self._kind_from_loss(loss)  # None: decided by the first batch
        super().__init__(name)

    @staticmethod
    def _kind_from_loss(loss):
        if isinstance(loss, _losses.SparseCategoricalCrossentropy):
            return SparseCategoricalAccuracy()
        if isinstance(loss, _losses.CategoricalCrossentropy):
            return CategoricalAccuracy()
        if isinstance(loss, _losses.BinaryCrossentropy):
            # from logits, p > 0.5 is z > 0 (Keras leaves the threshold at 0.5 and counts wrongly)
            return BinaryAccuracy(threshold=0.0 if loss.from_logits else 0.5)
        return None

    def values(self, xp, y_true, y_pred, weights_for):
        if self._impl is None:
            true_shape = tuple(xp.asarray(y_true.data if isinstance(y_true, Tensor) else y_true).shape)
            if y_pred.shape[-1] == 1:
                self._impl = BinaryAccuracy()
            elif len(true_shape) < y_pred.ndim or true_shape[-1:] == (1,):
                self._impl = SparseCategoricalAccuracy()
            else:
                self._impl = CategoricalAccuracy()
        return self._impl.values(xp, y_true, y_pred, weights_for)


class MeanMetricWrapper(Metric):
    """The running mean of ``fn(y_true, y_pred) -> per-position values`` (NumPy/CuPy arrays)."""

    def __init__(self, fn: Callable, name: str | None = None):
        self.fn = fn
        super().__init__(name or getattr(fn, "__name__", "metric"))

    def values(self, xp, y_true, y_pred, weights_for):
        return xp.asarray(self.fn(y_true, y_pred))


class LossMetric(Metric):
    """A loss's per-position values (unweighted by the loss's reduction), e.g. "mse" or
    "categorical_crossentropy" as a metric."""

    def __init__(self, loss: _losses.Loss, name: str | None = None):
        self.loss = loss
        super().__init__(name or loss.name)

    def values(self, xp, y_true, y_pred, weights_for):
        shape = y_pred.shape[:-1] if self.loss.reduces_last_axis else y_pred.shape
        values, _ = self.loss.values(xp, y_true, y_pred, weights_for(shape))
        return values


def _mean_absolute_error(y_true, y_pred):
    xp = array_module(y_pred)
    return xp.abs(y_pred - _losses._targets_like(xp, y_true, y_pred, "mean_absolute_error"))


_ALIASES = {"acc": "accuracy", "mse": "mean_squared_error", "mae": "mean_absolute_error"}


def get(obj, loss=None) -> Metric:
    """A Metric from a name, a Metric instance or a callable ``fn(y_true, y_pred) -> values``.
    ``loss`` (a name or Loss) decides what "accuracy"/"acc" means. The metric's ``name`` is the
    name asked for ("acc" stays "acc", as in Keras's history)."""
    if isinstance(obj, Metric):
        return obj
    if isinstance(obj, str):
        key = _ALIASES.get(obj.lower(), obj.lower())
        if key == "accuracy":
            return Accuracy(obj, loss=None if loss is None else _losses.get(loss))
        if key == "categorical_accuracy":
            return CategoricalAccuracy(obj)
        if key == "sparse_categorical_accuracy":
            return SparseCategoricalAccuracy(obj)
        if key == "binary_accuracy":
            return BinaryAccuracy(obj)
        if key == "mean_absolute_error":
            return MeanMetricWrapper(_mean_absolute_error, obj)
        if key in _losses._BY_NAME:
            return LossMetric(_losses.get(key), obj)
        raise ValueError(f"metric: unknown name {obj!r}; expected accuracy/acc, categorical_accuracy, "
                         "sparse_categorical_accuracy, binary_accuracy, mse, mae or a loss name")
    if callable(obj):
        return MeanMetricWrapper(obj)
    raise TypeError(f"metric: expected a name, a Metric or a callable, got {type(obj).__name__}")
