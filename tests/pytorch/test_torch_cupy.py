"""fusedrnn.torch's side of CuPy that needs no GPU (marked gpu: it runs where CuPy is installed, as
in CI's CUDA-wheel step; tests/pytorch/test_torch_cuda.py holds the tests that need a GPU)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="fusedrnn.torch needs PyTorch (pip install fusedrnn[torch])")
cupy = pytest.importorskip("cupy", reason="the CUDA backend needs CuPy (pip install fusedrnn[gpu])")

from fusedrnn.torch._arrays import cupy_stream  # noqa: E402

pytestmark = pytest.mark.gpu


def test_torch_s_stream_reaches_cupy_without_a_deprecated_call():
    """CuPy 14 deprecates ExternalStream: under the suite's warnings-as-errors a call through it
    failed every CUDA call of the modules. The stream CuPy gets is torch's, by its handle."""
    stream = cupy_stream(cupy, 0x5EED, 0)
    assert stream.ptr == 0x5EED
