"""The CRF layer: log-partition, likelihood and Viterbi against enumerating every path, gradients by
float64 central differences, masking, training in a model, saving, and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fusedrnn import nn
from fusedrnn.nn import crf as math
from fusedrnn.nn.autograd import Tensor

from nn_checks import float64_layers  # noqa: F401 (a fixture)

# Central differences in float64 with step 1e-6 on O(1)-O(10) smooth functions: error ~1e-10 of
# the scale; a wrong marginal, a dropped boundary term or a padded step counted is off by 1e-2 or more.
GRAD_TOL = 1e-7


def brute_force(scores, tags, length, transitions, start, end):
    """log_z, -log p(tags) and the best path of one sequence (T, C), enumerating all C^length paths."""
    classes = scores.shape[1]

    def score(path):
        s = start[path[0]] + end[path[-1]] + sum(scores[t, y] for t, y in enumerate(path))
        return s + sum(transitions[a, b] for a, b in zip(path[:-1], path[1:]))

    paths = list(itertools.product(range(classes), repeat=length))
    values = np.array([score(p) for p in paths])
    log_z = np.log(np.exp(values - values.max()).sum()) + values.max()
    return log_z, log_z - score(tuple(tags[:length])), paths[int(values.argmax())]


def random_problem(rng, batch=4, steps=5, classes=3, lengths=(5, 3, 1, 4)):
    scores = rng.standard_normal((batch, steps, classes))
    tags = rng.integers(0, classes, size=(batch, steps))
    params = [rng.standard_normal((classes, classes)), rng.standard_normal(classes), rng.standard_normal(classes)]
    return scores, tags, np.array(lengths), params


def test_likelihood_and_viterbi_match_enumeration():
    rng = np.random.default_rng(0)
    scores, tags, lengths, (transitions, start, end) = random_problem(rng)
    nll, _ = math.negative_log_likelihood(np, scores, tags, lengths, transitions, start, end)
    valid = math.valid_steps(np, lengths, scores.shape[1])
    log_z, _, _ = math.forward_backward(np, scores, valid, transitions, start, end)
    best = math.viterbi(np, scores, lengths, transitions, start, end)
    for b, length in enumerate(lengths):
        want_z, want_nll, want_path = brute_force(scores[b], tags[b], length, transitions, start, end)
        assert abs(log_z[b] - want_z) < 1e-12
        assert abs(nll[b] - want_nll) < 1e-12
        assert tuple(best[b, :length]) == want_path
        assert not best[b, length:].any()  # padding tags are 0


def test_padding_is_ignored():
    """Scores and tags past a row's length change nothing (the longest row is shorter than T here)."""
    rng = np.random.default_rng(1)
    scores, tags, lengths, params = random_problem(rng, steps=7)
    nll, grads = math.negative_log_likelihood(np, scores, tags, lengths, *params)
    noisy, other_tags = scores.copy(), tags.copy()
    for b, length in enumerate(lengths):
        noisy[b, length:] = 1e3 * rng.standard_normal(noisy[b, length:].shape)
        other_tags[b, length:] = 2
    nll2, grads2 = math.negative_log_likelihood(np, noisy, other_tags, lengths, *params)
    np.testing.assert_allclose(nll2, nll, rtol=0, atol=1e-12)
    weights = np.ones(len(lengths))
    for g, g2 in zip(grads(weights), grads2(weights)):
        np.testing.assert_allclose(g2, g, rtol=0, atol=1e-12)
    assert math.viterbi(np, noisy, lengths, *params).tolist() == math.viterbi(np, scores, lengths, *params).tolist()


def numeric_grad(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    scores, tags, lengths, params = random_problem(rng)
    weights = rng.uniform(0.5, 2.0, size=len(lengths))
    arrays = [scores] + params

    def objective():
        nll, _ = math.negative_log_likelihood(np, scores, tags, lengths, *params)
        return float((weights * nll).sum())

    _, grads = math.negative_log_likelihood(np, scores, tags, lengths, *params)
    for name, got, array in zip(("scores", "transitions", "start", "end"), grads(weights), arrays):
        want = numeric_grad(objective, array)
        assert np.max(np.abs(got - want)) < GRAD_TOL * max(1.0, np.max(np.abs(want))), name


def crf_model(classes=3, features=4, steps=6, vocabulary=8):
    words = nn.Input(shape=(steps,), dtype="int64")
    x = nn.Embedding(vocabulary, features, mask_zero=True)(words)
    x = nn.Bidirectional(nn.LSTM(5, return_sequences=True))(x)
    crf = nn.CRF()
    out = crf(nn.TimeDistributed(nn.Dense(classes))(x))
    model = nn.Model(words, out)
    model.compile(optimizer=nn.optimizers.Adam(learning_rate=0.05), loss=crf.loss)
    return model, crf


def test_loss_gradients_through_a_model(float64_layers):  # noqa: F811
    """The loss node's gradients for the CRF weights and the network below it, by central differences."""
    rng = np.random.default_rng(3)
    model, crf = crf_model()
    ids = np.array([[1, 2, 3, 4, 5, 6], [7, 1, 2, 0, 0, 0], [3, 0, 0, 0, 0, 0]])
    tags = rng.integers(0, 3, size=ids.shape)
    model.predict(ids)  # builds
    for w in crf.weights:  # away from the zero start, so the transitions matter
        w.data[...] = rng.standard_normal(w.shape)

    def loss_value():
        return float(crf.loss(tags, model(ids)).data)

    loss = crf.loss(tags, model(ids))
    loss.backward()
    for w in model.trainable_weights:
        want = numeric_grad(loss_value, w.data)
        assert np.max(np.abs(w.grad - want)) < GRAD_TOL * max(1.0, np.max(np.abs(want))), w.name
        w.grad = None
    # one-hot targets give the same loss as ids
    one_hot = np.eye(3)[tags] * (ids != 0)[:, :, None]
    assert abs(float(crf.loss(one_hot, model(ids)).data) - loss_value()) < 1e-12


def test_learns_transition_rules():
    """Every tag of a row is its first word's class; the later words say nothing. Per-step scores
    alone (no recurrence) can only guess the later tags; the transitions carry the first one along."""
    rng = np.random.default_rng(4)
    ids = np.full((256, 6), 3)
    ids[:, 0] = rng.integers(1, 3, size=256)
    tags = np.repeat(ids[:, :1] - 1, 6, axis=1)
    words = nn.Input(shape=(6,), dtype="int64")
    crf = nn.CRF()
    out = crf(nn.Dense(2)(nn.Embedding(4, 2, mask_zero=True)(words)))
    model = nn.Model(words, out)
    model.compile(optimizer=nn.optimizers.Adam(learning_rate=0.1), loss=crf.loss)
    model.fit(ids, tags, batch_size=32, epochs=20, verbose=0, seed=0)
    scores = model.predict(ids)
    assert (scores.argmax(axis=2)[:, 1:] == tags[:, 1:]).mean() < 0.7  # the scores alone: a guess
    assert (crf.decode(scores) == tags).mean() > 0.99


def test_save_and_load_weights(tmp_path):
    model, crf = crf_model()
    ids = np.array([[1, 2, 3, 0, 0, 0]])
    model.fit(ids, np.array([[1, 2, 0, 0, 0, 0]]), epochs=2, verbose=0)
    model.save_weights(tmp_path / "w.npz")
    again, crf2 = crf_model()
    again.predict(ids)
    again.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(crf2.transitions.data, crf.transitions.data)
    scores = model.predict(ids)
    assert crf2.decode(again.predict(ids), [3]).tolist() == crf.decode(scores, [3]).tolist()


def test_bad_input():
    model, crf = crf_model()
    ids = np.array([[1, 2, 3, 0, 0, 0]])
    with pytest.raises(ValueError, match="decode needs a built layer"):
        nn.CRF().decode(np.zeros((1, 6, 3)))
    scores = model.predict(ids)
    with pytest.raises(ValueError, match="scores: expected float tag scores"):
        crf.decode(scores[:, :, :2])
    with pytest.raises(ValueError, match="lengths"):
        crf.decode(scores, [7])
    with pytest.raises(ValueError, match="y_true: tag ids must be in 0..2"):
        model.fit(ids, np.array([[0, 3, 0, 0, 0, 0]]), verbose=0)
    with pytest.raises(ValueError, match="y_true: the CRF loss needs one-hot"):
        model.fit(ids, np.full((1, 6, 3), 1 / 3), verbose=0)
    with pytest.raises(ValueError, match="y_true: sparse targets expect"):
        model.fit(ids, np.zeros((1, 5)), verbose=0)
    with pytest.raises(ValueError, match="mask: the CRF loss"):
        crf.loss(np.zeros((1, 6)), Tensor(scores), mask=np.ones((1, 6)))
    with pytest.raises(ValueError, match="expects tag scores of shape"):
        nn.CRF()(np.zeros((2, 3)))
    assert model.predict(ids).shape == (1, 6, 3)
    # padding ids beyond the valid steps may be anything
    model.fit(ids, np.array([[0, 1, 2, -1, 99, -5]]), verbose=0)
