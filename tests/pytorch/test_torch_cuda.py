"""fusedrnn.torch on CUDA tensors (marked gpu; skipped without a GPU, CuPy or fusedrnn's CUDA
module): against cuDNN (float32) and against our CPU run (float64), on a non-default stream, with
no synchronisation in the forward, and a clear error for CPU input to a CUDA module."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="fusedrnn.torch needs PyTorch (pip install fusedrnn[torch])")
pytest.importorskip("cupy", reason="the CUDA backend needs CuPy (pip install fusedrnn[gpu])")

from fusedrnn import _native  # noqa: E402
from torch_checks import CELL_IDS, CELLS, I, T, assert_close, make_hx, make_input, pair, run  # noqa: E402

if not torch.cuda.is_available():
    pytest.skip("torch sees no CUDA device", allow_module_level=True)
if _native._cuda is None:
    pytest.skip(f"fusedrnn._cuda is not built ({_native._cuda_error})", allow_module_level=True)

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def no_tf32():
    """cuDNN in exact float32 (torch lets it use TF32 by default, about 1e-3 relative error)."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("form", ["padded", "packed_unsorted"])
@pytest.mark.parametrize("name,nonlinearity", CELLS, ids=CELL_IDS)
def test_matches_cudnn_in_float32_and_our_cpu_in_float64(name, nonlinearity, form):
    for dtype, rtol, peer in ((torch.float32, 1e-4, "cudnn"), (torch.float64, 1e-10, "our cpu")):
        # float32: two implementations' rounding through 2 layers (about 1e-6, measured on the CPU);
        # float64: the same kernels' math on two devices, rounding only.
        def inputs(device):
            generator = torch.Generator().manual_seed(11)
            make, leaves, batch = make_input(form, False, dtype, generator, device)
            hx, hx_leaves = make_hx(name, 2, True, batch, dtype, generator, device)
            return make, hx, leaves + hx_leaves

        reference, ours = pair(name, nonlinearity, num_layers=2, bidirectional=True, dtype=dtype)
        actual = run(ours.cuda(), *inputs("cuda"), 3)
        expected = run(reference.cuda(), *inputs("cuda"), 3) if peer == "cudnn" else run(ours.cpu(), *inputs("cpu"), 3)
        assert_close(actual, expected, rtol, f"{name} {form} vs {peer}")


def test_an_empty_batch_matches_our_cpu():
    """B = 0 on CUDA: the results are zero-size tensors (made by torch: a zero-size CuPy array has no
    memory to share through DLPack), as on the CPU."""
    _, ours = pair("LSTM", None, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
    results = {}
    for device in ("cpu", "cuda"):
        x = torch.empty(0, T, I, dtype=torch.float64, device=device, requires_grad=True)
        results[device] = run(ours.to(device), lambda: x, None, [x], 1)
    assert_close(results["cuda"], results["cpu"], 0, "empty batch")


def test_runs_on_a_non_default_stream_without_synchronising():
    _, ours = pair("LSTM", None, num_layers=2, bidirectional=True, batch_first=True)
    ours.cuda()
    x = torch.randn(8, 30, 3, device="cuda")
    expected = ours(x)[0]
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        x_on_stream = x.clone()  # queued on the side stream: only stream order makes it ready
        torch.cuda.set_sync_debug_mode("error")
        try:
            y, (h, c) = ours(x_on_stream)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        total = y.sum()
    stream.synchronize()
    assert torch.allclose(total, expected.sum(), rtol=1e-5)


def test_cpu_input_to_a_cuda_module_is_torch_s_error():
    from fusedrnn.torch import GRU

    ours = GRU(3, 4).cuda()
    reference = torch.nn.GRU(3, 4).cuda()
    x = torch.zeros(5, 2, 3)
    with pytest.raises(RuntimeError) as expected:
        reference(x)
    with pytest.raises(RuntimeError, match="not at the same device"):
        ours(x)
    assert "device" in str(expected.value)
