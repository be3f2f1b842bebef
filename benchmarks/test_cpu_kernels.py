"""pytest-benchmark: our compiled CPU kernels against torch CPU, forward and forward+backward.

    pytest benchmarks --benchmark-only

One group per shape, so pytest-benchmark puts ours and torch side by side. Each shape is checked
against torch (fusedrnn.bench.check) before anything of it is timed.
"""

import pytest

from fusedrnn import bench

ROWS = [bench.Row(cell, *shape) for shape in (
    (32, 30, 200, 300, True),  # the ADE tagger: BiLSTM 300 over 200-d embeddings
    (64, 100, 256, 256, False),
) for cell in ("lstm", "gru")]


@pytest.fixture(scope="module", params=ROWS, ids=lambda row: row.label.replace(" ", "-"))
def peers(request, torch):
    """-> {"ours": bench.Ours, "torch": bench.Torch} on the same inputs and weights, checked."""
    row = request.param
    x, dy, params = bench.problem(row)
    peers = {"ours": bench.Ours(row, x, dy, params), "torch": bench.Torch(torch, row, x, dy, params)}
    ok, worst, where = bench.check(peers["ours"].outputs(), {"torch": peers["torch"].outputs()})
    assert ok, f"{row.label}: ours differs from torch by {worst:.1e} ({where})"
    return row, peers


@pytest.mark.parametrize("peer", ["ours", "torch"])
@pytest.mark.parametrize("kind", ["fwd", "fwd+bwd"])
def test_cpu_kernels(benchmark, peers, peer, kind):
    row, by_name = peers
    benchmark.group = row.label
    benchmark.extra_info.update(flops=row.flops * (3 if kind == "fwd+bwd" else 1))
    fn = by_name[peer].fwd if kind == "fwd" else by_name[peer].fwd_bwd
    bench.settle(fn)  # warm-up, long enough for the previous test's BLAS threads to stop spinning
    benchmark.pedantic(fn, rounds=5)
