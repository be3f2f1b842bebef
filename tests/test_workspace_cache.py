"""The large workspaces the CPU kernels keep from one call to the next (csrc/cpu/workspace.h):
results never depend on what a reused block held before, the cache holds at most 256 MiB, and
fusedrnn.empty_cache() gives it back."""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from conftest import CELLS, GATES, make_params
from fusedrnn import _native, ops

core = _native.core()
LIMIT = 256 << 20  # kCachedBytes
MiB = 1 << 20


def stack_run(cell, x, params, dy, lengths):
    """An inference forward, then a training forward and its backward, of a 2-layer bidirectional
    stack (the two directions of a layer allocate at the same time, on two threads)."""
    op = getattr(ops, cell)
    kwargs = dict(num_layers=2, bidirectional=True, lengths=lengths)
    y_inference, *_ = op(x, params, need_grad=False, **kwargs)
    y, h_n, *rest = op(x, params, **kwargs)
    grads = ops.stack_backward(rest[-1], dy)
    return [y_inference, y, h_n, grads.dx, *[g for p in grads.params for g in p]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_reused_blocks_give_bitwise_the_results_of_fresh_ones(rng, cell, dtype):
    # B*T*G*H elements of 4 MiB or more: the inference projection and the backward's gate gradients
    # are kept; lengths leave padding steps, which the kernels must write rather than find zeroed.
    T, I, H = 64, 8, 128
    B = 4 * MiB // (T * GATES[cell] * H * np.dtype(dtype).itemsize) + 1
    fusedrnn.empty_cache()
    x = rng.standard_normal((B, T, I)).astype(dtype)
    params = [make_params(rng, cell, I if k < 2 else 2 * H, H, dtype) for k in range(4)]  # 2 layers x 2 directions
    dy = rng.standard_normal((B, T, 2 * H)).astype(dtype)
    lengths = rng.integers(1, T + 1, B)
    fresh = stack_run(cell, x, params, dy, lengths)
    assert core.cached_workspace_bytes() >= 4 * MiB
    # Other values through the same blocks, then the first problem again on the reused blocks.
    stack_run(cell, x * 3 + 1, params, -dy, np.full(B, T))
    again = stack_run(cell, x, params, dy, lengths)
    for a, b in zip(fresh, again):
        np.testing.assert_array_equal(a, b)


def test_the_cache_stays_within_its_bound_and_empty_cache_gives_it_back(rng):
    # LSTM inference projections (B, T, 4H) of about 210, 80 and 30 MB in float64: each too unlike the
    # others in size to serve them, together over the bound.
    fusedrnn.empty_cache()
    assert core.cached_workspace_bytes() == 0
    for B, T in ((2048, 100), (800, 100), (300, 100)):
        ops.lstm(rng.standard_normal((B, T, 1)), [make_params(rng, "lstm", 1, 32)], need_grad=False)
        assert 0 < core.cached_workspace_bytes() <= LIMIT
    fusedrnn.empty_cache()
    assert core.cached_workspace_bytes() == 0


def test_small_workspaces_are_not_kept(rng):
    fusedrnn.empty_cache()
    *_, ctx = ops.gru(rng.standard_normal((4, 5, 3)), [make_params(rng, "gru", 3, 7)])
    ops.stack_backward(ctx, rng.standard_normal((4, 5, 7)))
    assert core.cached_workspace_bytes() == 0
