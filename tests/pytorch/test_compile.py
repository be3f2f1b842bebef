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


# Inductor itself calls torch.jit.script_method, deprecated in this torch: its warning, not ours.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
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
