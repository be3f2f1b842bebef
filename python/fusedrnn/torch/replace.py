"""``replace(model)``: every torch.nn.LSTM/GRU/RNN of a model turned into fusedrnn's, in place."""

from torch import nn
from torch.nn.utils import parametrize

from .modules import GRU, LSTM, RNN

OURS = {nn.LSTM: LSTM, nn.GRU: GRU, nn.RNN: RNN}


def replace(model: nn.Module) -> nn.Module:
    """Turns every module of ``model`` whose type is exactly torch.nn.LSTM, GRU or RNN (subclasses
    with their own forward are left alone) into fusedrnn.torch's, and returns ``model``.

    Each module keeps its identity and everything it holds: parameters (an optimizer built before
    keeps working), device, dtype, training mode, hooks and parametrizations (torch.nn.utils.
    parametrize). Only its class changes: ours add no state to torch.nn's, so nothing else needs
    to be copied. An LSTM with ``proj_size`` > 0 is replaced too; like fusedrnn.torch.LSTM, it
    runs on CPU tensors, and a call on CUDA tensors is a NotImplementedError."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    found = [(m, cls) for m in model.modules() if (cls := _fused_class(m)) is not None]
    for m, cls in found:
        m.__class__ = cls
    return model


def _fused_class(module):
    """The class to give ``module``: ours for a torch.nn.LSTM, GRU or RNN; for one that
    torch.nn.utils.parametrize gave a class of its own (a subclass of torch.nn's holding the
    parametrized attributes), the same made from ours; else None."""
    cls = type(module)
    if cls in OURS:
        return OURS[cls]
    base = cls.__bases__[0] if len(cls.__bases__) == 1 else None
    if base in OURS and parametrize.is_parametrized(module):
        own = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
        return type(cls.__name__, (OURS[base],), own)
    return None
