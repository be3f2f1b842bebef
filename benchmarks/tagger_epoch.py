"""The chapter's tagger, one training epoch: our layers vs the same architecture in PyTorch, side by side.

    python benchmarks/tagger_epoch.py [--batch-size 32] [--sentences 4000] [--rounds 2] [--threads N] [--json]
    python benchmarks/tagger_epoch.py --batch-size 1 --sentences 400        (batch 1 on a subset)

Ours is the ``chapter`` preset's own network (``fusedrnn.ade.model.build_network``): Embedding 200-d
(frozen, from a matrix, mask_zero) -> Bidirectional LSTM 300 (return_sequences, concat) -> Dropout 0.2
-> TimeDistributed Dense 60 softmax -> Dropout 0.2 -> TimeDistributed Dense 3 softmax; categorical
cross-entropy; Adam (lr 1e-3, eps 1e-7 on both sides). --batch-size 1 is the preset as it trains;
--batch-size 32 the batch-32 variant.
Synthetic data of the tagger's size: sentences x 30 token ids from a 10,000-word vocabulary (no
padding, so both sides do the same work), 3 classes. Both sides: float32, the same threads, the
same batches in the same order (no shuffling). Before timing, torch's model gets our initial weights
and both must give the same probabilities (dropout off). Rounds alternate the order; each side's
time is the median over rounds, scaled to a 4000-sentence epoch when --sentences is smaller. The
table also gives the median of the rounds' own ratios (each round times both sides back to back), which
drifts of the machine's speed move less. The machine's moment is printed with it: the load average, and
a single-threaded float32 GEMM rate taken before and after the rounds (on these shared 2-vCPU machines
it has read 100-160 GFLOP/s within one hour, and both sides' times move with it).
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
from fusedrnn.ade.model import build_network, preset
from fusedrnn.nn import layers

STEPS, VOCAB, EMBED, HIDDEN, DENSE, CLASSES, DROPOUT = 30, 10_000, 200, 300, 60, 3, 0.2
EPOCH_SENTENCES = 4000  # the chapter's training set
TOLERANCE = 1e-4  # float32 probabilities through 30 LSTM steps, two libraries' BLAS: ~1e-6 apart


def ours(matrix, batch_size):
    """The ``chapter`` preset's network (fusedrnn.ade.model), on a frozen table ``matrix``."""
    config = preset("chapter", batch_size=batch_size)
    assert (config.maxlen, config.units, config.hidden_dense, config.dropout) == (STEPS, HIDDEN, DENSE, DROPOUT)
    return build_network(config, matrix)


def torch_twin(torch, model):
    """The same architecture in torch.nn with our model's weights copied in."""
    nn = torch.nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(VOCAB, EMBED)
            self.embedding.weight.requires_grad_(False)
            self.lstm = nn.LSTM(EMBED, HIDDEN, batch_first=True, bidirectional=True)
            self.dropout = nn.Dropout(DROPOUT)
            self.dense = nn.Linear(2 * HIDDEN, DENSE)
            self.out = nn.Linear(DENSE, CLASSES)

        def forward(self, ids):  # -> log-probabilities (B, T, 3)
            h, _ = self.lstm(self.embedding(ids))
            h = self.dropout(torch.softmax(self.dense(self.dropout(h)), dim=-1))
            return torch.log_softmax(self.out(h), dim=-1)

    twin = Tagger()
    of_kind = lambda kind: [layer for layer in model.layers if isinstance(layer, kind)]  # noqa: E731
    (embedding,), (bi,), (dense, out) = of_kind(layers.Embedding), of_kind(layers.Bidirectional), \
        of_kind(layers.TimeDistributed)
    copy = lambda dst, src: dst.data.copy_(torch.from_numpy(np.ascontiguousarray(src)))  # noqa: E731
    with torch.no_grad():
        copy(twin.embedding.weight, embedding.embeddings.data)
        for suffix, direction in (("", bi.forward_layer), ("_reverse", bi.backward_layer)):
            for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
                copy(getattr(twin.lstm, f"{'weight' if name[0] == 'w' else 'bias'}_{name[2:]}_l0{suffix}"),
                     getattr(direction, name).data)
        for linear, td in ((twin.dense, dense), (twin.out, out)):
            copy(linear.weight, td.layer.kernel.data.T)
            copy(linear.bias, td.layer.bias.data)
    return twin


def gemm_rate(seconds=0.3):
    """GFLOP/s of one thread's float32 GEMMs of the recurrent products' size, over ``seconds``."""
    from fusedrnn import _native

    core = _native.core()
    a, b = np.ones((256, 300), np.float32), np.ones((300, 1200), np.float32)
    out = np.empty((256, 1200), np.float32)
    rates, stop = [], time.perf_counter() + seconds
    while time.perf_counter() < stop:
        start = time.perf_counter()
        core.matmul(a, b, out, False, False, 1)
        rates.append(2 * a.shape[0] * a.shape[1] * b.shape[1] / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sentences", type=int, default=EPOCH_SENTENCES, help="sentences timed (default 4000)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating timed epochs per side (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="threads for both (default: fusedrnn's)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        fusedrnn.set_num_threads(args.threads)
    threads = fusedrnn.get_num_threads()
    torch.set_num_threads(threads)

    rng = np.random.default_rng(0)
    matrix = (0.1 * rng.standard_normal((VOCAB, EMBED))).astype(np.float32)
    ids = rng.integers(1, VOCAB, size=(args.sentences, STEPS))
    labels = rng.integers(0, CLASSES, size=(args.sentences, STEPS))
    one_hot = np.eye(CLASSES, dtype=np.float32)[labels]

    model = ours(matrix, args.batch_size)
    twin = torch_twin(torch, model)
    twin.eval()
    with torch.no_grad():
        theirs = twin(torch.from_numpy(ids[:8])).exp().numpy()
    diff = float(np.max(np.abs(model.predict(ids[:8]) - theirs)))
    if not diff <= TOLERANCE:
        raise SystemExit(f"check failed: our tagger and torch's differ by {diff:.3g} (> {TOLERANCE})")
    twin.train()
    optimizer = torch.optim.Adam([p for p in twin.parameters() if p.requires_grad], lr=1e-3, eps=1e-7)
    x_t, y_t = torch.from_numpy(ids), torch.from_numpy(labels)

    def run_ours(count):
        model.fit(ids[:count], one_hot[:count], batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)

    def run_torch(count):
        for start in range(0, count, args.batch_size):
            optimizer.zero_grad()
            logp = twin(x_t[start:start + args.batch_size])
            loss = torch.nn.functional.nll_loss(logp.reshape(-1, CLASSES), y_t[start:start + args.batch_size].reshape(-1))
            loss.backward()
            optimizer.step()

    peers = {"ours": run_ours, "torch": run_torch}
    names = list(peers)
    rate_before = gemm_rate()
    warm = min(args.sentences, 4 * args.batch_size)
    for run in peers.values():
        run(warm)
    seconds = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            peers[name](args.sentences)
            seconds[name].append(time.perf_counter() - start)

    rate_after = gemm_rate()
    load = os.getloadavg()[0]
    scale = EPOCH_SENTENCES / args.sentences
    per_epoch = {name: statistics.median(values) * scale for name, values in seconds.items()}
    print(f"tagger epoch: batch {args.batch_size}, {args.sentences} sentences timed x {STEPS} steps, vocabulary "
          f"{VOCAB}, {threads} threads, torch {torch.__version__}, {args.rounds} rounds "
          f"(check: max |ours - torch| = {diff:.2g}); load average {load:.2f}; one-thread sgemm "
          f"{rate_before:.0f} GFLOP/s before, {rate_after:.0f} after")
    print("| batch | sentences timed | peer | s/epoch | / torch | median of the rounds' ratios |")
    print("|---:|---:|---|---:|---:|---:|")
    ratio = {name: per_epoch[name] / per_epoch["torch"] for name in names}
    paired = {name: statistics.median(a / b for a, b in zip(seconds[name], seconds["torch"])) for name in names}
    for name in names:
        print(f"| {args.batch_size} | {args.sentences} | {name} | {per_epoch[name]:.1f} | {ratio[name]:.2f} | "
              f"{paired[name]:.2f} |")
    if scale != 1:
        print(f"(s/epoch: the time for {args.sentences} sentences x {scale:g}, a {EPOCH_SENTENCES}-sentence epoch)")
    if args.json:
        print(json.dumps({"benchmark": "tagger_epoch", "batch_size": args.batch_size, "sentences": args.sentences,
                          "threads": threads, "rounds": args.rounds, "seconds_per_epoch": per_epoch,
                          "over_torch": ratio, "over_torch_paired": paired, "raw_seconds": seconds,
                          "load_average": load, "sgemm_gflops": [rate_before, rate_after]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
