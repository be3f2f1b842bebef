"""The training layer: a thin autograd over the fused ops, Keras-familiar layers and models."""

from .autograd import Tensor, as_tensor, no_grad

__all__ = ["Tensor", "as_tensor", "no_grad"]
