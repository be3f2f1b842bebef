"""A linear-chain CRF output layer and its loss (the math: fusedrnn.nn.crf).

    scores = Dense(C)(features)          # (B, T, C) unnormalized tag scores, no activation
    crf = CRF()
    out = crf(scores)                    # the same scores, with the CRF's weights attached
    model.compile(optimizer, loss=crf.loss)
    tags = crf.decode(model.predict(x), lengths)   # (B, T) best paths (Viterbi)

The layer passes its input through (keeping the lengths of masked sequences); its weights
``transitions`` (C, C) (from tag i to tag j), ``start`` (C,) and ``end`` (C,) enter only the loss,
the negative log-likelihood of the target paths averaged over the sequences of the batch, and the
decoding. They start at zero: the untrained CRF decodes each step's best score, like a softmax.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ... import ops
from ..._typing import Array, ArrayLike
from ..._xp import array_module
from .. import crf as math
from .. import deferred
from ..autograd import Tensor, as_tensor, record
from ..losses import Loss, sparse_ids
from .base import Layer, is_array, to_device
from .core import _known_last

__all__ = ["CRF", "CRFLoss"]


class CRF(Layer):
    """Tag scores (B, T, C) -> the same scores; ``loss`` trains, ``decode`` tags."""

    def __init__(self, transitions_initializer: Any = "zeros", **kwargs: Any):
        super().__init__(**kwargs)
        self.transitions_initializer = transitions_initializer
        self._loss = CRFLoss(self)

    def build(self, input_shape: Any) -> None:
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: expects tag scores of shape (B, T, C), got an input of shape "
                             f"{tuple(input_shape)}")
        classes = _known_last(self, input_shape, "tags")
        self.transitions = self.add_weight("transitions", (classes, classes), self.transitions_initializer)
        self.start = self.add_weight("start", (classes,), "zeros")
        self.end = self.add_weight("end", (classes,), "zeros")

    def call(self, inputs: Any, training: bool = False) -> Any:
        if inputs.ndim != 3:
            raise ValueError(f"{self.name}: expects tag scores of shape (B, T, C), got {tuple(inputs.shape)}")
        return inputs  # the weights act in the loss and the decoding, not on the scores

    def compute_output_shape(self, input_shape: Any) -> Any:
        return tuple(input_shape)

    @property
    def loss(self) -> CRFLoss:
        """The loss to compile with: targets one-hot (B, T, C) or tag ids (B, T)."""
        return self._loss

    def decode(self, scores: Tensor | ArrayLike, lengths: Optional[ArrayLike] = None) -> Array:
        """Best tag paths: scores (B, T, C) (what the model predicts), lengths (B,) in 1..T (None: all
        T) -> (B, T) int64 tag ids, 0 past each length, on the device of ``scores``."""
        if not self.built:
            raise ValueError(f"{self.name}: decode needs a built layer (call the model first)")
        scores = scores.data if isinstance(scores, Tensor) else scores
        if not is_array(scores):
            scores = np.asarray(scores)
        xp = array_module(scores)
        device = "cpu" if xp is np else "cuda"
        classes = self.transitions.shape[0]
        if scores.ndim != 3 or scores.shape[2] != classes or scores.dtype.kind != "f":
            raise ValueError(f"scores: expected float tag scores of shape (B, T, {classes}), got "
                             f"{scores.dtype} {tuple(scores.shape)}")
        if scores.shape[0] == 0 or scores.shape[1] == 0:
            return xp.zeros(scores.shape[:2], np.int64)
        lengths = ops.check_lengths(lengths, scores.shape[0], scores.shape[1])
        weights = [to_device(w.data, device) for w in (self.transitions, self.start, self.end)]
        return math.viterbi(xp, scores.astype(self.dtype, copy=False), lengths, *weights)


class CRFLoss(Loss):
    """Mean negative log-likelihood of the target tag paths under ``crf`` (a CRF layer)."""

    name = "crf_loss"

    def __init__(self, crf: CRF):
        self.crf = crf

    def __call__(self, y_true: Tensor | ArrayLike, y_pred: Tensor | Array, mask: Optional[Array] = None) -> Tensor:
        if mask is not None:
            raise ValueError("mask: the CRF loss reads the sequences' lengths from the scores; per-step "
                             "weights do not apply to whole paths")
        y_pred = as_tensor(y_pred)
        crf = self.crf
        if not crf.built:
            raise ValueError(f"{crf.name}: the CRF loss needs its layer built (call the model first)")
        scores = y_pred.data
        classes = crf.transitions.shape[0]
        if scores.ndim != 3 or scores.shape[2] != classes:
            raise ValueError(f"y_pred: expected tag scores of shape (B, T, {classes}), got {tuple(scores.shape)}")
        xp = y_pred.xp
        batch, steps, _ = scores.shape
        lengths = ops.check_lengths(y_pred.lengths, batch, steps)
        tags = self._tags(xp, y_true, scores, lengths)
        transitions, start, end = crf.transitions, crf.start, crf.end
        nll, grads = math.negative_log_likelihood(xp, scores, tags, lengths, transitions.data, start.data, end.data)
        loss = nll.mean()

        def backward(g):  # g: 0-d
            return grads(xp.ones(batch, scores.dtype) * (g / batch))
        return record(loss, (y_pred, transitions, start, end), backward, name=self.name)

    def _tags(self, xp, y_true, scores, lengths):
        """Tag ids (B, T) from one-hot targets (B, T, C) or ids (B, T), checked at the valid steps."""
        classes = scores.shape[2]
        y = y_true.data if isinstance(y_true, Tensor) else y_true
        y = xp.asarray(y)
        valid = math.valid_steps(xp, lengths, scores.shape[1])
        if y.shape == scores.shape:
            tags = y.argmax(axis=2)
            one_hot = (y.max(axis=2) == 1) & (y.sum(axis=2) == 1)
            deferred.check(xp, ~xp.all(one_hot | ~valid), lambda: ValueError(
                "y_true: the CRF loss needs one-hot targets (or tag ids) at every valid step"))
            return tags
        tags = sparse_ids(xp, y, scores.shape)
        deferred.check(xp, xp.any(((tags < 0) | (tags >= classes)) & valid), lambda: ValueError(
            f"y_true: tag ids must be in 0..{classes - 1} at every valid step"))
        return tags

    def __repr__(self) -> str:
        return f"CRFLoss({self.crf.name})"
