"""fusedrnn: fused RNN, LSTM and GRU layers with C++ (and CUDA) kernels and a NumPy reference."""

from importlib.metadata import PackageNotFoundError, version as _version

from . import ops, reference
from ._gpu import allow_tf32, cuda_path
from ._native import build_info, get_num_threads, set_num_threads
from .grads import Grads, StackGrads

try:
    __version__ = _version("fusedrnn")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = ["ops", "reference", "build_info", "get_num_threads", "set_num_threads", "cuda_path", "allow_tf32", "Grads",
           "StackGrads"]
