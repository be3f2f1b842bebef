"""Dropout masks (fusedrnn._dropout): the compiled generator against its NumPy twin bit for bit,
SplitMix64's published outputs, the keep rate, independence, and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from fusedrnn import _dropout, _native

core = _native.core()
needs_core = pytest.mark.skipif(core is None, reason="the compiled CPU module is not built")

# SplitMix64 seeded with 1234567: its first five outputs, as its reference implementation prints them.
SPLITMIX64_1234567 = [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431,
                      16408922859458223821]


def compiled_mask(shape, key, threshold, scale, dtype):
    out = np.empty(shape, dtype)
    core.dropout_mask(out, key, threshold, scale)
    return out


def test_the_twin_draws_splitmix64():
    """Element i is kept iff the top 24 bits of the stream's output i reach the threshold."""
    top = [value >> 40 for value in SPLITMIX64_1234567]
    threshold = sorted(top)[2]  # the three largest are kept
    expected = np.array([2.0 if t >= threshold else 0.0 for t in top])
    mask = _dropout.numpy_mask((5,), 1234567, threshold, 2.0, np.float64)
    np.testing.assert_array_equal(mask, expected)
    assert (mask > 0).sum() == 3


@needs_core
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 1, 5), (32, 30, 600)])
def test_compiled_mask_is_the_twin_bit_for_bit(dtype, shape):
    rng = np.random.default_rng(5)
    for rate in (1e-9, 0.2, 0.5, 0.999):
        key = int(rng.integers(0, 2**64, dtype=np.uint64))
        threshold = int(np.ceil(rate * 2**24))
        scale = 1.0 / (1.0 - rate)
        twin = _dropout.numpy_mask(shape, key, threshold, scale, dtype)
        got = compiled_mask(shape, key, threshold, scale, dtype)
        assert got.dtype == twin.dtype == dtype and got.shape == twin.shape == shape
        np.testing.assert_array_equal(got, twin)
    assert compiled_mask((9,), key, 0, 1.0, dtype).all()  # threshold 0: everything kept
    assert not compiled_mask((9,), key, 2**24, 1.0, dtype).any()  # threshold 2**24: nothing kept


@needs_core
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (0,), (7,), (32, 30, 600)])
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_dropout_is_x_times_the_twin_bit_for_bit(dtype, shape, threads):
    """x times the mask in one pass, split over threads or not (the largest shape is split), in place too."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(dtype)
    key, threshold, scale = int(rng.integers(0, 2**64, dtype=np.uint64)), int(0.3 * 2**24), 1 / 0.7
    want = x * _dropout.numpy_mask(shape, key, threshold, scale, dtype)
    out = np.empty(shape, dtype)
    core.dropout_mask(out, key, threshold, scale, x, threads)
    np.testing.assert_array_equal(out, want)
    mask = np.empty(shape, dtype)
    core.dropout_mask(mask, key, threshold, scale, None, threads)
    np.testing.assert_array_equal(mask, _dropout.numpy_mask(shape, key, threshold, scale, dtype))
    core.dropout_mask(x, key, threshold, scale, x, threads)  # out is x
    np.testing.assert_array_equal(x, want)


def test_apply_dropout_is_the_mask_of_the_same_key(monkeypatch):
    """apply_dropout(x, key) == x * dropout_mask drawn with that key, compiled or not."""
    x = np.random.default_rng(7).standard_normal((4, 6, 10))
    mask = _dropout.dropout_mask(np, x.shape, 0.4, np.random.default_rng(8), x.dtype)
    key = _dropout.dropout_key(np.random.default_rng(8))
    np.testing.assert_array_equal(_dropout.apply_dropout(x, key, 0.4), x * mask)
    monkeypatch.setattr(_native, "core", lambda: None)
    np.testing.assert_array_equal(_dropout.apply_dropout(x, key, 0.4), x * mask)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5, 0.9])
def test_keep_rate_scale_and_independence(rate):
    rng = np.random.default_rng(11)
    n = 1_000_000
    mask = _dropout.dropout_mask(np, (n,), rate, rng, np.float32)
    kept = mask > 0
    assert set(np.unique(mask)) == {np.float32(0), np.float32(1.0 / (1.0 - rate))}
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept.mean() - (1 - rate)) < 5 * sigma
    # neighbours and rows of a (B, T, F) mask are uncorrelated
    for a, b in ((kept[:-1], kept[1:]), (kept[:-600], kept[600:])):
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(n)
    # the next mask of the same generator is another one; the same seed gives the same one again
    again = _dropout.dropout_mask(np, (n,), rate, rng, np.float32)
    assert abs(np.corrcoef(kept, again > 0)[0, 1]) < 5 / np.sqrt(n)
    np.testing.assert_array_equal(_dropout.dropout_mask(np, (n,), rate, np.random.default_rng(11), np.float32), mask)


def test_fallback_without_the_compiled_module_draws_the_same_masks(monkeypatch):
    first = _dropout.dropout_mask(np, (4, 6, 10), 0.3, np.random.default_rng(2), np.float64)
    monkeypatch.setattr(_native, "core", lambda: None)
    second = _dropout.dropout_mask(np, (4, 6, 10), 0.3, np.random.default_rng(2), np.float64)
    np.testing.assert_array_equal(first, second)


@needs_core
def test_compiled_mask_rejects_bad_arrays():
    with pytest.raises(TypeError, match="out: dtype"):
        core.dropout_mask(np.empty(4, np.int32), 1, 10, 1.0)
    with pytest.raises(ValueError, match="out: must be C-contiguous"):
        core.dropout_mask(np.empty((4, 4), np.float32)[:, ::2], 1, 10, 1.0)
    read_only = np.empty(4, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out: must be writable"):
        core.dropout_mask(read_only, 1, 10, 1.0)
    with pytest.raises(ValueError, match="threshold"):
        core.dropout_mask(np.empty(4, np.float32), 1, 2**24 + 1, 1.0)
    with pytest.raises(ValueError, match="x: expected shape"):
        core.dropout_mask(np.empty(4, np.float32), 1, 10, 1.0, np.ones(5, np.float32))
    with pytest.raises(TypeError, match="x: dtype"):
        core.dropout_mask(np.empty(4, np.float32), 1, 10, 1.0, np.ones(4))
    with pytest.raises(ValueError, match="x: must be C-contiguous"):
        core.dropout_mask(np.empty(4, np.float32), 1, 10, 1.0, np.ones(8, np.float32)[::2])
