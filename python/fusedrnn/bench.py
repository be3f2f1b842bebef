"""Side-by-side CPU benchmark: our fused kernels, the NumPy reference and PyTorch, in one process.

    python -m fusedrnn.bench [--quick] [--cells lstm,gru,rnn] [--repeats N] [--threads N] [--save DIR] [--json]
    fusedrnn bench ...                      (the same, through the command line)
    fusedrnn bench --torch ...              (fusedrnn.torch against torch.nn: fusedrnn.bench_torch)

Each row is checked before it is timed: our outputs and gradients against torch.nn.LSTM/GRU/RNN
(the same weights copied in) and against the NumPy reference. The peers then run interleaved: each
round runs every peer in turn, in a rotating order, so the noise of a shared machine falls on all
of them alike; each peer's timed calls follow a short stretch of its own untimed ones, so that
none pays for the threads its predecessor left spinning. Times are medians over the rounds. Only
ratios measured in one run count (ARCHITECTURE.md, "Benchmarks and measurements"). Exit status 1 when a check fails (the table is
still printed).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import fusedrnn
from fusedrnn import _files, ops, reference

GATES = {name: cell.gates for name, cell in ops.CELLS.items()}  # views of the cell table
TORCH_CLASS = {name: cell.torch_class for name, cell in ops.CELLS.items()}
# float32 results of BLAS libraries that sum in different orders differ by ~1e-6 of the largest
# value; any real error (a wrong gate, step or transpose) shows at 1e-2 and above.
TOLERANCE = 1e-4
FLOPS_FACTOR = {"fwd": 1, "fwd+bwd": 3}  # of Row.flops: backward does two GEMMs for each of forward's
# OpenBLAS workers spin for 2^28 cycles (~0.13 s here) after each call before they sleep.
SETTLE_S = 0.15

# (B, T, I, H, bidirectional); each shape runs for every selected cell.
SHAPES = [
    (32, 30, 200, 300, True),  # the ADE tagger of the chapter: BiLSTM 300 over 200-d embeddings
    (1, 30, 200, 300, True),  # the tagger at batch 1: latency-bound, per-step overhead shows
    (1, 100, 256, 256, False),  # one direction, one sequence: a streaming encoder, a language model
    (8, 100, 512, 512, False),  # one direction, a small batch: W_hh larger than a core's L2
    (64, 100, 256, 256, False),  # a mid-size layer
]
# GEMM-bound: the one row to compare with the sgemm ceiling. LSTM only, at most 3 rounds and
# without timing the NumPy reference (about 30 s per fwd+bwd), to keep the default run under two
# minutes: one of its rounds takes seconds.
LARGE = (64, 100, 1024, 1024, False)
QUICK_SHAPES = [(4, 5, 8, 16, True), (3, 7, 6, 10, False)]


@dataclass(frozen=True)
class Row:
    cell: str  # "lstm", "gru" or "rnn"
    B: int
    T: int
    I: int  # noqa: E741 (the letter of ARCHITECTURE.md, "Shapes and weights")
    H: int
    bidirectional: bool
    time_reference: bool = True
    max_rounds: int = 0  # a cap on the timed rounds (0: none)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def flops(self) -> int:
        """Forward flops: the two GEMMs of every step; elementwise work left out. fwd+bwd is 3x."""
        return 2 * self.B * self.T * GATES[self.cell] * self.H * (self.I + self.H) * self.directions

    @property
    def label(self) -> str:
        kind = "bi" if self.bidirectional else "uni"
        return f"{self.cell.upper()} B={self.B} T={self.T} I={self.I} H={self.H} {kind}"


def grid(cells, quick=False):
    """The rows to run, in order."""
    shapes = QUICK_SHAPES if quick else SHAPES
    rows = [Row(cell, *shape) for shape in shapes for cell in cells]
    if not quick and "lstm" in cells:
        rows.append(Row("lstm", *LARGE, time_reference=False, max_rounds=3))
    return rows


def problem(row, seed=0):
    """-> x (B, T, I), dy (B, T, D*H), params [(w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,))] * D."""
    rng = np.random.default_rng(seed)
    G, H, D = GATES[row.cell], row.H, row.directions
    bound = 1.0 / np.sqrt(H)  # torch's default init: gates neither saturated nor trivial

    def uniform(*shape):
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    params = [(uniform(G * H, row.I), uniform(G * H, H), uniform(G * H), uniform(G * H)) for _ in range(D)]
    x = rng.standard_normal((row.B, row.T, row.I), dtype=np.float32)
    dy = rng.standard_normal((row.B, row.T, D * H), dtype=np.float32)
    return x, dy, params


def _named(y, states, dx, param_grads):
    """The arrays a check compares, by name: y, h_n[, c_n], dx, dw_ih[k], ... (NumPy, float32)."""
    out = {"y": y, "h_n": states[0], "dx": dx}
    if len(states) > 1:
        out["c_n"] = states[1]
    for k, grads in enumerate(param_grads):
        for name, g in zip(("dw_ih", "dw_hh", "db_ih", "db_hh"), grads):
            out[f"{name}[{k}]"] = g
    return out


class Ours:
    """fusedrnn.ops on the compiled CPU backend; both directions at once, as ops.lstm/gru/rnn do."""

    name = "ours"

    def __init__(self, row, x, dy, params):
        self.op, self.row, self.x, self.dy, self.params = getattr(ops, row.cell), row, x, dy, params

    def fwd(self):
        """Inference, as torch's under no_grad: nothing kept for a backward."""
        return self.op(self.x, self.params, bidirectional=self.row.bidirectional, need_grad=False)

    def fwd_bwd(self):
        out = self.op(self.x, self.params, bidirectional=self.row.bidirectional)
        return out, ops.stack_backward(out[-1], self.dy)

    def outputs(self):
        out, g = self.fwd_bwd()
        return _named(out[0], out[1:-1], g.dx, g.params)


class Reference:
    """The NumPy reference, the directions one after the other, each a plain loop over the steps."""

    name = "numpy"

    def __init__(self, row, x, dy, params, forward_only=False):
        self.row, self.x, self.dy, self.params, self.forward_only = row, x, dy, params, forward_only
        self.forward = getattr(reference, f"{row.cell}_forward")
        self.backward = getattr(reference, f"{row.cell}_backward")

    def fwd(self):
        # per direction: (y (B, T, H), h_n (B, H)[, c_n (B, H)], ctx)
        return [self.forward(self.x, *p, reverse=bool(d)) for d, p in enumerate(self.params)]

    def fwd_bwd(self):
        outs = self.fwd()
        H = self.row.H
        return outs, [self.backward(o[-1], self.dy[..., d * H:(d + 1) * H]) for d, o in enumerate(outs)]

    def outputs(self):
        # forward_only on the large shape: its forward takes seconds there, its backward half a minute.
        outs, grads = (self.fwd(), []) if self.forward_only else self.fwd_bwd()
        y = np.concatenate([o[0] for o in outs], axis=-1)
        states = [np.stack([o[i] for o in outs]) for i in range(1, len(outs[0]) - 1)]  # (D, B, H) each
        dx = sum(g.dx for g in grads) if grads else None  # None: not compared
        return _named(y, states, dx, [(g.dw_ih, g.dw_hh, g.db_ih, g.db_hh) for g in grads])


class Torch:
    """torch.nn.LSTM/GRU/RNN, batch_first, with our weights copied in."""

    name = "torch"

    def __init__(self, torch, row, x, dy, params):
        self.torch = torch
        self.module = getattr(torch.nn, TORCH_CLASS[row.cell])(row.I, row.H, batch_first=True,
                                                               bidirectional=row.bidirectional)
        with torch.no_grad():
            for d, p in enumerate(params):
                suffix = "_reverse" if d else ""
                for name, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), p):
                    getattr(self.module, f"{name}_l0{suffix}").copy_(torch.from_numpy(value))
        self.x = torch.from_numpy(x)
        self.x_grad = self.x.clone().requires_grad_(True)  # so that dx is computed, as ours does
        self.dy = torch.from_numpy(dy)

    def fwd(self):
        with self.torch.no_grad():
            return self.module(self.x)

    def fwd_bwd(self):
        self.module.zero_grad(set_to_none=True)
        self.x_grad.grad = None
        y, states = self.module(self.x_grad)
        y.backward(self.dy)
        return y, states

    def outputs(self):
        y, states = self.fwd_bwd()
        states = states if isinstance(states, tuple) else (states,)
        m = self.module
        param_grads = [[getattr(m, f"{n}_l0{'_reverse' if d else ''}").grad.numpy()
                        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                       for d in range(2 if m.bidirectional else 1)]
        return _named(y.detach().numpy(), [s.detach().numpy() for s in states], self.x_grad.grad.numpy(),
                      param_grads)


def max_rel_diff(a, b) -> float:
    """max |a - b| / max |b|: relative to the array's scale, so tiny entries do not blow it up.

    inf for different shapes and for any NaN or inf: a benchmark input never produces them."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    diff = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))
    return diff if np.isfinite(diff) else float("inf")


def check(ours, others):
    """-> (ok, worst difference, where) comparing our arrays with each peer's, name by name."""
    worst, where = 0.0, ""
    for peer, theirs in others.items():
        for name, value in theirs.items():
            if value is None:
                continue
            diff = max_rel_diff(ours[name], value)
            if diff > worst:
                worst, where = diff, f"{peer} {name}"
    return worst < TOLERANCE, worst, where


def settle(fn):
    """Calls fn, untimed, for SETTLE_S at least: the previous peer's BLAS threads keep spinning
    after it returns and would tax the next timed calls (measured: up to 3x)."""
    until = time.perf_counter() + SETTLE_S
    fn()
    while time.perf_counter() < until:
        fn()


def time_interleaved(peers, repeats):
    """-> {(peer name, "fwd" | "fwd+bwd"): median seconds}. Each round runs every peer, in a rotating order."""
    times = {(p.name, kind): [] for p in peers for kind in ("fwd", "fwd+bwd")}
    for r in range(repeats):
        shift = r % len(peers)
        for peer in peers[shift:] + peers[:shift]:
            settle(peer.fwd)
            for kind, fn in (("fwd", peer.fwd), ("fwd+bwd", peer.fwd_bwd)):
                start = time.perf_counter()
                fn()
                times[peer.name, kind].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def bench_row(row, repeats, torch):
    """Checks then times one row -> a dict for the table and the JSON."""
    x, dy, params = problem(row)
    ours = Ours(row, x, dy, params)
    ref = Reference(row, x, dy, params, forward_only=not row.time_reference)
    peers = [ours] + ([ref] if row.time_reference else []) + ([Torch(torch, row, x, dy, params)] if torch else [])
    others = {p.name: p.outputs() for p in peers[1:]}
    if not row.time_reference:
        others[ref.name] = ref.outputs()
    ok, worst, where = check(ours.outputs(), others)
    rounds = min(repeats, row.max_rounds or repeats)
    times = time_interleaved(peers, rounds)
    ms = {name: {kind: times[name, kind] * 1e3 if (name, kind) in times else None for kind in ("fwd", "fwd+bwd")}
          for name in ("ours", "numpy", "torch")}
    result = {"row": row.label, "cell": row.cell, "B": row.B, "T": row.T, "I": row.I, "H": row.H,
              "directions": row.directions, "check_ok": ok, "max_rel_diff": worst, "worst_at": where,
              "checked_against": sorted(others), "rounds": rounds, "flops": row.flops, "ms": ms,
              "gflops": {peer: {kind: None if t is None else row.flops * FLOPS_FACTOR[kind] / (t * 1e6)
                                for kind, t in kinds.items()} for peer, kinds in ms.items()}}
    result["ratio"] = {peer: {kind: None if ms[peer][kind] is None else ms[peer][kind] / ms["ours"][kind]
                              for kind in ms[peer]} for peer in ("torch", "numpy")}
    return result


def _openblas32_sgemm():
    """cblas_sgemm of scipy-openblas32, the BLAS our kernels call (same library, same threads), or None."""
    try:
        import scipy_openblas32

        lib = ctypes.CDLL(os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(True)))
    except (ImportError, OSError):
        return None
    fn = getattr(lib, "scipy_cblas_sgemm", None) or getattr(lib, "cblas_sgemm", None)  # prefixed in the wheel
    if fn is None:
        return None
    c_int, c_float, ptr = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    fn.argtypes = [c_int] * 6 + [c_float, ptr, c_int, ptr, c_int, c_float, ptr, c_int]
    fn.restype = None

    def sgemm(a, b, c):  # c (M, N) = a (M, K) @ b (K, N), C-contiguous float32
        (m, k), n = a.shape, b.shape[1]
        fn(101, 111, 111, m, n, k, 1.0, a.ctypes.data, k, b.ctypes.data, n, 0.0, c.ctypes.data, n)  # row-major

    return sgemm


def sgemm_peaks(n, repeats):
    """-> {"numpy": GFLOP/s, "scipy_openblas32": GFLOP/s} of an (n, n) @ (n, n) float32 product."""
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    c = np.empty((n, n), np.float32)
    candidates = {"numpy": lambda: np.matmul(a, b, out=c)}
    sgemm = _openblas32_sgemm()
    if sgemm is not None:
        sgemm(a, b, c)
        if max_rel_diff(c, a @ b) < TOLERANCE:  # a wrong ctypes signature would time garbage
            candidates["scipy_openblas32"] = lambda: sgemm(a, b, c)
    peaks = {}
    for name, fn in candidates.items():
        settle(fn)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - start)
        peaks[name] = 2 * n**3 / statistics.median(seconds) / 1e9
    return peaks


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _numpy_threads(threads):
    """A context limiting NumPy's own BLAS (the reference's) to our thread count, if threadpoolctl is there."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads, user_api="blas")


def run_benchmark(cells=tuple(ops.CELLS), quick=False, repeats=5, threads=None, progress=None):
    """Checks and times the grid -> a dict (header facts, rows, sgemm peaks)."""
    info = fusedrnn.build_info()
    if info.get("backend") != "cpu":
        raise RuntimeError(f"the compiled CPU backend is not active (backend {info.get('backend')!r}, "
                           f"{info.get('cpu_error', 'FUSEDRNN_BACKEND is set')}): nothing to benchmark")
    torch = _import_torch()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # others' work on a shared machine
    previous = fusedrnn.get_num_threads(), torch.get_num_threads() if torch else None
    threads = threads or previous[0]
    fusedrnn.set_num_threads(threads)
    if torch:
        torch.set_num_threads(threads)
    numpy_limit = _numpy_threads(threads)
    try:
        rows = []
        for row in grid(cells, quick):
            if progress:
                progress(f"{row.label} ...")
            rows.append(bench_row(row, repeats, torch))
        size = 256 if quick else 2048
        peaks = sgemm_peaks(size, max(repeats, 10))
    finally:
        fusedrnn.set_num_threads(previous[0])
        if torch:
            torch.set_num_threads(previous[1])
        if numpy_limit is not None:
            numpy_limit.restore_original_limits()
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "threads": threads, "load": load,
            "numpy_threads": "the same" if numpy_limit is not None else "numpy's default",
            "fusedrnn": fusedrnn.__version__, "build": {k: info.get(k) for k in
                                                        ("blas", "blas_version", "simd_active", "compiler")},
            "torch": torch.__version__ if torch else None, "numpy": np.__version__,
            "repeats": repeats, "settle_s": SETTLE_S, "tolerance": TOLERANCE,
            "sgemm": {"n": size, "gflops": peaks}, "rows": rows}


def _fmt(value, spec=".2f"):
    return "n/a" if value is None else format(value, spec)


def _ms(value):
    return _fmt(value, ".2f" if value is not None and value < 10 else ".1f")


def header_lines(r):
    b = r["build"]
    return [f"fusedrnn {r['fusedrnn']} CPU benchmark, {r['date']}",
            f"CPU: {r['cpu']} ({r['logical_cpus']} logical CPUs); threads: {r['threads']} "
            f"(ours and torch; NumPy reference: {r['numpy_threads']}); 1-min load average before: {_fmt(r['load'])}",
            f"build: BLAS {b['blas']} {b['blas_version']}, simd_active {b['simd_active']}, {b['compiler']}",
            f"torch: {r['torch'] or 'not installed (torch columns n/a)'}; numpy {r['numpy']}"]


def ceiling(row, kind, best_sgemm):
    """-> torch's time over the time of the row's flops at the best sgemm rate of the run: the
    torch/ours ratio of an implementation whose every flop ran at that rate (None without torch).
    A goal above it asks for fewer flops or a faster product than the BLAS's own, not a better
    kernel."""
    torch_gflops = row["gflops"]["torch"][kind]
    return None if torch_gflops is None or not best_sgemm else best_sgemm / torch_gflops


def table_lines(r):
    columns = ["shape", "check", "ours fwd ms", "ours f+b ms", "numpy fwd ms", "numpy f+b ms",
               "torch fwd ms", "torch f+b ms", "ours fwd GFLOP/s", "ours f+b GFLOP/s",
               "torch/ours fwd", "torch/ours f+b", "ceiling fwd", "ceiling f+b",
               "numpy/ours fwd", "numpy/ours f+b"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    best = max(r["sgemm"]["gflops"].values(), default=None)
    for row in r["rows"]:
        ms, ratio = row["ms"], row["ratio"]
        check = f"ok {row['max_rel_diff']:.0e}" if row["check_ok"] else \
            f"**FAIL** {row['max_rel_diff']:.1e} ({row['worst_at']})"
        cells = [row["row"], check,
                 *(_ms(ms[peer][kind]) for peer in ("ours", "numpy", "torch") for kind in ("fwd", "fwd+bwd")),
                 *(f"{row['gflops']['ours'][kind]:.3g}" for kind in ("fwd", "fwd+bwd")),  # tiny shapes too
                 *(_fmt(ratio["torch"][kind]) for kind in ("fwd", "fwd+bwd")),
                 *(_fmt(ceiling(row, kind, best)) for kind in ("fwd", "fwd+bwd")),
                 *(_fmt(ratio["numpy"][kind]) for kind in ("fwd", "fwd+bwd"))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def footer_lines(r):
    capped = ", ".join(f"{row['rounds']} on {row['row']}" for row in r["rows"] if row["rounds"] != r["repeats"])
    peers = " and ".join(sorted({peer for row in r["rows"] for peer in row["checked_against"]}))
    lines = [f"ms: median of {r['repeats']} round{'s' if r['repeats'] > 1 else ''}{f' ({capped})' if capped else ''}; each round runs every "
             f"peer in turn (rotating order), each after {r['settle_s']} s of its own untimed calls. "
             "fwd = inference: ours with need_grad=False, torch's under no_grad. "
             "f+b = forward (keeping what the backward needs) + backward (dx and all weight gradients).",
             f"check: max |a-b| / max |b| over y, states, dx and weight gradients against {peers}; "
             f"FAIL at {r['tolerance']:.0e} or more.",
             "GFLOP/s: 2*B*T*G*H*(I+H)*directions for fwd, 3x that for f+b. Ratios > 1: we are faster.",
             "ceiling: torch's time over the time of the row's flops at the best sgemm rate below, the "
             "torch/ours ratio if every flop ran at the rate of a large sgemm. Where a row's ratio is near "
             "its ceiling, the kernels are bound by the GEMMs, not by their own overhead; a small-batch "
             "row's ceiling is loose (its per-step product streams W_hh from cache and cannot reach that rate)."]
    untimed = [row["row"] for row in r["rows"] if row["ms"]["numpy"]["fwd"] is None]
    if untimed:
        lines.append(f"numpy n/a on {', '.join(untimed)}: the reference takes tens of seconds there; "
                     "it is checked on its forward only.")
    peaks = r["sgemm"]["gflops"]
    lines.append(f"sgemm {r['sgemm']['n']}^3 float32: "
                 + ", ".join(f"{name} {gflops:.1f} GFLOP/s" for name, gflops in peaks.items()))
    if peaks and r["rows"]:
        best = max(peaks.values())
        big = max(r["rows"], key=lambda row: row["flops"])
        share = {peer: {kind: None if g is None else f"{g / best:.0%}" for kind, g in kinds.items()}
                 for peer, kinds in big["gflops"].items()}
        line = (f"{big['row']} reaches, of the best sgemm: ours {share['ours']['fwd']} (fwd), "
                f"{share['ours']['fwd+bwd']} (f+b)")
        if share["torch"]["fwd"] is not None:
            line += f"; torch {share['torch']['fwd']} (fwd), {share['torch']['fwd+bwd']} (f+b)"
        lines.append(line + ".")
    return lines


def write_markdown(directory, stem, title, command, header, table, footer):
    """Writes a result as markdown to DIRECTORY/STEM.md (STEM-2.md, -3, ... if taken) -> the path:
    the title, the command line, the header lines, the table and the footer lines as a list."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path, n = directory / f"{stem}.md", 1
    while path.exists():
        n += 1
        path = directory / f"{stem}-{n}.md"
    text = [f"# {title}", "", f"Command: `{command}`", "", "```", *header, "```", "", *table, "",
            *(f"- {line}" for line in footer)]
    _files.write_text(path, "\n".join(text) + "\n")
    return path


def save(r, directory, command):
    """Writes the table as markdown to DIRECTORY/YYYY-MM-DD-cpu.md (-2, -3, ... if taken) -> the path."""
    return write_markdown(directory, f"{r['date'][:10]}-cpu", f"fusedrnn CPU benchmark, {r['date']}", command,
                          header_lines(r), table_lines(r), footer_lines(r))


def _cells(text):
    cells = tuple(c.strip().lower() for c in text.split(",") if c.strip())
    unknown = [c for c in cells if c not in GATES]
    if unknown or not cells:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(GATES)}, got {text!r}")
    return cells


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true", help="a tiny grid that runs in seconds (for tests)")
    parser.add_argument("--cells", type=_cells, default=None, metavar="LIST",
                        help="comma-separated cells among lstm, gru, rnn (default: all three; with --torch, "
                             "lstm,gru)")
    parser.add_argument("--repeats", type=_positive, default=5, metavar="N",
                        help="timed rounds per row (default: 5)")
    parser.add_argument("--threads", type=_positive, default=None, metavar="N",
                        help="threads for ours and torch (default: fusedrnn.get_num_threads())")
    parser.add_argument("--save", metavar="DIR", help="also write the table as markdown to DIR/YYYY-MM-DD-cpu.md")
    parser.add_argument("--json", action="store_true", help="print the results as one line of JSON at the end")
    parser.add_argument("--torch", action="store_true",
                        help="the drop-in benchmark instead: training steps of torch.nn.LSTM/GRU against "
                             "fusedrnn.torch's (fusedrnn.bench_torch; --save writes DIR/YYYY-MM-DD-torch-dropin.md)")
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all",
                        help="with --torch: the devices to run on (default all: the CPU, and CUDA where present)")


def _progress(line):
    print(line, file=sys.stderr, flush=True)  # stderr: stdout holds the table alone


def run(args) -> int:
    """Runs the benchmark for parsed ``args`` (add_arguments's options); prints; -> exit status."""
    command = getattr(args, "command_line", None) or shlex.join(["fusedrnn", "bench", *sys.argv[1:]])
    if args.torch:  # the drop-in benchmark: the same functions in fusedrnn.bench_torch
        from . import bench_torch as suite

        options = {"device": args.device}
    else:
        suite, options = sys.modules[__name__], {}
    try:
        if args.save:
            _files.check_folder_writable(args.save, "--save")  # before minutes of timing, not after
        if args.cells:
            options["cells"] = args.cells
        r = suite.run_benchmark(quick=args.quick, repeats=args.repeats, threads=args.threads, progress=_progress,
                                **options)
    except (RuntimeError, ValueError) as error:
        print(f"fusedrnn bench{' --torch' if args.torch else ''}: {error}", file=sys.stderr)
        return 2
    print("\n".join([*suite.header_lines(r), "", *suite.table_lines(r), "", *suite.footer_lines(r)]))
    if args.save:
        print(f"saved {suite.save(r, args.save, command)}")
    if args.json:
        print(json.dumps(r, default=float))  # default: NumPy scalars
    return 0 if all(row["check_ok"] for row in r["rows"]) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusedrnn.bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    # The command as a user would type it: no interpreter or install paths.
    args.command_line = shlex.join(["python", "-m", "fusedrnn.bench", *(sys.argv[1:] if argv is None else argv)])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
