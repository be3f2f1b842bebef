"""The compiled CPU backend against fusedrnn.reference: every output and gradient, many shapes."""

from __future__ import annotations

import numpy as np
import pytest

import fusedrnn
from conftest import (OP_IDS, OPS, REFERENCE_RTOL as RTOL, assert_close_scaled, backward, cell_kwargs, forward,
                      make_cotangents, make_data, run_cell)
from fusedrnn import ops

# (B, T, I, H): single everything; B=1; T=1; H=37 and I=13 (not multiples of the SIMD width);
# B=17 (not a multiple of the threads); H=1 and H=16 on other shapes; B=1 and B=2 with H=40, where
# the per-step product takes several panels of W_hh at once (4 / B), then the last ones alone.
SHAPES = [(1, 1, 1, 1), (1, 5, 3, 7), (4, 1, 5, 3), (3, 7, 13, 37), (8, 6, 9, 16), (17, 5, 7, 33), (5, 4, 6, 1),
          (1, 4, 5, 40), (2, 4, 5, 40)]
# (lengths?, reverse, h0/c0 given?): each option appears with each other option at least once.
VARIANTS = [(False, False, False), (True, True, True), (True, False, False), (False, True, True)]
VARIANT_IDS = ["plain", "len-rev-states", "len", "rev-states"]


def random_lengths(rng, B, T):
    """(B,) lengths in 1..T, unsorted, containing 1 and T whenever B >= 2."""
    lengths = rng.integers(1, T + 1, B)
    if B >= 2:
        lengths[rng.permutation(B)[:2]] = (1, T)
    return lengths


def case(rng, cell, shape, dtype, with_lengths, with_states):
    B, T, I, H = shape
    x, params, h0, c0 = make_data(rng, cell, B, T, I, H, dtype, states=with_states)
    lengths = random_lengths(rng, B, T) if with_lengths else None
    dy, dh_n, dc_n = make_cotangents(rng, cell, B, T, H, dtype)
    return x, params, h0, c0, lengths, dy, dh_n, dc_n


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_cpu_matches_reference(rng, cell, nonlinearity, dtype, shape, variant):
    with_lengths, reverse, with_states = variant
    x, params, h0, c0, lengths, dy, dh_n, dc_n = case(rng, cell, shape, dtype, with_lengths, with_states)
    inputs_before = [a.copy() for a in (x, *params, dy)]
    expected = run_cell("reference", cell, x, params, h0, c0, lengths, reverse, nonlinearity, dy, dh_n, dc_n)
    actual = run_cell("cpu", cell, x, params, h0, c0, lengths, reverse, nonlinearity, dy, dh_n, dc_n)
    for k, v in actual.items():
        assert v.dtype == dtype and v.flags.c_contiguous, k
    assert_close_scaled(actual, expected, RTOL[dtype], f"{cell} {shape}")
    # The ops never write into their arguments.
    for before, after in zip(inputs_before, (x, *params, dy)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_padding_steps_are_zero_and_h_n_is_last_valid_step(rng, cell, nonlinearity, reverse):
    B, T, I, H = 6, 5, 4, 8
    x, params, h0, c0 = make_data(rng, cell, B, T, I, H)
    lengths = np.array([5, 1, 3, 2, 5, 4])
    out = run_cell("cpu", cell, x, params, h0, c0, lengths, reverse, nonlinearity,
                   dy=rng.standard_normal((B, T, H)))
    for b, n in enumerate(lengths):
        # Exactly zero, not just small: padding steps are never computed.
        assert np.all(out["y"][b, n:] == 0), b
        assert np.all(out["dx"][b, n:] == 0), b
        last = 0 if reverse else n - 1
        np.testing.assert_array_equal(out["h_n"][b], out["y"][b, last])
        assert np.any(out["y"][b, :n] != 0)


@pytest.mark.parametrize("shape", [(17, 5, 7, 33), (8, 6, 9, 16), (2, 3, 4, 5)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_thread_count_does_not_change_results(rng, restore_threads, cell, nonlinearity, dtype, shape):
    x, params, h0, c0, lengths, dy, dh_n, dc_n = case(rng, cell, shape, dtype, True, True)
    results = {}
    for n in (1, 2):
        fusedrnn.set_num_threads(n)
        assert fusedrnn.get_num_threads() == n
        results[n] = run_cell("cpu", cell, x, params, h0, c0, lengths, True, nonlinearity, dy, dh_n, dc_n)
    expected = run_cell("reference", cell, x, params, h0, c0, lengths, True, nonlinearity, dy, dh_n, dc_n)
    # Splitting rows over threads may change only the order of the weight-gradient sums: rounding.
    assert_close_scaled(results[2], results[1], RTOL[dtype], "2 threads vs 1")
    assert_close_scaled(results[1], expected, RTOL[dtype], "1 thread vs reference")


@pytest.mark.parametrize("threads", [2, 3])
# (1, 1, 5, 64) and (1, 2, 5, 100): fewer rows of B*T than members (one streamed step at a time).
# (1, 5, 64, 96) and (3, 4, 48, 64): a short batch and few steps, where OpenBLAS rounded a
# projection of T rows unlike two of T/2 before both splits took the same blocks.
@pytest.mark.parametrize("shape", [(1, 6, 5, 32), (3, 7, 4, 40), (17, 5, 7, 100), (1, 1, 5, 64), (1, 2, 5, 100),
                                   (1, 5, 64, 96), (3, 4, 48, 64)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_split_by_units_matches_split_by_rows_bitwise(rng, restore_threads, monkeypatch, cell, nonlinearity, dtype,
                                                      shape, threads):
    """A direction's forward and backward shared out by hidden units (a team meeting once per step)
    give bitwise what the split by batch rows gives: every output and gradient, with lengths,
    reverse and states, on unit slices that are and are not multiples of the SIMD width (H=40:
    16 + 24; H=100 over 3 threads). So the choice between them changes times only."""
    x, params, h0, c0, lengths, dy, dh_n, dc_n = case(rng, cell, shape, dtype, True, True)
    fusedrnn.set_num_threads(threads)
    results = {}
    for split in ("rows", "units"):
        monkeypatch.setenv("FUSEDRNN_CPU_SPLIT", split)
        results[split] = run_cell("cpu", cell, x, params, h0, c0, lengths, True, nonlinearity, dy, dh_n, dc_n)
    # The same per-unit math and recurrent products summed in the same order, and the same GEMM
    # blocks for the input projection (projection_blocks) and dx.
    for name, value in results["rows"].items():
        np.testing.assert_array_equal(results["units"][name], value, err_msg=f"{name}, {threads} threads")


@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_the_trials_of_an_unsettled_shape_change_no_result(rng, restore_threads, monkeypatch, cell, nonlinearity):
    """Where the cost model cannot tell (one row on two threads, W_hh of 128 KiB to 1 MiB), the
    kernels time both splits on the first calls of a shape and keep the faster: every call, trial
    or not, gives bitwise what the split by rows gives (few steps and a wide input: where the
    splits' input projections once rounded apart)."""
    monkeypatch.delenv("FUSEDRNN_CPU_SPLIT", raising=False)
    fusedrnn.set_num_threads(2)
    hidden = {"lstm": 96, "gru": 112, "rnn": 192}[cell]  # W_hh of 144-147 KiB in float32
    x, params, h0, c0, lengths, dy, dh_n, dc_n = case(rng, cell, (1, 5, 67, hidden), np.float32, False, True)
    calls = [run_cell("cpu", cell, x, params, h0, c0, lengths, False, nonlinearity, dy, dh_n, dc_n)
             for _ in range(2 * 3 + 2)]  # three trials of each split, then the winner
    monkeypatch.setenv("FUSEDRNN_CPU_SPLIT", "rows")
    expected = run_cell("cpu", cell, x, params, h0, c0, lengths, False, nonlinearity, dy, dh_n, dc_n)
    for result in calls:
        assert result.keys() == expected.keys()
        for name, value in expected.items():
            np.testing.assert_array_equal(result[name], value, err_msg=name)


@pytest.mark.parametrize("split", ["rows", "units"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_the_inference_forward_is_bitwise_the_training_forward(rng, restore_threads, monkeypatch, cell,
                                                               nonlinearity, dtype, split):
    """need_grad=False: the kernels save nothing (their aux and h_prev go to one slot per row, the
    input projection to a workspace), give bitwise the same outputs, and return no context."""
    monkeypatch.setenv("FUSEDRNN_CPU_SPLIT", split)
    fusedrnn.set_num_threads(2)
    x, params, h0, c0, lengths, *_ = case(rng, cell, (3, 6, 5, 40), dtype, True, True)
    kwargs = dict(h0=h0, lengths=lengths, reverse=True, **cell_kwargs(cell, c0=c0, nonlinearity=nonlinearity))
    forward_op = getattr(ops, f"{cell}_forward")
    *training, ctx = forward_op(x, *params, **kwargs)
    *inference, none = forward_op(x, *params, **kwargs, need_grad=False)
    assert none is None and ctx is not None
    for a, b in zip(training, inference):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="need_grad=False"):
        getattr(ops, f"{cell}_backward")(none, training[0])


@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_backward_is_repeatable(rng, cell, nonlinearity):
    x, params, h0, c0 = make_data(rng, cell, 4, 5, 3, 6)
    dy, dh_n, dc_n = make_cotangents(rng, cell, 4, 5, 6)
    *_, ctx = forward("cpu", cell, x, params, h0, c0, [5, 2, 4, 1], False, nonlinearity)
    first = backward("cpu", cell, ctx, dy, dh_n, dc_n)
    second = backward("cpu", cell, ctx, dy, dh_n, dc_n)
    # The backward must not consume what the forward saved: same inputs, same arithmetic, same bits.
    for name in ("dx", "dw_ih", "dw_hh", "db_ih", "db_hh", "dh0", "dc0"):
        a, b = getattr(first, name), getattr(second, name)
        if a is None:
            assert b is None and not ops.cell_info(cell).has_cell_state
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("impl", ["cpu", "numpy"])
@pytest.mark.parametrize("cell,nonlinearity", OPS, ids=OP_IDS)
def test_backward_without_dx_leaves_the_other_gradients_alone(rng, impl, cell, nonlinearity):
    from fusedrnn import _direction

    x, params, h0, c0 = make_data(rng, cell, 4, 5, 3, 6)
    dy, dh_n, dc_n = make_cotangents(rng, cell, 4, 5, 6)
    *_, ctx = forward(impl, cell, x, params, h0, c0, [5, 2, 4, 1], True, nonlinearity)
    full = backward(impl, cell, ctx, dy, dh_n, dc_n)
    partial = _direction.backward(cell, ctx, dy, dh_n, dc_n, need_dx=False)
    assert partial.dx is None
    for name in ("dw_ih", "dw_hh", "db_ih", "db_hh", "dh0", "dc0"):
        a, b = getattr(full, name), getattr(partial, name)
        if a is None:
            assert b is None and not ops.cell_info(cell).has_cell_state
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)  # the same arithmetic, only dx skipped
