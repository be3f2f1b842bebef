"""fusedrnn.torch under torch's tools around a module: activation checkpointing and saved-tensor
hooks, torch.jit.trace and torch.jit.script, higher-order and forward-mode autograd, and inputs
made under inference_mode."""

from __future__ import annotations

import tracemalloc

import pytest

torch = pytest.importorskip("torch", reason="fusedrnn.torch needs PyTorch (pip install fusedrnn[torch])")

import fusedrnn.torch as ft  # noqa: E402
from torch_checks import CELL_IDS, CELLS, assert_close, make_input, pair, run  # noqa: E402

F64 = {"dtype": torch.float64}
# torch 2.13 deprecates TorchScript (its own modules warn the same when traced), and tracing warns
# where Python reads a traced size (torch.nn's forward does as well).
JIT_WARNINGS = [pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning"),
                pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")]


# torch 2.4's checkpoint itself calls torch.cpu.amp.autocast, which that torch deprecates.
CHECKPOINT_WARNINGS = pytest.mark.filterwarnings("ignore:`torch.cpu.amp.autocast:FutureWarning")


def jit_warnings(test):
    for mark in JIT_WARNINGS:
        test = mark(test)
    return test


@CHECKPOINT_WARNINGS
@pytest.mark.parametrize("reentrant", [False, True], ids=["non_reentrant", "reentrant"])
@pytest.mark.parametrize("name,nonlinearity", CELLS, ids=CELL_IDS)
def test_checkpoint_gives_torch_nn_s_gradients(name, nonlinearity, reentrant):
    from torch.utils.checkpoint import checkpoint

    reference, ours = pair(name, nonlinearity, num_layers=2, bidirectional=True, **F64)
    make, leaves, _ = make_input("padded", False, torch.float64, torch.Generator().manual_seed(1))

    def checkpointed(module):
        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = module

            def forward(self, x):
                return checkpoint(self.inner, x, use_reentrant=reentrant)

        return Wrapped()

    expected = run(checkpointed(reference), make, None, leaves, 2)
    assert_close(run(checkpointed(ours), make, None, leaves, 2), expected, 1e-10, name)


def _traced_bytes_after_forward(module, x, wrap):
    """NumPy memory (tracemalloc sees its buffers) still held after a forward of ``wrap(module, x)``, in bytes."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        y = wrap(module, x)
        held = tracemalloc.get_traced_memory()[0] - before
        y.sum().backward()
        return held
    finally:
        tracemalloc.stop()


@CHECKPOINT_WARNINGS
def test_checkpoint_keeps_no_activations_beside_the_recomputation():
    """Non-reentrant checkpoint keeps the layer's inputs and recomputes the rest in the backward:
    the forward's saved activations (gates, cell states: several times the output) must not stay
    alive outside autograd's saved-tensor hooks."""
    from torch.utils.checkpoint import checkpoint

    ours = ft.LSTM(16, 64, batch_first=True, **F64)
    x = torch.randn(8, 100, 16, requires_grad=True, **F64)
    output_bytes = 8 * 100 * 64 * 8
    plain = _traced_bytes_after_forward(ours, x, lambda m, inp: m(inp)[0])
    checkpointed = _traced_bytes_after_forward(
        ours, x, lambda m, inp: checkpoint(lambda i: m(i)[0], inp, use_reentrant=False))
    assert plain > 4 * output_bytes  # what a forward for training keeps: the measure sees it
    assert checkpointed < 1.5 * output_bytes, (checkpointed, output_bytes)


def test_saved_tensor_hooks_see_every_saved_tensor():
    """Hooks that move saved tensors elsewhere (offloading) get all the forward keeps: here they
    replace each by a copy and drop the original, and the gradients stay right."""
    reference, ours = pair("GRU", None, num_layers=2, **F64)
    make, leaves, _ = make_input("packed_unsorted", True, torch.float64, torch.Generator().manual_seed(3))
    packed = []

    def pack(tensor):
        packed.append(tensor.shape)
        return tensor.clone()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda copy: copy):
        actual = run(ours, make, None, leaves, 4)
    assert len(packed) > 1 + 2 * 4  # x, the weights and the saved activations
    assert_close(actual, run(reference, make, None, leaves, 4), 1e-10)


@jit_warnings
@pytest.mark.parametrize("name,nonlinearity", CELLS, ids=CELL_IDS)
def test_jit_trace_records_the_layer_not_its_result(name, nonlinearity):
    reference, ours = pair(name, nonlinearity, num_layers=2, bidirectional=True, **F64)
    traced = torch.jit.trace(ours, (torch.randn(5, 2, 3, **F64),))
    assert "fusedrnn::rnn_stack" in str(traced.graph)
    for shape in ((5, 2, 3), (7, 4, 3)):  # new values, and a new shape
        x = torch.randn(*shape, requires_grad=True, **F64)
        expected = run(reference, lambda: x, None, [x], 5)
        assert_close(run(traced, lambda: x, None, [x], 5), expected, 1e-10, f"{name} {shape}")
    with torch.no_grad():
        x = torch.randn(5, 2, 3, **F64)
        assert torch.allclose(traced(x)[0], reference(x)[0], rtol=0, atol=1e-12)


@jit_warnings
def test_jit_script_is_a_clear_error():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = ft.GRU(3, 4)

        def forward(self, x):
            return self.rnn(x)[0]

    for module in (ft.LSTM(3, 4), Model()):
        with pytest.raises(RuntimeError, match="cannot be compiled by torch.jit.script.*torch.jit.trace"):
            torch.jit.script(module)


@pytest.mark.parametrize("name,nonlinearity", CELLS, ids=CELL_IDS)
def test_double_backward_is_a_clear_error_whichever_way_it_is_asked(name, nonlinearity):
    """torch.nn differentiates its gradients again (a gradient penalty); ours refuses, clearly,
    instead of finding no path (or a silent None with allow_unused)."""
    ours = pair(name, nonlinearity, **F64)[1]
    x = torch.randn(5, 2, 3, requires_grad=True, **F64)
    (dx,) = torch.autograd.grad(ours(x)[0].pow(2).sum(), x, create_graph=True)  # first order works
    assert dx.abs().sum() > 0
    for second in (lambda: dx.pow(2).sum().backward(),
                   lambda: torch.autograd.grad(dx.pow(2).sum(), [x, ours.weight_hh_l0], allow_unused=True)):
        with pytest.raises(RuntimeError, match="double backward .* is not supported"):
            second()
    weight_grads = torch.autograd.grad(ours(x)[0].pow(2).sum(), list(ours.parameters()), create_graph=True)
    with pytest.raises(RuntimeError, match="double backward .* is not supported"):
        torch.autograd.grad(sum(g.pow(2).sum() for g in weight_grads), x)


@jit_warnings
def test_forward_mode_ad_is_a_clear_error():
    import torch.autograd.forward_ad as fwAD

    ours = ft.GRU(3, 4, **F64)
    with fwAD.dual_level():
        x = fwAD.make_dual(torch.randn(5, 2, 3, **F64), torch.randn(5, 2, 3, **F64))
        with pytest.raises(NotImplementedError, match="forward-mode AD .* is not supported"):
            ours(x)


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_first", "batch_first"])
def test_an_input_made_under_inference_mode_trains_a_module(batch_first):
    """A frozen encoder run under inference_mode feeding a trainable layer: the input needs no
    gradient, only its values for the weight gradients."""
    reference, ours = pair("LSTM", None, batch_first=batch_first, **F64)
    with torch.inference_mode():
        x = torch.randn(5, 2, 3, **F64)
    ours(x)[0].pow(2).sum().backward()
    x_plain = x.clone()  # torch.nn itself refuses one of the two layouts: compare on an ordinary copy
    reference(x_plain)[0].pow(2).sum().backward()
    for (n, p), q in zip(ours.named_parameters(), reference.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-10, atol=0), n


def test_the_layers_run_on_torch_s_thread_count():
    """torch.set_num_threads limits torch.nn's layers; a drop-in module follows it too (forward and backward)."""
    import fusedrnn

    before = torch.get_num_threads(), fusedrnn.get_num_threads()
    reference, ours = pair("LSTM", None, **F64)
    x = torch.randn(5, 2, 3, requires_grad=True, **F64)
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fusedrnn.set_num_threads(3 - threads)  # the other count
            y, _ = ours(x)
            assert fusedrnn.get_num_threads() == threads
            fusedrnn.set_num_threads(3 - threads)
            y.sum().backward()
            assert fusedrnn.get_num_threads() == threads
        assert torch.allclose(ours(x)[0], reference(x)[0], rtol=1e-12, atol=0)
    finally:
        torch.set_num_threads(before[0])
        fusedrnn.set_num_threads(before[1])


@CHECKPOINT_WARNINGS
def test_checkpoint_frees_the_dropout_masks_too():
    """Training-mode dropout between layers: the masks are saved tensors like the activations, so
    under non-reentrant checkpoint nothing holds them after the forward (the backward draws them
    again from the RNG state checkpoint restores)."""
    import gc
    import weakref

    from torch.utils.checkpoint import checkpoint

    ours = ft.LSTM(3, 5, num_layers=3, dropout=0.5, **F64)
    drawn = []
    draw = ours._dropout_masks

    def recording(x):
        masks = draw(x)
        drawn.append(weakref.ref(masks))
        return masks

    ours._dropout_masks = recording
    x = torch.randn(6, 2, 3, requires_grad=True, **F64)
    torch.manual_seed(4)
    y = checkpoint(lambda inp: ours(inp)[0], x, use_reentrant=False)
    gc.collect()
    assert len(drawn) == 1 and drawn[0]() is None
    y.sum().backward()  # the recomputation draws the same masks: the gradients of the run without checkpoint
    checkpointed = x.grad.clone()
    x.grad = None
    ours._dropout_masks = draw
    torch.manual_seed(4)
    ours(x)[0].sum().backward()
    assert torch.allclose(checkpointed, x.grad, rtol=1e-12, atol=0)
