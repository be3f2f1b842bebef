"""Losses and metrics: values against plain NumPy, gradients by central differences, masking."""

from __future__ import annotations

import numpy as np
import pytest

from fusedrnn.nn import losses, metrics
from fusedrnn.nn.autograd import Tensor, no_grad

# Central differences in float64 with step 1e-6 on O(1) smooth functions: truncation ~1e-12,
# rounding ~1e-16 / 1e-6 = 1e-10 of the function's scale, so 1e-7 is loose for correct code while a
# wrong term (a missing weight, a dropped renormalization) is off by 1e-2 or more.
GRAD_TOL = 1e-7
# Values computed by the same formula in a different order: rounding only.
VALUE_TOL = 1e-12


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numeric_grad(f, x, eps=1e-6):
    """d f / d x by central differences, f: array -> float."""
    x = x.copy()
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def loss_and_grad(loss, y_true, y_pred, mask=None, lengths=None):
    t = Tensor(y_pred.copy(), requires_grad=True)
    t.lengths = lengths
    out = loss(y_true, t, mask)
    assert out.shape == ()
    out.backward()
    return float(out.data), t.grad


def value(loss, y_true, y_pred, mask=None, lengths=None):
    t = Tensor(y_pred)
    t.lengths = lengths
    return float(loss(y_true, t, mask).data)


# Plain NumPy per-position losses, the formulas of Keras's documentation.
def np_categorical(t, p):
    q = np.clip(p / p.sum(axis=-1, keepdims=True), 1e-7, 1 - 1e-7)
    return -(t * np.log(q)).sum(axis=-1)


def np_binary(t, p):
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return -(t * np.log(q) + (1 - t) * np.log(1 - q))


def weighted(values, w):
    w = np.broadcast_to(w.reshape(w.shape + (1,) * (values.ndim - w.ndim)), values.shape)
    return (w * values).sum() / w.sum()


def make_case(rng, kind, shape):
    """(loss, y_true, y_pred, expected per-position values) for y_pred of ``shape``."""
    z = rng.standard_normal(shape)
    C = shape[-1]
    if kind in ("cce", "cce_logits", "scce", "scce_logits"):
        ids = rng.integers(0, C, shape[:-1])
        onehot = np.eye(C)[ids]
        logits = kind.endswith("logits")
        p = softmax(z)
        y_pred = z if logits else p
        expected = np_categorical(onehot, p)
        if kind.startswith("scce"):
            return losses.SparseCategoricalCrossentropy(from_logits=logits), ids, y_pred, expected
        return losses.CategoricalCrossentropy(from_logits=logits), onehot, y_pred, expected
    if kind in ("bce", "bce_logits"):
        t = rng.integers(0, 2, shape).astype(np.float64)
        logits = kind == "bce_logits"
        return losses.BinaryCrossentropy(from_logits=logits), t, z if logits else sigmoid(z), np_binary(t, sigmoid(z))
    t = rng.standard_normal(shape)
    return losses.MeanSquaredError(), t, z, (z - t) ** 2


KINDS = ["cce", "cce_logits", "scce", "scce_logits", "bce", "bce_logits", "mse"]
SHAPES = [(4, 3), (3, 5, 4)]


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "seq"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_value_and_gradient(rng, kind, shape, masked):
    loss, y_true, y_pred, per_position = make_case(rng, kind, shape)
    mask = None
    w = np.ones(shape[:2] if len(shape) == 3 else shape[:1])
    if masked:
        w = rng.uniform(0.5, 2.0, w.shape) * (rng.random(w.shape) < 0.7)
        w.flat[0] = 1.0  # at least one position counts
        mask = w
    got, grad = loss_and_grad(loss, y_true, y_pred, mask)
    assert abs(got - weighted(per_position, w)) <= VALUE_TOL * max(1.0, abs(got))
    expected_grad = numeric_grad(lambda p: value(loss, y_true, p, mask), y_pred)
    assert np.max(np.abs(grad - expected_grad)) <= GRAD_TOL


def test_hand_computed_values():
    p = np.array([[0.2, 0.3, 0.5], [0.1, 0.8, 0.1]])
    assert value(losses.get("categorical_crossentropy"), np.eye(3)[[2, 1]], p) == pytest.approx(
        -(np.log(0.5) + np.log(0.8)) / 2, rel=1e-14)
    assert value(losses.get("sparse_categorical_crossentropy"), np.array([2, 1]), p) == pytest.approx(
        -(np.log(0.5) + np.log(0.8)) / 2, rel=1e-14)
    assert value(losses.get("binary_crossentropy"), np.array([1.0, 0.0]), np.array([[0.8], [0.4]])) == pytest.approx(
        -(np.log(0.8) + np.log(0.6)) / 2, rel=1e-14)
    assert value(losses.get("mse"), np.array([[1.0, 2.0]]), np.array([[0.0, 4.0]])) == pytest.approx(2.5)
    # the mask weighs positions: (1 * 1 + 3 * 4) / (1 + 3)
    assert value(losses.get("mean_squared_error"), np.zeros((2, 1)), np.array([[1.0], [2.0]]),
                 mask=np.array([1.0, 3.0])) == pytest.approx(13 / 4)


def test_probabilities_are_clipped_and_renormalized():
    # a zero probability on the true class costs -log(1e-7), not inf (and no warning: warnings are errors)
    assert value(losses.get("categorical_crossentropy"), np.eye(2)[[0]], np.array([[0.0, 1.0]])) == pytest.approx(
        -np.log(1e-7), rel=1e-9)
    assert value(losses.get("binary_crossentropy"), np.ones((1, 1)), np.zeros((1, 1))) == pytest.approx(
        -np.log(1e-7), rel=1e-9)
    # Keras renormalizes rows that do not sum to 1
    assert value(losses.get("categorical_crossentropy"), np.eye(2)[[0]], np.array([[1.0, 3.0]])) == pytest.approx(
        -np.log(0.25), rel=1e-14)


@pytest.mark.parametrize("kind", ["cce", "scce", "bce"])
def test_from_logits_matches_probabilities(rng, kind):
    loss, y_true, probs, _ = make_case(rng, kind, (3, 6, 5))
    logits_loss = type(loss)(from_logits=True)
    z = rng.standard_normal((3, 6, 5))
    p = sigmoid(z) if kind == "bce" else softmax(z)
    # probabilities well inside the clip range: the two paths compute the same function
    assert value(logits_loss, y_true, z) == pytest.approx(value(loss, y_true, p), rel=1e-12)


def test_extreme_logits_stay_finite():
    z = np.array([[1000.0, -1000.0, 0.0]])
    assert value(losses.CategoricalCrossentropy(from_logits=True), np.eye(3)[[0]], z) == 0.0
    assert value(losses.CategoricalCrossentropy(from_logits=True), np.eye(3)[[1]], z) == pytest.approx(2000.0)
    _, grad = loss_and_grad(losses.BinaryCrossentropy(from_logits=True), np.array([[0.0, 1.0, 1.0]]), z)
    assert np.all(np.isfinite(grad))
    assert value(losses.BinaryCrossentropy(from_logits=True), np.array([[0.0, 1.0, 1.0]]), z) == pytest.approx(
        (1000 + 1000 + np.log(2)) / 3)


@pytest.mark.parametrize("kind", KINDS)
def test_masked_positions_change_nothing(rng, kind):
    loss, y_true, y_pred, _ = make_case(rng, kind, (3, 5, 4))
    lengths = np.array([5, 2, 3])
    mask = (np.arange(5)[None, :] < lengths[:, None]).astype(np.float64)
    before, grad = loss_and_grad(loss, y_true, y_pred, mask)
    padding = mask == 0
    assert np.all(grad[padding] == 0)
    changed_pred, changed_true = y_pred.copy(), y_true.copy()
    changed_pred[padding] = rng.standard_normal(changed_pred[padding].shape) ** 2  # positive: valid probs too
    changed_true[padding] = changed_true[padding][::-1]
    assert value(loss, changed_true, changed_pred, mask) == pytest.approx(before, rel=1e-14)
    # the lengths on the Tensor make the same mask
    assert value(loss, y_true, y_pred, lengths=lengths) == pytest.approx(before, rel=1e-14)
    # the mean over valid positions is the loss of those positions as one flat batch
    flat_true = y_true[~padding]
    assert value(loss, flat_true, y_pred[~padding]) == pytest.approx(before, rel=1e-12)


def test_explicit_mask_overrides_lengths_and_all_zero_mask(rng):
    loss, y_true, y_pred, per_position = make_case(rng, "cce", (2, 3, 4))
    mask = np.array([[1.0, 0, 0], [1, 1, 1]])
    assert value(loss, y_true, y_pred, mask, lengths=np.array([3, 1])) == pytest.approx(
        weighted(per_position, mask), rel=1e-12)
    got, grad = loss_and_grad(loss, y_true, y_pred, np.zeros((2, 3)))
    assert got == 0.0 and np.all(grad == 0)
    # a (B,) mask weighs whole sequences; a trailing axis of 1 is accepted
    assert value(loss, y_true, y_pred, np.array([0.0, 1.0])) == pytest.approx(per_position[1].mean(), rel=1e-12)
    assert value(loss, y_true, y_pred, mask[..., None]) == pytest.approx(weighted(per_position, mask), rel=1e-12)


def test_sparse_ids_at_padding_may_be_anything(rng):
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    z = rng.standard_normal((2, 3, 4))
    ids = np.array([[1, 2, -1], [3, 99, 0]])
    mask = np.array([[1.0, 1, 0], [1, 0, 1]])
    with pytest.raises(ValueError, match="class id -1 outside 0..3"):
        value(loss, ids, z)
    clean = np.where(mask > 0, ids, 0)
    assert value(loss, ids, z, mask) == pytest.approx(value(loss, clean, z, mask), rel=1e-14)
    # float ids holding integers are accepted (Keras feeds labels as floats), a trailing 1 too
    assert value(loss, clean.astype(np.float32)[..., None], z) == pytest.approx(value(loss, clean, z), rel=1e-14)
    with pytest.raises(ValueError, match="integer class ids"):
        value(loss, clean + 0.5, z)


def test_shape_errors_name_the_argument(rng):
    z = rng.standard_normal((2, 3))
    with pytest.raises(ValueError, match=r"y_true: .*\(2, 3\).*\(2, 4\)"):
        value(losses.get("categorical_crossentropy"), np.zeros((2, 4)), z)
    with pytest.raises(ValueError, match=r"y_true: sparse targets .* of shape \(2,\)"):
        value(losses.get("sparse_categorical_crossentropy"), np.zeros((3,), int), z)
    with pytest.raises(ValueError, match=r"mask: shape \(3,\)"):
        value(losses.get("categorical_crossentropy"), np.eye(3)[[0, 1]], z, mask=np.ones(3))
    # binary targets without the trailing axis of 1 are accepted
    assert value(losses.get("binary_crossentropy"), np.array([1.0, 0.0]), np.array([[0.9], [0.1]])) == pytest.approx(
        -np.log(0.9), rel=1e-12)


def test_float32_keeps_its_dtype(rng):
    loss, y_true, y_pred, _ = make_case(rng, "scce_logits", (3, 4, 5))
    t = Tensor(y_pred.astype(np.float32), requires_grad=True)
    out = loss(y_true, t)
    out.backward()
    assert out.dtype == np.float32 and t.grad.dtype == np.float32


def test_no_grad_records_nothing(rng):
    loss, y_true, y_pred, _ = make_case(rng, "cce", (2, 3))
    with no_grad():
        out = loss(y_true, Tensor(y_pred, requires_grad=True))
    assert not out.requires_grad


def test_get():
    assert isinstance(losses.get("categorical_crossentropy"), losses.CategoricalCrossentropy)
    assert isinstance(losses.get("sparse_categorical_crossentropy"), losses.SparseCategoricalCrossentropy)
    assert isinstance(losses.get("binary_crossentropy"), losses.BinaryCrossentropy)
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("MeanSquaredError"), losses.MeanSquaredError)
    instance = losses.CategoricalCrossentropy(from_logits=True)
    assert losses.get(instance) is instance
    assert losses.get(losses.BinaryCrossentropy).from_logits is False
    with pytest.raises(ValueError, match="unknown name 'hinge'"):
        losses.get("hinge")
    with pytest.raises(TypeError):
        losses.get(3)


def test_callable_losses():
    def plain(y_true, y_pred):
        return losses.get("mse")(y_true, y_pred)

    def with_mask(y_true, y_pred, mask=None):
        return losses.get("mse")(y_true, y_pred, mask)

    y = np.array([[1.0], [3.0]])
    assert float(losses.get(plain)(np.zeros((2, 1)), y).data) == 5.0
    assert losses.get(plain).name == "plain"
    assert float(losses.get(with_mask)(np.zeros((2, 1)), y, np.array([1.0, 0.0])).data) == 1.0
    with pytest.raises(TypeError, match="takes no mask argument"):
        losses.get(plain)(np.zeros((2, 1)), y, np.array([1.0, 0.0]))


# ----------------------------------------------------------------------------------------------- metrics


def test_categorical_accuracy_accumulates_and_resets():
    m = metrics.get("categorical_accuracy")
    y_true = np.eye(3)[[0, 1, 2, 0]]
    y_pred = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.4, 0.3, 0.3]])
    m.update(y_true, y_pred)
    assert m.result() == 0.75
    m.update(y_true[1:3], y_pred[2:])  # both wrong
    assert m.result() == pytest.approx(3 / 6)
    m.reset()
    assert m.result() == 0.0
    m.update(y_true[:1], y_pred[:1])
    assert m.result() == 1.0


def test_sparse_accuracy_masked_sequences():
    m = metrics.get("sparse_categorical_accuracy")
    y_pred = np.zeros((2, 3, 4))
    y_pred[0, :, 1] = 1  # predicts 1, 1, 1
    y_pred[1, :, 2] = 1  # predicts 2, 2, 2
    ids = np.array([[1, 0, 1], [2, 2, -1]])
    m.update(ids, y_pred, mask=np.array([[1.0, 1, 1], [1, 1, 0]]))
    assert m.result() == pytest.approx(4 / 5)
    m.reset()
    t = Tensor(y_pred)
    t.lengths = np.array([1, 2])  # from the Tensor: positions (0,0), (1,0), (1,1)
    m.update(ids, t)
    assert m.result() == 1.0


def test_binary_accuracy_thresholds():
    m = metrics.get("binary_accuracy")
    m.update(np.array([1.0, 0.0, 1.0, 0.0]), np.array([[0.7], [0.2], [0.4], [0.6]]))
    assert m.result() == 0.5
    logits = metrics.get("accuracy", loss=losses.BinaryCrossentropy(from_logits=True))
    logits.update(np.array([1.0, 0.0, 1.0]), np.array([[0.3], [-0.2], [-4.0]]))  # z > 0 means p > 0.5
    assert logits.result() == pytest.approx(2 / 3)


@pytest.mark.parametrize("loss, y_true, expected", [
    ("sparse_categorical_crossentropy", np.array([1, 0]), 0.5),
    ("categorical_crossentropy", np.eye(3)[[1, 0]], 0.5),
    (None, np.array([1, 0]), 0.5),  # ids with fewer axes than y_pred: sparse, from the shapes
    (None, np.array([[1], [0]]), 0.5),
    (None, np.eye(3)[[1, 0]], 0.5),
])
def test_accuracy_resolves_like_keras(loss, y_true, expected):
    y_pred = np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])
    for name in ("accuracy", "acc"):
        m = metrics.get(name, loss=loss)
        assert m.name == name
        m.update(y_true, y_pred)
        assert m.result() == expected


def test_accuracy_binary_from_shape_and_loss():
    y_pred = np.array([[0.9], [0.2], [0.6]])
    y_true = np.array([[1.0], [1.0], [0.0]])
    for loss in (None, "binary_crossentropy"):
        m = metrics.get("accuracy", loss=loss)
        m.update(y_true, y_pred)
        assert m.result() == pytest.approx(1 / 3)


def test_regression_and_loss_metrics():
    y_true = np.array([[1.0, 2.0], [3.0, 4.0]])
    y_pred = np.array([[1.5, 2.0], [1.0, 4.0]])
    for name, expected in (("mse", (0.25 + 4) / 4), ("mae", (0.5 + 2) / 4)):
        m = metrics.get(name)
        m.update(y_true, y_pred)
        assert m.name == name and m.result() == pytest.approx(expected)
    m = metrics.get("mae")
    m.update(y_true, y_pred, mask=np.array([1.0, 0.0]))
    assert m.result() == pytest.approx(0.25)
    m = metrics.get("categorical_crossentropy")
    m.update(np.eye(2)[[0, 1]], np.array([[0.5, 0.5], [0.2, 0.8]]))
    assert m.result() == pytest.approx(-(np.log(0.5) + np.log(0.8)) / 2)


def test_metric_get_errors_and_callables():
    m = metrics.get(lambda y_true, y_pred: np.abs(y_true - y_pred).max(axis=-1))
    m.update(np.zeros((2, 2)), np.array([[1.0, -3.0], [0.5, 0.0]]))
    assert m.result() == pytest.approx(1.75)
    instance = metrics.CategoricalAccuracy()
    assert metrics.get(instance) is instance
    with pytest.raises(ValueError, match="unknown name 'f1'"):
        metrics.get("f1")
