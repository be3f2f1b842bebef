"""Sequence pooling: the chapter's ways to use a recurrent layer's outputs besides all of them
(``return_sequences=True``): the last valid state, or the mean over the valid steps."""

from __future__ import annotations

from .. import functional as F
from .base import Layer

__all__ = ["LastState", "GlobalAveragePooling1D"]


class _SequencePooling(Layer):
    def call(self, inputs, training=False):
        if inputs.ndim != 3:
            raise ValueError(f"{self.name}: expected input (batch, steps, features), got shape {tuple(inputs.shape)}")
        return self.pool(inputs, inputs.lengths)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


class LastState(_SequencePooling):
    """y (B, T, H) -> y[b, len_b - 1] (B, H): each row's output at its last valid step (what
    ``return_sequences=False`` gives, for a sequence that is needed elsewhere too)."""

    def pool(self, y, lengths):
        return F.last_valid(y, lengths)


class GlobalAveragePooling1D(_SequencePooling):
    """y (B, T, H) -> the mean over each row's valid steps (B, H); padding does not count."""

    def pool(self, y, lengths):
        return F.masked_mean(y, lengths)
