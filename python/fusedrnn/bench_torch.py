"""Drop-in benchmark: torch.nn.LSTM/GRU against fusedrnn.torch's, one training step at a time, in one process.

    fusedrnn bench --torch [--device all|cpu|cuda] [--quick] [--cells lstm,gru] [--repeats N] [--threads N]
                           [--save DIR] [--json]
    python benchmarks/torch_dropin.py ...   (the same)

Each row builds torch.nn's module and ours with the same weights and inputs, checks that a
training step gives the same loss and gradients, then times, interleaved in rotating order (as
``fusedrnn bench`` does): a whole training step (forward, MSE loss, backward, Adam step) and an
inference forward under ``torch.no_grad()``. CPU always; CUDA too where torch sees a GPU and
fusedrnn's CUDA module is built. A last line measures the adapter's own cost per call at a tiny
shape: our module against ``fusedrnn.ops`` called directly on the same arrays (and torch.nn.LSTM).
"""

from __future__ import annotations

import datetime
import os
import statistics
import time


import fusedrnn
from fusedrnn import ops
from fusedrnn.bench import TOLERANCE, Row, cpu_model, max_rel_diff, sgemm_peaks, time_interleaved, write_markdown

# (B, T, I, H, bidirectional); each shape runs for every selected cell.
SHAPES = [
    (32, 40, 200, 300, True),  # the ADE tagger: BiLSTM 300 over 200-d embeddings
    (1, 40, 200, 300, True),  # the tagger at batch 1
    (8, 100, 512, 512, False),
    (64, 100, 256, 256, False),
    (128, 100, 1024, 1024, False),  # GEMM-bound: seconds per step on two cores, so fewer rounds
]
QUICK_SHAPES = [(4, 5, 8, 16, True), (3, 7, 6, 10, False)]
LARGE_ROUNDS = 3  # timed rounds at most on the B=128 H=1024 row (two were a mean of two, which one slow phase decides)
OVERHEAD_SHAPE = (1, 1, 4, 4)  # B, T, I, H: the kernels' own time is a few microseconds
OVERHEAD_CALLS = 2000


class Peer:
    """One module (torch.nn's or ours) on one device, with its input, target and optimizer."""

    def __init__(self, torch, name, module, x, target):
        self.torch, self.name, self.module, self.x, self.target = torch, name, module, x, target
        self.optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
        self.cuda = x.is_cuda

    def _sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def loss(self):
        return self.torch.nn.functional.mse_loss(self.module(self.x)[0], self.target)

    def fwd(self):
        """Inference: the forward under no_grad."""
        with self.torch.no_grad():
            self.module(self.x)
        self._sync()

    def fwd_bwd(self):
        """One training step: forward, loss, backward, Adam step."""
        self.optimizer.zero_grad(set_to_none=True)
        self.loss().backward()
        self.optimizer.step()
        self._sync()

    def gradients(self):
        """-> {name: array}: loss, output and every parameter's gradient of one step (no update)."""
        self.module.zero_grad(set_to_none=True)
        y = self.module(self.x)[0]
        loss = self.torch.nn.functional.mse_loss(y, self.target)
        loss.backward()
        result = {"loss": loss.detach().cpu().numpy(), "y": y.detach().cpu().numpy()}
        result.update({n: p.grad.cpu().numpy() for n, p in self.module.named_parameters()})
        return result


def _peers(torch, cell, shape, device):
    """(torch.nn's peer, ours) with the same weights, input and target, float32."""
    import fusedrnn.torch as ft

    B, T, I, H, bidirectional = shape
    torch.manual_seed(0)
    reference = getattr(torch.nn, cell.upper())(I, H, batch_first=True, bidirectional=bidirectional).to(device)
    ours = getattr(ft, cell.upper())(I, H, batch_first=True, bidirectional=bidirectional).to(device)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(B, T, I, device=device)
    target = torch.randn(B, T, (2 if bidirectional else 1) * H, device=device)
    return Peer(torch, "torch", reference, x, target), Peer(torch, "ours", ours, x, target)


def bench_row(torch, cell, shape, device, repeats):
    """Checks then times one row -> a dict for the table and the JSON."""
    B, T, I, H, bidirectional = shape
    reference, ours = _peers(torch, cell, shape, device)
    expected, actual = reference.gradients(), ours.gradients()
    worst, where = max((max_rel_diff(actual[k], v), k) for k, v in expected.items())
    rounds = min(repeats, LARGE_ROUNDS) if H >= 1024 and device == "cpu" else repeats
    times = time_interleaved([ours, reference], rounds)
    ms = {peer: {"infer": times[peer, "fwd"] * 1e3, "step": times[peer, "fwd+bwd"] * 1e3} for peer in ("ours", "torch")}
    row = Row(cell, B, T, I, H, bidirectional)
    return {"row": row.label, "device": device, "cell": cell, "B": B, "T": T, "I": I, "H": H,
            "flops": {"infer": row.flops, "step": 3 * row.flops}, "directions": 2 if bidirectional else 1,
            "check_ok": bool(worst < TOLERANCE), "max_rel_diff": worst, "worst_at": where, "rounds": rounds, "ms": ms,
            "ratio": {kind: ms["torch"][kind] / ms["ours"][kind] for kind in ("infer", "step")}}


def _median_call_us(fn, calls):
    """Median over 5 batches of ``calls`` calls of the time per call, in microseconds."""
    for _ in range(calls // 10):
        fn()
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        batches.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(batches)


def _pass_through(torch):
    """A torch.autograd.Function with our layer's inputs and outputs that computes nothing: what
    torch's autograd alone costs per call at that arity (its forward returns three new tensors and
    saves x and the weights; its backward returns new zero gradients for them)."""

    class PassThrough(torch.autograd.Function):
        @staticmethod
        def forward(ctx, options, x, h0, c0, *weights):
            ctx.save_for_backward(x, *weights)
            return x.new_empty(x.shape), x.new_empty(x.shape), x.new_empty(x.shape)

        @staticmethod
        def backward(ctx, dy, dh_n, dc_n):
            x, *weights = ctx.saved_tensors
            return None, torch.zeros_like(x), None, None, *[torch.zeros_like(w) for w in weights]

    return PassThrough


def adapter_overhead(torch, calls=OVERHEAD_CALLS):
    """-> µs per call of a tiny LSTM (OVERHEAD_SHAPE) on one thread (the kernels' thread start-up
    would otherwise differ between the ways of calling them), for the training forward ("fwd") and
    forward+backward ("fwd+bwd"), each four ways: our module through autograd, ``fusedrnn.ops``
    called directly with NumPy views of the same tensors, torch.nn.LSTM for scale, and a
    pass-through torch.autograd.Function of our inputs and outputs (torch's own part of the
    adapter's cost)."""
    import fusedrnn.torch as ft

    B, T, I, H = OVERHEAD_SHAPE
    torch.manual_seed(0)
    module = ft.LSTM(I, H, batch_first=True)
    reference = torch.nn.LSTM(I, H, batch_first=True)
    x = torch.randn(B, T, I, requires_grad=True)
    dy = torch.ones(B, T, H)
    params = [tuple(p.detach().numpy() for p in module.all_weights[0])]
    x_np, dy_np = x.detach().numpy(), dy.numpy()
    pass_through, weights = _pass_through(torch), list(module.all_weights[0])

    def fwd_bwd(m):
        y, _ = m(x)
        y.backward(dy)

    def ops_fwd_bwd():
        ops.stack_backward(ops.lstm(x_np, params)[3], dy_np)

    def pass_through_fwd():
        return pass_through.apply(None, x, None, None, *weights)

    def pass_through_fwd_bwd():
        pass_through_fwd()[0].backward(dy)

    previous = fusedrnn.get_num_threads(), torch.get_num_threads()
    fusedrnn.set_num_threads(1)
    torch.set_num_threads(1)
    try:
        return {"fwd": {"module": _median_call_us(lambda: module(x), calls),
                        "ops": _median_call_us(lambda: ops.lstm(x_np, params), calls),
                        "torch.nn": _median_call_us(lambda: reference(x), calls),
                        "autograd": _median_call_us(pass_through_fwd, calls)},
                "fwd+bwd": {"module": _median_call_us(lambda: fwd_bwd(module), calls),
                            "ops": _median_call_us(ops_fwd_bwd, calls),
                            "torch.nn": _median_call_us(lambda: fwd_bwd(reference), calls),
                            "autograd": _median_call_us(pass_through_fwd_bwd, calls)}}
    finally:
        fusedrnn.set_num_threads(previous[0])
        torch.set_num_threads(previous[1])


def _devices(torch, wanted):
    """The devices of ``wanted`` ("all", "cpu" or "cuda") to run on; RuntimeError for a missing GPU."""
    has_cuda = torch.cuda.is_available() and fusedrnn.build_info().get("cuda_devices", 0) > 0
    if wanted == "cuda" and not has_cuda:
        raise RuntimeError("--device cuda: torch sees no GPU, or fusedrnn's CUDA module is not built")
    return {"cpu": ["cpu"], "cuda": ["cuda"], "all": ["cpu"] + (["cuda"] if has_cuda else [])}[wanted]


def run_benchmark(cells=("lstm", "gru"), quick=False, repeats=5, threads=None, progress=None, device="all"):
    """Checks and times the grid on ``device`` ("all": the CPU, and CUDA where present) -> a dict
    (header facts, rows, adapter overhead)."""
    try:
        import torch
    except ImportError:
        raise RuntimeError("the drop-in benchmark needs PyTorch: pip install fusedrnn[torch]") from None
    devices = _devices(torch, device)
    previous = fusedrnn.get_num_threads(), torch.get_num_threads()
    threads = threads or previous[0]
    fusedrnn.set_num_threads(threads)
    torch.set_num_threads(threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    # float32 on both sides: torch lets cuDNN's RNNs and its matmuls use TF32 by default (about 1e-3
    # relative error, above the check's tolerance), where ours run exact float32 unless told otherwise.
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        rows = []
        for device in devices:
            for shape in QUICK_SHAPES if quick else SHAPES:
                for cell in cells:
                    if progress:
                        progress(f"{device} {cell} {shape} ...")
                    rows.append(bench_row(torch, cell, shape, device, repeats))
        # The adapter's cost per call and the sgemm ceiling are CPU figures: a GPU-only run skips them.
        overhead = adapter_overhead(torch, 200 if quick else OVERHEAD_CALLS) if "cpu" in devices else None
        best_sgemm = max(sgemm_peaks(256 if quick else 2048, max(repeats, 10)).values(), default=None) \
            if "cpu" in devices else None
        for row in rows:
            row["ceiling"] = {kind: _ceiling(row, kind, best_sgemm) for kind in ("infer", "step")}
    finally:
        fusedrnn.set_num_threads(previous[0])
        torch.set_num_threads(previous[1])
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    gpu = torch.cuda.get_device_name() if any(r["device"] == "cuda" for r in rows) else None
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "gpu": gpu, "threads": threads, "load": load,
            "fusedrnn": fusedrnn.__version__, "torch": torch.__version__, "repeats": repeats,
            "tolerance": TOLERANCE, "rows": rows, "overhead_us": overhead, "sgemm_gflops": best_sgemm}


def _ceiling(row, kind, best_sgemm):
    """-> torch's time over the time of the layer's flops at the best CPU sgemm rate of the run (fwd
    flops for infer, 3x for a step; the loss and Adam left out): the torch/ours ratio of a layer
    that ran every flop that fast. None on CUDA rows (no GPU GEMM peak is measured)."""
    if row["device"] != "cpu" or not best_sgemm:
        return None
    return row["ms"]["torch"][kind] / (row["flops"][kind] / (best_sgemm * 1e6))


def header_lines(r):
    return [f"fusedrnn {r['fusedrnn']} drop-in benchmark (fusedrnn.torch vs torch.nn), {r['date']}",
            f"CPU: {r['cpu']} ({r['logical_cpus']} logical CPUs); threads: {r['threads']} (ours and torch); "
            f"1-min load average before: {'n/a' if r['load'] is None else format(r['load'], '.2f')}",
            f"GPU: {r['gpu'] or 'none'}; torch {r['torch']}"]


def _ratio(value):
    return "n/a" if value is None else f"{value:.2f}"


def table_lines(r):
    columns = ["device", "shape", "check", "ours step ms", "torch step ms", "torch/ours step",
               "ceiling step", "ours infer ms", "torch infer ms", "torch/ours infer", "ceiling infer"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in r["rows"]:
        ms = row["ms"]
        check = f"ok {row['max_rel_diff']:.0e}" if row["check_ok"] else \
            f"**FAIL** {row['max_rel_diff']:.1e} ({row['worst_at']})"
        lines.append("| " + " | ".join([
            row["device"], row["row"], check, f"{ms['ours']['step']:.2f}", f"{ms['torch']['step']:.2f}",
            f"{row['ratio']['step']:.2f}", _ratio(row["ceiling"]["step"]), f"{ms['ours']['infer']:.2f}",
            f"{ms['torch']['infer']:.2f}", f"{row['ratio']['infer']:.2f}", _ratio(row["ceiling"]["infer"])]) + " |")
    return lines


def footer_lines(r):
    o = r["overhead_us"]
    overhead = "not measured (no CPU rows)" if o is None else "; ".join(
        f"{kind}: module {o[kind]['module']:.0f} µs, fusedrnn.ops directly {o[kind]['ops']:.0f} µs "
        f"(adapter {o[kind]['module'] - o[kind]['ops']:.0f} µs, of which torch's autograd "
        f"{o[kind]['autograd']:.0f} µs), torch.nn.LSTM {o[kind]['torch.nn']:.0f} µs" for kind in ("fwd", "fwd+bwd"))
    capped = ", ".join(f"{row['rounds']} on {row['device']} {row['row']}" for row in r["rows"]
                       if row["rounds"] != r["repeats"])
    rounds = f"{r['repeats']} round{'s' if r['repeats'] > 1 else ''}"
    return [f"ms: median of {rounds}{f' ({capped})' if capped else ''}, peers interleaved in "
            "rotating order. step = forward, MSE loss, backward, Adam step (float32, batch_first); "
            "infer = forward under torch.no_grad(); no TF32 on either side. Ratios > 1: ours is faster.",
            f"check: max |a-b| / max |b| over the loss, the output and every parameter's gradient of one step; "
            f"FAIL at {r['tolerance']:.0e} or more.",
            f"ceiling (CPU rows): torch's time over the time of the layer's flops at this run's best sgemm rate "
            f"({'n/a' if r['sgemm_gflops'] is None else format(r['sgemm_gflops'], '.1f')} GFLOP/s; fwd flops for "
            "infer, 3x for a step): the torch/ours ratio of a layer that ran every flop as fast as a large GEMM.",
            f"per call, LSTM B={OVERHEAD_SHAPE[0]} T={OVERHEAD_SHAPE[1]} I={OVERHEAD_SHAPE[2]} H={OVERHEAD_SHAPE[3]}, "
            f"one thread, medians: {overhead}. Torch's autograd: a torch.autograd.Function of the same inputs and "
            "outputs that computes nothing."]


def save(r, directory, command):
    """Writes the table as markdown to DIRECTORY/YYYY-MM-DD-torch-dropin.md (-2, ... if taken) -> the path."""
    return write_markdown(directory, f"{r['date'][:10]}-torch-dropin",
                          f"fusedrnn.torch against torch.nn, {r['date']}", command, header_lines(r), table_lines(r),
                          footer_lines(r))
