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
"""

from __future__ import annotations

import argparse
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

    times = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            peers[name]()  # untimed: the same warm state for every peer
            start = time.perf_counter()
            steps = peers[name]()
            times[name].append((time.perf_counter() - start) / steps)
    median = {name: 1e3 * statistics.median(values) for name, values in times.items()}
    base = median["bare ops.lstm"]

    print(f"fit overhead: B={B} T={T} I={I} H={H} bidirectional LSTM + TimeDistributed Dense({CLASSES}), float32, "
          f"{threads} threads, {args.rounds} rounds (check: max |model - ops.lstm| = {diff:.2g}); "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| peer | median ms/step | / bare ops.lstm |")
    print("|---|---:|---:|")
    for name in names:
        print(f"| {name} | {median[name]:.1f} | {median[name] / base:.2f} |")
    ratio = median["fit step"] / base
    print(f"fit step / bare forward+backward = {ratio:.2f} (target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'})")
    if args.json:
        print(json.dumps({"benchmark": "fit_overhead", "threads": threads, "rounds": args.rounds,
                          "median_ms": median, "ratio": ratio, "target": TARGET}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
