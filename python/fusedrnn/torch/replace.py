"""``replace(model)``: every torch.nn.LSTM/GRU/RNN of a model swapped for fusedrnn's, in place."""

from torch import nn

from .modules import GRU, LSTM, RNN

OURS = {nn.LSTM: LSTM, nn.GRU: GRU, nn.RNN: RNN}


def replace(model: nn.Module) -> nn.Module:
    """Swaps every module of ``model`` whose type is exactly torch.nn.LSTM, GRU or RNN (subclasses
    with their own forward are left alone) for fusedrnn.torch's, and returns the model (the new
    module if ``model`` itself is one). The new modules hold the same Parameter objects (an
    optimizer built before keeps working), on the same device and dtype, in the same training mode.
    A module that appears twice is replaced by one new module in both places."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    swapped = {}  # id(old) -> new

    def swap(module):
        if id(module) not in swapped:
            swapped[id(module)] = _fused_copy(module)
        return swapped[id(module)]

    if type(model) in OURS:
        return swap(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in OURS:
                setattr(parent, name, swap(child))
    return model


def _fused_copy(module):
    """Ours with ``module``'s options, parameters (the same objects) and training mode."""
    if module.proj_size > 0:
        raise NotImplementedError(f"replace: {module!r} has proj_size > 0 (LSTM with projections), which the "
                                  "fused kernels do not support")
    options = dict(input_size=module.input_size, hidden_size=module.hidden_size, num_layers=module.num_layers,
                   bias=module.bias, batch_first=module.batch_first, dropout=module.dropout,
                   bidirectional=module.bidirectional)
    if type(module) is nn.RNN:
        options["nonlinearity"] = module.nonlinearity
    new = OURS[type(module)](**options, device="meta")  # parameters follow; meta allocates nothing
    for name in module._flat_weights_names:
        setattr(new, name, getattr(module, name))
    new._init_flat_weights()
    return new.train(module.training)
