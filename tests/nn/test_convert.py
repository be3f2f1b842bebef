"""Weight conversion: torch.nn.LSTM/GRU/RNN state dicts and Keras weight lists give the same outputs
through our ops, and convert back exactly."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fusedrnn import ops
from fusedrnn.nn import convert
from fusedrnn.nn.autograd import Tensor

torch = pytest.importorskip("torch")

# float64 on both sides, the same math in a different summation order over a few short steps:
# differences are rounding, ~1e-15; 1e-10 (the bound) still catches any swapped gate or
# transposed matrix, which is off by O(0.1).
TOL = 1e-10
B, T, I, H = 3, 5, 4, 6
TORCH_MODULES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "rnn_relu": "RNN"}


def cell_of(kind):
    return kind.split("_")[0]


def make_torch(kind, num_layers, bidirectional, bias=True, seed=0):
    torch.manual_seed(seed)
    extra = {"nonlinearity": "relu"} if kind == "rnn_relu" else {}
    module = getattr(torch.nn, TORCH_MODULES[kind])(I, H, num_layers=num_layers, bidirectional=bidirectional,
                                                    batch_first=True, bias=bias, **extra).double()
    if bias:  # torch initializes with small uniform values; make the biases matter
        with torch.no_grad():
            for name, p in module.named_parameters():
                if name.startswith("bias"):
                    p.uniform_(-0.5, 0.5)
    return module


def run_ours(kind, x, params, h0, c0, num_layers, bidirectional):
    """-> y, h_n, c_n (None but for LSTM) through fusedrnn.ops' stacked ops."""
    cell = cell_of(kind)
    if cell == "lstm":
        y, h_n, c_n, _ = ops.lstm(x, params, h0, c0, num_layers=num_layers, bidirectional=bidirectional)
        return y, h_n, c_n
    if cell == "gru":
        y, h_n, _ = ops.gru(x, params, h0, num_layers=num_layers, bidirectional=bidirectional)
    else:
        y, h_n, _ = ops.rnn(x, params, h0, num_layers=num_layers, bidirectional=bidirectional,
                            nonlinearity="relu" if kind == "rnn_relu" else "tanh")
    return y, h_n, None


def run_torch(kind, module, x, h0, c0):
    with torch.no_grad():
        if cell_of(kind) == "lstm":
            y, (h_n, c_n) = module(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
            return y.numpy(), h_n.numpy(), c_n.numpy()
        y, h_n = module(torch.from_numpy(x), torch.from_numpy(h0))
        return y.numpy(), h_n.numpy(), None


def assert_close(a, b, tol=TOL):
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= tol


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", list(TORCH_MODULES))
def test_torch_parity_and_round_trip(kind, num_layers, bidirectional):
    module = make_torch(kind, num_layers, bidirectional)
    rng = np.random.default_rng(1)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I))
    h0 = 0.5 * rng.standard_normal((num_layers * D, B, H))
    c0 = 0.5 * rng.standard_normal((num_layers * D, B, H))
    params = convert.torch_state_dict_to_params(cell_of(kind), module.state_dict())
    assert len(params) == num_layers * D
    for ours, theirs in zip(run_ours(kind, x, params, h0, c0, num_layers, bidirectional),
                            run_torch(kind, module, x, h0, c0)):
        if theirs is not None:
            assert_close(ours, theirs)
    back = convert.params_to_torch_state_dict(cell_of(kind), params, num_layers, bidirectional)
    original = module.state_dict()
    assert list(back) == list(original)  # torch's key order
    for key in original:
        assert back[key].dtype == original[key].dtype and torch.equal(back[key], original[key])
    module.load_state_dict(back, strict=True)


def test_torch_options_and_errors():
    no_bias = make_torch("gru", 1, False, bias=False)
    ((w_ih, w_hh, b_ih, b_hh),) = convert.torch_state_dict_to_params("gru", no_bias.state_dict())
    assert not b_ih.any() and not b_hh.any() and w_ih.shape == (3 * H, I)
    # a module inside a larger one: keys under a prefix
    outer = torch.nn.Sequential(make_torch("lstm", 2, True))
    params = convert.torch_state_dict_to_params("lstm", outer.state_dict(), 2, True, prefix="0.")
    named = convert.params_to_torch_state_dict("lstm", params, bidirectional=True, prefix="0.", tensors="numpy")
    assert all(isinstance(v, np.ndarray) for v in named.values())
    outer.load_state_dict({k: torch.from_numpy(v) for k, v in named.items()})
    state = make_torch("lstm", 2, False).state_dict()
    with pytest.raises(ValueError, match="num_layers: 1 given, the state dict has 2 layers"):
        convert.torch_state_dict_to_params("lstm", state, num_layers=1)
    with pytest.raises(ValueError, match="bidirectional: True given"):
        convert.torch_state_dict_to_params("lstm", state, bidirectional=True)
    with pytest.raises(ValueError, match=r"w_hh must be \(3\*H, H\) for gru"):
        convert.torch_state_dict_to_params("gru", state)
    broken = dict(state)
    del broken["weight_hh_l1"]
    with pytest.raises(ValueError, match="missing weight_hh_l1"):
        convert.torch_state_dict_to_params("lstm", broken)
    del broken["bias_hh_l0"]
    with pytest.raises(ValueError, match="missing bias_hh_l0"):
        convert.torch_state_dict_to_params("lstm", broken)
    projected = torch.nn.LSTM(I, H, proj_size=2).state_dict()
    with pytest.raises(ValueError, match="proj_size is not supported.*weight_hr_l0"):
        convert.torch_state_dict_to_params("lstm", projected)
    with pytest.raises(ValueError, match="cell: expected one of lstm, gru, rnn"):
        convert.torch_state_dict_to_params("transformer", state)
    with pytest.raises(ValueError, match="expected num_layers \\* directions = 1 \\* 2"):
        convert.params_to_torch_state_dict("lstm", params[:1], num_layers=1, bidirectional=True)


# ------------------------------------------------------------------------------------ Keras, in NumPy
# The recurrences of Keras's documentation, on Keras's weight lists (kernel (I, G*H),
# recurrent_kernel (H, G*H), bias), written independently of fusedrnn.


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def keras_lstm(x, kernel, recurrent, bias, h, c):
    ys = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = np.split(z, 4, axis=-1)  # Keras's i, f, c, o
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        ys.append(h)
    return np.stack(ys, axis=1), h, c


def keras_gru(x, kernel, recurrent, bias, h):
    """reset_after=True: hh = tanh(x W_h + b_h + r * (h U_h + b_rh)), h = z * h + (1 - z) * hh."""
    ys = []
    for t in range(x.shape[1]):
        x_z, x_r, x_h = np.split(x[:, t] @ kernel + bias[0], 3, axis=-1)
        h_z, h_r, h_h = np.split(h @ recurrent + bias[1], 3, axis=-1)
        z = sigmoid(x_z + h_z)
        r = sigmoid(x_r + h_r)
        hh = np.tanh(x_h + r * h_h)
        h = z * h + (1 - z) * hh
        ys.append(h)
    return np.stack(ys, axis=1), h


def keras_simple_rnn(x, kernel, recurrent, bias, h):
    ys = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ kernel + bias + h @ recurrent)
        ys.append(h)
    return np.stack(ys, axis=1), h


def random_params(rng, cell):
    G = convert.GATES[cell]
    return tuple(0.5 * rng.standard_normal(s) for s in ((G * H, I), (G * H, H), (G * H,), (G * H,)))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_keras_parity(cell):
    rng = np.random.default_rng(2)
    params = random_params(rng, cell)
    x = rng.standard_normal((B, T, I))
    h0, c0 = 0.5 * rng.standard_normal((B, H)), 0.5 * rng.standard_normal((B, H))
    weights = convert.params_to_keras(cell, params)
    G = convert.GATES[cell]
    assert weights[0].shape == (I, G * H) and weights[1].shape == (H, G * H)
    assert weights[2].shape == ((2, G * H) if cell == "gru" else (G * H,))
    if cell == "lstm":
        y, h_n, c_n, _ = ops.lstm_forward(x, *params, h0, c0)
        ky, kh, kc = keras_lstm(x, *weights, h0, c0)
        assert_close(c_n, kc, 1e-12)
    elif cell == "gru":
        y, h_n, _ = ops.gru_forward(x, *params, h0)
        ky, kh = keras_gru(x, *weights, h0)
    else:
        y, h_n, _ = ops.rnn_forward(x, *params, h0)
        ky, kh = keras_simple_rnn(x, *weights, h0)
    # same float64 math a step at a time: rounding only
    assert_close(y, ky, 1e-12)
    assert_close(h_n, kh, 1e-12)
    # and back: GRU keeps both biases; LSTM/RNN fold them into b_ih (the same function)
    w_ih, w_hh, b_ih, b_hh = convert.keras_to_params(cell, weights)
    assert np.array_equal(w_ih, params[0]) and np.array_equal(w_hh, params[1])
    if cell == "gru":
        assert np.array_equal(b_ih, params[2]) and np.array_equal(b_hh, params[3])
    else:
        assert np.array_equal(b_ih, params[2] + params[3]) and not b_hh.any()
    assert all(np.array_equal(a, b) for a, b in zip(convert.params_to_keras(cell, (w_ih, w_hh, b_ih, b_hh)),
                                                     weights))


def test_keras_gru_gate_order_is_swapped():
    # our r z n blocks hold 0, 1, 2: Keras's z r h order must read 1, 0, 2
    w_ih = np.repeat(np.arange(3.0), H)[:, None] * np.ones((1, I))
    kernel = convert.params_to_keras("gru", (w_ih, np.zeros((3 * H, H)), np.zeros(3 * H), np.zeros(3 * H)))[0]
    assert np.array_equal(kernel[0], np.repeat([1.0, 0.0, 2.0], H))


def test_keras_errors_and_no_bias():
    rng = np.random.default_rng(3)
    kernel, recurrent, _ = convert.params_to_keras("gru", random_params(rng, "gru"))
    with pytest.raises(ValueError, match="reset_after=False"):
        convert.keras_to_params("gru", [kernel, recurrent, np.zeros(3 * H)])
    with pytest.raises(ValueError, match=r"kernel: must be \(I, 24\) for lstm"):
        convert.keras_to_params("lstm", [kernel, np.zeros((H, 4 * H)), np.zeros(4 * H)])
    with pytest.raises(ValueError, match=r"recurrent_kernel: must be \(H, 4\*H\)"):
        convert.keras_to_params("lstm", [kernel, recurrent, np.zeros(4 * H)])
    with pytest.raises(ValueError, match="expected \\[kernel, recurrent_kernel, bias\\]"):
        convert.keras_to_params("gru", [kernel])
    _, _, b_ih, b_hh = convert.keras_to_params("gru", [kernel, recurrent])  # use_bias=False
    assert not b_ih.any() and not b_hh.any()


# ---------------------------------------------------------------------------------- layer helpers
# Stand-ins with the attribute names of fusedrnn's recurrent layers (cell, w_ih, w_hh, b_ih, b_hh;
# Bidirectional: forward_layer, backward_layer): these helpers depend on nothing else.


def fake_layer(cell, inputs, dtype=np.float64):
    G = convert.GATES[cell]
    shapes = {"w_ih": (G * H, inputs), "w_hh": (G * H, H), "b_ih": (G * H,), "b_hh": (G * H,)}
    return SimpleNamespace(cell=cell, **{k: Tensor(np.zeros(s, dtype), requires_grad=True) for k, s in shapes.items()})


def fake_bidirectional(cell, inputs, dtype=np.float64):
    return SimpleNamespace(forward_layer=fake_layer(cell, inputs, dtype), backward_layer=fake_layer(cell, inputs, dtype))


def test_layers_from_and_to_torch():
    module = make_torch("lstm", 2, True)
    layers = [fake_bidirectional("lstm", I, np.float32), fake_bidirectional("lstm", 2 * H, np.float32)]
    arrays = [layers[0].forward_layer.w_hh.data]
    convert.layers_from_torch(layers, module)
    assert layers[0].forward_layer.w_hh.data is arrays[0]  # set in place, cast to the layer's dtype
    assert layers[0].forward_layer.w_hh.data.dtype == np.float32
    expected = module.state_dict()
    assert np.array_equal(layers[1].backward_layer.b_hh.data, expected["bias_hh_l1_reverse"].numpy().astype(np.float32))
    back = convert.layers_to_torch_state_dict(layers)
    assert list(back) == list(expected)
    assert all(torch.allclose(back[k].double(), expected[k], atol=1e-7) for k in expected)  # float32 rounding
    with pytest.raises(ValueError, match="a torch GRU cannot fill lstm layers"):
        convert.layers_from_torch(layers, make_torch("gru", 2, True))
    with pytest.raises(ValueError, match="num_layers: 1 given, the state dict has 2"):
        convert.layers_from_torch(layers[:1], module)


def test_layer_from_and_to_keras():
    rng = np.random.default_rng(4)
    layer = fake_bidirectional("gru", I)
    forward, backward = random_params(rng, "gru"), random_params(rng, "gru")
    weights = convert.params_to_keras("gru", forward) + convert.params_to_keras("gru", backward)
    convert.layer_from_keras(layer, weights)
    assert np.array_equal(layer.backward_layer.w_ih.data, backward[0])
    assert np.array_equal(layer.forward_layer.b_hh.data, forward[3])
    assert all(np.array_equal(a, b) for a, b in zip(convert.layer_to_keras(layer), weights))
    single = fake_layer("rnn", I)
    convert.layer_from_keras(single, convert.params_to_keras("rnn", random_params(rng, "rnn")))
    assert len(convert.layer_to_keras(single)) == 3


def test_set_layer_params_checks_before_writing():
    layer = fake_bidirectional("lstm", I)
    good = random_params(np.random.default_rng(5), "lstm")
    bad = (good[0], np.zeros((4 * H, H + 1)), good[2], good[3])
    with pytest.raises(ValueError, match=r"backward_layer: w_hh must be"):
        convert.set_layer_params(layer, [good, bad])
    assert not layer.forward_layer.w_ih.data.any()  # nothing written
    wrong_inputs = tuple(np.zeros((4 * H, I + 1)) if k == 0 else p for k, p in enumerate(good))
    with pytest.raises(ValueError, match=r"forward_layer.w_ih: shape \(24, 5\) given, \(24, 4\) in the layer"):
        convert.set_layer_params(layer, [wrong_inputs, good])
    with pytest.raises(ValueError, match="the layer has 2 direction"):
        convert.set_layer_params(layer, [good])
    unbuilt = SimpleNamespace(cell="lstm", w_ih=None, w_hh=None, b_ih=None, b_hh=None)
    with pytest.raises(ValueError, match="no weights yet"):
        convert.get_layer_params(unbuilt)
