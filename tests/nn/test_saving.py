"""Weight files: exact round trips, atomic writes, and a clear error for every kind of bad file."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from fusedrnn.nn import saving
from fusedrnn.nn.autograd import Tensor


def make_weights(seed=0, hidden=4):
    rng = np.random.default_rng(seed)
    return [
        ("embedding/table", Tensor(rng.standard_normal((10, 3)).astype(np.float32))),
        ("lstm_1/w_ih", Tensor(rng.standard_normal((4 * hidden, 3)).astype(np.float32))),
        ("lstm_1/w_hh", Tensor(rng.standard_normal((4 * hidden, hidden)).astype(np.float32))),
        ("lstm_1/b_ih", Tensor(rng.standard_normal(4 * hidden).astype(np.float32))),
        ("dense/kernel", Tensor(rng.standard_normal((hidden, 2)))),  # float64
        ("counter", Tensor(np.array(7, np.int64))),
    ]


def array_of(value):
    return value.data if isinstance(value, Tensor) else value


def snapshot(weights):
    return [(n, array_of(t).copy()) for n, t in weights]


def assert_unchanged(weights, before):
    for (_, t), (_, old) in zip(weights, before):
        assert np.array_equal(array_of(t), old) and array_of(t).dtype == old.dtype


def listing(directory):
    return sorted(os.listdir(directory))


def test_round_trip_exact_in_place(tmp_path):
    path = tmp_path / "model.weights.npz"
    saved = make_weights(0)
    saving.save_weights(saved, path)
    target = make_weights(1)
    arrays = [t.data for _, t in target]
    saving.load_weights(target[::-1], path)  # matched by name, not position
    for (_, s), (_, t), array in zip(saved, target, arrays):
        assert t.data is array  # in place: the optimizer's state and graph references stay valid
        assert np.array_equal(t.data, s.data) and t.data.dtype == s.data.dtype
    assert listing(tmp_path) == ["model.weights.npz"]  # no temporary file left behind
    # a plain .npz: NumPy reads it, metadata included
    with np.load(path) as archive:
        metadata = json.loads(str(archive[saving.METADATA_KEY][()]))
        assert np.array_equal(archive["lstm_1/w_hh"], saved[2][1].data)
    assert metadata["format"] == "fusedrnn-weights" and metadata["format_version"] == 1
    assert [w["name"] for w in metadata["weights"]] == [n for n, _ in saved]
    assert metadata["weights"][2]["shape"] == [16, 4]


def test_overwrite_and_arrays_and_odd_names(tmp_path):
    path = str(tmp_path / "w")  # no suffix is added
    saving.save_weights([("file", np.zeros(2)), ("a b/ü", np.ones(3))], path)
    saving.save_weights([("file", np.full(2, 5.0)), ("a b/ü", np.ones(3))], path)
    target = [("file", np.zeros(2)), ("a b/ü", np.zeros(3))]
    saving.load_weights(target, path)
    assert np.array_equal(target[0][1], [5.0, 5.0]) and np.array_equal(target[1][1], np.ones(3))
    assert listing(tmp_path) == ["w"]


def test_new_file_permissions_follow_umask(tmp_path):
    old = os.umask(0o027)
    try:
        saving.save_weights([("w", np.zeros(1))], tmp_path / "w.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "w.npz").stat().st_mode & 0o777 == 0o640


def test_bad_names_refused(tmp_path):
    with pytest.raises(ValueError, match="unique; repeated: a"):
        saving.save_weights([("a", np.zeros(1)), ("a", np.zeros(1))], tmp_path / "w.npz")
    with pytest.raises(TypeError, match=r"list of \(name, Tensor\) pairs"):
        saving.save_weights([np.zeros(1)], tmp_path / "w.npz")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("where", ["write", "replace"])
def test_failed_save_leaves_old_file_and_no_temporary(tmp_path, monkeypatch, where):
    path = tmp_path / "model.npz"
    saving.save_weights(make_weights(0), path)
    before = path.read_bytes()
    if where == "write":
        calls = []
        real = np.lib.format.write_array

        def failing(*args, **kwargs):  # dies after the first array: a half-written archive
            calls.append(1)
            if len(calls) > 1:
                raise OSError("disk full")
            return real(*args, **kwargs)
        monkeypatch.setattr(np.lib.format, "write_array", failing)
    else:
        def failing(src, dst):
            raise OSError("crash before rename")
        monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError):
        saving.save_weights(make_weights(1), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["model.npz"]
    target = make_weights(2)
    saving.load_weights(target, path)
    assert np.array_equal(target[1][1].data, make_weights(0)[1][1].data)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        saving.load_weights(make_weights(), tmp_path / "nope.npz")


def write_archive(path, members, metadata=None):
    """An .npz with the given arrays and (if given) a metadata entry of our layout."""
    arrays = dict(members)
    if metadata is not None:
        arrays[saving.METADATA_KEY] = np.array(json.dumps(metadata))
    np.savez(path, **arrays)


def metadata_of(named, **changes):
    meta = {"format": "fusedrnn-weights", "format_version": 1,
            "weights": [{"name": n, "shape": list(np.shape(a)), "dtype": np.asarray(a).dtype.str}
                        for n, a in named]}
    meta.update(changes)
    return meta


def expect_error(weights, path, pattern):
    before = snapshot(weights)
    with pytest.raises(ValueError, match=pattern):
        saving.load_weights(weights, path)
    assert_unchanged(weights, before)  # checked before anything changes


def test_truncated_random_empty_and_npy_files(tmp_path):
    good = tmp_path / "good.npz"
    saving.save_weights(make_weights(0), good)
    data = good.read_bytes()
    cases = {"truncated": data[: len(data) // 2], "random": np.random.default_rng(0).bytes(4096),
             "empty": b"", "zipless": data[:200]}
    for name, content in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(content)
        expect_error(make_weights(1), path, "not a readable fusedrnn weights file")
    np.save(tmp_path / "single.npy", np.zeros(3))
    expect_error(make_weights(1), tmp_path / "single.npy", "a single .npy array")


def test_damaged_member(tmp_path):
    path = tmp_path / "w.npz"
    saving.save_weights([("big", np.arange(1000.0))], path)
    data = bytearray(path.read_bytes())
    data[400] ^= 0xFF  # inside the array's bytes: the zip CRC catches it
    path.write_bytes(bytes(data))
    expect_error([("big", np.zeros(1000))], path, "big: damaged array")


def test_foreign_npz(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, kernel=np.zeros((3, 4)), bias=np.zeros(4))
    expect_error(make_weights(), path, "without fusedrnn metadata .*kernel, bias")


def test_wrong_format_and_versions(tmp_path):
    weights = [("w", np.zeros(2))]
    for name, meta, pattern in [
            ("newer", metadata_of(weights, format_version=2), "format version 2 was written by a newer fusedrnn"),
            ("zero", metadata_of(weights, format_version=0), "invalid format version 0"),
            ("other", metadata_of(weights, format="keras-weights"), "format 'keras-weights', expected 'fusedrnn-weights'"),
            ("nolist", metadata_of(weights, weights=None), "damaged metadata")]:
        path = tmp_path / f"{name}.npz"
        write_archive(path, weights, meta)
        expect_error([("w", np.ones(2))], path, pattern)
    path = tmp_path / "json.npz"
    np.savez(path, w=np.zeros(2), **{saving.METADATA_KEY: np.array("{not json")})
    expect_error([("w", np.ones(2))], path, "damaged metadata")
    path = tmp_path / "lies.npz"
    write_archive(path, [("w", np.zeros(3))], metadata_of(weights))
    expect_error([("w", np.ones(2))], path, r"damaged: w is float64 \(3,\) in the archive")
    path = tmp_path / "absent.npz"
    write_archive(path, [], metadata_of(weights))
    expect_error([("w", np.ones(2))], path, "metadata lists w but the archive has no such array")


def test_names_that_do_not_match(tmp_path):
    path = tmp_path / "model.npz"
    saving.save_weights(make_weights(0), path)
    renamed = make_weights(1)
    renamed[2] = ("lstm_2/w_hh", renamed[2][1])
    expect_error(renamed, path, r"(?s)in the model but not in the file: lstm_2/w_hh.*"
                                r"in the file but not in the model: lstm_1/w_hh")
    expect_error(make_weights(1)[:-1], path, "in the file but not in the model: counter")
    extra = make_weights(1) + [("dense/bias", Tensor(np.zeros(2)))]
    expect_error(extra, path, "in the model but not in the file: dense/bias")


def test_shape_and_dtype_mismatch(tmp_path):
    path = tmp_path / "model.npz"
    saving.save_weights(make_weights(0, hidden=3), path)
    expect_error(make_weights(1, hidden=4), path, r"lstm_1/w_hh: shape \(12, 3\) in file, \(16, 4\) in model")
    wrong_dtype = make_weights(1, hidden=3)
    wrong_dtype[4] = ("dense/kernel", Tensor(wrong_dtype[4][1].data.astype(np.float32)))
    wrong_dtype[5] = ("counter", Tensor(np.array(0, np.int32)))
    expect_error(wrong_dtype, path, r"(?s)dense/kernel: dtype float64 in file, float32 in model "
                                    r"\(allow_float_cast=True converts\).*counter: dtype int64 in file, int32")


def test_allow_float_cast(tmp_path):
    path = tmp_path / "model.npz"
    saved = make_weights(0)
    saving.save_weights(saved, path)
    target = [(n, Tensor(t.data.astype(np.float64) if t.data.dtype == np.float32 else t.data.copy()))
              for n, t in make_weights(1)]
    saving.load_weights(target, path, allow_float_cast=True)
    for (_, s), (_, t) in zip(saved, target):
        assert np.array_equal(t.data, s.data.astype(t.data.dtype))
    # an integer weight is never cast
    target[5] = ("counter", Tensor(np.array(0.0)))
    expect = snapshot(target)
    with pytest.raises(ValueError, match="counter: dtype int64 in file, float64 in model"):
        saving.load_weights(target, path, allow_float_cast=True)
    assert_unchanged(target, expect)


def test_read_weights_keeps_order(tmp_path):
    path = tmp_path / "model.npz"
    saving.save_weights(make_weights(0), path)
    assert list(saving.read_weights(path)) == [n for n, _ in make_weights(0)]
    with zipfile.ZipFile(path) as archive:  # stored uncompressed, one member per weight
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
