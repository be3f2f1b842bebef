"""torch.compile over a model that holds fusedrnn.torch modules: one graph (fullgraph=True: the
ops are opaque to dynamo, with fake implementations for shapes), and the eager results."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="fusedrnn.torch needs PyTorch (pip install fusedrnn[torch])")

import fusedrnn.torch as ft  # noqa: E402


class Tagger(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = ft.LSTM(4, 5, num_layers=2, batch_first=True, bidirectional=True, dtype=torch.float64)
        self.gru = ft.GRU(10, 3, dtype=torch.float64)
        self.out = torch.nn.Linear(3, 2, dtype=torch.float64)

    def forward(self, x):
        y, (h, c) = self.rnn(x)
        z, h2 = self.gru(y.transpose(0, 1))
        return self.out(z).sum() + h.sum() + c.sum() + h2.sum()


# Inductor itself calls torch.jit.script_method, which torch 2.13 deprecates: its warning, not ours.
INDUCTOR_WARNINGS = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


@INDUCTOR_WARNINGS
def test_compiled_model_matches_eager_forward_and_backward():
    torch.manual_seed(0)
    model = Tagger()
    x = torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True)
    expected = model(x)
    expected.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    dx = x.grad.clone()
    model.zero_grad()
    x.grad = None

    compiled = torch.compile(model, fullgraph=True)
    actual = compiled(x)
    actual.backward()
    # The same kernels on the same inputs; the compiled graph's own ops (sum, linear) may round
    # differently from eager's: 1e-12 relative.
    assert torch.allclose(actual, expected, rtol=1e-12, atol=0)
    assert torch.allclose(x.grad, dx, rtol=1e-12, atol=1e-14)
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, grads[name], rtol=1e-12, atol=1e-14), name
    with torch.no_grad():  # the inference path compiles too
        assert torch.allclose(compiled(x), expected, rtol=1e-12, atol=0)


@INDUCTOR_WARNINGS
def test_a_module_never_called_eagerly_compiles_in_one_graph():
    """fullgraph=True on a module's first call: what the module keeps between eager calls (the
    weights' arrays, zero biases for bias=False, made again after .double()) is not written while
    dynamo traces."""
    torch.manual_seed(0)
    for module in (ft.GRU(4, 6, bias=False).double(), ft.LSTM(4, 6, num_layers=2, dtype=torch.float64)):
        x = torch.randn(5, 3, 4, dtype=torch.float64)
        compiled = torch.compile(module, fullgraph=True)(x)[0]
        assert torch.allclose(compiled, module(x)[0], rtol=1e-12, atol=0)


@INDUCTOR_WARNINGS
# Dynamo reads .grad of a non-leaf input (the packed data) as it wraps it: torch's own warning,
# which it does not show under the default filters.
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_compiled_training_on_packed_sequences_matches_torch_nn(name):
    from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

    torch.manual_seed(1)
    reference = getattr(torch.nn, name)(4, 6, dtype=torch.float64)
    ours = getattr(ft, name)(4, 6, dtype=torch.float64)
    ours.load_state_dict(reference.state_dict())
    sequences = [torch.randn(n, 4, dtype=torch.float64, requires_grad=True) for n in (4, 6, 3)]

    def loss(module):
        output, _ = module(pack_sequence(sequences, enforce_sorted=False))
        return pad_packed_sequence(output)[0].pow(2).sum()

    expected = torch.autograd.grad(loss(reference), [*sequences, *reference.parameters()])
    actual = torch.autograd.grad(loss(torch.compile(ours)), [*sequences, *ours.parameters()])
    for got, want in zip(actual, expected):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


def exported_pair(strict):
    """torch.nn.LSTM and ours with its weights (eval), an input, and ours exported under no_grad."""
    torch.manual_seed(2)
    reference = torch.nn.LSTM(4, 6, num_layers=2).eval()
    ours = ft.LSTM(4, 6, num_layers=2).eval()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(5, 3, 4)
    with torch.no_grad():
        if not strict:
            try:
                torch.export.export(reference, (x,), strict=False)
            except ValueError as error:  # torch's own refusal of torch.nn.LSTM's forward
                pytest.skip(f"torch {torch.__version__}'s non-strict export refuses torch.nn.LSTM too: "
                            f"{str(error)[:60]}...")
        return reference, x, torch.export.export(ours, (x,), strict=strict)


def assert_like_torch_nn(outputs, reference, x):
    with torch.no_grad():
        expected, (h_ref, c_ref) = reference(x)
    y, (h, c) = outputs
    for got, want in ((y, expected), (h, h_ref), (c, c_ref)):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


# torch.nn.LSTM's non-strict export gives the same warning: its forward refreshes _flat_weights
# from the parameters that export swaps in.
@pytest.mark.filterwarnings("ignore:The tensor attributes self._flat_weights:UserWarning")
# torch 2.4's export says that it keeps a functional custom op whole, as this one is meant to be.
@pytest.mark.filterwarnings("ignore:At pre-dispatch tracing, we will assume:UserWarning")
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "non_strict"])
def test_an_exported_program_runs_like_torch_nn(strict):
    """torch.export records the layer as the op fusedrnn::rnn_stack, strict (dynamo traces the
    forward, torch.nn's input checks included) or not."""
    reference, x, program = exported_pair(strict)
    assert any("fusedrnn.rnn_stack" in str(node.target) for node in program.graph.nodes)
    assert_like_torch_nn(program.module()(x), reference, x)


@INDUCTOR_WARNINGS
@pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated:FutureWarning")  # inductor's own
@pytest.mark.skipif(not hasattr(torch._inductor, "aoti_compile_and_package"),
                    reason=f"torch {torch.__version__} has no AOTInductor packages (aoti_compile_and_package)")
def test_an_exported_model_runs_under_aot_inductor(tmp_path):
    """AOTInductor (a compiled package, run without Python's tracing): the op's arguments (no
    dropout masks: None) survive the package."""
    reference, x, program = exported_pair(strict=True)
    package = torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "lstm.pt2"))
    with torch.no_grad():
        assert_like_torch_nn(torch._inductor.aoti_load_package(package)(x), reference, x)
