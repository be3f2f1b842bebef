"""Weight conversion: torch.nn state dicts (each cell's torch_class: LSTM, GRU, RNN) and Keras weight
lists (each cell's keras_class: LSTM, GRU, SimpleRNN) give the same outputs through our ops, and
convert back exactly. Every test runs over the cell table (conftest.CELLS, OPS)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import CELLS, GATES, OP_IDS, OPS, torch_kwargs
from fusedrnn import ops
from fusedrnn.nn import convert
from fusedrnn.nn.autograd import Tensor

torch = pytest.importorskip("torch")

# float64 on both sides, the same math in a different summation order over a few short steps:
# differences are rounding, ~1e-15; 1e-10 (the bound) still catches any swapped gate or
# transposed matrix, which is off by O(0.1).
TOL = 1e-10
B, T, I, H = 3, 5, 4, 6


def other_gate_counts(cell):
    """The cells whose gate count differs from ``cell``'s: their weights have shapes ``cell`` refuses."""
    return [other for other in CELLS if GATES[other] != GATES[cell]]


def make_torch(cell, num_layers, bidirectional, bias=True, seed=0, nonlinearity="tanh"):
    torch.manual_seed(seed)
    module = getattr(torch.nn, ops.cell_info(cell).torch_class)(I, H, num_layers=num_layers,
                                                                 bidirectional=bidirectional, batch_first=True,
                                                                 bias=bias, **torch_kwargs(cell, nonlinearity)).double()
    if bias:  # torch initializes with small uniform values; make the biases matter
        with torch.no_grad():
            for name, p in module.named_parameters():
                if name.startswith("bias"):
                    p.uniform_(-0.5, 0.5)
    return module


def run_ours(cell, nonlinearity, x, params, h0, c0, num_layers, bidirectional):
    """-> y, h_n, c_n (None without a cell state) through fusedrnn.ops' stacked op."""
    y, h_n, c_n, _ = ops.stack_forward(cell, x, params, h0, c0, num_layers=num_layers, bidirectional=bidirectional,
                                       nonlinearity=nonlinearity)
    return y, h_n, c_n


def run_torch(cell, module, x, h0, c0):
    with torch.no_grad():
        if ops.cell_info(cell).has_cell_state:
            y, (h_n, c_n) = module(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
            return y.numpy(), h_n.numpy(), c_n.numpy()
        y, h_n = module(torch.from_numpy(x), torch.from_numpy(h0))
        return y.numpy(), h_n.numpy(), None


def assert_close(a, b, tol=TOL):
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= tol


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_torch_parity_and_round_trip(cell, nonlinearity, num_layers, bidirectional):
    module = make_torch(cell, num_layers, bidirectional, nonlinearity=nonlinearity)
    rng = np.random.default_rng(1)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I))
    h0 = 0.5 * rng.standard_normal((num_layers * D, B, H))
    c0 = 0.5 * rng.standard_normal((num_layers * D, B, H))
    params = convert.torch_state_dict_to_params(cell, module.state_dict())
    assert len(params) == num_layers * D
    for ours, theirs in zip(run_ours(cell, nonlinearity, x, params, h0, c0, num_layers, bidirectional),
                            run_torch(cell, module, x, h0, c0)):
        if theirs is not None:
            assert_close(ours, theirs)
    back = convert.params_to_torch_state_dict(cell, params, num_layers, bidirectional)
    original = module.state_dict()
    assert list(back) == list(original)  # torch's key order
    for key in original:
        assert back[key].dtype == original[key].dtype and torch.equal(back[key], original[key])
    module.load_state_dict(back, strict=True)


@pytest.mark.parametrize("cell", CELLS)
def test_torch_options_and_errors(cell):
    no_bias = make_torch(cell, 1, False, bias=False)
    ((w_ih, w_hh, b_ih, b_hh),) = convert.torch_state_dict_to_params(cell, no_bias.state_dict())
    assert not b_ih.any() and not b_hh.any() and w_ih.shape == (GATES[cell] * H, I)
    # a module inside a larger one: keys under a prefix
    outer = torch.nn.Sequential(make_torch(cell, 2, True))
    params = convert.torch_state_dict_to_params(cell, outer.state_dict(), 2, True, prefix="0.")
    named = convert.params_to_torch_state_dict(cell, params, bidirectional=True, prefix="0.", tensors="numpy")
    assert all(isinstance(v, np.ndarray) for v in named.values())
    outer.load_state_dict({k: torch.from_numpy(v) for k, v in named.items()})
    state = make_torch(cell, 2, False).state_dict()
    with pytest.raises(ValueError, match="num_layers: 1 given, the state dict has 2 layers"):
        convert.torch_state_dict_to_params(cell, state, num_layers=1)
    with pytest.raises(ValueError, match="bidirectional: True given"):
        convert.torch_state_dict_to_params(cell, state, bidirectional=True)
    for other in other_gate_counts(cell):  # this cell's state dict read as another cell's
        with pytest.raises(ValueError, match=rf"w_hh must be \({GATES[other]}\*H, H\) for {other}"):
            convert.torch_state_dict_to_params(other, state)
    broken = dict(state)
    del broken["weight_hh_l1"]
    with pytest.raises(ValueError, match="missing weight_hh_l1"):
        convert.torch_state_dict_to_params(cell, broken)
    del broken["bias_hh_l0"]
    with pytest.raises(ValueError, match="missing bias_hh_l0"):
        convert.torch_state_dict_to_params(cell, broken)
    with pytest.raises(ValueError, match=re.escape(f"cell: expected one of {', '.join(CELLS)}")):
        convert.torch_state_dict_to_params("transformer", state)
    with pytest.raises(ValueError, match="expected num_layers \\* directions = 1 \\* 2"):
        convert.params_to_torch_state_dict(cell, params[:1], num_layers=1, bidirectional=True)


@pytest.mark.parametrize("cell", CELLS)
def test_torch_projection_only_where_the_cell_has_one(cell):
    """proj_size (weight_hr_l{k}) converts to five-array entries for a projectable cell (LSTM; the
    layers' tests are in test_lstm_projections.py) and is refused for the others."""
    if ops.cell_info(cell).projectable:
        projected = getattr(torch.nn, ops.cell_info(cell).torch_class)(I, H, proj_size=2).state_dict()
        ((*_, w_hr),) = convert.torch_state_dict_to_params(cell, projected)
        assert w_hr.shape == (2, H)
        assert list(convert.params_to_torch_state_dict(cell, [(*_, w_hr)])) == list(projected)
        return
    state = make_torch(cell, 1, False).state_dict()
    state["weight_hr_l0"] = torch.zeros(2, H, dtype=torch.float64)
    with pytest.raises(ValueError, match=f"{cell} has no projections.*weight_hr_l0"):
        convert.torch_state_dict_to_params(cell, state)


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


# Keras's layer class (a cell's keras_class) -> its recurrence above: (x, kernel, recurrent, bias, *states)
# -> (y, *final states), states in the order of the cell's ``states``. A new cell adds its own here.
KERAS_RECURRENCES = {"LSTM": keras_lstm, "GRU": keras_gru, "SimpleRNN": keras_simple_rnn}


def random_params(rng, cell):
    G = GATES[cell]
    return tuple(0.5 * rng.standard_normal(s) for s in ((G * H, I), (G * H, H), (G * H,), (G * H,)))


@pytest.mark.parametrize("cell", CELLS)
def test_keras_parity(cell):
    info = ops.cell_info(cell)
    rng = np.random.default_rng(2)
    params = random_params(rng, cell)
    x = rng.standard_normal((B, T, I))
    h0, c0 = 0.5 * rng.standard_normal((B, H)), 0.5 * rng.standard_normal((B, H))
    weights = convert.params_to_keras(cell, params)
    G = GATES[cell]
    assert weights[0].shape == (I, G * H) and weights[1].shape == (H, G * H)
    assert weights[2].shape == ((2, G * H) if info.keras_split_bias else (G * H,))
    y, h_n, c_n, _ = ops.forward(cell, x, *params, h0, c0)
    ky, *kstates = KERAS_RECURRENCES[info.keras_class](x, *weights, *(h0, c0)[:len(info.states)])
    assert len(kstates) == len(info.states)
    # same float64 math a step at a time: rounding only
    assert_close(y, ky, 1e-12)
    for ours, theirs in zip((h_n, c_n), kstates):
        assert_close(ours, theirs, 1e-12)
    # and back: a cell with Keras's split bias (GRU) keeps both biases; the others (LSTM, SimpleRNN)
    # fold them into b_ih (the same function)
    w_ih, w_hh, b_ih, b_hh = convert.keras_to_params(cell, weights)
    assert np.array_equal(w_ih, params[0]) and np.array_equal(w_hh, params[1])
    if info.keras_split_bias:
        assert np.array_equal(b_ih, params[2]) and np.array_equal(b_hh, params[3])
    else:
        assert np.array_equal(b_ih, params[2] + params[3]) and not b_hh.any()
    assert all(np.array_equal(a, b) for a, b in zip(convert.params_to_keras(cell, (w_ih, w_hh, b_ih, b_hh)),
                                                     weights))


@pytest.mark.parametrize("cell", CELLS)
def test_keras_gate_order(cell):
    # our gate blocks hold 0, 1, ..., G-1; our block k is Keras's block keras_blocks[k]. GRU: our r z n
    # are Keras's z r h, so its kernel reads 1, 0, 2 (test_keras_parity checks the order against Keras's math).
    G, blocks = GATES[cell], ops.cell_info(cell).keras_blocks
    w_ih = np.repeat(np.arange(float(G)), H)[:, None] * np.ones((1, I))
    kernel = convert.params_to_keras(cell, (w_ih, np.zeros((G * H, H)), np.zeros(G * H), np.zeros(G * H)))[0]
    keras_order = np.empty(G)
    keras_order[list(blocks)] = np.arange(G)
    assert np.array_equal(kernel[0], np.repeat(keras_order, H))


@pytest.mark.parametrize("cell", CELLS)
def test_keras_errors_and_no_bias(cell):
    rng = np.random.default_rng(3)
    G = GATES[cell]
    kernel, recurrent, _ = convert.params_to_keras(cell, random_params(rng, cell))
    for other in other_gate_counts(cell):  # another cell's Keras weights given for this cell
        other_kernel, other_recurrent, _ = convert.params_to_keras(other, random_params(rng, other))
        with pytest.raises(ValueError, match=rf"kernel: must be \(I, {G * H}\) for {cell}"):
            convert.keras_to_params(cell, [other_kernel, recurrent, np.zeros(G * H)])
        with pytest.raises(ValueError, match=rf"recurrent_kernel: must be \(H, {G}\*H\)"):
            convert.keras_to_params(cell, [other_kernel, other_recurrent, np.zeros(G * H)])
    with pytest.raises(ValueError, match="expected \\[kernel, recurrent_kernel, bias\\]"):
        convert.keras_to_params(cell, [kernel])
    _, _, b_ih, b_hh = convert.keras_to_params(cell, [kernel, recurrent])  # use_bias=False
    assert not b_ih.any() and not b_hh.any()


@pytest.mark.parametrize("cell", [c for c in CELLS if ops.cell_info(c).keras_split_bias])
def test_keras_one_bias_row_is_refused_where_keras_splits_the_bias(cell):
    """A bias (G*H,) for a cell whose Keras layer keeps two bias rows (GRU) is Keras's reset_after=False
    GRU, another function: refused."""
    kernel, recurrent, _ = convert.params_to_keras(cell, random_params(np.random.default_rng(3), cell))
    with pytest.raises(ValueError, match="reset_after=False"):
        convert.keras_to_params(cell, [kernel, recurrent, np.zeros(GATES[cell] * H)])


# ---------------------------------------------------------------------------------- layer helpers
# Stand-ins with the attribute names of fusedrnn's recurrent layers (cell, w_ih, w_hh, b_ih, b_hh;
# Bidirectional: forward_layer, backward_layer): these helpers depend on nothing else.


def fake_layer(cell, inputs, dtype=np.float64):
    G = GATES[cell]
    shapes = {"w_ih": (G * H, inputs), "w_hh": (G * H, H), "b_ih": (G * H,), "b_hh": (G * H,)}
    return SimpleNamespace(cell=cell, **{k: Tensor(np.zeros(s, dtype), requires_grad=True) for k, s in shapes.items()})


def fake_bidirectional(cell, inputs, dtype=np.float64):
    return SimpleNamespace(forward_layer=fake_layer(cell, inputs, dtype), backward_layer=fake_layer(cell, inputs, dtype))


@pytest.mark.parametrize("cell", CELLS)
def test_layers_from_and_to_torch(cell):
    module = make_torch(cell, 2, True)
    layers = [fake_bidirectional(cell, I, np.float32), fake_bidirectional(cell, 2 * H, np.float32)]
    arrays = [layers[0].forward_layer.w_hh.data]
    convert.layers_from_torch(layers, module)
    assert layers[0].forward_layer.w_hh.data is arrays[0]  # set in place, cast to the layer's dtype
    assert layers[0].forward_layer.w_hh.data.dtype == np.float32
    expected = module.state_dict()
    assert np.array_equal(layers[1].backward_layer.b_hh.data, expected["bias_hh_l1_reverse"].numpy().astype(np.float32))
    back = convert.layers_to_torch_state_dict(layers)
    assert list(back) == list(expected)
    assert all(torch.allclose(back[k].double(), expected[k], atol=1e-7) for k in expected)  # float32 rounding
    for other in (c for c in CELLS if c != cell):
        with pytest.raises(ValueError, match=f"a torch {ops.cell_info(other).torch_class} cannot fill {cell} layers"):
            convert.layers_from_torch(layers, make_torch(other, 2, True))
    with pytest.raises(ValueError, match="num_layers: 1 given, the state dict has 2"):
        convert.layers_from_torch(layers[:1], module)


@pytest.mark.parametrize("cell", CELLS)
def test_layer_from_and_to_keras(cell):
    rng = np.random.default_rng(4)
    layer = fake_bidirectional(cell, I)
    forward, backward = random_params(rng, cell), random_params(rng, cell)
    weights = convert.params_to_keras(cell, forward) + convert.params_to_keras(cell, backward)
    convert.layer_from_keras(layer, weights)
    assert np.array_equal(layer.backward_layer.w_ih.data, backward[0])
    # b_hh survives the round trip where Keras keeps it apart (GRU); otherwise Keras's one bias is b_ih + b_hh
    if ops.cell_info(cell).keras_split_bias:
        assert np.array_equal(layer.forward_layer.b_hh.data, forward[3])
    else:
        assert np.array_equal(layer.forward_layer.b_ih.data, forward[2] + forward[3])
        assert not layer.forward_layer.b_hh.data.any()
    assert all(np.array_equal(a, b) for a, b in zip(convert.layer_to_keras(layer), weights))
    single = fake_layer(cell, I)
    convert.layer_from_keras(single, convert.params_to_keras(cell, random_params(rng, cell)))
    assert len(convert.layer_to_keras(single)) == 3


@pytest.mark.parametrize("cell", CELLS)
def test_set_layer_params_checks_before_writing(cell):
    G = GATES[cell]
    layer = fake_bidirectional(cell, I)
    good = random_params(np.random.default_rng(5), cell)
    bad = (good[0], np.zeros((G * H, H + 1)), good[2], good[3])
    with pytest.raises(ValueError, match=r"backward_layer: w_hh must be"):
        convert.set_layer_params(layer, [good, bad])
    assert not layer.forward_layer.w_ih.data.any()  # nothing written
    wrong_inputs = tuple(np.zeros((G * H, I + 1)) if k == 0 else p for k, p in enumerate(good))
    with pytest.raises(ValueError, match=rf"forward_layer.w_ih: shape \({G * H}, {I + 1}\) given, "
                                         rf"\({G * H}, {I}\) in the layer"):
        convert.set_layer_params(layer, [wrong_inputs, good])
    with pytest.raises(ValueError, match="the layer has 2 direction"):
        convert.set_layer_params(layer, [good])
    unbuilt = SimpleNamespace(cell=cell, w_ih=None, w_hh=None, b_ih=None, b_hh=None)
    with pytest.raises(ValueError, match="no weights yet"):
        convert.get_layer_params(unbuilt)
