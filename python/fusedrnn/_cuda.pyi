"""Type stub of fusedrnn._cuda, the compiled CUDA kernels (csrc/bindings/cuda_module.cpp).

Built only where CMake found nvcc and cuBLAS. Call them through fusedrnn.ops with CuPy arrays
(fusedrnn/_gpu.py allocates, validates and passes the pointers). Arrays arrive as device pointers
(ints, 0 for none) in one dict per direction, with the shape given once: cell is "lstm", "gru" or
"rnn", dtype "float32" or "float64", activation 0 (tanh) or 1 (relu), path "auto", "persistent"
or "steps", stream a cudaStream_t as an int. Work is queued on that stream; nothing synchronises
with the host. Forward dict keys: x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, recurrent_mask, y,
h_n, c_n, gates, aux, h_prev, workspace, reverse. Backward dict keys: x, w_ih, w_hh, lengths,
recurrent_mask, gates, aux, h_prev, dy, dh_n, dc_n, dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0,
workspace, reverse.
"""

from typing import Any

def device_count() -> int:
    """CUDA devices visible; 0 when there is no driver or no device."""

def build_info() -> dict[str, Any]:
    """What this module was compiled with: cuda_runtime, cublas, architectures."""

def workspace_bytes(cell: str, dtype: str, batch: int, steps: int, input: int, hidden: int, which: str) -> int:
    """Bytes of device workspace one direction needs for which = "forward" or "backward" (either path)."""

def persistent_supported(
    cell: str, dtype: str, batch: int, steps: int, input: int, hidden: int, num_directions: int
) -> bool:
    """Whether the persistent kernels run this shape on the current device, forward and backward."""

def forward(
    cell: str,
    dtype: str,
    batch: int,
    steps: int,
    input: int,
    hidden: int,
    activation: int,
    path: str,
    tf32: bool,
    stream: int,
    directions: list[dict[str, Any]],
) -> str:
    """1 or 2 directions over a whole sequence, queued on stream; returns the path that ran, "persistent" or "steps"."""

def backward(
    cell: str,
    dtype: str,
    batch: int,
    steps: int,
    input: int,
    hidden: int,
    activation: int,
    path: str,
    tf32: bool,
    stream: int,
    directions: list[dict[str, Any]],
) -> str:
    """BPTT of 1 or 2 directions from what their forward saved, queued on stream; returns the path that ran."""
