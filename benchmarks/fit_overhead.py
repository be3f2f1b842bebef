"""Training-layer overhead: one ``fit`` step vs the bare fused forward+backward, at the tagger's shape.

    python benchmarks/fit_overhead.py [--rounds 15] [--threads N] [--json]

Shape: B=32, T=30, I=200, H=300, a bidirectional LSTM (return_sequences) and a TimeDistributed
Dense(3, softmax) head, sparse categorical cross-entropy, Adam, float32. Peers, each timed per step:

- ``fit step``: ``model.fit`` over 8 batches of 32 (shuffled, verbose=0), time / 8: slicing,
  forward, loss, backward through the graph, Adam on every weight, metrics;
- ``train_on_batch``: the same step without fit's loop;
- ``bare ops.lstm``: ``ops.lstm(bidirectional=True)`` + ``ops.stack_backward`` on the same weights,
  x and a fixed dy (the two directions run at the same time, each on half of the threads);
- ``bare directions``: ``ops.lstm_forward`` + ``ops.lstm_backward`` for each direction one after the
  other (what the Bidirectional layer calls).

The target (issue 3) is fit step / bare ops.lstm <= 1.15. The model's output is checked against
the bare op with the same weights before anything is timed. Peers run interleaved, round after
round in a rotating order, with one untimed call first; times are medians over the rounds.

The table is measured twice: with NumPy's own OpenBLAS (the one behind ``@`` in the Dense head and
the loss, not fusedrnn's) at its default thread count, as a user gets it, and with it set to one
thread. After a multi-threaded call OpenBLAS's idle workers spin on every core for a while
(DESIGN.md), which is time taken from the fused kernels' own threads that run right after.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import statistics
import sys
import time

import numpy as np

import fusedrnn
from fusedrnn import ops
from fusedrnn.nn import layers
from fusedrnn.nn.models import Sequential
from fusedrnn.nn.optimizers import Adam

B, T, I, H, CLASSES = 32, 30, 200, 300, 3
FIT_BATCHES = 8
TARGET = 1.15


def numpy_blas_threads(threads=None):
    """The thread count of NumPy's bundled OpenBLAS (set first when ``threads`` is given), through its
    C API as threadpoolctl does; None when this NumPy has no bundled OpenBLAS."""
    for path in glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*")):
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", "")):
            setter = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                if threads is not None:
                    setter(int(threads))
                return int(getter())
    return None


def build(seed=0):
    model = Sequential([layers.Input((T, I)), layers.Bidirectional(layers.LSTM(H, return_sequences=True)),
                        layers.TimeDistributed(layers.Dense(CLASSES, activation="softmax"))], seed=seed)
    model.compile(optimizer=Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def bare_params(model):
    """The Bidirectional layer's weights as ops.lstm's params: [(w_ih, w_hh, b_ih, b_hh)] forward, reverse."""
    bi = model.layers[0]
    return [tuple(t.data for t in (d.w_ih, d.w_hh, d.b_ih, d.b_hh)) for d in (bi.forward_layer, bi.backward_layer)]


def check(model, x):
    """The model's recurrent output equals the bare op's with the same weights (before any timing)."""
    y_model = model.layers[0](x).data
    y_bare, *_ = ops.lstm(x, bare_params(model), bidirectional=True)
    diff = float(np.max(np.abs(y_model - y_bare)))
    # the same float32 kernels on the same arrays: equal up to the order of the two directions' sums
    if diff > 1e-5:
        raise SystemExit(f"check failed: Bidirectional output differs from ops.lstm by {diff:.3g}")
    return diff


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: fusedrnn's)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = parser.parse_args(argv)
    if args.threads:
        fusedrnn.set_num_threads(args.threads)
    threads = fusedrnn.get_num_threads()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=(B, T))
    x_fit = np.concatenate([x] * FIT_BATCHES)
    y_fit = np.concatenate([y] * FIT_BATCHES)
    dy = rng.standard_normal((B, T, 2 * H)).astype(np.float32)
    model = build()
    diff = check(model, x)
    params = bare_params(model)

    def fit_step():
        model.fit(x_fit, y_fit, batch_size=B, epochs=1, verbose=0, shuffle=True)
        return FIT_BATCHES

    def train_on_batch():
        model.train_on_batch(x, y)
        return 1

    def bare_stack():
        _, _, _, ctx = ops.lstm(x, params, bidirectional=True)
        ops.stack_backward(ctx, dy)
        return 1

    def bare_directions():
        for reverse, (w_ih, w_hh, b_ih, b_hh), half in ((False, params[0], dy[..., :H]), (True, params[1], dy[..., H:])):
            _, _, _, ctx = ops.lstm_forward(x, w_ih, w_hh, b_ih, b_hh, reverse=reverse)
            ops.lstm_backward(ctx, np.ascontiguousarray(half))
        return 1

    peers = {"fit step": fit_step, "train_on_batch": train_on_batch, "bare ops.lstm": bare_stack,
             "bare directions": bare_directions}
    names = list(peers)

    default_blas = numpy_blas_threads()
    configs = {"default": default_blas, "1 thread": 1} if default_blas is not None else {"default": None}
    times = {label: {name: [] for name in names} for label in configs}
    for r in range(args.rounds):  # both configurations in every round: the machine's noise falls on both
        for label, blas in configs.items():
            if blas is not None:
                numpy_blas_threads(blas)
            for name in names[r % len(names):] + names[:r % len(names)]:
                peers[name]()  # untimed: the same warm state for every peer
                start = time.perf_counter()
                steps = peers[name]()
                times[label][name].append((time.perf_counter() - start) / steps)
    if default_blas is not None:
        numpy_blas_threads(default_blas)
    results = {label: {name: 1e3 * statistics.median(v) for name, v in per.items()} for label, per in times.items()}

    print(f"fit overhead: B={B} T={T} I={I} H={H} bidirectional LSTM + TimeDistributed Dense({CLASSES}), float32, "
          f"{threads} kernel threads, {args.rounds} rounds (check: max |model - ops.lstm| = {diff:.2g}); "
          f"load average {os.getloadavg()[0]:.2f}")
    labels = list(results)
    print("| peer | " + " | ".join(f"ms/step, NumPy BLAS {label} | / bare ops.lstm" for label in labels) + " |")
    print("|---|" + "---:|---:|" * len(labels))
    for name in names:
        cells = [f"{results[label][name]:.1f} | {results[label][name] / results[label]['bare ops.lstm']:.2f}"
                 for label in labels]
        print(f"| {name} | " + " | ".join(cells) + " |")
    ratios = {label: results[label]["fit step"] / results[label]["bare ops.lstm"] for label in labels}
    for label, ratio in ratios.items():
        print(f"fit step / bare forward+backward, NumPy BLAS {label} "
              f"({default_blas if label == 'default' else 1} threads): {ratio:.2f} "
              f"(target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'})")
    if args.json:
        print(json.dumps({"benchmark": "fit_overhead", "threads": threads, "rounds": args.rounds,
                          "numpy_blas_default_threads": default_blas, "median_ms": results, "ratio": ratios,
                          "target": TARGET}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
