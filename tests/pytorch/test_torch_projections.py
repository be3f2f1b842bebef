"""fusedrnn.torch.LSTM with projections (proj_size=P: h = W_hr (o * tanh c), h and y with P
columns, c with H) against torch.nn.LSTM(proj_size=P), float64: outputs, final states and every
gradient (weight_hr included) for every input form and option; dropout, inference calls, float32,
gradcheck, replace(), state_dict, torch.compile, and the errors for bad states and CUDA tensors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="fusedrnn.torch needs PyTorch (pip install fusedrnn[torch])")

import fusedrnn.torch as ft  # noqa: E402
from fusedrnn import ops  # noqa: E402
from torch_checks import FORMS, H, I, assert_close, make_hx, make_input, pair, run  # noqa: E402

# As test_parity: torch and the kernels sum in different orders (float64 rounding about 1e-15
# relative, measured), while a wrong gate, projection, state or padding step is off by 1e-2 or more.
RTOL = 1e-10
P = 2  # < H = 6, as torch.nn requires

# torch.nn's float32 LSTM(proj_size) on the CPU warns that oneDNN lacks projections: its warning, not ours.
pytestmark = [pytest.mark.usefixtures("torch_threads"),
              pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")]


def lstm_pair(**options):
    """(torch.nn.LSTM(proj_size=P), ours) with the same weights, float64 unless options say."""
    return pair("LSTM", None, **dict(dict(proj_size=P, dtype=torch.float64), **options))


@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_first", "batch_first"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["1layer", "2layers"])
def test_matches_torch_nn(num_layers, bidirectional, batch_first, bias, form, with_hx):
    generator = torch.Generator().manual_seed(20261206)
    reference, ours = lstm_pair(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
                                bias=bias)
    make, leaves, batch = make_input(form, batch_first, torch.float64, generator)
    hx, hx_leaves = (make_hx("LSTM", num_layers, bidirectional, batch, torch.float64, generator, proj_size=P)
                     if with_hx else (None, []))
    expected = run(reference, make, hx, leaves + hx_leaves, 7)
    actual = run(ours, make, hx, leaves + hx_leaves, 7)
    assert any(key.startswith("d_weight_hr_l0") for key in actual)  # weight_hr's gradient is compared too
    assert_close(actual, expected, RTOL, f"LSTM(proj_size={P}) {form}")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_gradcheck(bidirectional, bias):
    """torch.autograd.gradcheck (float64 finite differences) through input, states and every
    parameter (weight_hr among them) of a two-layer module, on a packed batch of unequal lengths."""
    from torch.func import functional_call
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    generator = torch.Generator().manual_seed(5)
    _, ours = lstm_pair(num_layers=2, bidirectional=bidirectional, batch_first=True, bias=bias)
    names = [n for n, _ in ours.named_parameters()]
    x = torch.randn(3, 4, I, dtype=torch.float64, generator=generator, requires_grad=True)
    (h0, c0), _ = make_hx("LSTM", 2, bidirectional, 3, torch.float64, generator, proj_size=P)
    lengths = torch.tensor([4, 2, 3])

    def f(x, h0, c0, *params):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, (h_n, c_n) = functional_call(ours, dict(zip(names, params)), (packed, (h0, c0)))
        return pad_packed_sequence(out, batch_first=True)[0], h_n, c_n

    params = [p.detach().clone().requires_grad_() for p in ours.parameters()]
    assert torch.autograd.gradcheck(f, (x, h0, c0, *params), eps=1e-6, atol=1e-8)


def test_parameters_state_dict_and_repr_are_torch_nn_s():
    kw = dict(num_layers=2, bias=False, batch_first=True, bidirectional=True, proj_size=P)
    reference = torch.nn.LSTM(I, H, **kw)
    ours = ft.LSTM(I, H, **kw)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in reference.named_parameters()]
    assert ours.weight_hr_l1_reverse.shape == (P, H) and ours.weight_hh_l1.shape == (4 * H, P)
    assert ours.weight_ih_l1.shape == (4 * H, 2 * P)  # the second layer reads both directions' projected h
    assert ours._flat_weights_names == reference._flat_weights_names
    assert repr(ours) == repr(reference)
    # state_dict both ways, strict
    ours.load_state_dict(reference.state_dict(), strict=True)
    back = torch.nn.LSTM(I, H, **kw)
    back.load_state_dict(ours.state_dict(), strict=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    x = torch.randn(2, 5, I)
    assert_close(dict(zip("yhc", _flat(ours(x)))), dict(zip("yhc", _flat(back(x)))), 1e-5)  # float32


def _flat(result):
    y, (h, c) = result
    return y, h, c


def test_outputs_and_states_have_torch_nn_s_shapes():
    reference, ours = lstm_pair(num_layers=2, bidirectional=True)
    x = torch.randn(5, 3, I, dtype=torch.float64)
    for module in (reference, ours):
        y, (h, c) = module(x)
        assert y.shape == (5, 3, 2 * P) and h.shape == (4, 3, P) and c.shape == (4, 3, H)
        y, (h, c) = module(x[:, 0])  # unbatched
        assert y.shape == (5, 2 * P) and h.shape == (4, P) and c.shape == (4, H)
    ours = ft.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P, device="meta")
    y, (h, c) = ours(torch.empty(5, 3, I, device="meta"))
    assert y.device.type == "meta" and y.shape == (5, 3, 2 * P) and h.shape == (4, 3, P) and c.shape == (4, 3, H)


def error_of(fn):
    try:
        fn()
    except Exception as error:  # the type and message are what the test compares
        return error
    raise AssertionError("no error raised")


BAD_STATES = {
    "h0 with H columns, not P": lambda m: m(torch.zeros(5, 2, I), (torch.zeros(1, 2, H), torch.zeros(1, 2, H))),
    "c0 with P columns, not H": lambda m: m(torch.zeros(5, 2, I), (torch.zeros(1, 2, P), torch.zeros(1, 2, P))),
    "unbatched h0 with H columns": lambda m: m(torch.zeros(5, I), (torch.zeros(1, H), torch.zeros(1, H))),
}


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_wrong_state_sizes_give_the_error_torch_nn_gives(case):
    expected = error_of(lambda: BAD_STATES[case](torch.nn.LSTM(I, H, proj_size=P)))
    actual = error_of(lambda: BAD_STATES[case](ft.LSTM(I, H, proj_size=P)))
    assert type(actual) is type(expected) and str(actual) == str(expected)


def test_wrong_state_size_with_packed_input_names_the_expected_size():
    # torch.nn skips its check of hx for packed input, and its kernel then says "got an incorrect
    # number of RNN parameters"; ours runs the check (torch.nn's own, with its message) first.
    packed = torch.nn.utils.rnn.pack_sequence([torch.zeros(5, I), torch.zeros(3, I)])
    hx = (torch.zeros(1, 2, H), torch.zeros(1, 2, H))  # h0 with H columns, not P
    assert isinstance(error_of(lambda: torch.nn.LSTM(I, H, proj_size=P)(packed, hx)), RuntimeError)
    with pytest.raises(RuntimeError, match=rf"Expected hidden\[0\] size \(1, 2, {P}\), got \[1, 2, {H}\]"):
        ft.LSTM(I, H, proj_size=P)(packed, hx)


def test_dropout_is_reproducible_under_manual_seed():
    """Training-mode dropout between layers (masks (B, T, D*P)): the same seed gives the same
    outputs and gradients, another seed others; eval mode, or dropout 0, none at all."""
    ours = ft.LSTM(I, H, num_layers=3, dropout=0.5, bidirectional=True, proj_size=P, dtype=torch.float64)
    x = torch.randn(4, 6, I, dtype=torch.float64, requires_grad=True)

    def step(seed):
        torch.manual_seed(seed)
        x.grad = None
        ours.zero_grad()
        y, (h, c) = ours(x)
        (y.sum() + h.sum() + c.sum()).backward()
        return [y.detach(), h.detach(), c.detach(), x.grad.clone()] + [p.grad.clone() for p in ours.parameters()]

    a, b, c = step(3), step(3), step(4)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[3], c[3])
    ours.eval()
    d, e = ours(x)[0], ours(x)[0]
    ours.train()
    ours.dropout = 0.0
    assert torch.equal(d, e) and torch.equal(d, ours(x)[0])


def test_dropout_matches_torch_nn_in_expectation():
    """Averaged over many draws, a two-layer module with dropout gives torch.nn's outputs on average
    too (a mask of the wrong width or scale would shift the mean)."""
    torch.manual_seed(4)
    reference, ours = lstm_pair(num_layers=2, dropout=0.5, batch_first=True)
    x = torch.randn(256, 3, I, dtype=torch.float64)
    assert (ours(x)[0].mean(0) - reference(x)[0].mean(0)).abs().max() < 0.05


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "nothing_requires_grad"])
def test_calls_without_gradients_keep_nothing_for_a_backward(mode, monkeypatch):
    calls = []
    original = ops.stack_forward  # the entry fusedrnn.torch calls

    def spy(*args, **kwargs):
        calls.append(kwargs["need_grad"])
        return original(*args, **kwargs)

    monkeypatch.setattr(ops, "stack_forward", spy)
    reference, ours = lstm_pair(num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, I, dtype=torch.float64)
    expected, _ = ours(x)
    if mode == "no_grad":
        with torch.no_grad():
            y, (h, c) = ours(x)
    elif mode == "inference_mode":
        with torch.inference_mode():
            y, (h, c) = ours(x)
    else:
        ours.requires_grad_(False)
        y, (h, c) = ours(x)
    assert calls == [True, False]
    assert y.grad_fn is None and h.grad_fn is None and c.grad_fn is None
    assert torch.equal(y, expected)  # the inference forward gives the training forward's outputs
    with torch.no_grad():
        assert_close(dict(zip("yhc", (y, h, c))), dict(zip("yhc", _flat(reference(x)))), RTOL)


def test_float32_matches_torch_nn():
    generator = torch.Generator().manual_seed(6)
    reference, ours = lstm_pair(num_layers=2, bidirectional=True, dtype=torch.float32)
    make, leaves, _ = make_input("packed_unsorted", False, torch.float32, generator)
    # float32 rounding through two layers and five steps: about 1e-6 relative, as without projections.
    assert_close(run(ours, make, None, leaves, 8), run(reference, make, None, leaves, 8), 1e-5)


def test_weights_changed_between_calls_reach_the_kernels():
    """The kept views of the weights (weight_hr among them) follow in-place changes and new Parameters."""
    reference, ours = lstm_pair(num_layers=2, bias=False)
    x = torch.randn(5, 2, I, dtype=torch.float64)

    def check():
        with torch.no_grad():
            assert_close(dict(zip("yhc", _flat(ours(x)))), dict(zip("yhc", _flat(reference(x)))), RTOL)

    check()
    with torch.no_grad():
        for module in (ours, reference):
            module.weight_hr_l0.mul_(0.5)
    check()
    new = torch.randn(P, H, dtype=torch.float64)
    for module in (ours, reference):
        module.weight_hr_l1 = torch.nn.Parameter(new.clone())
    check()


def test_backward_through_a_retained_graph_rebuilds_the_context():
    _, ours = lstm_pair(num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, I, dtype=torch.float64, requires_grad=True)
    y, (h, c) = ours(x)
    loss = y.sum() + h.sum() + c.sum()
    loss.backward(retain_graph=True)
    first, first_hr = x.grad.clone(), ours.weight_hr_l1_reverse.grad.clone()
    loss.backward()  # the second backward restores the op context from the saved tensors
    assert torch.allclose(x.grad, 2 * first, rtol=1e-14, atol=0)
    assert torch.allclose(ours.weight_hr_l1_reverse.grad, 2 * first_hr, rtol=1e-14, atol=0)


def test_an_empty_batch_gives_empty_results_and_zero_gradients_as_torch_nn():
    for module in lstm_pair(num_layers=2, bidirectional=True, dropout=0.5, dtype=torch.float32):
        x = torch.zeros(5, 0, I, requires_grad=True)
        y, (h, c) = module(x)
        assert y.shape == (5, 0, 2 * P) and h.shape == (4, 0, P) and c.shape == (4, 0, H)
        (y.sum() + h.sum() + c.sum()).backward()
        assert all(p.grad is not None and not p.grad.any() for p in module.parameters())


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True, proj_size=P)
        self.gru = torch.nn.GRU(2 * P, 4, batch_first=True)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x, hx=None):
        y, (h, c) = self.lstm(x, hx)
        z, _ = self.gru(y)
        return self.head(z).sum() + h.sum() + c.sum()


def test_replace_swaps_an_lstm_with_projections():
    torch.manual_seed(1)
    model = Model().double()
    x = torch.randn(3, 5, I, dtype=torch.float64)
    expected = model(x)
    expected.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    params = dict(model.named_parameters())
    model.zero_grad()

    assert ft.replace(model) is model
    assert type(model.lstm) is ft.LSTM and type(model.gru) is ft.GRU and model.lstm.proj_size == P
    assert all(p is params[n] for n, p in model.named_parameters())  # the same Parameter objects
    actual = model(x)
    assert torch.allclose(actual, expected, rtol=RTOL, atol=0)
    actual.backward()
    assert_close({n: p.grad for n, p in model.named_parameters()}, grads, RTOL)


# Inductor itself calls torch.jit.script_method, deprecated in this torch: its warning, not ours.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_model_matches_eager():
    """One graph under torch.compile: the ops' fake implementations give P-wide h, y and dh0,
    H-wide c and dc0."""
    torch.manual_seed(0)
    model = ft.replace(Model().double())
    x = torch.randn(3, 5, I, dtype=torch.float64, requires_grad=True)
    (h0, c0), leaves = make_hx("LSTM", 2, True, 3, torch.float64, torch.Generator().manual_seed(1), proj_size=P)
    leaves = [x] + leaves

    def grads():
        result = {f"d_leaf{k}": leaf.grad.clone() for k, leaf in enumerate(leaves)}
        result.update({n: p.grad.clone() for n, p in model.named_parameters()})
        for t in leaves:
            t.grad = None
        model.zero_grad()
        return result

    expected = model(x, (h0, c0))
    expected.backward()
    expected_grads = grads()
    actual = torch.compile(model, fullgraph=True)(x, (h0, c0))
    actual.backward()
    assert torch.allclose(actual, expected, rtol=1e-12, atol=0)
    assert_close(grads(), expected_grads, 1e-12)


def test_fake_implementations_give_the_real_shapes():
    """torch.library.opcheck: the ops' fake (shape-only) implementations, which torch.compile traces
    with, give the metadata of the real results (a wrong one need not fail a compiled run)."""
    from fusedrnn.torch import _ops

    ours = ft.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P, dtype=torch.float64)
    x = torch.randn(4, 5, I, dtype=torch.float64)
    (h0, c0), _ = make_hx("LSTM", 2, True, 4, torch.float64, torch.Generator().manual_seed(2), proj_size=P)
    weights, lengths = ours._weights(x), torch.tensor([5, 2, 4, 1])
    args = (x, weights, h0, c0, lengths, None, "lstm", "tanh", 2, True, True)
    torch.library.opcheck(_ops.rnn_stack, args, test_utils=("test_faketensor",))
    y, h_n, c_n, saved = _ops.rnn_stack(*args)
    torch.library.opcheck(_ops.rnn_stack_backward, (torch.ones_like(y), torch.ones_like(h_n), torch.ones_like(c_n), x,
                                                    weights, lengths, None, saved, "lstm", "tanh", 2, True, True),
                          test_utils=("test_faketensor",))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")
def test_cuda_tensors_are_a_clear_error_naming_proj_size():
    ours = ft.LSTM(I, H, proj_size=P).cuda()
    with pytest.raises(NotImplementedError, match="proj_size"):
        ours(torch.zeros(5, 2, I, device="cuda"))
