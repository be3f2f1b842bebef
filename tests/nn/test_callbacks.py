"""Callbacks (fusedrnn.nn.callbacks) and History: early stopping with restored weights, checkpoints that
load back, CSV rows, the hooks fit calls, and the PNG of the training curves."""

import csv

import numpy as np
import pytest

from fusedrnn import nn
from fusedrnn.nn import layers as L
from fusedrnn.nn.callbacks import Callback, CSVLogger, EarlyStopping, ModelCheckpoint
from fusedrnn.nn.models import Sequential
from nn_checks import float64_layers  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("float64_layers")


@pytest.fixture
def data():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 4, 3))
    y = (x[:, -1, 0] > 0).astype(int)
    return x, y


def small_model(seed=0, lr=0.05):
    model = Sequential([L.Input((4, 3)), L.GRU(4), L.Dense(2, activation="softmax")], seed=seed)
    model.compile(nn.optimizers.SGD(lr), "sparse_categorical_crossentropy", ["accuracy"])
    return model


class Scripted(Callback):
    """Replaces the monitored value with a script (callbacks later in the list see it), and keeps a copy of
    the weights at the end of every epoch."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values, self.weights = key, list(values), []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.weights.append(self.model.get_weights())


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, sorted(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))


def test_hooks_are_called_in_order(data):
    x, y = data
    recorder = Recorder()
    small_model().fit(x, y, batch_size=16, epochs=2, validation_split=0.25, callbacks=[recorder], verbose=0)
    assert recorder.params == {"epochs": 2, "steps": 2, "verbose": 0}
    batch_keys, epoch_keys = ["accuracy", "loss"], ["accuracy", "loss", "val_accuracy", "val_loss"]
    expected = [("train_begin",)]
    for epoch in range(2):
        expected += [("epoch_begin", epoch), ("batch_end", 0, batch_keys), ("batch_end", 1, batch_keys),
                     ("epoch_end", epoch, epoch_keys)]
    assert recorder.calls == expected + [("train_end",)]


def test_early_stopping_stops_and_restores_the_best_weights(data):
    x, y = data
    model = small_model()
    script = Scripted("val_loss", [3.0, 1.0, 1.5, 1.2, 0.5, 0.1])
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x, y, batch_size=10, epochs=6, validation_split=0.25, callbacks=[script, stop], verbose=0)
    # best at epoch 1; epochs 2 and 3 do not improve -> stops after epoch 3, before the better epoch 4
    assert len(history.history["loss"]) == 4 and stop.stopped_epoch == 3 and model.stop_training
    assert stop.best == 1.0 and stop.best_epoch == 1
    restored = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(restored, script.weights[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(restored, script.weights[3]))


def test_early_stopping_min_delta_mode_and_no_restore(data):
    x, y = data
    model = small_model()
    # accuracy rises by less than min_delta: not an improvement in mode "auto" (max for accuracies)
    script = Scripted("val_accuracy", [0.50, 0.52, 0.53, 0.54, 0.9])
    stop = EarlyStopping(monitor="val_accuracy", min_delta=0.05, patience=1)
    history = model.fit(x, y, batch_size=10, epochs=5, validation_split=0.25, callbacks=[script, stop], verbose=0)
    assert len(history.history["loss"]) == 2 and stop.mode == "max"
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), script.weights[-1]))
    # without early stopping's trigger, every epoch runs
    patient = EarlyStopping(monitor="val_accuracy", patience=10)
    history = small_model().fit(x, y, epochs=3, validation_split=0.25, callbacks=[patient], verbose=0)
    assert len(history.history["loss"]) == 3 and patient.stopped_epoch == 0


def test_model_checkpoint_writes_loadable_files(data, tmp_path):
    x, y = data
    model = small_model()
    pattern = str(tmp_path / "ckpt" / "w.{epoch:02d}-{val_loss:.2f}.npz")
    script = Scripted("val_loss", [2.0, 1.0, 1.5])
    model.fit(x, y, batch_size=10, epochs=3, validation_split=0.25,
              callbacks=[script, ModelCheckpoint(pattern, save_best_only=True)], verbose=0)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["w.01-2.00.npz", "w.02-1.00.npz"]
    restored = small_model(seed=1)
    restored.load_weights(tmp_path / "ckpt" / "w.02-1.00.npz")
    assert all(np.array_equal(a, b) for a, b in zip(restored.get_weights(), script.weights[1]))
    every = ModelCheckpoint(str(tmp_path / "every.{epoch}.npz"), monitor="loss")
    small_model().fit(x, y, epochs=2, callbacks=[every], verbose=0)
    assert (tmp_path / "every.1.npz").exists() and (tmp_path / "every.2.npz").exists()
    with pytest.raises(ValueError, match="save_weights_only"):
        ModelCheckpoint(pattern, save_weights_only=False)


def test_csv_logger_writes_one_row_per_epoch(data, tmp_path):
    x, y = data
    path = tmp_path / "log.csv"
    history = small_model().fit(x, y, epochs=2, validation_split=0.25, callbacks=[CSVLogger(path)], verbose=0)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    # rel=1e-12: the CSV holds repr-exact floats; only a parse/format slip would differ
    assert [float(r["val_loss"]) for r in rows] == pytest.approx(history.history["val_loss"], rel=1e-12)
    small_model().fit(x, y, epochs=1, callbacks=[CSVLogger(path, append=True)], verbose=0)
    with open(path, newline="") as f:
        lines = f.read().splitlines()
    assert len(lines) == 4 and lines[0].startswith("epoch,") and lines[3].startswith("0,")
    semicolons = tmp_path / "semi.csv"
    small_model().fit(x, y, epochs=1, callbacks=[CSVLogger(semicolons, separator=";")], verbose=0)
    assert semicolons.read_text().splitlines()[0] == "epoch;accuracy;loss"


def test_history_plot_writes_a_png(data, tmp_path):
    x, y = data
    history = small_model().fit(x, y, epochs=3, validation_split=0.25, verbose=0)
    assert history.epoch == [0, 1, 2] and len(history.history["val_accuracy"]) == 3
    path = history.plot(tmp_path / "plots" / "curves.png")
    data_bytes = path.read_bytes()
    assert data_bytes[:8] == b"\x89PNG\r\n\x1a\n" and len(data_bytes) > 5000
    width = int.from_bytes(data_bytes[16:20], "big")
    assert width == 900  # two subplots (loss, accuracy) at 4.5 inches and 100 dpi each
    only_loss = history.plot(tmp_path / "loss.png", metrics=["loss"])
    assert int.from_bytes(only_loss.read_bytes()[16:20], "big") == 450
    with pytest.raises(ValueError, match="not in the history"):
        history.plot(tmp_path / "x.png", metrics=["auc"])


def test_missing_monitor_warns(data):
    x, y = data
    with pytest.warns(RuntimeWarning, match="val_loss"):
        small_model().fit(x, y, epochs=1, callbacks=[EarlyStopping()], verbose=0)
