"""Models (fusedrnn.nn.models): a whole-model gradient check on padded batches, learning on small
tasks, validation, evaluate/predict, padding in the loss, multi-input/output and subclassed models,
summary counts, weight files and seeded reproducibility."""

import re

import numpy as np
import pytest
import torch

from fusedrnn import nn
from fusedrnn.nn import layers as L
from fusedrnn.nn.models import Model, Sequential
from nn_checks import check_gradients, float64_layers  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("float64_layers")

VOCAB, EMB, H, TAGS = 7, 3, 2, 3


@pytest.fixture
def rng():
    return np.random.default_rng(99)


def padded_ids(rng, lengths, steps, vocab=VOCAB):
    """(B, T) ids in 1..vocab-1, post-padded with 0 beyond each length."""
    ids = rng.integers(1, vocab, (len(lengths), steps))
    ids[np.arange(steps)[None, :] >= np.asarray(lengths)[:, None]] = 0
    return ids


def tagger(seed=0, units=H, vocab=VOCAB, emb=EMB, tags=TAGS, dropout=0.0):
    """Embedding(mask_zero) -> Bidirectional(LSTM, return_sequences) -> TimeDistributed(Dense softmax)."""
    L.set_random_seed(seed)
    ids = L.Input((None,), dtype="int64")
    x = L.Embedding(vocab, emb, mask_zero=True)(ids)
    x = L.Bidirectional(L.LSTM(units, return_sequences=True, recurrent_dropout=dropout))(x)
    return Model(ids, L.TimeDistributed(L.Dense(tags, activation="softmax"))(x))


def test_whole_model_gradients_on_a_padded_batch(rng):
    model = tagger()
    for w in model.weights:
        w.data[...] = 0.5 * rng.standard_normal(w.shape)
    ids = padded_ids(rng, [5, 3, 1], 5)
    out = model(ids)
    assert out.lengths.tolist() == [5, 3, 1]
    check_gradients(lambda: model(ids), model.weights, rng)


def test_functional_and_sequential_agree(rng):
    """The same layers as a Sequential and as a functional Model give the same outputs."""
    model = tagger(seed=4)
    seq = Sequential([L.Input((None,), dtype="int64")] + model.layers[1:])
    ids = padded_ids(rng, [4, 2], 4)
    np.testing.assert_array_equal(seq.predict(ids), model.predict(ids))


def test_fit_learns_a_padded_tagging_task_and_validates(rng):
    """Tag each token with whether it equals the token before it (0 at the first step); sequences of
    varying length, post-padded. Needs the recurrence; reaches high masked accuracy in a few epochs."""
    steps, count = 8, 600
    lengths = rng.integers(2, steps + 1, count)
    ids = padded_ids(rng, lengths, steps, vocab=4)
    tags = np.zeros_like(ids)
    tags[:, 1:] = (ids[:, 1:] == ids[:, :-1]) & (ids[:, 1:] != 0)
    tags[ids == 0] = 2  # garbage at padding: a model that learned it would show in unmasked accuracy
    model = tagger(seed=1, units=8, vocab=4, emb=4)
    model.compile(nn.optimizers.Adam(0.03), "sparse_categorical_crossentropy", ["accuracy"])
    history = model.fit(ids, tags, batch_size=32, epochs=8, validation_split=0.2, verbose=0, seed=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 8 for v in history.history.values())
    assert history.history["val_accuracy"][-1] >= 0.95, history.history
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    # val_* is the evaluation of the held-out last 20% after the last epoch (the loss is the batches' mean
    # losses weighted by batch size, as in Keras, so the same batch size gives the same number)
    # rel=1e-12 here and below: the same sums in the same order, up to the rounding of one division
    held_out = slice(int(count * 0.8), None)
    loss, acc = model.evaluate(ids[held_out], tags[held_out], batch_size=32)
    assert loss == pytest.approx(history.history["val_loss"][-1], rel=1e-12)
    assert acc == pytest.approx(history.history["val_accuracy"][-1], rel=1e-12)
    # the masked accuracy counts valid steps only: the padding tag 2 is never predicted right
    probs = model.predict(ids[held_out])
    valid = ids[held_out] != 0
    assert (probs.argmax(-1) == tags[held_out])[valid].mean() == pytest.approx(acc, rel=1e-12)
    assert (probs.argmax(-1) == tags[held_out])[~valid].mean() < 0.5


def test_fit_learns_a_classification_task_with_validation_data(rng):
    """Sequential SimpleRNN over (T, 1) bits: is the count of ones above T/2 (the chapter's count-ones, made binary)."""
    steps = 9
    x = rng.integers(0, 2, (500, steps, 1)).astype(np.float64)
    y = (x.sum(axis=(1, 2)) > steps / 2).astype(np.float64)
    model = Sequential([L.Input((steps, 1)), L.SimpleRNN(8), L.Dense(1, activation="sigmoid")], seed=2)
    model.compile(nn.optimizers.Adam(0.02), "binary_crossentropy", ["accuracy"])
    history = model.fit(x[:400], y[:400], batch_size=20, epochs=12, validation_data=(x[400:], y[400:]), verbose=0,
                        seed=0)
    # chance is ~0.5; other data seeds end at 0.93-0.98 after these 12 epochs
    assert history.history["val_accuracy"][-1] >= 0.9, history.history
    assert model.evaluate(x[400:], y[400:], return_dict=True)["accuracy"] == history.history["val_accuracy"][-1]


def test_padding_does_not_reach_the_loss(rng):
    model = tagger(seed=5)
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    ids = padded_ids(rng, [5, 3, 2], 5)
    tags = rng.integers(0, TAGS, ids.shape)
    other = tags.copy()
    other[ids == 0] = (other[ids == 0] + 1) % TAGS
    assert model.evaluate(ids, tags) == model.evaluate(ids, other)
    changed = tags.copy()
    changed[0, 0] = (changed[0, 0] + 1) % TAGS
    assert model.evaluate(ids, changed) != model.evaluate(ids, tags)


def test_explicit_lengths_equal_mask_zero(rng):
    """lengths given to fit/evaluate/predict on float sequences equal the masks Embedding(mask_zero) finds."""
    model = tagger(seed=6)
    ids = padded_ids(rng, [5, 2, 4], 5)
    tags = rng.integers(0, TAGS, ids.shape)
    embed, rest = model.layers[1], model.layers[2:]
    vectors = embed(ids).data
    x = L.Input((None, EMB))
    y = x
    for layer in rest:
        y = layer(y)
    floats = Model(x, y)
    for m in (model, floats):
        m.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    lengths = np.array([5, 2, 4])
    np.testing.assert_array_equal(floats.predict(vectors, lengths=lengths), model.predict(ids))
    assert floats.evaluate(vectors, tags, lengths=lengths) == model.evaluate(ids, tags)
    assert floats.evaluate(vectors, tags) != model.evaluate(ids, tags)  # without lengths, padding counts
    with pytest.raises(ValueError, match="lengths"):
        floats.predict(vectors, lengths=np.array([5, 0, 4]))


def test_multi_input_multi_output_model(rng):
    """Two inputs (a padded sequence with explicit lengths and a feature vector), two outputs (per-step tags and
    one class), per-output losses in the logs, loss_weights, evaluate as list and dict."""
    seq_in, feat_in = L.Input((None, 3), name="seq"), L.Input((4,), name="feat")
    states = L.LSTM(5, return_sequences=True, name="enc")(seq_in)
    tags = L.TimeDistributed(L.Dense(3, activation="softmax"), name="tags")(states)
    summary = L.Concatenate()([L.LastState()(states), L.Dense(5, activation="relu")(feat_in)])
    cls = L.Dense(1, activation="sigmoid", name="cls")(summary)
    model = Model([seq_in, feat_in], [tags, cls])
    model.compile("adam", {"tags": "sparse_categorical_crossentropy", "cls": "binary_crossentropy"},
                  metrics=["accuracy"], loss_weights=[1.0, 0.5])
    n = 40
    xs = [rng.standard_normal((n, 6, 3)), rng.standard_normal((n, 4))]
    ys = [rng.integers(0, 3, (n, 6)), rng.integers(0, 2, n).astype(np.float64)]
    lengths = [rng.integers(1, 7, n), None]
    history = model.fit(xs, ys, batch_size=8, epochs=2, verbose=0, lengths=lengths, validation_split=0.25)
    assert set(history.history) == {"loss", "tags_loss", "cls_loss", "tags_accuracy", "cls_accuracy",
                                    "val_loss", "val_tags_loss", "val_cls_loss", "val_tags_accuracy",
                                    "val_cls_accuracy"}
    logs = model.evaluate(xs, ys, lengths=lengths, return_dict=True)
    # rel=1e-12: the total is the weighted sum per batch, averaged; the parts averaged then summed differ by rounding
    assert logs["loss"] == pytest.approx(logs["tags_loss"] + 0.5 * logs["cls_loss"], rel=1e-12)
    assert model.evaluate(xs, ys, lengths=lengths) == [logs[k] for k in model.metrics_names]
    out_tags, out_cls = model.predict(xs, lengths=lengths, batch_size=7)
    assert out_tags.shape == (n, 6, 3) and out_cls.shape == (n, 1)


def test_subclassed_model_trains(rng):
    class Classifier(Model):
        def __init__(self):
            super().__init__()
            self.encoder = L.Bidirectional(L.GRU(4))
            self.head = L.Dense(2, activation="softmax")

        def call(self, inputs, training=False):
            return self.head(self.encoder(inputs, training=training))

    model = Classifier()
    x = rng.standard_normal((64, 5, 2))
    y = (x[:, 0, 0] > 0).astype(int)  # the first step decides: needs the sequence read back to it
    model.compile(nn.optimizers.Adam(0.05), "sparse_categorical_crossentropy", ["acc"])
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0, seed=0)
    assert history.history["acc"][-1] >= 0.9
    assert model.count_params() == 2 * (3 * 4 * (2 + 4) + 6 * 4) + 8 * 2 + 2
    forward = f"{model.encoder.name}/{model.encoder.forward_layer.name}"
    assert [n for n, _ in model.named_weights()][:2] == [f"{forward}/w_ih", f"{forward}/w_hh"]


def test_subclassed_model_with_two_outputs(rng):
    class TwoHeads(Model):
        def __init__(self):
            super().__init__()
            self.encoder = L.LSTM(3, return_sequences=True)
            self.tags = L.Dense(2, activation="softmax")
            self.pool = L.GlobalAveragePooling1D()
            self.score = L.Dense(1)

        def call(self, inputs, training=False):
            states = self.encoder(inputs)
            return [self.tags(states), self.score(self.pool(states))]

    model = TwoHeads()
    model.compile("sgd", ["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], []])
    x = rng.standard_normal((12, 4, 2))
    lengths = rng.integers(1, 5, 12)
    history = model.fit(x, [rng.integers(0, 2, (12, 4)), rng.standard_normal(12)], batch_size=6, verbose=0,
                        lengths=lengths)
    assert set(history.history) == {"loss", "output_1_loss", "output_2_loss", "output_1_accuracy"}
    assert history.history["loss"][0] == pytest.approx(
        history.history["output_1_loss"][0] + history.history["output_2_loss"][0], rel=1e-12)


def test_summary_counts_match_torch(capsys):
    model = Sequential([L.Input((30, 20)), L.Bidirectional(L.LSTM(16, return_sequences=True)),
                        L.TimeDistributed(L.Dense(3, activation="softmax"))])
    frozen = Sequential([L.Input((None,), dtype="int64"), L.Embedding(50, 20, trainable=False), L.GRU(8)])
    model.summary()
    frozen.summary()
    text = capsys.readouterr().out
    lstm = torch.nn.LSTM(20, 16, bidirectional=True)
    expected_total = sum(p.numel() for p in lstm.parameters()) + 32 * 3 + 3
    totals = [int(v.replace(",", "")) for v in re.findall(r"Total params: ([\d,]+)", text)]
    trainable = [int(v.replace(",", "")) for v in re.findall(r"Trainable params: ([\d,]+)", text)]
    frozen_counts = [int(v.replace(",", "")) for v in re.findall(r"Non-trainable params: ([\d,]+)", text)]
    gru = sum(p.numel() for p in torch.nn.GRU(20, 8).parameters())
    assert totals == [expected_total, 50 * 20 + gru]
    assert trainable == [expected_total, gru] and frozen_counts == [0, 50 * 20]
    assert "(None, 30, 32)" in text and "(None, 30, 3)" in text and "bidirectional" in text


def test_lazy_sequential_is_built_by_fit(rng):
    model = Sequential([L.LSTM(3), L.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="not built"):
        model.summary()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = rng.standard_normal((10, 4, 5))
    model.fit(x, rng.integers(0, 2, 10), epochs=1, verbose=0)
    assert model.built and model.count_params() == 4 * 3 * (5 + 3) + 8 * 3 + 3 * 2 + 2
    assert model.layers[0].output_shape == (None, 3)
    assert model.predict(rng.standard_normal((2, 7, 5))).shape == (2, 2), "other step counts after building"
    with pytest.raises(ValueError, match=r"expects shape \(None, None, 5\)"):
        model.predict(rng.standard_normal((2, 7, 4)))


def test_lazy_sequential_built_by_build_loads_weights(rng, tmp_path):
    """Keras' way to restore a lazy model: build((None, T)) from a shape, then load_weights."""
    x = rng.standard_normal((3, 4, 5))
    trained = Sequential([L.LSTM(3), L.Dense(2)], seed=1)
    trained.build((None, 4, 5))
    assert trained.built
    trained.save_weights(tmp_path / "w.npz")
    fresh = Sequential([L.LSTM(3), L.Dense(2)], seed=2)
    with pytest.raises(ValueError, match="build the model"):
        fresh.load_weights(tmp_path / "w.npz")
    fresh.build((None, None, 5))
    fresh.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(fresh.predict(x), trained.predict(x))


def test_save_and_load_weights_round_trip(rng, tmp_path):
    """Weights are matched by "layername/weightname": the same code run again (same names) loads them."""
    ids = padded_ids(rng, [4, 2], 4)
    path = tmp_path / "tagger.npz"
    nn.layers.clear_session()
    first = tagger(seed=7)
    first.save_weights(path)
    nn.layers.clear_session()
    second = tagger(seed=8)
    assert [n for n, _ in first.named_weights()] == [n for n, _ in second.named_weights()]
    assert not np.allclose(second.predict(ids), first.predict(ids))
    second.load_weights(path)
    np.testing.assert_array_equal(second.predict(ids), first.predict(ids))
    with pytest.raises(ValueError, match="does not match"):
        Sequential([L.Input((3,)), L.Dense(2)]).load_weights(path)
    # built again in the same session the names differ ("lstm_1"): same structure, so matched by position
    third = tagger(seed=9)
    assert [n for n, _ in third.named_weights()] != [n for n, _ in first.named_weights()]
    third.load_weights(path)
    np.testing.assert_array_equal(third.predict(ids), first.predict(ids))
    with pytest.raises(ValueError, match="in the model but not in the file"):
        tagger(seed=9).load_weights(path, by_name=True)
    with pytest.raises(ValueError, match="does not match"):  # same names and count, another shape
        nn.layers.clear_session()
        tagger(seed=9, units=3).load_weights(path)


def test_fit_is_reproducible_under_a_seed(rng):
    ids = padded_ids(rng, rng.integers(1, 6, 48), 5)
    tags = rng.integers(0, TAGS, ids.shape)

    def train(seed):
        model = tagger(seed=0, dropout=0.3)
        model.compile("adam", "sparse_categorical_crossentropy")
        return model.fit(ids, tags, batch_size=8, epochs=2, verbose=0, seed=seed).history["loss"]
    assert train(1) == train(1)
    assert train(1) != train(2)


def test_progress_bar_and_errors(rng, capsys):
    model = Sequential([L.Input((3,)), L.Dense(2, activation="softmax")])
    x, y = rng.standard_normal((20, 3)), rng.integers(0, 2, 20)
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y)
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, batch_size=5, epochs=2, validation_split=0.2, verbose=1)
    err = capsys.readouterr().err
    assert "Epoch 2/2" in err and "loss:" in err and "val_accuracy:" in err
    model.fit(x, y, batch_size=5, epochs=1, verbose=0)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(x, y[:10], verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="expects shape"):
        model.predict(rng.standard_normal((4, 5)))


def test_numpy_blas_is_single_threaded_while_training(rng):
    """numpy's OpenBLAS pool would spin against the fused kernels' threads: one thread inside fit, restored after."""
    from fusedrnn.nn import _numpy_blas

    found = _numpy_blas._find_numpy_openblas()
    if not found:
        pytest.skip("numpy is not using the OpenBLAS its wheels bundle")
    get, set_ = found
    before = get()
    set_(2)
    seen = []

    class Probe(nn.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(get())
    try:
        model = Sequential([L.Input((3,)), L.Dense(2, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy")
        model.fit(rng.standard_normal((8, 3)), rng.integers(0, 2, 8), batch_size=4, callbacks=[Probe()], verbose=0)
        assert seen == [1, 1] and get() == 2
    finally:
        set_(before)
