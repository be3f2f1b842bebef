"""LSTM(proj_size=P), torch.nn.LSTM's projections, in fusedrnn.nn: h = (o * tanh c) W_hr^T of size P,
c of size H. float64 parity with torch.nn.LSTM(proj_size=P) for outputs, states and every gradient
(w_hr included), one and two directions, padded batches; finite differences of every weight, input
and state; Keras-style initialisation, parameter counts, shapes and the layer's configuration; fit,
weight files; conversion to and from torch (and its refusal for Keras); the refused arguments.

(Not test_projections.py: tests/test_projections.py, the ops' tests, has that name, and pytest's
default import mode needs unique basenames across the folders of one run.)"""

import numpy as np
import pytest
import torch

from conftest import GATES
from fusedrnn import nn, ops
from fusedrnn.nn import convert
from fusedrnn.nn import layers as L
from fusedrnn.nn.models import Model, Sequential
from nn_checks import check_gradients, float64_layers, leaf, max_rel_diff, weighted_sum  # noqa: F401 (a fixture)
from test_layers import built, leaves, x_leaf

pytestmark = pytest.mark.usefixtures("float64_layers")

B, T, I, H, P = 3, 4, 3, 5, 2
LENGTHS = np.array([4, 2, 1])  # full, padded, a single valid step
G = GATES["lstm"]
# float64, torch against our kernels: the same formulas summed in another order over T = 4 steps,
# rounding ~1e-15 of O(1) values; 1e-10 (the bound) catches a transposed w_hr or a missed
# projection, off by O(0.1).
TORCH_TOL = 1e-10


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def projected(return_sequences=True, return_state=False, bidirectional=False, **kw):
    layer = L.LSTM(H, proj_size=P, return_sequences=return_sequences, return_state=return_state, **kw)
    return L.Bidirectional(layer) if bidirectional else layer


def directions(layer):
    return [layer.forward_layer, layer.backward_layer] if isinstance(layer, L.Bidirectional) else [layer]


# ----------------------------------------------------------------------------------------- torch parity

def torch_run(module, x, lengths, h0, c0):
    """module (batch_first) over x, packed by ``lengths`` when given -> y (B, T, D*P), h_n, c_n (D, B, .)."""
    inputs = torch.from_numpy(x).requires_grad_()
    if lengths is None:
        packed = inputs
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(inputs, torch.from_numpy(lengths), batch_first=True,
                                                         enforce_sorted=False)
    y, (h_n, c_n) = module(packed, (h0, c0))
    if lengths is not None:
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
    return inputs, y, h_n, c_n


def assert_torch_close(name, ours, theirs):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
    diff = float(np.max(np.abs(ours - theirs), initial=0.0))
    assert diff <= TORCH_TOL, (name, diff)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
def test_matches_torch_outputs_states_and_gradients(bidirectional, lengths, rng):
    """Our layer's weights in torch.nn.LSTM(proj_size=P) through nn.convert: outputs, final states and
    the gradients of x, h0, c0 and every weight (w_hr included) agree; padded rows through
    pack_padded_sequence, whose reverse direction also starts at each row's last valid step."""
    D = 2 if bidirectional else 1
    layer = built(projected(return_state=True, bidirectional=bidirectional), (None, T, I), rng)
    module = torch.nn.LSTM(I, H, proj_size=P, batch_first=True, bidirectional=bidirectional, dtype=torch.float64)
    module.load_state_dict(convert.layers_to_torch_state_dict([layer]))
    x = x_leaf(rng)
    h0 = 0.5 * rng.standard_normal((D, B, P))
    c0 = 0.5 * rng.standard_normal((D, B, H))
    states = [leaf(s, name=n) for d in range(D) for s, n in ((h0[d], f"h0_{d}"), (c0[d], f"c0_{d}"))]
    outs = layer(x, lengths=lengths, initial_state=states)
    y, states_n = outs[0], outs[1:]  # [h_f, c_f, (h_b, c_b)]
    assert y.shape == (B, T, D * P)

    th0, tc0 = torch.from_numpy(h0).requires_grad_(), torch.from_numpy(c0).requires_grad_()
    tx, ty, th_n, tc_n = torch_run(module, x.data, lengths, th0, tc0)
    assert_torch_close("y", y.data, ty.detach().numpy())
    for d in range(D):
        assert_torch_close("h_n", states_n[2 * d].data, th_n[d].detach().numpy())
        assert_torch_close("c_n", states_n[2 * d + 1].data, tc_n[d].detach().numpy())

    # one scalar from every output on both sides: sum(y * R_y) + sum(h_n * R_h) + sum(c_n * R_c)
    ry, rh, rc = rng.standard_normal((B, T, D * P)), rng.standard_normal((D, B, P)), rng.standard_normal((D, B, H))
    weighted_sum([y] + list(states_n), [ry] + [r[d] for d in range(D) for r in (rh, rc)]).backward()
    sum((t * torch.from_numpy(r)).sum() for t, r in ((ty, ry), (th_n, rh), (tc_n, rc))).backward()
    assert_torch_close("dx", x.grad, tx.grad.numpy())
    for d in range(D):
        assert_torch_close("dh0", states[2 * d].grad, th0.grad[d].numpy())
        assert_torch_close("dc0", states[2 * d + 1].grad, tc0.grad[d].numpy())
    # our gradients as a torch state dict (the same names as the module's parameters)
    grads = [tuple(t.grad for t in direction.op_params()) for direction in directions(layer)]
    assert all(len(g) == 5 for g in grads)  # (dw_ih, dw_hh, db_ih, db_hh, dw_hr) per direction
    named = convert.params_to_torch_state_dict("lstm", grads, 1, bidirectional, tensors="numpy")
    assert sorted(named) == sorted(n for n, _ in module.named_parameters())
    for name, parameter in module.named_parameters():
        assert_torch_close("d" + name.split("_l0")[0], named[name], parameter.grad.numpy())


def test_a_two_layer_stack_matches_torch(rng):
    """Two stacked Bidirectional(LSTM(proj_size)) layers filled from one torch module (num_layers=2,
    the second layer reading 2P features) give its outputs, on a padded batch."""
    torch.manual_seed(0)
    module = torch.nn.LSTM(I, H, proj_size=P, num_layers=2, batch_first=True, bidirectional=True,
                           dtype=torch.float64)
    stack = [L.Bidirectional(L.LSTM(H, proj_size=P, return_sequences=True)) for _ in range(2)]
    stack[0]._maybe_build((None, T, I))
    stack[1]._maybe_build((None, T, 2 * P))
    convert.layers_from_torch(stack, module)
    x = rng.standard_normal((B, T, I))
    y = stack[1](stack[0](x, lengths=LENGTHS))
    with torch.no_grad():
        _, ty, _, _ = torch_run(module, x, LENGTHS, torch.zeros(4, B, P, dtype=torch.float64),
                                torch.zeros(4, B, H, dtype=torch.float64))
    assert_torch_close("y (2 layers)", y.data, ty.numpy())
    back = convert.layers_to_torch_state_dict(stack)
    assert list(back) == list(module.state_dict())  # torch's key order, weight_hr_l{k} fifth
    assert all(torch.equal(back[k], v) for k, v in module.state_dict().items())


# ----------------------------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
def test_gradients(return_sequences, go_backwards, lengths, rng):
    layer = built(projected(return_sequences, go_backwards=go_backwards), (None, T, I), rng)
    x = x_leaf(rng)
    assert [w.name for w in leaves(layer)][-1].endswith("/w_hr")
    check_gradients(lambda: layer(x, lengths=lengths), leaves(layer) + [x], rng)


def test_state_gradients(rng):
    """Through return_state (h_n (B, P), c_n (B, H)) and initial_state (h0 (B, P), c0 (B, H))."""
    layer = built(projected(return_state=True), (None, T, I), rng)
    x = x_leaf(rng)
    states = [leaf(0.5 * rng.standard_normal((B, P)), "h0"), leaf(0.5 * rng.standard_normal((B, H)), "c0")]
    check_gradients(lambda: layer(x, lengths=LENGTHS, initial_state=states), leaves(layer) + [x] + states, rng)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", None])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_gradients(merge_mode, return_sequences, rng):
    layer = built(L.Bidirectional(L.LSTM(H, proj_size=P, return_sequences=return_sequences, dropout=0.3),
                                  merge_mode=merge_mode), (None, T, I), rng)
    x = x_leaf(rng)

    def reset():  # input dropout: the same masks at every evaluation
        layer.forward_layer.rng = np.random.default_rng(1)
        layer.backward_layer.rng = np.random.default_rng(2)
    check_gradients(lambda: layer(x, lengths=LENGTHS, training=True), leaves(layer) + [x], rng, reset=reset)


# ----------------------------------------------------------------------------------------- layer behaviour

def test_padded_batch_equals_each_sequence_alone(rng):
    layer = built(projected(return_state=True, bidirectional=True), (None, T, I), rng)
    x = rng.standard_normal((B, T, I))
    x[1, 2:] = 100.0  # garbage at padding must not leak in
    outs = layer(x, lengths=LENGTHS)
    assert outs[0].lengths.tolist() == LENGTHS.tolist()
    for b, n in enumerate(LENGTHS):
        alone = layer(x[b:b + 1, :n])
        assert max_rel_diff(outs[0].data[b, :n], alone[0].data[0]) <= 1e-12
        assert not outs[0].data[b, n:].any(), "outputs at padding must be zero"
        for ours, theirs in zip(outs[1:], alone[1:]):
            assert max_rel_diff(ours.data[b], theirs.data[0]) <= 1e-12


def test_no_projection_path_is_unchanged(rng):
    """proj_size=0 (the default) is the plain LSTM: four weights, no w_hr."""
    plain = built(L.LSTM(H), (None, T, I), rng)
    assert plain.proj_size == 0 and plain.output_size == H and len(plain.op_params()) == 4
    assert [n.split("/")[1] for n, _ in plain.named_weights()] == ["w_ih", "w_hh", "b_ih", "b_hh"]


def test_keras_initialization_and_parameter_counts():
    """w_hr: kernel_initializer (glorot_uniform) on Keras's (H, P) matrix, transposed; w_hh:
    recurrent_initializer (orthogonal) on (P, 4H), transposed, so its P columns are orthonormal."""
    units, proj, features = 16, 5, 10
    layer = L.LSTM(units, proj_size=proj, seed=0)
    layer._maybe_build((None, 7, features))
    w_ih, w_hh, b_ih, b_hh, w_hr = (t.data for t in layer.weights)
    assert (w_ih.shape, w_hh.shape, w_hr.shape) == ((G * units, features), (G * units, proj), (proj, units))
    limit = np.sqrt(6.0 / (units + proj))
    assert np.abs(w_hr).max() <= limit and np.abs(w_hr).max() > 0.9 * limit
    np.testing.assert_allclose(w_hh.T @ w_hh, np.eye(proj), atol=1e-12)
    assert not b_hh.any() and b_ih[units:2 * units].tolist() == [1.0] * units  # unit_forget_bias
    for bidirectional in (False, True):
        ours = L.LSTM(7, proj_size=3)
        ours = L.Bidirectional(ours) if bidirectional else ours
        ours._maybe_build((None, 3, 5))
        module = torch.nn.LSTM(5, 7, proj_size=3, bidirectional=bidirectional)
        assert ours.count_params() == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("merge_mode", ["concat", "sum", None])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_output_shapes(return_sequences, return_state, merge_mode, rng):
    """compute_output_shape, the symbolic shapes and the actual outputs agree: outputs and h of size P
    ("concat": 2P), c of size H."""
    x = rng.standard_normal((B, T, I))
    for bidirectional in (False, True):
        layer = projected(return_sequences, return_state)
        if bidirectional:
            layer = L.Bidirectional(layer, merge_mode=merge_mode)
        one = (B, T, P) if return_sequences else (B, P)
        if not bidirectional or merge_mode == "sum":
            expected = [one]
        elif merge_mode == "concat":
            expected = [one[:-1] + (2 * P,)]
        else:
            expected = [one, one]
        if return_state:
            expected += [(B, P), (B, H)] * (2 if bidirectional else 1)
        actual = layer(x)
        actual = actual if isinstance(actual, list) else [actual]
        assert [a.shape for a in actual] == expected
        computed = layer.compute_output_shape((B, T, I))
        assert (computed if isinstance(computed, list) else [computed]) == expected
        symbolic = layer(L.Input((None, I)))
        symbolic = symbolic if isinstance(symbolic, list) else [symbolic]
        assert [s.shape for s in symbolic] == [(None,) + (None,) * (len(e) - 2) + e[-1:] for e in expected]


def test_configuration_round_trip():
    """The configuration keeps proj_size: a layer made from it, and Bidirectional's copies, have it."""
    layer = L.LSTM(H, proj_size=P, unit_forget_bias=False, return_sequences=True, seed=3)
    config = {**layer._config, **layer._extra_config()}
    assert config["proj_size"] == P
    again = L.LSTM(**config, seed=3)
    for one in (layer, again):
        one._maybe_build((None, T, I))
    assert again.proj_size == P
    assert all(np.array_equal(a, b) for a, b in zip(again.get_weights(), layer.get_weights()))
    wrapped = L.Bidirectional(L.LSTM(H, proj_size=P))
    assert wrapped.forward_layer.proj_size == wrapped.backward_layer.proj_size == P


def test_fit_decreases_the_loss(rng):
    """Embedding(mask_zero) -> LSTM(proj_size) -> Dense: a few Adam steps on padded sequences lower the loss."""
    steps, count = 6, 64
    lengths = rng.integers(2, steps + 1, count)
    ids = rng.integers(1, 5, (count, steps))
    ids[np.arange(steps)[None, :] >= lengths[:, None]] = 0
    labels = (ids == 1).sum(axis=1) > 1
    model = Sequential([L.Input((None,), dtype="int64"), L.Embedding(5, 4, mask_zero=True),
                        L.Bidirectional(L.LSTM(8, proj_size=3, return_sequences=True)),
                        L.LSTM(6, proj_size=2), L.Dense(1, activation="sigmoid")], seed=1)
    model.compile(nn.optimizers.Adam(0.03), "binary_crossentropy")
    history = model.fit(ids, labels.astype(np.float64), batch_size=16, epochs=4, verbose=0, seed=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.9 * losses[0], losses


def test_saved_weights_give_identical_predictions(rng, tmp_path):
    def make(seed, proj_size=P):
        L.clear_session()
        inputs = L.Input((None, I))
        x = L.Bidirectional(L.LSTM(H, proj_size=proj_size, return_sequences=True))(inputs)
        x = L.LSTM(H, proj_size=proj_size)(x)
        return Model(inputs, L.Dense(2)(x))
    x = rng.standard_normal((B, T, I))
    first = make(1)
    path = tmp_path / "projected.npz"
    first.save_weights(path)
    second = make(2)
    assert not np.allclose(second.predict(x), first.predict(x))
    second.load_weights(path)
    np.testing.assert_array_equal(second.predict(x, lengths=LENGTHS), first.predict(x, lengths=LENGTHS))
    with pytest.raises(ValueError, match="in the file but not in the model: .*w_hr"):
        make(3, proj_size=0).load_weights(path, by_name=True)


# ----------------------------------------------------------------------------------------- conversion

def test_layer_params_have_w_hr_fifth(rng):
    layer = built(projected(bidirectional=True), (None, T, I), rng)
    params = convert.get_layer_params(layer)
    assert [tuple(a.shape) for a in params[0]] == [(G * H, I), (G * H, P), (G * H,), (G * H,), (P, H)]
    fresh = projected(bidirectional=True)
    fresh._maybe_build((None, T, I))
    convert.set_layer_params(fresh, params)
    assert all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), layer.get_weights()))
    with pytest.raises(ValueError, match=r"4 arrays given, the layer has proj_size=2 and takes \(w_ih, w_hh, "
                                         r"b_ih, b_hh, w_hr\)"):
        convert.set_layer_params(fresh, [p[:4] for p in params])
    plain = L.LSTM(P)  # an LSTM without projections
    plain._maybe_build((None, T, I))
    with pytest.raises(ValueError, match="no projections"):
        convert.set_layer_params(plain, [params[0]])
    bad = params[0][:4] + (np.zeros((H, P)),)  # w_hr transposed
    with pytest.raises(ValueError, match=r"w_hr must be \(P, H\) with 0 < P < H"):
        convert.set_layer_params(fresh, [bad, params[1]])


def test_torch_state_dict_round_trip_and_errors():
    module = torch.nn.LSTM(I, H, proj_size=P, num_layers=2, bidirectional=True, bias=False, dtype=torch.float64)
    params = convert.torch_state_dict_to_params("lstm", module.state_dict())
    assert len(params) == 4 and all(len(p) == 5 and not p[2].any() for p in params)  # bias=False: zero biases
    assert params[2][0].shape == (G * H, 2 * P)  # layer 1 reads both directions' P features
    state = module.state_dict()
    broken = {k: v for k, v in state.items() if k != "weight_hr_l1"}
    with pytest.raises(ValueError, match="missing weight_hr_l1"):
        convert.torch_state_dict_to_params("lstm", broken)
    with pytest.raises(ValueError, match="every layer and direction has projections"):
        convert.params_to_torch_state_dict("lstm", [params[0], params[1][:4]], bidirectional=True)
    for cell in (c for c in ops.CELLS if not ops.cell_info(c).projectable):
        plain = getattr(torch.nn, ops.cell_info(cell).torch_class)(I, H).state_dict()
        plain["weight_hr_l0"] = torch.zeros(P, H)
        with pytest.raises(ValueError, match=f"{cell} has no projections.*weight_hr_l0"):
            convert.torch_state_dict_to_params(cell, plain)


def test_keras_has_no_projections(rng):
    layer = built(projected(), (None, T, I), rng)
    (params,) = convert.get_layer_params(layer)
    with pytest.raises(ValueError, match="Keras's LSTM has no proj_size"):
        convert.params_to_keras("lstm", params)
    with pytest.raises(ValueError, match="Keras's LSTM has no proj_size"):
        convert.layer_to_keras(layer)
    plain = tuple(0.1 * rng.standard_normal(shape) for shape in ((G * H, I), (G * H, H), (G * H,), (G * H,)))
    keras_weights = convert.params_to_keras("lstm", plain)
    with pytest.raises(ValueError, match="Keras's LSTM has no proj_size"):
        convert.layer_from_keras(layer, keras_weights)
    # a recurrent kernel (P, 4H) is no Keras LSTM's
    with pytest.raises(ValueError, match=r"recurrent_kernel: must be \(H, 4\*H\).*Keras's LSTM has no proj_size"):
        convert.keras_to_params("lstm", [keras_weights[0], np.zeros((P, G * H)), keras_weights[2]])


# ----------------------------------------------------------------------------------------- refused arguments

@pytest.mark.parametrize("proj_size", [-1, 1.5, "2", True, None])
def test_bad_proj_size_is_refused(proj_size):
    with pytest.raises(ValueError, match="proj_size must be a non-negative integer"):
        L.LSTM(H, proj_size=proj_size)


@pytest.mark.parametrize("proj_size", [H, H + 1])
def test_proj_size_must_be_smaller_than_units(proj_size):
    with pytest.raises(ValueError, match="proj_size has to be smaller than units"):
        L.LSTM(H, proj_size=proj_size)


def test_recurrent_dropout_with_projections_is_refused():
    with pytest.raises(ValueError, match="recurrent_dropout is not supported with proj_size"):
        L.LSTM(H, proj_size=P, recurrent_dropout=0.2)
    L.LSTM(H, proj_size=P, dropout=0.2)  # input dropout is fine
    L.LSTM(H, recurrent_dropout=0.2)  # and recurrent dropout without projections


def test_initial_state_shapes_are_checked():
    layer = projected()
    x = np.zeros((B, T, I))
    with pytest.raises(ValueError, match=r"initial state h must have shape \(B, proj_size\) = \(3, 2\), got \(3, 5\)"):
        layer(x, initial_state=[np.zeros((B, H)), np.zeros((B, H))])
    with pytest.raises(ValueError, match=r"initial state c must have shape \(B, units\) = \(3, 5\), got \(3, 2\)"):
        layer(x, initial_state=[np.zeros((B, P)), np.zeros((B, P))])
    assert layer(x, initial_state=[np.zeros((B, P)), np.zeros((B, H))]).shape == (B, T, P)


def test_other_cells_and_mismatched_wrappers_are_refused():
    for cls in (L.GRU, L.SimpleRNN):
        with pytest.raises(TypeError, match="proj_size"):
            cls(H, proj_size=P)
    with pytest.raises(ValueError, match="same return_sequences, return_state, activation and proj_size"):
        L.Bidirectional(L.LSTM(H, proj_size=P), backward_layer=L.LSTM(H, go_backwards=True))
