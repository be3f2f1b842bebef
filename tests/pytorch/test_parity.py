"""fusedrnn.torch against torch.nn, float64: outputs, final states and every gradient (input,
states, each parameter) for every module, input form and option; gradcheck on small shapes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="fusedrnn.torch needs PyTorch (pip install fusedrnn[torch])")

from torch_checks import CELL_IDS, CELLS, FORMS, assert_close, make_hx, make_input, pair, run  # noqa: E402

# torch and the kernels sum in different orders; float64 rounding measured about 1e-15 relative,
# while a wrong gate, state, order or padding step is off by 1e-2 or more.
RTOL = 1e-10


pytestmark = pytest.mark.usefixtures("torch_threads")


@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_first", "batch_first"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["1layer", "2layers"])
@pytest.mark.parametrize("name,nonlinearity", CELLS, ids=CELL_IDS)
def test_matches_torch_nn(name, nonlinearity, num_layers, bidirectional, batch_first, bias, form, with_hx):
    generator = torch.Generator().manual_seed(20261205)
    reference, ours = pair(name, nonlinearity, num_layers=num_layers, bidirectional=bidirectional,
                           batch_first=batch_first, bias=bias, dtype=torch.float64)
    make, leaves, batch = make_input(form, batch_first, torch.float64, generator)
    hx, hx_leaves = make_hx(name, num_layers, bidirectional, batch, torch.float64, generator) if with_hx else (None, [])
    expected = run(reference, make, hx, leaves + hx_leaves, 7)
    actual = run(ours, make, hx, leaves + hx_leaves, 7)
    assert_close(actual, expected, RTOL, f"{name} {form}")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("name,nonlinearity", CELLS, ids=CELL_IDS)
def test_gradcheck(name, nonlinearity, bidirectional):
    """torch.autograd.gradcheck (float64 finite differences) through input, states and every
    parameter of a two-layer module, with dropout off and a packed batch of unequal lengths."""
    from torch.func import functional_call
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    generator = torch.Generator().manual_seed(5)
    _, ours = pair(name, nonlinearity, num_layers=2, bidirectional=bidirectional, batch_first=True,
                   dtype=torch.float64)
    names = [n for n, _ in ours.named_parameters()]
    x = torch.randn(3, 4, ours.input_size, dtype=torch.float64, generator=generator, requires_grad=True)
    hx, hx_leaves = make_hx(name, 2, bidirectional, 3, torch.float64, generator)
    lengths = torch.tensor([4, 2, 3])

    def f(x, *tensors):
        states, params = tensors[:len(hx_leaves)], tensors[len(hx_leaves):]
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, hidden = functional_call(ours, dict(zip(names, params)),
                                      (packed, tuple(states) if name == "LSTM" else states[0]))
        return (pad_packed_sequence(out, batch_first=True)[0], *(hidden if name == "LSTM" else (hidden,)))

    params = [p.detach().clone().requires_grad_() for p in ours.parameters()]
    assert torch.autograd.gradcheck(f, (x, *hx_leaves, *params), eps=1e-6, atol=1e-8)
