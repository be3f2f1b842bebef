"""Tensors as the kernels' arrays and back, without copies.

CPU tensors cross as NumPy views (``Tensor.numpy``, ``torch.from_numpy``; the weights through
DLPack, see ``weight_arrays``), CUDA tensors as CuPy views through DLPack. CUDA work runs on
torch's current stream of the tensors' device (CuPy's current stream is set to it, see
``cupy_stream``), so it is ordered after whatever torch queued before, and nothing waits for the
GPU. What the kernels allocate on the GPU (outputs, saved activations, workspaces) comes from
CuPy's memory pool, not torch's caching allocator.
"""

import contextlib

import numpy as np
import torch


def on_device(device: torch.device):
    """A context in which CuPy runs on torch's current stream of ``device`` (CUDA); nothing on the CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    try:
        import cupy
    except ImportError:
        raise RuntimeError("fusedrnn.torch: CUDA tensors need CuPy and fusedrnn's CUDA module "
                           "(pip install fusedrnn[gpu], built with nvcc: README 'Building with CUDA')") from None
    return _on_torch_stream(cupy, device.index if device.index is not None else torch.cuda.current_device())


@contextlib.contextmanager
def _on_torch_stream(cupy, index: int):
    """CuPy on device ``index`` and torch's current stream there, for the body of the with."""
    with cupy.cuda.Device(index), cupy_stream(cupy, torch.cuda.current_stream(index).cuda_stream, index):
        yield


class _StreamHandle:
    """A stream's handle under the CUDA stream protocol, which CuPy's ``Stream.from_external`` takes
    (torch's own streams speak it only in newer releases)."""

    def __init__(self, ptr: int):
        self.ptr = ptr

    def __cuda_stream__(self):
        return (0, self.ptr)  # (protocol version, cudaStream_t)


def cupy_stream(cupy, ptr: int, index: int):
    """The CUDA stream ``ptr`` (a cudaStream_t of device ``index``, which is current) as a CuPy stream:
    ``Stream.from_external`` where CuPy has it (14 deprecates ``ExternalStream``), else ``ExternalStream``."""
    if hasattr(cupy.cuda.Stream, "from_external"):
        return cupy.cuda.Stream.from_external(_StreamHandle(ptr))
    return cupy.cuda.ExternalStream(ptr, index)


def to_array(t):
    """A tensor as a NumPy (CPU) or CuPy (CUDA) view of its memory; None stays None; a list or
    tuple of tensors gives a list."""
    if t is None:
        return None
    if isinstance(t, (list, tuple)):
        return [to_array(item) for item in t]
    if not t.is_cuda:
        return t.detach().numpy()
    import cupy

    return cupy.from_dlpack(t.detach())


def weight_arrays(weights):
    """``to_array`` of each weight, through DLPack on the CPU too: ``Tensor.numpy()`` (2 us
    quicker) marks a storage as never resizable again, and FSDP frees and regrows its parameters'
    storage around each use."""
    return [np.from_dlpack(w.detach()) if not w.is_cuda else to_array(w) for w in weights]


def to_tensor(a):
    """A NumPy or CuPy array as a tensor sharing its memory; a list of arrays gives a list."""
    if isinstance(a, np.ndarray):
        return torch.from_numpy(a)
    if isinstance(a, list):
        return [to_tensor(item) for item in a]
    if a.size == 0:  # nothing to share; and CuPy's DLPack export would ask CUDA about a null pointer
        return torch.empty(a.shape, dtype=getattr(torch, a.dtype.name), device=f"cuda:{a.device.id}")
    return torch.from_dlpack(a)


class ArrayViews:
    """The arrays of a list of weights (``weight_arrays``), made again only when one of the tensors has
    other memory, shape, dtype or device than when they were made: for a module's weights, which
    stay put from call to call while the views cost a few microseconds each to make. The views are
    used only while every weight still has their data pointer, shape, strides and dtype: then they
    view the weights' present memory, even where it was freed and regrown in between (FSDP)."""

    def __init__(self):
        self._key = None
        self._arrays = None

    def __call__(self, tensors):
        key = [(t.data_ptr(), t.shape, t.stride(), t.dtype, t.is_cuda) for t in tensors]
        if key != self._key:
            self._arrays, self._key = weight_arrays(tensors), key
        return self._arrays
