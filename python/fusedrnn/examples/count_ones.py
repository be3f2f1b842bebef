"""Count the ones in a length-20 binary string: a recurrent layer over per-step inputs (20, 1).

The chapter's Figure 3-3: each string is fed one bit per time step, the recurrent layer's last
state goes to a softmax over the 21 possible counts (0..20). Trained with sparse categorical
cross-entropy and Adam on random strings; accuracy is measured on strings held out from training.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import ops
from ..nn import layers
from ..nn.models import Sequential
from ..nn.optimizers import Adam
from ..nn.schedules import ExponentialDecay

STEPS = 20
CLASSES = STEPS + 1  # 0..20 ones
# --cell name -> layer class, from the cell table ("simplernn", "lstm", "gru")
CELLS = {cell.keras_class.lower(): cell.keras_class for cell in ops.CELLS.values()}

# The default reached test accuracy 0.996-0.9995 over seeds 0-2 in 10-20 s on two shared cores
# (0.993 with 32 units or half the strings); --quick, the tests' configuration, 0.989-0.997 in ~4 s.
DEFAULT = dict(train=32000, test=2000, units=64, epochs=12, batch_size=64, learning_rate=0.01)
QUICK = dict(train=8000, test=1000, units=64, epochs=12, batch_size=64, learning_rate=0.01)


def make_data(n, rng):
    """n random strings -> x (n, 20, 1) float32 bits, y (n,) int64 counts."""
    bits = rng.integers(0, 2, size=(n, STEPS))
    return bits[:, :, None].astype(np.float32), bits.sum(axis=1).astype(np.int64)


def build_model(cell="lstm", units=32, learning_rate=0.01, seed=0, total_steps=None):
    """Sequential: <cell>(units) over (20, 1) -> Dense(21, softmax), compiled with Adam. With
    ``total_steps``, the learning rate decays exponentially to 1/20 of itself over that many batches:
    the large early steps find the counting solution fast, the small late ones settle it."""
    recurrent = getattr(layers, CELLS[cell])
    model = Sequential([layers.Input((STEPS, 1)), recurrent(units), layers.Dense(CLASSES, activation="softmax")],
                       seed=seed)
    if total_steps:
        learning_rate = ExponentialDecay(learning_rate, decay_steps=total_steps, decay_rate=0.05)
    model.compile(optimizer=Adam(learning_rate=learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train(cell="lstm", train=16000, test=2000, units=32, epochs=12, batch_size=64, learning_rate=0.01, seed=0,
          out=None, verbose=1):
    """Trains on fresh random strings and evaluates on others -> metrics dict."""
    rng = np.random.default_rng(seed)
    x_train, y_train = make_data(train, rng)
    x_val, y_val = make_data(test, rng)  # the curves' validation strings (nothing is selected on them)
    x_test, y_test = make_data(test, rng)
    model = build_model(cell, units, learning_rate, seed, total_steps=epochs * -(-train // batch_size))
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_data=(x_val, y_val),
                        shuffle=True, verbose=verbose, seed=seed)
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    metrics = {"example": "count-ones", "cell": cell, "units": units, "train": train, "test": test,
               "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
               "parameters": model.count_params(), "test_loss": float(test_loss),
               "test_accuracy": float(test_accuracy), "seconds": round(seconds, 2)}
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        metrics["plot"] = str(history.plot(Path(out) / "count_ones_history.png"))
    return metrics


def add_arguments(parser):
    parser.add_argument("--cell", choices=sorted(CELLS), default="lstm", help="recurrent layer (default lstm)")
    parser.add_argument("--units", type=int, default=None, help=f"hidden units (default {DEFAULT['units']})")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs (default {DEFAULT['epochs']})")
    parser.add_argument("--train", type=int, default=None, help=f"training strings (default {DEFAULT['train']})")
    parser.add_argument("--test", type=int, default=None, help=f"test strings (default {DEFAULT['test']})")
    parser.add_argument("--batch-size", type=int, default=None, help=f"default {DEFAULT['batch_size']}")
    parser.add_argument("--learning-rate", type=float, default=None, help=f"Adam's (default {DEFAULT['learning_rate']})")


def run(args) -> dict:
    config = dict(QUICK if args.quick else DEFAULT)
    for key in config:
        value = getattr(args, key)
        if value is not None:
            config[key] = value
    metrics = train(args.cell, **config, seed=args.seed, out=args.out)
    print(f"count-ones ({args.cell}, {config['units']} units): test accuracy {metrics['test_accuracy']:.4f} "
          f"after {config['epochs']} epochs in {metrics['seconds']:.1f} s")
    return metrics
