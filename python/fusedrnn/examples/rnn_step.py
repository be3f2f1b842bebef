"""The chapter's NumPy ``step`` for a vanilla RNN, shown to agree with the fused kernel.

The chapter explains a recurrent layer with one plain function applied at every time step,

    h_t = tanh(W x_t + U h_{t-1} + b)

looping over time in Python. ``ops.rnn_forward`` computes the same recurrence in one fused call
(weights in the op layout: w_ih = W (H, I), w_hh = U (H, H), b_ih = b, b_hh = 0). This example runs
both on the same random data and reports the largest difference.
"""

from __future__ import annotations

import time

import numpy as np

from .. import ops

# float64: both sides round differently (blocked BLAS vs np.dot) by ~1e-16 per operation, and a
# contracting tanh recurrence does not amplify it. float32: the same at ~1e-7.
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def step(x_t, h_prev, W, U, b):
    """One step of a vanilla RNN, as in the chapter: x_t (I,), h_prev (H,) -> h_t (H,)."""
    return np.tanh(np.dot(W, x_t) + np.dot(U, h_prev) + b)


def run_steps(x, h0, W, U, b):
    """x (T, I), h0 (H,) -> every state (T, H), one ``step`` per time step."""
    h = h0
    states = []
    for x_t in x:
        h = step(x_t, h, W, U, b)
        states.append(h)
    return np.stack(states)


def compare(batch=4, steps=20, inputs=8, hidden=16, dtype="float64", seed=0):
    """Random x (B, T, I), h0 (B, H) and weights; the step loop on each sequence vs one fused call.
    -> metrics dict (max_abs_diff over every output and the final state)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    scale = 1.0 / np.sqrt(inputs + hidden)  # pre-activations O(1): tanh neither linear nor saturated
    W = (scale * rng.standard_normal((hidden, inputs))).astype(dt)
    U = (scale * rng.standard_normal((hidden, hidden))).astype(dt)
    b = (0.1 * rng.standard_normal(hidden)).astype(dt)
    x = rng.standard_normal((batch, steps, inputs)).astype(dt)
    h0 = (0.5 * rng.standard_normal((batch, hidden))).astype(dt)

    start = time.perf_counter()
    expected = np.stack([run_steps(x[i], h0[i], W, U, b) for i in range(batch)])  # (B, T, H)
    loop_s = time.perf_counter() - start
    start = time.perf_counter()
    y, h_n, _ = ops.rnn_forward(x, W, U, b, np.zeros_like(b), h0)
    fused_s = time.perf_counter() - start

    diff = max(float(np.max(np.abs(y - expected))), float(np.max(np.abs(h_n - expected[:, -1]))))
    return {"example": "rnn-step", "dtype": dt.name, "batch": batch, "steps": steps, "inputs": inputs,
            "hidden": hidden, "seed": seed, "max_abs_diff": diff, "tolerance": TOLERANCE[dt.name],
            "ok": diff <= TOLERANCE[dt.name], "step_loop_ms": 1e3 * loop_s, "fused_ms": 1e3 * fused_s}


def add_arguments(parser):
    parser.add_argument("--batch", type=int, default=4, help="sequences (default 4)")
    parser.add_argument("--steps", type=int, default=20, help="time steps (default 20)")
    parser.add_argument("--inputs", type=int, default=8, help="input features (default 8)")
    parser.add_argument("--hidden", type=int, default=16, help="hidden units (default 16)")
    parser.add_argument("--dtype", choices=sorted(TOLERANCE), default="float64")


def run(args) -> dict:
    metrics = compare(args.batch, args.steps, args.inputs, args.hidden, args.dtype, args.seed)
    print(f"step loop vs fused rnn_forward, {args.dtype}, B={args.batch} T={args.steps} "
          f"I={args.inputs} H={args.hidden}: max |difference| = {metrics['max_abs_diff']:.3g} "
          f"({'agree' if metrics['ok'] else 'DISAGREE'}, tolerance {metrics['tolerance']:g})")
    return metrics
