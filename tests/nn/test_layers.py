"""Layers (fusedrnn.nn.layers): float64 finite-difference gradients of every weight and input, parity
of the recurrent layers with torch.nn, padding (a padded batch equals each sequence alone), go_backwards,
return_state, dropout, initializers, Embedding masks, weights API, symbolic shapes and parameter counts."""

import copy
import inspect

import numpy as np
import pytest
import torch

from conftest import CELLS, GATES, OP_IDS, OPS, torch_kwargs
from fusedrnn import ops
from fusedrnn.nn import functional as F
from fusedrnn.nn import layers as L
from fusedrnn.nn.autograd import Tensor
from nn_checks import check_gradients, float64_layers, leaf, max_rel_diff  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("float64_layers")

B, T, I, H = 3, 4, 3, 2
LENGTHS = np.array([4, 2, 1])  # full, padded, a single valid step


def layer_class(cell):
    """Our Keras-style layer of a cell (its keras_class: LSTM, GRU, SimpleRNN)."""
    return getattr(L, ops.cell_info(cell).keras_class)


def layer_kwargs(cell, nonlinearity):
    """The layer's ``activation`` for one op: passed only where it is not the cell's default."""
    return {} if nonlinearity == ops.cell_info(cell).nonlinearities[0] else {"activation": nonlinearity}


# (cell, layer class, its keyword arguments): every op of the cell table (conftest.OPS).
RNNS = [(cell, layer_class(cell), layer_kwargs(cell, nonlinearity)) for cell, nonlinearity in OPS]
RNN_IDS = OP_IDS
# float64 parity with torch / between two of our code paths doing the same arithmetic in another order:
# rounding of O(1) values through T = 4-6 steps is ~1e-15; 1e-12 leaves room, a wrong formula is off by >1e-3.
PARITY_RTOL = 1e-12


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def randomize(layer, rng, scale=0.5):
    """Random weights of O(scale) (biases too, so that every bias gradient is exercised)."""
    layer.set_weights([scale * rng.standard_normal(w.shape) for w in layer.get_weights()])
    return layer


def built(layer, shape, rng, scale=0.5):
    layer._maybe_build(shape)
    return randomize(layer, rng, scale)


def leaves(layer):
    """The layer's weights (they require gradients) plus nothing else."""
    return list(layer.weights)


def x_leaf(rng, shape=(B, T, I)):
    return leaf(rng.standard_normal(shape), name="x")


# ----------------------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("cell,cls,kw", RNNS, ids=RNN_IDS)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
def test_rnn_gradients(cell, cls, kw, return_sequences, go_backwards, lengths, rng):
    layer = built(cls(H, return_sequences=return_sequences, go_backwards=go_backwards, **kw), (None, T, I), rng)
    x = x_leaf(rng)
    check_gradients(lambda: layer(x, lengths=lengths), leaves(layer) + [x], rng)


@pytest.mark.parametrize("cell,cls,kw", RNNS, ids=RNN_IDS)
def test_rnn_state_gradients(cell, cls, kw, rng):
    """return_state outputs and initial_state inputs: gradients through h_n, c_n, h0, c0."""
    layer = built(cls(H, return_sequences=True, return_state=True, **kw), (None, T, I), rng)
    x = x_leaf(rng)
    states = [leaf(0.5 * rng.standard_normal((B, H)), name=f"state{k}") for k in range(layer.state_count)]
    check_gradients(lambda: layer(x, lengths=LENGTHS, initial_state=states), leaves(layer) + [x] + states, rng)


@pytest.mark.parametrize("cell", CELLS)
def test_rnn_dropout_gradients(cell, rng):
    """Input and recurrent dropout masks in training: the gradient goes through both (masks fixed by re-seeding)."""
    layer = built(layer_class(cell)(H, return_sequences=True, dropout=0.4, recurrent_dropout=0.4), (None, T, I), rng)
    x = x_leaf(rng)
    reset = lambda: setattr(layer, "rng", np.random.default_rng(5))  # noqa: E731
    check_gradients(lambda: layer(x, lengths=LENGTHS, training=True), leaves(layer) + [x], rng, reset=reset)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul", None])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_gradients(cell, merge_mode, return_sequences, rng):
    layer = L.Bidirectional(layer_class(cell)(H, return_sequences=return_sequences), merge_mode=merge_mode)
    built(layer, (None, T, I), rng)
    x = x_leaf(rng)
    check_gradients(lambda: layer(x, lengths=LENGTHS), leaves(layer) + [x], rng)


@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_state_and_dropout_gradients(cell, rng):
    layer = L.Bidirectional(layer_class(cell)(H, return_sequences=True, return_state=True, dropout=0.3,
                                              recurrent_dropout=0.3))
    built(layer, (None, T, I), rng)
    x = x_leaf(rng)
    count = 2 * layer.forward_layer.state_count
    states = [leaf(0.5 * rng.standard_normal((B, H)), name=f"state{k}") for k in range(count)]

    def reset():
        layer.forward_layer.rng = np.random.default_rng(1)
        layer.backward_layer.rng = np.random.default_rng(2)
    check_gradients(lambda: layer(x, lengths=LENGTHS, initial_state=states, training=True),
                        leaves(layer) + [x] + states, rng, reset=reset)


@pytest.mark.parametrize("activation", ["linear", "relu", "tanh", "sigmoid", "softmax"])
@pytest.mark.parametrize("shape", [(B, I), (B, T, I)], ids=["2d", "3d"])
def test_dense_gradients(activation, shape, rng):
    layer = built(L.Dense(4, activation=activation), (None,) + shape[1:], rng)
    x = x_leaf(rng, shape)
    check_gradients(lambda: layer(x), leaves(layer) + [x], rng)


def test_embedding_gradients_with_repeated_ids(rng):
    layer = built(L.Embedding(5, 3, mask_zero=True), (None, T), rng)
    ids = np.array([[1, 2, 1, 4], [3, 3, 0, 0], [2, 0, 0, 0]])
    out = layer(ids)
    assert out.lengths.tolist() == [4, 2, 1]
    check_gradients(lambda: layer(ids), leaves(layer), rng)


@pytest.mark.parametrize("inner", ["dense", "model"])
def test_time_distributed_gradients(inner, rng):
    """Dense applies to the last axis directly; any other layer (here a small functional Model) runs on
    the steps folded into the batch."""
    if inner == "dense":
        wrapped = L.Dense(4, activation="tanh")
    else:
        from fusedrnn.nn.models import Model

        inp = L.Input((I,))
        wrapped = Model(inp, L.Dense(2, activation="softmax")(L.Dense(4, activation="tanh")(inp)))
    layer = built(L.TimeDistributed(wrapped), (None, T, I), rng)
    x = x_leaf(rng)
    x_padded = F.identity(x)
    x_padded.lengths = LENGTHS
    out = layer(x_padded)
    assert out.shape[:2] == (B, T) and out.lengths is LENGTHS
    check_gradients(lambda: layer(x), leaves(layer) + [x], rng)


@pytest.mark.parametrize("cls", [L.LastState, L.GlobalAveragePooling1D])
def test_pooling_gradients_and_values(cls, rng):
    x = x_leaf(rng)
    layer = cls()
    out = layer(x, lengths=LENGTHS)
    for b, n in enumerate(LENGTHS):
        expected = x.data[b, n - 1] if cls is L.LastState else x.data[b, :n].mean(axis=0)
        np.testing.assert_allclose(out.data[b], expected, rtol=0, atol=1e-15)
    check_gradients(lambda: layer(x, lengths=LENGTHS), [x], rng)


@pytest.mark.parametrize("cls", [L.Concatenate, L.Add, L.Multiply, L.Average])
def test_merge_gradients(cls, rng):
    a, b = x_leaf(rng), x_leaf(rng)
    layer = cls()
    check_gradients(lambda: layer([a, b]), [a, b], rng)


def test_masking_sets_lengths_and_passes_gradients(rng):
    x = x_leaf(rng)
    layer = L.Masking(0.0)
    check_gradients(lambda: layer(x), [x], rng)  # (no padding: a nudged 0 would stop being padding)
    x.data[1, 2:] = 0.0
    x.data[2, 1:] = 0.0
    assert layer(x).lengths.tolist() == [4, 2, 1]
    x.data[0, 1] = 0.0  # a padded step before a valid one
    with pytest.raises(ValueError, match="post-padding"):
        layer(x)


def test_reverse_sequence_is_a_self_inverse_permutation(rng):
    x = x_leaf(rng)
    out = F.reverse_sequence(x, LENGTHS)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(out.data[b, :n], x.data[b, :n][::-1])
        np.testing.assert_array_equal(out.data[b, n:], x.data[b, n:])
    np.testing.assert_array_equal(F.reverse_sequence(out, LENGTHS).data, x.data)
    check_gradients(lambda: F.reverse_sequence(x, LENGTHS), [x], rng)
    check_gradients(lambda: F.reverse_sequence(x, None), [x], rng)


def test_small_ops_gradients(rng):
    """The generic ops the layers add to functional: multiply by a constant (broadcast), reshape, identity."""
    x = x_leaf(rng)
    mask = rng.standard_normal((B, 1, I))
    check_gradients(lambda: F.multiply_constant(x, mask), [x], rng)
    check_gradients(lambda: F.reshape(x, (B * T, I)), [x], rng)
    check_gradients(lambda: F.identity(x), [x], rng)


# ----------------------------------------------------------------------------------------- parity and padding

def torch_module(cell, kw, layers):
    """torch.nn's module of the cell (its torch_class; float64, batch_first) holding the weights of our
    layer(s) (one or two directions)."""
    info = ops.cell_info(cell)
    module = getattr(torch.nn, info.torch_class)(I, H, batch_first=True, bidirectional=len(layers) == 2,
                                                 dtype=torch.float64,
                                                 **torch_kwargs(cell, kw.get("activation", info.nonlinearities[0])))
    with torch.no_grad():
        for suffix, layer in zip(["", "_reverse"], layers):
            for ours, theirs in (("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"),
                                 ("b_hh", "bias_hh")):
                getattr(module, f"{theirs}_l0{suffix}").copy_(torch.from_numpy(getattr(layer, ours).data))
    return module


@pytest.mark.parametrize("cell,cls,kw", RNNS, ids=RNN_IDS)
def test_rnn_matches_torch(cell, cls, kw, rng):
    layer = built(cls(H, return_sequences=True, return_state=True, **kw), (None, T, I), rng)
    x = rng.standard_normal((B, T, I))
    outs = layer(x)
    module = torch_module(cell, kw, [layer])
    y, state = module(torch.from_numpy(x))
    states = state if isinstance(state, tuple) else (state,)
    assert max_rel_diff(outs[0].data, y.detach().numpy()) <= PARITY_RTOL
    for ours, theirs in zip(outs[1:], states):
        assert max_rel_diff(ours.data, theirs[0].detach().numpy()) <= PARITY_RTOL


@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_matches_torch(cell, rng):
    layer = built(L.Bidirectional(layer_class(cell)(H, return_sequences=True)), (None, T, I), rng)
    x = rng.standard_normal((B, T, I))
    module = torch_module(cell, {}, [layer.forward_layer, layer.backward_layer])
    y, _ = module(torch.from_numpy(x))
    assert max_rel_diff(layer(x).data, y.detach().numpy()) <= PARITY_RTOL


@pytest.mark.parametrize("cell,cls,kw", RNNS, ids=RNN_IDS)
def test_padded_batch_equals_each_sequence_alone(cell, cls, kw, rng):
    layer = built(cls(H, return_sequences=True, return_state=True, **kw), (None, T, I), rng)
    x = rng.standard_normal((B, T, I))
    outs = layer(x, lengths=LENGTHS)
    assert outs[0].lengths is not None and outs[0].lengths.tolist() == LENGTHS.tolist()
    for b, n in enumerate(LENGTHS):
        alone = layer(x[b:b + 1, :n])
        assert max_rel_diff(outs[0].data[b, :n], alone[0].data[0]) <= PARITY_RTOL
        assert not outs[0].data[b, n:].any(), "outputs at padding must be zero"
        for ours, theirs in zip(outs[1:], alone[1:]):
            assert max_rel_diff(ours.data[b], theirs.data[0]) <= PARITY_RTOL


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul"])
@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_padded_equals_each_sequence_alone(merge_mode, cell, rng):
    """The backward direction starts at each row's own last valid step, so padding changes nothing."""
    cls = layer_class(cell)
    layer = built(L.Bidirectional(cls(H, return_sequences=True, return_state=True), merge_mode=merge_mode),
                  (None, T, I), rng)
    x = rng.standard_normal((B, T, I))
    x[1, 2:] = 100.0  # garbage at padding must not leak in
    outs = layer(x, lengths=LENGTHS)
    for b, n in enumerate(LENGTHS):
        alone = layer(x[b:b + 1, :n])
        assert max_rel_diff(outs[0].data[b, :n], alone[0].data[0]) <= PARITY_RTOL
        assert not outs[0].data[b, n:].any()
        for ours, theirs in zip(outs[1:], alone[1:]):
            assert max_rel_diff(ours.data[b], theirs.data[0]) <= PARITY_RTOL


@pytest.mark.parametrize("cell,cls,kw", RNNS, ids=RNN_IDS)
def test_go_backwards_equals_reversed_input(cell, cls, kw, rng):
    backward = built(cls(H, return_sequences=True, return_state=True, go_backwards=True, **kw), (None, T, I), rng)
    forward = cls(H, return_sequences=True, return_state=True, **kw)
    forward._maybe_build((None, T, I))
    forward.set_weights(backward.get_weights())
    x = rng.standard_normal((B, T, I))
    for lengths in (None, LENGTHS):
        outs = backward(x, lengths=lengths)
        for b in range(B):
            n = T if lengths is None else lengths[b]
            expected = forward(x[b:b + 1, :n][:, ::-1])
            assert max_rel_diff(outs[0].data[b, :n], expected[0].data[0]) <= PARITY_RTOL
            for ours, theirs in zip(outs[1:], expected[1:]):
                assert max_rel_diff(ours.data[b], theirs.data[0]) <= PARITY_RTOL


def test_masked_equals_unmasked_on_unpadded_data(rng):
    """mask_zero (and explicit full lengths) change nothing when nothing is padded."""
    ids = rng.integers(1, 6, (B, T))
    outputs = []
    for mask_zero in (False, True):
        L.set_random_seed(3)
        inp = L.Input((None,), dtype="int64")
        out = L.Bidirectional(L.LSTM(H, return_sequences=True))(L.Embedding(6, I, mask_zero=mask_zero)(inp))
        from fusedrnn.nn.models import Model

        outputs.append(Model(inp, L.GlobalAveragePooling1D()(out)))
    plain, masked = outputs
    assert plain(ids).data.shape == (B, 2 * H)
    assert max_rel_diff(masked(ids).data, plain(ids).data) == 0.0
    assert max_rel_diff(plain(ids, lengths=np.full(B, T)).data, plain(ids).data) == 0.0
    # and padding does change the result when it is there: the check above is not vacuous
    padded = ids.copy()
    padded[1, 2:] = 0
    assert max_rel_diff(masked(padded).data[1], plain(padded).data[1]) > 1e-3


@pytest.mark.parametrize("cell,cls,kw", RNNS, ids=RNN_IDS)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_return_state_shapes_and_values(cell, cls, kw, return_sequences, rng):
    layer = built(cls(H, return_sequences=return_sequences, return_state=True, **kw), (None, T, I), rng)
    x = rng.standard_normal((B, T, I))
    outs = layer(x, lengths=LENGTHS)
    assert len(outs) == 1 + layer.state_count
    assert outs[0].shape == ((B, T, H) if return_sequences else (B, H))
    assert all(s.shape == (B, H) for s in outs[1:])
    sequence = cls(H, return_sequences=True, **kw)
    sequence._maybe_build((None, T, I))
    sequence.set_weights(layer.get_weights())
    y = sequence(x, lengths=LENGTHS).data
    h_expected = y[np.arange(B), LENGTHS - 1]  # the state after each row's last valid step
    np.testing.assert_array_equal(outs[1].data, h_expected)
    if not return_sequences:
        np.testing.assert_array_equal(outs[0].data, h_expected)
    assert L.Input((T, I)).shape == (None, T, I)
    symbolic = layer(L.Input((None, I)))
    assert [s.shape for s in symbolic] == [(None, None, H) if return_sequences else (None, H)] + \
        [(None, H)] * layer.state_count


# ----------------------------------------------------------------------------------------- dropout

@pytest.mark.parametrize("cell", CELLS)
def test_rnn_dropout_only_in_training_and_as_documented(cell, rng):
    cls = layer_class(cell)
    layer = built(cls(H, return_sequences=True, dropout=0.5, recurrent_dropout=0.5, seed=3), (None, T, I), rng)
    plain = cls(H, return_sequences=True)
    plain._maybe_build((None, T, I))
    plain.set_weights(layer.get_weights())
    x = rng.standard_normal((B, T, I))
    np.testing.assert_array_equal(layer(x, lengths=LENGTHS).data, plain(x, lengths=LENGTHS).data)
    # training: one input mask (B, 1, I) for every step, then one recurrent mask (B, H), from the layer's generator
    masks_rng = copy.deepcopy(layer.rng)
    input_mask = F.dropout_mask(np, (B, 1, I), 0.5, masks_rng, x.dtype)
    recurrent_mask = F.dropout_mask(np, (B, H), 0.5, masks_rng, x.dtype)
    assert set(np.unique(recurrent_mask)) <= {0.0, 2.0} and 0 < recurrent_mask.sum() < 2 * B * H
    out = layer(x, lengths=LENGTHS, training=True).data
    w = [t.data for t in layer.weights]
    expected = ops.forward(cell, x * input_mask, *w, lengths=LENGTHS, recurrent_mask=recurrent_mask)[0]
    assert max_rel_diff(out, expected) <= PARITY_RTOL
    assert max_rel_diff(out, plain(x, lengths=LENGTHS).data) > 1e-3


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_is_deterministic_under_a_seed(cell, rng):
    x = rng.standard_normal((B, T, I))
    cls = layer_class(cell)

    def run(seed):
        layer = L.Bidirectional(cls(H, return_sequences=True, dropout=0.3, recurrent_dropout=0.3), seed=seed)
        return layer(x, training=True).data, layer.get_weights()
    (a, wa), (b, wb), (c, wc) = run(7), run(7), run(8)
    np.testing.assert_array_equal(a, b)
    inner_seed = L.Bidirectional(cls(H, return_sequences=True, dropout=0.3, recurrent_dropout=0.3, seed=7))
    np.testing.assert_array_equal(inner_seed(x, training=True).data, a)
    assert all(np.array_equal(u, v) for u, v in zip(wa, wb))
    assert not np.allclose(a, c) and not np.allclose(wa[0], wc[0])


def test_dropout_layer(rng):
    x = Tensor(rng.standard_normal((40, 50)))
    x.lengths = None
    layer = L.Dropout(0.25, seed=1)
    assert layer(x) is x and layer(x, training=False) is x
    out = layer(x, training=True).data
    kept = out != 0
    assert 0.2 < 1 - kept.mean() < 0.3  # 2000 draws: the fraction dropped is 0.25 +- 0.03 (3 sigma ~0.029)
    np.testing.assert_allclose(out[kept], x.data[kept] / 0.75, rtol=1e-15)
    shared = L.Dropout(0.5, noise_shape=(None, 1, None), seed=2)
    y = shared(np.ones((4, 6, 5)), training=True).data
    assert (y == y[:, :1, :]).all(), "noise_shape (None, 1, None): one mask for every step"
    seq = F.identity(Tensor(np.ones((2, 3, 4))))
    seq.lengths = np.array([3, 1])
    assert layer(seq, training=True).lengths is seq.lengths


# ----------------------------------------------------------------------------------------- initialization

@pytest.mark.parametrize("cell", CELLS)
def test_keras_initialization(cell):
    cls, gates = layer_class(cell), GATES[cell]
    units, features = 16, 10
    layer = cls(units, seed=0)
    layer._maybe_build((None, 5, features))
    w_ih, w_hh, b_ih, b_hh = (t.data for t in layer.weights)
    assert w_ih.shape == (gates * units, features) and w_hh.shape == (gates * units, units)
    limit = np.sqrt(6.0 / (features + gates * units))  # glorot_uniform on Keras's kernel (I, G*H)
    assert np.abs(w_ih).max() <= limit and np.abs(w_ih).max() > 0.9 * limit
    # orthogonal on Keras's recurrent kernel (H, G*H): orthonormal rows, i.e. w_hh.T @ w_hh = I
    np.testing.assert_allclose(w_hh.T @ w_hh, np.eye(units), atol=1e-12)
    assert not b_hh.any()
    expected_b_ih = np.zeros(gates * units)
    if getattr(layer, "unit_forget_bias", False):  # Keras's LSTM option, on by default
        expected_b_ih[units:2 * units] = 1.0  # the forget gate: block 1 of i f g o
    np.testing.assert_array_equal(b_ih, expected_b_ih)


@pytest.mark.parametrize("cell", [c for c in CELLS
                                  if "unit_forget_bias" in inspect.signature(layer_class(c)).parameters])
def test_unit_forget_bias_can_be_turned_off(cell):
    no_forget = layer_class(cell)(16, unit_forget_bias=False)
    no_forget._maybe_build((None, 5, 10))
    assert not no_forget.b_ih.data.any()


def test_set_random_seed_reproduces_weights():
    def make():
        layer = L.Dense(5)
        layer._maybe_build((None, 4))
        return layer.get_weights()[0]
    L.set_random_seed(11)
    a = make()
    L.set_random_seed(11)
    b = make()
    c = make()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


# ----------------------------------------------------------------------------------------- Embedding

def test_embedding_from_a_matrix_and_frozen(rng):
    matrix = rng.standard_normal((6, 3))
    for layer in (L.Embedding(6, 3, weights=[matrix], trainable=False), L.Embedding(6, 3, embeddings=matrix,
                                                                                    trainable=False)):
        out = layer(np.array([[1, 5, 0]]))
        np.testing.assert_array_equal(out.data[0], matrix[[1, 5, 0]])
        assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 1
        assert not out.requires_grad
    with pytest.raises(ValueError, match=r"\(input_dim, output_dim\) = \(6, 4\)"):
        L.Embedding(6, 4, embeddings=matrix)
    trainable = L.Embedding(6, 3, embeddings=matrix)
    trainable(np.array([[1]]))
    trainable.trainable = False
    assert trainable.trainable_weights == []
    trainable.trainable = True
    assert len(trainable.trainable_weights) == 1


def test_embedding_mask_zero_errors():
    layer = L.Embedding(5, 2, mask_zero=True)
    with pytest.raises(ValueError, match="row 1 has padding before a valid step"):
        layer(np.array([[1, 2, 3], [0, 2, 3]]))
    with pytest.raises(ValueError, match="row 0 is all padding"):
        layer(np.array([[0, 0, 0], [1, 0, 0]]))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        layer(np.array([[1, 5]]))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        layer(np.array([[1, -1]]))
    with pytest.raises(ValueError, match="integers"):
        layer(np.array([[1.5, 2.0]]))
    assert layer(np.array([[1.0, 2.0, 0.0]])).lengths.tolist() == [2]


# ----------------------------------------------------------------------------------------- weights API, names, shapes

@pytest.mark.parametrize("cell", CELLS)
def test_weights_api_and_errors(cell, rng):
    cls, G = layer_class(cell), GATES[cell]
    layer = cls(H, name="enc")
    with pytest.raises(ValueError, match="not built"):
        layer.count_params()
    layer._maybe_build((None, T, I))
    assert [n for n, _ in layer.named_weights()] == ["enc/w_ih", "enc/w_hh", "enc/b_ih", "enc/b_hh"]
    weights = layer.get_weights()
    weights[0] += 1.0
    assert not np.array_equal(weights[0], layer.get_weights()[0]), "get_weights returns copies"
    with pytest.raises(ValueError, match=rf"enc/w_hh has shape \({G * H}, {H}\), "
                                         rf"got an array of shape \({G * H}, {H + 1}\)"):
        layer.set_weights([weights[0], np.zeros((G * H, H + 1)), weights[2], weights[3]])
    with pytest.raises(ValueError, match="expected 4 arrays"):
        layer.set_weights(weights[:3])
    layer.set_weights(weights)
    np.testing.assert_array_equal(layer.w_ih.data, weights[0])
    with pytest.raises(ValueError, match="features"):
        cls(H)(np.zeros((B, I)))
    with pytest.raises(ValueError, match="dropout"):
        cls(H, dropout=1.0)
    with pytest.raises(TypeError, match="SimpleRNN, LSTM or GRU"):
        L.Bidirectional(L.Dense(3))
    count = len(ops.cell_info(cell).states)
    for wrong in (n for n in range(1, count + 2) if n != count):  # one state too many, or too few where it can be
        with pytest.raises(ValueError, match=f"initial_state needs {count}"):
            cls(H)(np.zeros((B, T, I)), initial_state=[np.zeros((B, H))] * wrong)


# (cell, a nonlinearity of the kernels that this cell does not take)
FOREIGN_ACTIVATIONS = [(cell, n) for cell in CELLS for n in dict.fromkeys(n for info in ops.CELLS.values()
                                                                          for n in info.nonlinearities)
                       if n not in ops.cell_info(cell).nonlinearities]


@pytest.mark.parametrize("cell,activation", FOREIGN_ACTIVATIONS)
def test_an_activation_the_cell_does_not_take_is_refused(cell, activation):
    with pytest.raises(ValueError, match="activation"):
        layer_class(cell)(H, activation=activation)


@pytest.mark.parametrize("cell", [c for c in CELLS if ops.cell_info(c).keras_split_bias])
def test_reset_after_false_is_refused(cell):
    """Keras's two bias rows (GRU) are its reset_after=True GRU, the only one the kernels implement."""
    with pytest.raises(ValueError, match="reset_after"):
        layer_class(cell)(H, reset_after=False)


def test_unique_keras_names():
    L.clear_session()
    names = [L.LSTM(2).name, L.LSTM(2).name, L.Dense(1).name, L.SimpleRNN(1).name,
             L.GlobalAveragePooling1D().name, L.Bidirectional(L.GRU(2)).name]
    assert names == ["lstm", "lstm_1", "dense", "simple_rnn", "global_average_pooling1d", "bidirectional"]
    bi = L.Bidirectional(L.GRU(2, name="enc"))
    assert (bi.forward_layer.name, bi.backward_layer.name) == ("forward_enc", "backward_enc")
    assert bi.backward_layer.go_backwards and not bi.forward_layer.go_backwards


@pytest.mark.parametrize("cell", CELLS)
def test_symbolic_shapes(cell):
    cls, count = layer_class(cell), len(ops.cell_info(cell).states)
    ids = L.Input((None,), dtype="int64")
    x = L.Embedding(10, 4, mask_zero=True)(ids)
    assert x.shape == (None, None, 4)
    seq, *states = L.Bidirectional(cls(5, return_sequences=True, return_state=True))(x)
    assert seq.shape == (None, None, 10) and len(states) == 2 * count
    assert all(s.shape == (None, 5) for s in states)
    assert L.TimeDistributed(L.Dense(3))(seq).shape == (None, None, 3)
    assert L.GlobalAveragePooling1D()(seq).shape == (None, 10)
    hf, hb = states[0], states[count]  # each direction's h first
    assert L.Concatenate()([hf, hb]).shape == (None, 10)
    assert L.Bidirectional(cls(5), merge_mode="sum")(x).shape == (None, 5)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_parameter_counts_match_torch(cell, bidirectional):
    """Two biases per direction, as torch.nn (G*H*(I+H) + 2*G*H: LSTM 4*H*(I+H) + 8*H)."""
    layer = layer_class(cell)(7)
    layer = L.Bidirectional(layer) if bidirectional else layer
    layer._maybe_build((None, 3, 5))
    module = getattr(torch.nn, ops.cell_info(cell).torch_class)(5, 7, bidirectional=bidirectional)
    assert layer.count_params() == sum(p.numel() for p in module.parameters())
    dense = L.Dense(4)
    dense._maybe_build((None, 9))
    assert dense.count_params() == sum(p.numel() for p in torch.nn.Linear(9, 4).parameters())
    embedding = L.Embedding(11, 6)
    embedding._maybe_build((None, 3))
    assert embedding.count_params() == sum(p.numel() for p in torch.nn.Embedding(11, 6).parameters())
