"""Our CUDA kernels against cuDNN (through PyTorch) on the GPU anchor grid, checked before timed.

    python benchmarks/gpu_vs_cudnn.py --out $OUT/gpu_vs_cudnn.md [--repeats 30] [--warmup 5] [--quick]

Needs a GPU, CuPy, PyTorch with CUDA and fusedrnn built with its CUDA module (FUSEDRNN_CUDA=ON);
anywhere else it says what is missing and exits with status 2. First every shape is checked: our GPU
result (forward and forward+backward, every path timed below) against our CPU kernels (relative error
below 1e-5 in float32, 1e-3 with TF32) and against cuDNN. Then each side is timed with CUDA events
on the null stream (warm-up, median of --repeats single calls, the Python work of a call included on
both sides), forward and forward+backward, fp32 without TF32 and, at the large shapes, with TF32 on
both sides; our persistent and per-step paths each forced where the persistent one applies. Last,
the chapter's tagger for one epoch at batch 32 (4000 random sentences x 30 steps; Embedding 200,
BiLSTM 300, TimeDistributed Dense 60 softmax, Dense 3 softmax, dropout 0.2, Adam), ours through
fusedrnn.nn on the GPU against the same network in PyTorch on the GPU, after checking that both
give the same probabilities. Prints one markdown table with cuDNN/ours ratios (above 1: ours is
faster) and writes it, dated and with the card named, to --out. Exit status 1 if a check failed
(the timings are still written, marked).
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import statistics
import sys
import time

import numpy as np

# (cell, B, T, I, H, bidirectional, also with TF32): the GPU anchors (benchmarks/README.md, "Anchors")
GRID = [
    ("lstm", 32, 30, 200, 300, True, False),
    ("lstm", 1, 30, 200, 300, True, False),
    ("lstm", 8, 100, 512, 512, False, False),
    ("lstm", 64, 100, 256, 256, False, False),
    ("lstm", 128, 100, 1024, 1024, False, True),
    ("gru", 128, 100, 1024, 1024, False, True),
]
QUICK_GRID = [("lstm", 4, 5, 8, 16, True, True), ("gru", 4, 5, 8, 16, False, False)]
RTOL = {False: 1e-5, True: 1e-3}  # issue 5's parity targets: fp32, and fp32 with TF32 GEMMs
TAGGER = dict(sentences=4000, steps=30, vocab=10_000, embed=200, hidden=300, dense=60, classes=3, dropout=0.2,
              batch=32)
TAGGER_TOLERANCE = 1e-4  # float32 probabilities after 30 LSTM steps, two libraries' GEMMs: ~1e-6 apart


def require():
    """-> (cupy, torch); SystemExit(2) naming everything that is missing."""
    import fusedrnn

    problems, cupy, torch = [], None, None
    try:
        import cupy
    except ImportError as error:
        problems.append(f"CuPy is not importable ({error})")
    try:
        import torch

        if not torch.cuda.is_available():
            problems.append("PyTorch sees no CUDA device")
    except ImportError as error:
        problems.append(f"PyTorch is not importable ({error})")
    info = fusedrnn.build_info()
    if not info["cuda"]:
        problems.append(f"fusedrnn has no CUDA module (build with FUSEDRNN_CUDA=ON): {info.get('cuda_error')}")
    elif info["cuda_devices"] == 0:
        problems.append("fusedrnn's CUDA module sees no device")
    if problems:
        print(f"gpu_vs_cudnn: cannot run here: {'; '.join(problems)}", file=sys.stderr)
        raise SystemExit(2)
    return cupy, torch


def rel_err(actual, expected):
    """max |a - e| / max(max |e|, 1), as tests/conftest.py's max_rel_diff."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected)) / max(float(np.max(np.abs(expected))), 1.0))


def set_tf32(torch, enabled):
    import fusedrnn

    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled
    fusedrnn.allow_tf32(enabled)


class Case:
    """One shape: the torch module (cuDNN), its weights as our params on the GPU and on the host, data."""

    def __init__(self, cupy, torch, cell, B, T, I, H, bidirectional):
        self.cupy, self.torch, self.cell, self.bidirectional = cupy, torch, cell, bidirectional
        self.shape = (B, T, I, H)
        torch.manual_seed(0)
        self.module = getattr(torch.nn, cell.upper())(I, H, batch_first=True, bidirectional=bidirectional).cuda()
        suffixes = ["", "_reverse"] if bidirectional else [""]
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        self.params_gpu = [tuple(cupy.asarray(getattr(self.module, f"{n}_l0{s}").detach()) for n in names)
                           for s in suffixes]
        self.params_cpu = [tuple(cupy.asnumpy(p) for p in entry) for entry in self.params_gpu]
        rng = np.random.default_rng(0)
        D = 2 if bidirectional else 1
        self.x_cpu = rng.standard_normal((B, T, I)).astype(np.float32)
        self.dy_cpu = rng.standard_normal((B, T, D * H)).astype(np.float32)
        self.x, self.dy = cupy.asarray(self.x_cpu), cupy.asarray(self.dy_cpu)
        self.x_torch = torch.from_numpy(self.x_cpu).cuda().requires_grad_()
        self.dy_torch = torch.from_numpy(self.dy_cpu).cuda()

    def ours(self, params, x, dy, backward):
        """-> y, ctx, grads (None without backward): ops.lstm/gru on whichever device the arrays are."""
        from fusedrnn import ops

        result = getattr(ops, self.cell)(x, params, bidirectional=self.bidirectional)
        y, ctx = result[0], result[-1]
        return y, ctx, (ops.stack_backward(ctx, dy) if backward else None)

    def theirs(self, backward):
        if not backward:
            with self.torch.no_grad():
                return self.module(self.x_torch)[0], None
        self.x_torch.grad = None
        y, _ = self.module(self.x_torch)
        y.backward(self.dy_torch)
        return y, self.x_torch.grad

    def check(self, path, tf32):
        """-> (error vs our CPU kernels, error vs cuDNN, the path taken), both over y and dx."""
        import fusedrnn

        with fusedrnn.cuda_path(path):
            y, ctx, g = self.ours(self.params_gpu, self.x, self.dy, True)
        y, dx = self.cupy.asnumpy(y), self.cupy.asnumpy(g.dx)
        if not hasattr(self, "cpu_result"):
            y_cpu, _, g_cpu = self.ours(self.params_cpu, self.x_cpu, self.dy_cpu, True)
            self.cpu_result = (y_cpu, g_cpu.dx, g_cpu.params[0][1])
        y_cpu, dx_cpu, dw_hh_cpu = self.cpu_result
        vs_cpu = max(rel_err(y, y_cpu), rel_err(dx, dx_cpu), rel_err(self.cupy.asnumpy(g.params[0][1]), dw_hh_cpu))
        y_t, dx_t = self.theirs(True)
        vs_cudnn = max(rel_err(y, y_t.detach().cpu().numpy()), rel_err(dx, dx_t.cpu().numpy()))
        return vs_cpu, vs_cudnn, ctx.contexts[0].path


def median_ms(cupy, fn, repeats, warmup):
    """Median of single calls of ``fn`` timed with CUDA events on the null stream."""
    for _ in range(warmup):
        fn()
    cupy.cuda.Device().synchronize()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end))
    return statistics.median(times)


def time_case(case, path, repeats, warmup):
    """-> {"ours": (fwd, fwd+bwd), "cudnn": (fwd, fwd+bwd)} in ms."""
    import fusedrnn

    cupy = case.cupy
    out = {}
    with fusedrnn.cuda_path(path):
        out["ours"] = tuple(median_ms(cupy, lambda b=b: case.ours(case.params_gpu, case.x, case.dy, b), repeats, warmup)
                            for b in (False, True))
    out["cudnn"] = tuple(median_ms(cupy, lambda b=b: case.theirs(b), repeats, warmup) for b in (False, True))
    return out


def persistent_applies(cell, B, T, I, H, directions):
    from fusedrnn import _native

    return bool(_native._cuda.persistent_supported(cell, "float32", B, T, I, H, directions))


# ------------------------------------------------------------------------------------------ the tagger

def tagger_models(torch, matrix):
    """Ours (fusedrnn.nn, on the GPU) and its twin in torch.nn (on the GPU) with the same weights."""
    from fusedrnn.nn import LSTM, Bidirectional, Dense, Dropout, Embedding, Input, Model, TimeDistributed
    from fusedrnn.nn.optimizers import Adam

    k = TAGGER
    ids = Input((k["steps"],), dtype="int64")
    h = Embedding(k["vocab"], k["embed"], embeddings=matrix, trainable=False, mask_zero=True)(ids)
    h = Bidirectional(LSTM(k["hidden"], return_sequences=True))(h)
    h = TimeDistributed(Dense(k["dense"], activation="softmax"))(Dropout(k["dropout"])(h))
    out = TimeDistributed(Dense(k["classes"], activation="softmax"))(Dropout(k["dropout"])(h))
    model = Model(ids, out)
    model.compile(Adam(1e-3, epsilon=1e-7), "categorical_crossentropy", device="cuda")
    nn = torch.nn

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(k["vocab"], k["embed"])
            self.embedding.weight.requires_grad_(False)
            self.lstm = nn.LSTM(k["embed"], k["hidden"], batch_first=True, bidirectional=True)
            self.dropout = nn.Dropout(k["dropout"])
            self.dense = nn.Linear(2 * k["hidden"], k["dense"])
            self.out = nn.Linear(k["dense"], k["classes"])

        def forward(self, x):  # -> log-probabilities (B, T, 3)
            h, _ = self.lstm(self.embedding(x))
            h = self.dropout(torch.softmax(self.dense(self.dropout(h)), dim=-1))
            return torch.log_softmax(self.out(h), dim=-1)

    twin = Twin().cuda()
    layers = {type(layer).__name__: [] for layer in model.layers}
    for layer in model.layers:
        layers[type(layer).__name__].append(layer)
    (embedding,), (bi,), (dense, last) = layers["Embedding"], layers["Bidirectional"], layers["TimeDistributed"]
    copy = lambda dst, src: dst.data.copy_(torch.from_numpy(np.ascontiguousarray(src)))  # noqa: E731
    host = lambda t: t.numpy()  # noqa: E731
    with torch.no_grad():
        copy(twin.embedding.weight, host(embedding.embeddings))
        for suffix, direction in (("", bi.forward_layer), ("_reverse", bi.backward_layer)):
            for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
                kind = "weight" if name[0] == "w" else "bias"
                copy(getattr(twin.lstm, f"{kind}_{name[2:]}_l0{suffix}"), host(getattr(direction, name)))
        for linear, td in ((twin.dense, dense), (twin.out, last)):
            copy(linear.weight, host(td.layer.kernel).T)
            copy(linear.bias, host(td.layer.bias))
    return model, twin


def tagger_epoch(cupy, torch):
    """-> (error between the two sides' probabilities, ours s/epoch, torch s/epoch)."""
    k = TAGGER
    rng = np.random.default_rng(0)
    matrix = (0.1 * rng.standard_normal((k["vocab"], k["embed"]))).astype(np.float32)
    ids = rng.integers(1, k["vocab"], size=(k["sentences"], k["steps"]))
    labels = rng.integers(0, k["classes"], size=(k["sentences"], k["steps"]))
    one_hot = np.eye(k["classes"], dtype=np.float32)[labels]
    model, twin = tagger_models(torch, matrix)
    twin.eval()
    with torch.no_grad():
        theirs = twin(torch.from_numpy(ids[:64]).cuda()).exp().cpu().numpy()
    error = float(np.max(np.abs(model.predict(ids[:64]) - theirs)))
    twin.train()
    optimizer = torch.optim.Adam([p for p in twin.parameters() if p.requires_grad], lr=1e-3, eps=1e-7)
    x_t, y_t = torch.from_numpy(ids).cuda(), torch.from_numpy(labels).cuda()

    def run_ours(count):
        model.fit(ids[:count], one_hot[:count], batch_size=k["batch"], epochs=1, shuffle=False, verbose=0)
        cupy.cuda.Device().synchronize()

    def run_torch(count):
        for start in range(0, count, k["batch"]):
            optimizer.zero_grad()
            logp = twin(x_t[start:start + k["batch"]])
            loss = torch.nn.functional.nll_loss(logp.reshape(-1, k["classes"]),
                                                y_t[start:start + k["batch"]].reshape(-1))
            loss.backward()
            optimizer.step()
        torch.cuda.synchronize()

    seconds = {}
    for name, run in (("ours", run_ours), ("torch", run_torch)):
        run(8 * k["batch"])  # warm-up: kernels compiled, memory pools filled
        times = []
        for _ in range(2):
            start = time.perf_counter()
            run(k["sentences"])
            times.append(time.perf_counter() - start)
        seconds[name] = min(times)
    return error, seconds["ours"], seconds["torch"]


# ------------------------------------------------------------------------------------------ main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", type=pathlib.Path, default=None, help="also write the table there (markdown)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per measurement (median; default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first (default 5)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and no tagger: a smoke test")
    parser.add_argument("--no-tagger", action="store_true", help="skip the tagger epoch")
    args = parser.parse_args(argv)
    cupy, torch = require()
    import fusedrnn

    card = torch.cuda.get_device_name()
    info = fusedrnn.build_info()
    lines = [f"# fusedrnn CUDA kernels vs cuDNN, {datetime.date.today().isoformat()}", "",
             f"Card: {card}. torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, CuPy "
             f"{cupy.__version__}, fusedrnn {fusedrnn.__version__} (CUDA module: {info['cuda_build']}).",
             f"Median of {args.repeats} calls after {args.warmup} warm-up calls, CUDA events, ms. "
             "ratio = cuDNN / ours (above 1: ours faster). check: max relative error of our GPU y, dx "
             "(and dW_hh vs CPU) against our CPU kernels / cuDNN.", "",
             "| cell | B | T | I | H | dirs | precision | our path | ours fwd | cuDNN fwd | ratio | ours fwd+bwd | "
             "cuDNN fwd+bwd | ratio | check vs CPU / cuDNN |",
             "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---|"]
    failed = False
    for cell, B, T, I, H, bidirectional, with_tf32 in (QUICK_GRID if args.quick else GRID):
        case = Case(cupy, torch, cell, B, T, I, H, bidirectional)
        D = 2 if bidirectional else 1
        paths = ["auto"] + (["persistent", "steps"] if persistent_applies(cell, B, T, I, H, D) else [])
        for tf32 in ([False, True] if with_tf32 else [False]):
            set_tf32(torch, tf32)
            # every check of this shape and precision before any timing of it
            checks = {path: case.check(path, tf32) for path in paths}
            for path in paths:
                vs_cpu, vs_cudnn, used = checks[path]
                ok = vs_cpu <= RTOL[tf32] and vs_cudnn <= RTOL[tf32]
                failed |= not ok
                t = time_case(case, path, args.repeats, args.warmup)
                (of, ob), (tf, tb) = t["ours"], t["cudnn"]
                label = used if path == "auto" else f"{path} (forced)"
                lines.append(f"| {cell} | {B} | {T} | {I} | {H} | {D} | {'tf32' if tf32 else 'fp32'} | {label} | "
                             f"{of:.3f} | {tf:.3f} | {tf / of:.2f} | {ob:.3f} | {tb:.3f} | {tb / ob:.2f} | "
                             f"{vs_cpu:.1e} / {vs_cudnn:.1e}{'' if ok else ' FAILED'} |")
                print(lines[-1], flush=True)
        set_tf32(torch, False)
        del case
        cupy.get_default_memory_pool().free_all_blocks()
        torch.cuda.empty_cache()
    if not (args.quick or args.no_tagger):
        error, ours_s, torch_s = tagger_epoch(cupy, torch)
        ok = error <= TAGGER_TOLERANCE
        failed |= not ok
        lines += ["", "| tagger epoch, batch 32, 4000 x 30 | ours s | PyTorch (cuDNN) s | ratio | target | check |",
                  "|---|---:|---:|---:|---:|---|",
                  f"| fusedrnn.nn on cuda vs torch.nn on cuda | {ours_s:.3f} | {torch_s:.3f} | {torch_s / ours_s:.2f} | "
                  f"<= 0.3 s | max abs prob diff {error:.1e}{'' if ok else ' FAILED'} |"]
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
        print(f"written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
