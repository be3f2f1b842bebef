"""fusedrnn.torch's modules as torch.nn's: construction, parameters, state_dict, replace(),
torch.save/torch.load, dropout, inference calls, float32, and errors for bad input."""

from __future__ import annotations

import contextlib
import math
import re

import pytest

torch = pytest.importorskip("torch", reason="fusedrnn.torch needs PyTorch (pip install fusedrnn[torch])")

import fusedrnn.torch as ft  # noqa: E402
from fusedrnn import ops  # noqa: E402
from torch_checks import CELL_IDS, CELLS, I, T, assert_close, make_input, pair, run  # noqa: E402


def options(name, nonlinearity):
    return {"nonlinearity": nonlinearity} if nonlinearity else {}


@pytest.mark.parametrize("name,nonlinearity", CELLS, ids=CELL_IDS)
def test_parameters_state_dict_and_repr_are_torch_nn_s(name, nonlinearity):
    kw = dict(num_layers=2, bias=False, batch_first=True, dropout=0.25, bidirectional=True, **options(name, nonlinearity))
    reference = getattr(torch.nn, name)(3, 6, **kw)
    ours = getattr(ft, name)(3, 6, **kw)
    # torch.nn's base (torch.compile refuses to trace subclasses of torch.nn.LSTM, GRU and RNN)
    assert isinstance(ours, torch.nn.RNNBase) and not isinstance(ours, getattr(torch.nn, name))
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in reference.named_parameters()]
    assert ours._flat_weights_names == reference._flat_weights_names
    assert [[p.shape for p in w] for w in ours.all_weights] == [[p.shape for p in w] for w in reference.all_weights]
    assert repr(ours) == repr(reference)
    # state_dict both ways, strict
    ours.load_state_dict(reference.state_dict(), strict=True)
    back = getattr(torch.nn, name)(3, 6, **kw)
    back.load_state_dict(ours.state_dict(), strict=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    ours.flatten_parameters()  # exists, changes nothing
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in reference.state_dict().items())


@pytest.mark.parametrize("name,nonlinearity", CELLS, ids=CELL_IDS)
def test_initialisation_is_uniform_within_one_over_sqrt_hidden(name, nonlinearity):
    torch.manual_seed(0)
    ours = getattr(ft, name)(16, 64, num_layers=2, **options(name, nonlinearity))
    bound = 1 / math.sqrt(64)
    values = torch.cat([p.detach().flatten() for p in ours.parameters()])
    assert values.abs().max() <= bound
    # U(-b, b) has mean 0 and standard deviation b/sqrt(3); tens of thousands of draws pin both.
    assert abs(values.mean().item()) < 0.02 * bound
    assert abs(values.std().item() - bound / math.sqrt(3)) < 0.02 * bound
    torch.manual_seed(0)
    reference = getattr(torch.nn, name)(16, 64, num_layers=2, **options(name, nonlinearity))
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), reference.parameters()))  # same draws


def test_device_and_dtype_arguments():
    ours = ft.GRU(3, 4, device="cpu", dtype=torch.float64)
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in ours.parameters())
    y, h = ours(torch.zeros(2, 5, 3, dtype=torch.float64))
    assert y.dtype == h.dtype == torch.float64


def test_constructor_errors_are_torch_nn_s():
    for name, kwargs in (("RNN", dict(dropout=1.5)), ("RNN", dict(nonlinearity="sigmoid")),
                         ("GRU", dict(proj_size=2)), ("RNN", dict(proj_size=2)), ("LSTM", dict(proj_size=6))):
        with pytest.raises(ValueError) as expected:
            getattr(torch.nn, name)(3, 4, **kwargs)
        with pytest.raises(ValueError) as actual:
            getattr(ft, name)(3, 4, **kwargs)
        assert str(actual.value) == str(expected.value)
    assert ft.RNN(3, 4, 2, "relu").nonlinearity == "relu"  # torch.nn.RNN's positional order


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(20, 5)
        self.lstm = torch.nn.LSTM(5, 6, num_layers=2, batch_first=True, bidirectional=True)
        self.blocks = torch.nn.ModuleList([torch.nn.GRU(12, 4, batch_first=True),
                                           torch.nn.Sequential(torch.nn.RNN(4, 8, nonlinearity="relu",
                                                                            batch_first=True))])
        self.head = torch.nn.Linear(8, 2)
        self.shared = self.blocks[0]  # one module in two places

    def forward(self, tokens):
        y, _ = self.lstm(self.embed(tokens))
        y, _ = self.blocks[0](y)
        y, _ = self.blocks[1][0](y)
        return self.head(y)


def test_replace_swaps_nested_modules_in_place():
    torch.manual_seed(1)
    model = Encoder().double()
    model.blocks.eval()
    tokens = torch.randint(0, 20, (3, 7))
    expected = model(tokens)
    params = dict(model.named_parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    assert ft.replace(model) is model
    assert type(model.lstm) is ft.LSTM and type(model.blocks[0]) is ft.GRU and type(model.blocks[1][0]) is ft.RNN
    assert model.shared is model.blocks[0]
    assert model.blocks[1][0].nonlinearity == "relu" and model.lstm.bidirectional and model.lstm.num_layers == 2
    assert model.lstm.training and not model.blocks[0].training and not model.blocks[1][0].training
    for name, p in model.named_parameters():  # the same Parameter objects: the optimizer holds them
        assert p is params[name], name
        assert p.dtype == torch.float64
    actual = model(tokens)
    assert torch.allclose(actual, expected, rtol=0, atol=1e-12)
    actual.sum().backward()
    before = model.lstm.weight_hh_l0.detach().clone()
    optimizer.step()
    assert not torch.equal(model.lstm.weight_hh_l0, before)
    assert isinstance(ft.replace(torch.nn.GRU(2, 3)), ft.GRU)  # a bare module comes back replaced
    with pytest.raises(TypeError, match="model"):
        ft.replace("not a model")


@contextlib.contextmanager
def safe_globals(classes):
    """torch.serialization.safe_globals, which torch 2.4 lacks: there, its process-wide list for a while."""
    if hasattr(torch.serialization, "safe_globals"):
        with torch.serialization.safe_globals(classes):
            yield
        return
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals(classes)
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


def test_torch_save_and_load_whole_model_with_weights_only(tmp_path):
    torch.manual_seed(2)
    model = ft.replace(Encoder())
    path = tmp_path / "model.pt"
    torch.save(model, path)
    # weights_only=True allows only registered classes: ours register themselves on import; the
    # user's own model classes are the user's to register, as with any whole-model checkpoint.
    # (set: every Module's _non_persistent_buffers_set, which torch.load allows by itself from torch 2.6)
    with safe_globals([Encoder, torch.nn.Embedding, torch.nn.ModuleList, torch.nn.Sequential, torch.nn.Linear, set]):
        loaded = torch.load(path, weights_only=True)
    assert type(loaded.lstm) is ft.LSTM and type(loaded.blocks[1][0]) is ft.RNN
    tokens = torch.randint(0, 20, (2, 4))
    assert torch.equal(loaded(tokens), model(tokens))


def test_dropout_is_reproducible_under_manual_seed_and_off_in_eval():
    ours = ft.LSTM(3, 8, num_layers=3, dropout=0.5, batch_first=True)
    x = torch.randn(4, 6, 3)
    torch.manual_seed(3)
    a, _ = ours(x)
    torch.manual_seed(3)
    b, _ = ours(x)
    c, _ = ours(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    ours.eval()
    d, _ = ours(x)
    e, _ = ours(x)
    ours.dropout = 0.0
    f, _ = ours(x)
    assert torch.equal(d, e) and torch.equal(d, f)


def test_dropout_masks_match_torch_nn_in_expectation():
    """The masks keep each unit with probability 1-p and scale it by 1/(1-p): averaged over many
    draws, a two-layer module with dropout gives the outputs torch.nn's gives on average too."""
    torch.manual_seed(4)
    reference, ours = pair("GRU", None, num_layers=2, dropout=0.5, batch_first=True, dtype=torch.float64)
    x = torch.randn(256, 3, 3, dtype=torch.float64)
    mean_ours = ours(x)[0].mean(0)
    mean_reference = reference(x)[0].mean(0)
    assert (mean_ours - mean_reference).abs().max() < 0.05
    ours.dropout = 1.0  # everything dropped between the layers: the second layer sees zeros
    y, _ = ours(x)
    ours.eval()
    assert not torch.equal(y, ours(x)[0])


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "nothing_requires_grad"])
def test_calls_without_gradients_keep_nothing_for_a_backward(mode, monkeypatch):
    calls = []
    original = ops.stack_forward  # the entry fusedrnn.torch calls for every cell

    def spy(*args, **kwargs):
        calls.append(kwargs["need_grad"])
        return original(*args, **kwargs)

    monkeypatch.setattr(ops, "stack_forward", spy)
    torch.manual_seed(5)
    ours = ft.LSTM(3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
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
    assert y.grad_fn is None and h.grad_fn is None
    assert torch.equal(y, expected)  # the inference forward gives the training forward's outputs


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_weights_changed_between_calls_reach_the_kernels(bias):
    """The module keeps its weights' NumPy views from call to call; every way of changing a weight
    (in place, through .data, a new Parameter, the module moved to another dtype) reaches the
    kernels, and the kept views are never pickled with the module."""
    import copy
    import pickle

    torch.manual_seed(9)
    reference = torch.nn.LSTM(3, 4, num_layers=2, bias=bias, dtype=torch.float64)
    ours = ft.LSTM(3, 4, num_layers=2, bias=bias, dtype=torch.float64)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64)

    def check(rtol=1e-12):
        (y, (h, c)), (y_ref, (h_ref, c_ref)) = ours(x), reference(x)
        assert_close({"y": y, "h": h, "c": c}, {"y": y_ref, "h": h_ref, "c": c_ref}, rtol)

    check()
    with torch.no_grad():
        for module in (ours, reference):
            module.weight_hh_l0.mul_(0.5)  # as an optimizer step does
    check()
    new = torch.randn(16, 4, dtype=torch.float64)
    for module in (ours, reference):
        module.weight_hh_l1.data = new.clone()
    check()
    new = torch.randn(16, 3, dtype=torch.float64)
    for module in (ours, reference):
        module.weight_ih_l0 = torch.nn.Parameter(new.clone())
    check()
    for module in (ours, reference):
        module.float()
    x = x.float()
    check(1e-5)
    assert "_weight_arrays" in vars(ours)  # the views are kept...
    assert not {"_weight_arrays", "_zero_bias"} & set(ours.__getstate__())  # ...but not pickled
    for clone in (copy.deepcopy(ours), pickle.loads(pickle.dumps(ours))):
        assert torch.equal(clone(x)[0], ours(x)[0])


def test_float32_matches_torch_nn():
    generator = torch.Generator().manual_seed(6)
    reference, ours = pair("LSTM", None, num_layers=2, bidirectional=True)
    make, leaves, _ = make_input("packed_unsorted", False, torch.float32, generator)
    # float32 rounding through two layers and five steps: about 1e-6 relative, measured.
    assert_close(run(ours, make, None, leaves, 8), run(reference, make, None, leaves, 8), 1e-5)


def error_of(fn):
    try:
        fn()
    except Exception as error:  # the type and message are what the test compares
        return error
    raise AssertionError("no error raised")


BAD_CALLS = {
    "feature size": lambda m: m(torch.zeros(5, 2, 4)),
    "hx shape": lambda m: m(torch.zeros(5, 2, 3), torch.zeros(1, 3, 6)),
    "hx 2-D for batched input": lambda m: m(torch.zeros(5, 2, 3), torch.zeros(2, 6)),
    "integer input": lambda m: m(torch.zeros(5, 2, 3, dtype=torch.int64)),
    "1-D input": lambda m: m(torch.zeros(3)),
    "4-D input": lambda m: m(torch.zeros(1, 5, 2, 3)),
    "no steps": lambda m: m(torch.zeros(0, 2, 3)),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_gives_the_error_torch_nn_gives(case):
    expected = error_of(lambda: BAD_CALLS[case](torch.nn.GRU(3, 6)))
    actual = error_of(lambda: BAD_CALLS[case](ft.GRU(3, 6)))
    assert type(actual) is type(expected) and str(actual) == str(expected)


def test_an_empty_batch_gives_empty_results_and_zero_gradients_as_torch_nn():
    # A data-parallel rank without samples still takes part in the step: every parameter gets a
    # (zero) gradient, as with torch.nn, so that DDP's reduction finds them all.
    for name, nonlinearity in CELLS:
        reference, ours = pair(name, nonlinearity, num_layers=2, bidirectional=True, dropout=0.5)
        for module in (reference, ours):
            x = torch.zeros(5, 0, 3, requires_grad=True)
            y, h = module(x)
            states = h if name == "LSTM" else (h,)
            assert y.shape == (5, 0, 12) and all(state.shape == (4, 0, 6) for state in states)
            (y.sum() + sum(state.sum() for state in states)).backward()
            assert x.grad.shape == x.shape
            assert all(p.grad is not None and not p.grad.any() for p in module.parameters())


def test_meta_tensors_give_shapes():
    ours = ft.LSTM(3, 6, num_layers=2, bidirectional=True, device="meta")
    y, (h, c) = ours(torch.empty(5, 2, 3, device="meta"))
    assert y.device.type == "meta" and y.shape == (5, 2, 12) and h.shape == c.shape == (4, 2, 6)


def test_changing_input_or_weights_in_place_before_backward_is_torch_s_error():
    """Autograd keeps x and the weights through save_for_backward: an in-place change between the
    forward and the backward is caught by their version counters, as with torch.nn."""
    for change in ("input", "weight"):
        ours = ft.GRU(3, 4, batch_first=True)
        x = torch.randn(2, 5, 3, requires_grad=True) * 1  # not a leaf: may change in place
        y, _ = ours(x)
        with torch.no_grad():
            (x if change == "input" else ours.weight_hh_l0).mul_(2)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


def test_backward_frees_the_saved_activations_unless_retain_graph():
    ours = ft.LSTM(3, 4, num_layers=2, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    y, _ = ours(x)
    y.sum().backward(retain_graph=True)
    first = x.grad.clone()
    y.sum().backward()  # the retained graph runs again and adds the same gradient
    assert torch.allclose(x.grad, 2 * first, rtol=1e-14, atol=0)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()  # freed after a backward without retain_graph, as torch.nn's


def test_torch_func_transforms_are_a_clear_error():
    from torch.func import functional_call, grad

    ours = ft.LSTM(3, 4, batch_first=True, dtype=torch.float64)
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    params = {n: p.detach() for n, p in ours.named_parameters()}
    with pytest.raises(RuntimeError, match="does not support torch.func transforms"):
        grad(lambda p: functional_call(ours, p, (x,))[0].pow(2).sum())(params)
    assert ours(x)[0].shape == (2, 4, 4)  # and the module still works after


def test_replace_keeps_hooks_and_parametrizations():
    from torch.nn.utils import parametrize

    class Doubled(torch.nn.Module):
        def forward(self, w):
            return 2 * w

    torch.manual_seed(7)
    reference = torch.nn.LSTM(3, 4, dtype=torch.float64)
    parametrize.register_parametrization(reference, "weight_hh_l0", Doubled())
    seen = []
    reference.register_forward_hook(lambda module, args, output: seen.append(type(module).__name__))
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    expected = reference(x)[0]
    swapped = ft.replace(reference)
    assert swapped is reference and isinstance(swapped, ft.LSTM)
    assert torch.allclose(swapped(x)[0], expected, rtol=1e-12, atol=0)  # the parametrization still applies
    assert len(seen) == 2  # the hook ran for both calls


def test_bad_states_and_dtypes_are_clear_errors():
    lstm = ft.LSTM(3, 6)
    x = torch.zeros(5, 2, 3)
    with pytest.raises(TypeError, match=r"hx: expected a tuple \(h_0, c_0\)"):
        lstm(x, torch.zeros(1, 2, 6))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size"):
        lstm(x, (torch.zeros(1, 2, 6), torch.zeros(1, 3, 6)))
    with pytest.raises(RuntimeError, match="hx: c_0 has dtype torch.float64"):
        lstm(x, (torch.zeros(1, 2, 6), torch.zeros(1, 2, 6, dtype=torch.float64)))
    with pytest.raises(TypeError, match="hx: expected h_0 to be a tensor"):
        ft.GRU(3, 6)(x, [[0.0]])
    for dtype in (torch.float16, torch.bfloat16):
        with pytest.raises(TypeError, match=f"{dtype} is not supported"):
            ft.GRU(3, 6, dtype=dtype)(x.to(dtype))


@pytest.mark.parametrize("name,nonlinearity", CELLS, ids=CELL_IDS)
def test_under_autocast_half_activations_run_in_the_weights_precision(name, nonlinearity):
    """Under torch.autocast a Linear's output is bfloat16; the layer takes it (and half states)
    cast up to its float32 weights, as an op of autocast's float32 list: float32 outputs equal to
    the layer's on the cast-up input, gradients back to the bfloat16 leaves. Outside autocast the
    same call is torch.nn's dtype error."""
    torch.manual_seed(0)
    layer = getattr(ft, name)(3, 5, num_layers=2, bidirectional=True, batch_first=True, **options(name, nonlinearity))
    x = torch.randn(2, 4, 3).bfloat16().requires_grad_()
    states = [torch.randn(4, 2, 5).bfloat16().requires_grad_() for _ in range(2 if name == "LSTM" else 1)]
    hx = tuple(states) if name == "LSTM" else states[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, h_n = layer(x, hx)
    expected_y, expected_h = layer(x.detach().float(), tuple(s.detach().float() for s in states) if name == "LSTM"
                                   else states[0].detach().float())
    assert y.dtype == torch.float32 and torch.equal(y, expected_y)
    for got, want in zip(h_n if name == "LSTM" else (h_n,), expected_h if name == "LSTM" else (expected_h,)):
        assert got.dtype == torch.float32 and torch.equal(got, want)
    y.sum().backward()
    assert x.grad.dtype == torch.bfloat16 and x.grad.abs().sum() > 0
    assert all(s.grad.dtype == torch.bfloat16 for s in states)
    assert all(p.grad.dtype == torch.float32 for p in layer.parameters())

    packed = torch.nn.utils.rnn.pack_padded_sequence(x.detach(), [4, 2], batch_first=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = layer(packed)
    assert out.data.dtype == torch.float32
    assert torch.equal(out.data, layer(packed.to(torch.float32))[0].data)

    reference = getattr(torch.nn, name)(3, 5, num_layers=2, bidirectional=True, batch_first=True,
                                        **options(name, nonlinearity))
    with pytest.raises(Exception) as torch_nn_error:
        reference(x)
    with pytest.raises(torch_nn_error.type, match=re.escape(str(torch_nn_error.value))):
        layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(TypeError, match="bfloat16 is not supported"):
        layer.bfloat16()(x)  # a half-precision module stays unsupported


@pytest.mark.parametrize("name,nonlinearity", CELLS, ids=CELL_IDS)
def test_an_empty_batch_gives_torch_nn_s_results(name, nonlinearity):
    """B = 0: empty outputs and states of torch.nn's shapes, zero gradients for the parameters."""
    reference, ours = pair(name, nonlinearity, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
    x = torch.empty(0, T, I, dtype=torch.float64, requires_grad=True)
    assert_close(run(ours, lambda: x, None, [x], 1), run(reference, lambda: x, None, [x], 1), 0, "empty batch")
