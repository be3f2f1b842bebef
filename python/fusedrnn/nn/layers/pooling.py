"""Sequence pooling: the chapter's ways to use a recurrent layer's outputs besides all of them
(``return_sequences=True``): the last valid state, or the mean over the valid steps."""

from __future__ import annotations

from typing import Any, Optional

from ..._typing import Array
from .. import functional as F
from ..autograd import Tensor
from .base import Layer

__all__ = ["LastState", "GlobalAveragePooling1D"]


class _SequencePooling(Layer):
    def call(self, inputs: Any, training: bool = False) -> Any:
        if inputs.ndim != 3:
            raise ValueError(f"{self.name}: expected input (batch, steps, features), got shape {tuple(inputs.shape)}")
        return self.pool(inputs, inputs.lengths)

    def pool(self, y: Tensor, lengths: Optional[Array]) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.pool")

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], input_shape[2])


class LastState(_SequencePooling):
    """y (B, T, H) -> y[b, len_b - 1] (B, H): each row's output at its last valid step (what
    ``return_sequences=False`` gives, for a sequence that is needed elsewhere too)."""

    def pool(self, y: Tensor, lengths: Optional[Array]) -> Tensor:
        return F.last_valid(y, lengths)


class GlobalAveragePooling1D(_SequencePooling):
    """y (B, T, H) -> the mean over each row's valid steps (B, H); padding does not count."""

    def pool(self, y: Tensor, lengths: Optional[Array]) -> Tensor:
        return F.masked_mean(y, lengths)
