"""fusedrnn: fused RNN, LSTM and GRU layers with C++ (and CUDA) kernels and a NumPy reference."""

from . import ops, reference
from ._gpu import allow_tf32, cuda_path
from ._native import build_info, empty_cache, get_num_threads, set_num_threads
from .grads import Grads, StackGrads

# The one place the version is written: pyproject.toml reads it at build time (scikit-build-core's
# regex metadata provider), and the compiled module reports the same (build_info()["version"]).
__version__ = "0.1.0"

__all__ = ["ops", "reference", "build_info", "empty_cache", "get_num_threads", "set_num_threads", "cuda_path",
           "allow_tf32", "Grads", "StackGrads"]
