"""fusedrnn for PyTorch: drop-in ``LSTM``, ``GRU`` and ``RNN`` modules on the fused kernels.

    from fusedrnn.torch import LSTM          # instead of torch.nn.LSTM: same arguments, same results
    model = fusedrnn.torch.replace(model)    # or swap every torch.nn.LSTM/GRU/RNN of a model in place

CPU tensors run on the C++ kernels, CUDA tensors on the CUDA ones (on torch's current stream).
Autograd, ``torch.compile`` and ``DistributedDataParallel`` work as with torch.nn's modules.
Needs PyTorch (``pip install fusedrnn[torch]``); ``import fusedrnn`` does not.
"""

try:
    import torch
except ImportError:
    raise ImportError("fusedrnn.torch needs PyTorch, which is not installed: pip install fusedrnn[torch]") from None

from .modules import GRU, LSTM, RNN
from .replace import replace

# torch.load(..., weights_only=True) of a whole model that holds these modules.
torch.serialization.add_safe_globals([LSTM, GRU, RNN])

__all__ = ["LSTM", "GRU", "RNN", "replace"]
