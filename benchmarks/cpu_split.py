"""How one direction's forward shares its threads: by batch rows or by hidden units, side by side.

    python benchmarks/cpu_split.py [--repeats N] [--out FILE.md]

For each cell and shape (T=100, I=H, float32, inference forward: ``need_grad=False``) it times the
forward with FUSEDRNN_CPU_SPLIT=rows and =units, interleaved in one process, after checking that
both give the same outputs, and prints the medians, the ratio rows/units (> 1: units faster) and the
time of the split the kernels pick by themselves (csrc/cpu/split.h).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time

import numpy as np

import fusedrnn
from fusedrnn import ops

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
SHAPES = [(1, 64), (4, 64), (1, 128), (8, 128), (16, 128), (1, 256), (4, 256), (8, 256), (32, 256), (64, 256),
          (1, 512), (8, 512), (16, 512), (1, 1024), (128, 1024)]  # (B, H)
T = 100


def run(cell, x, params):
    return getattr(ops, cell)(x, params, need_grad=False)


def timed(cell, x, params, split):
    """Seconds of one forward with FUSEDRNN_CPU_SPLIT=split ("auto": unset), after one untimed."""
    if split != "auto":
        os.environ["FUSEDRNN_CPU_SPLIT"] = split
    try:
        run(cell, x, params)  # warm-up: the team's threads and the caches
        start = time.perf_counter()
        run(cell, x, params)
        return time.perf_counter() - start
    finally:
        os.environ.pop("FUSEDRNN_CPU_SPLIT", None)


def row(cell, B, H, repeats, rng):
    G = GATES[cell]
    x = rng.standard_normal((B, T, H), dtype=np.float32)
    params = [tuple(rng.standard_normal(s, dtype=np.float32) * 0.05 for s in ((G * H, H), (G * H, H), (G * H,), (G * H,)))]
    outputs = {}
    for split in ("rows", "units"):
        os.environ["FUSEDRNN_CPU_SPLIT"] = split
        outputs[split] = run(cell, x, params)[0]
        del os.environ["FUSEDRNN_CPU_SPLIT"]
    same = float(np.max(np.abs(outputs["rows"] - outputs["units"])))
    times = {"rows": [], "units": [], "auto": []}
    for r in range(1 if H >= 1024 and B > 8 else repeats):
        order = list(times)[r % 3:] + list(times)[:r % 3]  # rotating, as fusedrnn bench does
        for split in order:
            times[split].append(timed(cell, x, params, split))
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    w_hh_kib = G * H * H * 4 // 1024
    return f"| {cell.upper()} | {B} | {H} | {w_hh_kib} | {ms['rows']:.3f} | {ms['units']:.3f} | " \
           f"{ms['rows'] / ms['units']:.2f} | {ms['auto']:.3f} | {same:.0e} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    lines = [f"# Rows or units: one direction's forward on {fusedrnn.get_num_threads()} threads, "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", "",
             "Command: `python benchmarks/cpu_split.py" + (f" --out {args.out}`" if args.out else "`"), "",
             f"T={T}, I=H, float32, forward with need_grad=False; median of {args.repeats} interleaved runs "
             "(1 on B=128 H=1024), in rotating order. rows/units > 1: the split by units is faster. auto: "
             "the split the kernels pick themselves. max abs diff: between the two splits' outputs.", "",
             "| cell | B | H | W_hh KiB | rows ms | units ms | rows/units | auto ms | max abs diff |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    print("\n".join(lines), flush=True)
    for cell in GATES:
        for B, H in SHAPES:
            lines.append(row(cell, B, H, args.repeats, rng))
            print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
