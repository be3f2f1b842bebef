"""Attention ops (fusedrnn.nn.attention): values against plain NumPy, float64 central-difference
gradients of every input of every score (nn_checks.check_gradients), masking of padded encoder
steps, one-step decoding, the Attention layer and the heat map."""

import numpy as np
import pytest

from fusedrnn.nn import attention as att
from fusedrnn.nn.autograd import Tensor
from nn_checks import check_gradients, leaf

B, TQ, TK, H, A = 3, 4, 5, 3, 6
LENGTHS = np.array([5, 2, 1])  # full, padded, a single valid step


def make_inputs(rng, name, hq=H, hk=H, hv=4):
    """query (B, Tq, Hq), keys (B, Tk, Hk), values (B, Tk, Hv), and the score's parameters."""
    draw = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    params = {"dot": (), "general": (0.5 * draw(hq, hk),),
              "additive": (0.5 * draw(hq, A), 0.5 * draw(hk, A), draw(A))}[name]
    return draw(B, TQ, hq), draw(B, TK, hk), draw(B, TK, hv), params


def expected_scores(name, q, k, params):
    """The scores written plainly, one (b, i, j) at a time."""
    out = np.zeros((q.shape[0], q.shape[1], k.shape[1]))
    for b in range(q.shape[0]):
        for i in range(q.shape[1]):
            for j in range(k.shape[1]):
                if name == "dot":
                    out[b, i, j] = q[b, i] @ k[b, j]
                elif name == "general":
                    out[b, i, j] = q[b, i] @ params[0] @ k[b, j]
                else:
                    wq, wk, v = params
                    out[b, i, j] = v @ np.tanh(q[b, i] @ wq + k[b, j] @ wk)
    return out


def expected_attention(name, q, k, values, params, lengths):
    s = expected_scores(name, q, k, params)
    weights = np.zeros_like(s)
    for b in range(s.shape[0]):
        n = s.shape[2] if lengths is None else lengths[b]
        e = np.exp(s[b, :, :n] - s[b, :, :n].max(axis=-1, keepdims=True))
        weights[b, :, :n] = e / e.sum(axis=-1, keepdims=True)
    return weights @ values, weights


def run(name, q, k, values, params, lengths, requires_grad=False):
    """-> (context, weights, input tensors)."""
    tensors = [Tensor(a, requires_grad=requires_grad) for a in (q, k, values, *params)]
    context, weights = att.attention(tensors[0], tensors[1], tensors[2], lengths, name, tensors[3:])
    return context, weights, tensors


@pytest.mark.parametrize("name", att.SCORES)
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
def test_values_match_plain_numpy(rng, name, lengths):
    q, k, values, params = make_inputs(rng, name, hk=H if name == "dot" else 2)
    context, weights, _ = run(name, q, k, values, params, lengths)
    want_context, want_weights = expected_attention(name, q, k, values, params, lengths)
    # The same float64 sums in another order: rounding of O(1) values, ~1e-16.
    np.testing.assert_allclose(weights.data, want_weights, rtol=0, atol=1e-13)
    np.testing.assert_allclose(context.data, want_context, rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", att.SCORES)
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "padded"])
@pytest.mark.parametrize("one_step", [False, True], ids=["sequence", "step"])
def test_gradients_by_central_differences(rng, name, lengths, one_step):
    q, k, values, params = make_inputs(rng, name, hk=H if name == "dot" else 2)
    if one_step:
        q = q[:, 0]
    tensors = [leaf(a, label) for a, label in zip([q, k, values, *params],
                                                   ["query", "keys", "values", *att.SCORE_PARAMS[name]])]
    # both outputs under random cotangents, every entry of every input and parameter
    check_gradients(lambda: list(att.attention(*tensors[:3], lengths, name, tensors[3:])), tensors, rng)


@pytest.mark.parametrize("name", att.SCORES)
def test_padding_gets_zero_weight_and_zero_gradient(rng, name):
    q, k, values, params = make_inputs(rng, name)
    context, weights, tensors = run(name, q, k, values, params, LENGTHS, requires_grad=True)
    pad = np.arange(TK)[None, :] >= LENGTHS[:, None]  # (B, Tk)
    assert np.all(weights.data[np.broadcast_to(pad[:, None, :], weights.shape)] == 0.0)
    np.testing.assert_allclose(weights.data.sum(axis=-1), 1.0, rtol=0, atol=1e-15)
    assert np.all(weights.data[2, :, 0] == 1.0)  # one valid step takes all the weight
    context.backward(rng.standard_normal(context.shape))
    for t in tensors[1:3]:  # keys and values: nothing flows to padded steps
        assert np.all(t.grad[pad] == 0.0)

    # whatever sits in the padding (here huge values that would overflow exp) changes nothing
    k2, v2 = k.copy(), values.copy()
    k2[pad], v2[pad] = 1e6, -1e6
    context2, weights2, _ = run(name, q, k2, v2, params, LENGTHS)
    np.testing.assert_array_equal(weights2.data, weights.data)
    np.testing.assert_array_equal(context2.data, context.data)


@pytest.mark.parametrize("name", att.SCORES)
def test_padded_batch_equals_each_row_alone(rng, name):
    q, k, values, params = make_inputs(rng, name)
    context, weights, _ = run(name, q, k, values, params, LENGTHS)
    for b, n in enumerate(LENGTHS):
        c1, w1, _ = run(name, q[b:b + 1], k[b:b + 1, :n], values[b:b + 1, :n], params, None)
        # the same sums with zero terms added: equal to rounding
        np.testing.assert_allclose(context.data[b], c1.data[0], rtol=0, atol=1e-14)
        np.testing.assert_allclose(weights.data[b, :, :n], w1.data[0], rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", att.SCORES)
def test_one_step_equals_a_row_of_the_sequence(rng, name):
    q, k, values, params = make_inputs(rng, name)
    context, weights, _ = run(name, q, k, values, params, LENGTHS)
    for i in range(TQ):
        c1, w1, _ = run(name, q[:, i], k, values, params, LENGTHS)
        assert c1.shape == (B, 4) and w1.shape == (B, TK)
        np.testing.assert_allclose(c1.data, context.data[:, i], rtol=0, atol=1e-14)
        np.testing.assert_allclose(w1.data, weights.data[:, i], rtol=0, atol=1e-14)


def test_float32_stays_float32(rng):
    q, k, values, params = make_inputs(rng, "additive")
    cast = lambda a: a.astype(np.float32)  # noqa: E731
    context, weights, _ = run("additive", cast(q), cast(k), cast(values), [cast(p) for p in params], LENGTHS)
    assert context.dtype == np.float32 and weights.dtype == np.float32


def test_bad_arguments_name_what_is_wrong(rng):
    q, k, values, (kernel,) = make_inputs(rng, "general", hk=2)
    with pytest.raises(ValueError, match="score"):
        att.attention(q, k, values, None, "cosine")
    with pytest.raises(ValueError, match="params"):
        att.attention(q, k, values, None, "general", ())
    with pytest.raises(ValueError, match="kernel"):
        att.attention(q, k, values, None, "general", (kernel.T,))
    with pytest.raises(ValueError, match="keys"):
        att.attention(q, k, values, None, "dot")  # 3 query features against 2 key features
    with pytest.raises(ValueError, match="lengths"):
        att.attention(q, k, values, np.array([1, 6, 2]), "general", (kernel,))
    with pytest.raises(ValueError, match="lengths"):
        att.attention(q, k, values, np.array([1, 0, 2]), "general", (kernel,))
    with pytest.raises(ValueError, match="values"):
        att.attention(q, k, values[:, :3], None, "general", (kernel,))


def test_heatmap_png(rng, tmp_path):
    weights = rng.random((4, 6))
    path = att.save_heatmap(weights / weights.sum(axis=1, keepdims=True), tmp_path / "attention.png",
                            source_labels=list("abcdef"), target_labels=list("wxyz"), title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="weights"):
        att.save_heatmap(rng.random((2, 4, 6)), tmp_path / "bad.png")


@pytest.mark.parametrize("name", att.SCORES)
def test_layer_matches_the_ops_and_masks_from_lengths(rng, name):
    q, k, values, _ = make_inputs(rng, name)
    layer = att.Attention(name, units=5, dtype="float64", seed=1)
    context, weights = layer([q, values, k], lengths=[LENGTHS - 1 + (LENGTHS == 1), None, LENGTHS])
    assert len(layer.weights) == len(att.SCORE_PARAMS[name])
    want_context, want_weights = att.attention(q, k, values, LENGTHS, name, layer.weights)
    np.testing.assert_array_equal(context.data, want_context.data)
    np.testing.assert_array_equal(weights.data, want_weights.data)
    assert context.lengths is not None  # the query's (decoder's) lengths carry on to a loss

    step_context, step_weights = layer([q[:, 0], values, k], lengths=[None, None, LENGTHS])
    # one row instead of Tq: BLAS may sum in another order
    np.testing.assert_allclose(step_context.data, want_context.data[:, 0], rtol=0, atol=1e-14)
    assert step_weights.shape == (B, TK)


def test_layer_in_the_functional_api():
    from fusedrnn.nn.layers.base import Input

    context, weights = att.Attention("additive")([Input((None, 8)), Input((7, 6))])
    assert context.shape == (None, None, 6) and weights.shape == (None, None, 7)
    with pytest.raises(ValueError, match="score"):
        att.Attention("cosine")
