"""Nothing a user owns is lost, nothing damaged is used silently, the kernels hold under abuse.

- Files (fusedrnn._files): atomic writes, stale temporaries of killed writers removed (never a live
  writer's), kill -9 during saves of weights and folders (no corrupt file, no stale temporary left);
- weights files: every single-byte flip is either refused with a ValueError naming the file or
  reads back the very arrays that were saved; unreadable files are ValueErrors too;
- the ADE command line: an output that is an input (also through a link) is refused for every
  writing command, before any work, with one line and exit status 2; --out folders are never mixed
  or replaced without --overwrite, and only once the new one is whole; damaged model folders and
  Word2Vec caches are named (the cache is rebuilt); an empty corpus is refused before training;
- empty batches (B = 0) as torch.nn: empty outputs, zero-size dx, zero weight gradients, through
  fusedrnn.ops, fusedrnn.nn and fusedrnn.torch;
- concurrent calls from several threads give bitwise the results of one thread; repeated calls do
  not grow the resident memory.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CELLS, make_stack_params
from fusedrnn import _files, _native, cli, ops
from fusedrnn.nn.saving import read_weights, save_weights

sys.path.insert(0, str(Path(__file__).parent / "ade"))  # the tiny corpus of the ADE tests
from ade_fixtures import fake_lexicons, write_corpus  # noqa: E402, F401 (a fixture)


def temporaries(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


# ------------------------------------------------------------------------------------------ files

def test_atomic_path_replaces_the_target_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError, match="midway"):
        with _files.atomic_path(target) as path:
            path.write_text("half", encoding="utf-8")
            raise RuntimeError("midway")
    assert target.read_text(encoding="utf-8") == "old" and temporaries(tmp_path) == []
    _files.write_text(target, "new")
    assert target.read_text(encoding="utf-8") == "new" and temporaries(tmp_path) == []


def test_a_link_is_written_through(tmp_path):
    (tmp_path / "real.txt").write_text("old", encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    _files.write_text(tmp_path / "link.txt", "new")
    assert (tmp_path / "link.txt").is_symlink() and (tmp_path / "real.txt").read_text(encoding="utf-8") == "new"


def test_stale_temporaries_are_removed_but_never_a_live_writers(tmp_path):
    target = tmp_path / "weights.npz"
    live_path, live_fd = _files._create_locked(target, folder=False)  # a writer at work (its lock held)
    stale = tmp_path / ".weights.npz.0123456789ab.tmp"  # a killed writer's: no lock
    stale.write_bytes(b"partial")
    stale_folder = tmp_path / ".weights.npz.ba9876543210.tmp"
    stale_folder.mkdir()
    (stale_folder / "inside").write_bytes(b"partial")
    others = [tmp_path / ".other.npz.0123456789ab.tmp", tmp_path / ".weights.npz.notours.tmp"]
    for path in others:
        path.write_bytes(b"not this target's")
    try:
        save_weights([("w", np.ones(3))], target)
        assert live_path.exists() and not stale.exists() and not stale_folder.exists()
        assert all(path.exists() for path in others)
    finally:
        os.close(live_fd)
    save_weights([("w", np.ones(3))], target)  # the writer is gone now: its temporary goes too
    assert not live_path.exists()


SAVER = """
import sys
import numpy as np
from fusedrnn import _files
from fusedrnn.nn.saving import save_weights
kind, target = sys.argv[1:]
print("ready", flush=True)
k = 0
while True:
    k += 1
    if kind == "weights":
        save_weights([("a", np.full(1 << 20, k, np.float32)), ("b", np.full(7, k, np.float32))], target)
    else:
        with _files.atomic_folder(target, overwrite=True) as folder:
            (folder / "a.npy").write_bytes(np.full(1 << 20, k, np.float32).tobytes())
            (folder / "k.txt").write_text(str(k))
"""


def _check_saved(kind, target):
    """The target after a kill: absent (killed before the first save) or one whole save."""
    if not target.exists():
        return
    if kind == "weights":
        w = read_weights(target)
        assert set(w) == {"a", "b"} and np.all(w["a"] == w["a"][0]) and np.all(w["b"] == w["a"][0])
    else:
        assert sorted(os.listdir(target)) == ["a.npy", "k.txt"]
        a = np.frombuffer((target / "a.npy").read_bytes(), np.float32)
        assert a.size == 1 << 20 and np.all(a == float((target / "k.txt").read_text()))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["weights", "folder"])
def test_kill_9_during_saves_leaves_no_corrupt_file_and_no_stale_temporary(kind, tmp_path):
    target = tmp_path / ("model.npz" if kind == "weights" else "model")
    rng = random.Random(19)
    left, existed = 0, False
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, kind, str(target)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert target.exists() or not existed  # once saved, never gone again
        existed = target.exists()
        _check_saved(kind, target)
        left = max(left, len(temporaries(tmp_path)))
        assert left <= 1  # each writer removes the one before it left
    if kind == "weights":
        save_weights([("a", np.zeros(2))], target)
    else:
        with _files.atomic_folder(target, overwrite=True) as folder:
            (folder / "k.txt").write_text("0")
    assert temporaries(tmp_path) == []


def test_a_finished_folder_is_never_deleted_and_a_held_one_never_replaced(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "mine.txt").write_text("mine", encoding="utf-8")  # appeared after the command's check
    with pytest.raises(OSError, match="complete but could not take this place.*kept as"):
        with _files.atomic_folder(target) as folder:
            (folder / "weights").write_text("hours of training", encoding="utf-8")
    [kept] = [p for p in tmp_path.iterdir() if p.name.startswith("model.new-")]
    assert (kept / "weights").read_text(encoding="utf-8") == "hours of training"
    assert tree(target) == {Path("mine.txt"): b"mine"} and temporaries(tmp_path) == []
    with _files.atomic_folder(target, overwrite=True) as folder:
        (folder / "weights").write_text("new", encoding="utf-8")
    assert tree(target) == {Path("weights"): b"new"} and temporaries(tmp_path) == []


def test_a_private_file_stays_private_when_replaced(tmp_path):
    target = tmp_path / "secret.txt"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o600)
    _files.write_text(target, "new")
    assert target.stat().st_mode & 0o777 == 0o600


def test_out_never_holds_the_working_or_home_folder(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    with pytest.raises(ValueError, match="holds the working folder"):
        _files.check_output_folder(tmp_path, overwrite=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="holds your home folder"):
        _files.check_output_folder(tmp_path / "home", overwrite=True)


# ---------------------------------------------------------------------------------------- weights

def test_every_byte_flip_of_a_weights_file_is_refused_or_harmless(tmp_path):
    rng = np.random.default_rng(7)
    saved = {"w": rng.standard_normal((6, 5)).astype(np.float32), "b": rng.standard_normal(6)}
    path = tmp_path / "w.npz"
    save_weights(list(saved.items()), path)
    raw = path.read_bytes()
    damaged = tmp_path / "damaged.npz"
    refused = 0
    for at in range(len(raw)):
        for value in {raw[at] ^ 0x01, raw[at] ^ 0xFF}:
            damaged.write_bytes(raw[:at] + bytes([value]) + raw[at + 1:])
            try:
                got = read_weights(damaged)
            except ValueError as error:
                assert str(damaged) in str(error)
                refused += 1
                continue
            # A flip the file format does not read (e.g. a zip timestamp): the very same arrays.
            assert set(got) == set(saved) and all(np.array_equal(got[k], saved[k]) and got[k].dtype == saved[k].dtype
                                                  for k in saved)
    assert refused > len(raw)  # most flips are refused


def test_unreadable_weights_files_are_value_errors_naming_them(tmp_path):
    save_weights([("w", np.ones(4))], tmp_path / "ok.npz")
    whole = (tmp_path / "ok.npz").read_bytes()
    cases = {"empty.npz": b"", "garbage.npz": b"\x00garbage" * 40, "truncated.npz": whole[: len(whole) // 2]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.npz").mkdir()
    for name in [*cases, "folder.npz"]:
        with pytest.raises(ValueError, match=name):
            read_weights(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        read_weights(tmp_path / "missing.npz")


# ------------------------------------------------------------------------------ the ADE command line

@pytest.fixture
def trained(tmp_path, monkeypatch, fake_lexicons):  # noqa: F811 (predict annotates spans from the lexicons)
    """(corpus folder, a model folder trained by the CLI); the Word2Vec cache under tmp_path."""
    pytest.importorskip("gensim")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = write_corpus(tmp_path / "ade")
    model = tmp_path / "model"
    assert ade("train", "--preset", "chapter", "--data", data, "--out", model, "--epochs", "1", "--units", "4") == 0
    return data, model


def ade(*args) -> int:
    return cli.main(["ade", *map(str, args), *(["--quiet"] if args[0] in ("train", "cv", "predict") else [])])


def refused(capsys, rc, message):
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err


def tree(folder) -> dict:
    """Every file under folder -> its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_predict_never_writes_over_its_input_or_model(trained, tmp_path, capsys):
    data, model = trained
    sentences = tmp_path / "s.txt"
    sentences.write_text("Aspirin gave rash.\n", encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(sentences)
    os.link(sentences, tmp_path / "hard.txt")
    before, model_before = sentences.read_bytes(), tree(model)
    for output in (sentences, tmp_path / "link.txt", tmp_path / "hard.txt"):
        rc = ade("predict", "--model", model, "--input", sentences, "--output", output)
        refused(capsys, rc, "writing it would destroy the input")
    rc = ade("predict", "--model", model, "--input", tmp_path / "link.txt", "--output", sentences)
    refused(capsys, rc, "writing it would destroy the input")
    rc = ade("predict", "--model", model, "--input", sentences, "--output", model / "weights.npz")
    refused(capsys, rc, "writing it would destroy the input")
    assert sentences.read_bytes() == before and tree(model) == model_before
    assert ade("predict", "--model", model, "--input", sentences, "--output", tmp_path / "o.jsonl") == 0
    assert json.loads((tmp_path / "o.jsonl").read_text(encoding="utf-8"))["line"] == 1


def test_evaluate_never_writes_over_its_inputs(trained, capsys):
    data, model = trained
    for output in (model / "test_pmids.txt", data / "DRUG-AE.rel"):
        before = output.read_bytes()
        refused(capsys, ade("evaluate", "--model", model, "--data", data, "--output", output),
                "writing it would destroy the input")
        assert output.read_bytes() == before


def test_outputs_that_cannot_be_written_are_refused_before_the_work(trained, tmp_path, capsys, monkeypatch):
    data, model = trained
    sentences = tmp_path / "s.txt"
    sentences.write_text("Aspirin gave rash.\n", encoding="utf-8")
    read_only = tmp_path / "read_only.jsonl"
    read_only.write_text("mine\n", encoding="utf-8")
    read_only.chmod(0o444)
    # The model must not even be loaded: the check comes first.
    monkeypatch.setattr("fusedrnn.ade.ensemble.load_model", lambda *a, **k: pytest.fail("loaded the model"))
    cases = [(tmp_path, "is a folder"), (tmp_path / "missing" / "o.jsonl", "does not exist")]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append((read_only, "not writable"))
    for output, message in cases:
        refused(capsys, ade("predict", "--model", model, "--input", sentences, "--output", output), message)
    assert read_only.read_text(encoding="utf-8") == "mine\n"


def test_train_out_is_never_mixed_or_replaced_without_overwrite(trained, tmp_path, capsys):
    data, model = trained
    before = tree(model)
    train = ("train", "--preset", "chapter", "--data", data, "--epochs", "1", "--units", "4")
    refused(capsys, ade(*train, "--out", model), "already holds files")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes", encoding="utf-8")
    refused(capsys, ade(*train, "--out", mine), "already holds files")
    refused(capsys, ade(*train, "--out", mine / "notes.txt"), "is a file")
    refused(capsys, ade(*train, "--out", data, "--overwrite"), "holds the input")  # would delete the corpus
    assert tree(model) == before and tree(mine) == {Path("notes.txt"): b"my notes"}
    assert (data / "DRUG-AE.rel").is_file()

    assert ade(*train, "--out", model, "--overwrite", "--seed", "1") == 0
    assert tree(model) != before and (model / "metrics.json").is_file()
    assert temporaries(tmp_path) == []


def test_a_failed_training_leaves_no_folder_and_the_old_one_intact(trained, tmp_path, capsys, monkeypatch):
    data, model = trained
    before = tree(model)

    def interrupted(*args, **kwargs):
        raise ValueError("interrupted midway")
    monkeypatch.setattr("fusedrnn.ade.cli._fit_member", interrupted)
    train = ("train", "--preset", "chapter", "--data", data, "--epochs", "1", "--units", "4")
    refused(capsys, ade(*train, "--out", tmp_path / "new"), "interrupted midway")
    refused(capsys, ade(*train, "--out", model, "--overwrite"), "interrupted midway")
    assert not (tmp_path / "new").exists() and tree(model) == before and temporaries(tmp_path) == []


def test_an_empty_corpus_is_refused_before_any_training(tmp_path, capsys, monkeypatch):
    pytest.importorskip("gensim")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = tmp_path / "empty"
    data.mkdir()
    (data / "DRUG-AE.rel").write_text("", encoding="utf-8")
    (data / "ADE-NEG.txt").write_text("", encoding="utf-8")
    for command in (("train",), ("cv", "--folds", "2")):
        rc = ade(*command, "--preset", "best", "--data", data, "--out", tmp_path / "m")
        refused(capsys, rc, "no usable sentences")
        assert not (tmp_path / "m").exists() and not (tmp_path / "home").exists()  # not even Word2Vec ran


@pytest.mark.parametrize("name", ["config.json", "vocab.json", "embeddings.npy", "weights.npz", "test_pmids.txt",
                                  "checksums.json"])
def test_a_damaged_model_folder_is_named_not_used(trained, tmp_path, capsys, name):
    data, model = trained
    path = model / name
    raw = bytearray(path.read_bytes())
    raw[len(raw) * 2 // 3] ^= 0x04  # inside the data, past any header
    path.write_bytes(bytes(raw))
    sentences = tmp_path / "s.txt"
    sentences.write_text("Aspirin gave rash.\n", encoding="utf-8")
    rc = ade("predict", "--model", model, "--input", sentences, "--output", tmp_path / "o.jsonl")
    refused(capsys, rc, str(model / name) if name != "checksums.json" else "damaged")
    refused(capsys, ade("evaluate", "--model", model, "--data", data), "damaged")
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "no checksum"])
def test_a_damaged_word2vec_cache_is_reported_deleted_and_rebuilt(trained, tmp_path, capsys, damage):
    data, _ = trained
    [entry] = (tmp_path / "home").rglob("*.w2v")
    raw = entry.read_bytes()
    if damage == "flip":
        entry.write_bytes(raw[:100] + bytes(b ^ 0x5A for b in raw[100:4196]) + raw[4196:])
    elif damage == "truncate":
        entry.write_bytes(raw[: len(raw) // 3])
    elif damage == "garbage":
        entry.write_bytes(os.urandom(len(raw)))
    else:
        entry.with_name(entry.name + ".json").unlink()
    capsys.readouterr()
    out = tmp_path / "again"
    assert ade("train", "--preset", "chapter", "--data", data, "--out", out, "--epochs", "1", "--units", "4") == 0
    err = capsys.readouterr().err
    assert f"cache entry {entry}" in err and "deleted, rebuilding it" in err and "Traceback" not in err
    assert entry.read_bytes() == raw  # rebuilt: the same seeded vectors
    embeddings = np.load(out / "embeddings.npy")
    assert np.all(np.isfinite(embeddings)) and np.abs(embeddings).max() < 10


@pytest.mark.parametrize("command", [["bench", "--quick", "--save"], ["demo", "count-ones", "--quick", "--out"],
                                     ["ade", "download", "--dir"]], ids=["bench", "demo", "download"])
def test_commands_that_write_a_folder_refuse_a_file_before_the_work(command, tmp_path, capsys, monkeypatch):
    mine = tmp_path / "mine.txt"
    mine.write_text("mine", encoding="utf-8")
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("downloaded"))
    for target in (mine, mine / "below"):
        rc = cli.main([*command, str(target)])
        err = capsys.readouterr().err
        assert rc == 2 and str(target) in err and "Traceback" not in err, err
    assert mine.read_text(encoding="utf-8") == "mine"


def test_a_damaged_download_in_the_cache_is_refused(tmp_path, monkeypatch):
    from fusedrnn.ade.corpus import read_corpus

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FUSEDRNN_ADE_DIR", raising=False)
    write_corpus(tmp_path / ".cache" / "fusedrnn" / "ade")  # not the published bytes: as if damaged
    with pytest.raises(ValueError, match="DRUG-AE.rel: damaged.*fusedrnn ade download"):
        read_corpus()


# -------------------------------------------------------------------------------------- empty batches

def _stack_params(rng, cell, inputs, hidden, layers, directions, dtype):
    """Weights ~ N(0, 1) of a stack, in the ops' order."""
    return make_stack_params(rng, cell, inputs, hidden, layers, directions, dtype, scale=1.0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_an_empty_batch_through_the_ops_is_torch_s(backend, cell, bidirectional, rng):
    D, H, T, I = 1 + bidirectional, 3, 4, 5
    params = _stack_params(rng, cell, I, H, 2, D, np.float64)
    x = np.zeros((0, T, I))
    y, h_n, _, ctx = ops.stack_forward(cell, x, params, num_layers=2, bidirectional=bidirectional, dropout=0.5,
                                       seed=1, lengths=np.zeros(0, np.int64))
    assert y.shape == (0, T, D * H) and h_n.shape == (2 * D, 0, H)
    g = ops.stack_backward(ctx, np.zeros_like(y))
    assert g.dx.shape == x.shape and g.dh0.shape == h_n.shape
    assert all(grad.shape == weight.shape and not grad.any() for p, gp in zip(params, g.params)
               for weight, grad in zip(p, gp))

    *outputs, ctx = ops.forward(cell, x, *params[0])
    assert outputs[0].shape == (0, T, H) and outputs[1].shape == (0, H)
    g = ops.backward(ctx, outputs[0])
    assert g.dx.shape == x.shape and not g.dw_ih.any() and not g.dw_hh.any() and not g.db_ih.any()


@pytest.mark.gpu
@pytest.mark.parametrize("cell", CELLS)
def test_an_empty_batch_on_the_gpu(cell):
    cupy = pytest.importorskip("cupy")
    if _native._cuda is None or _native._cuda.device_count() == 0:  # CuPy installed ([gpu]) on a machine without a GPU
        pytest.skip("needs the CUDA build and a visible CUDA device")
    rng = np.random.default_rng(0)
    params = [tuple(cupy.asarray(a) for a in p) for p in _stack_params(rng, cell, 5, 3, 2, 2, np.float32)]
    *outputs, ctx = ops.stack_forward(cell, cupy.zeros((0, 4, 5), np.float32), params, num_layers=2,
                                      bidirectional=True)
    assert outputs[0].shape == (0, 4, 6) and isinstance(outputs[0], cupy.ndarray)
    g = ops.stack_backward(ctx, cupy.zeros_like(outputs[0]))
    assert g.dx.shape == (0, 4, 5) and not any(bool(grad.any()) for gp in g.params for grad in gp)


@pytest.mark.parametrize("cell", CELLS)
def test_an_empty_batch_through_fusedrnn_nn_layers(cell):
    from fusedrnn.nn import layers as L
    from fusedrnn.nn.autograd import Tensor, record

    cls = getattr(L, ops.cell_info(cell).keras_class)
    for layer in (cls(4, return_sequences=True, return_state=True), cls(4, dropout=0.3, recurrent_dropout=0.3),
                  cls(4, return_sequences=True), L.Bidirectional(cls(4, return_sequences=True))):
        x = Tensor(np.zeros((0, 5, 3), np.float32), requires_grad=True)
        outputs = layer(x, training=True)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        assert all(o.shape[0] == 0 for o in outputs)
        record(np.float32(0), tuple(outputs), lambda g: tuple(np.zeros(o.shape, o.dtype) for o in outputs)).backward()
        assert x.grad.shape == x.shape
        assert all(w.grad is not None and w.grad.shape == w.shape and not w.grad.any() for w in layer.weights)


@pytest.mark.parametrize("cell", CELLS)
def test_an_empty_batch_through_fusedrnn_torch(cell):
    torch = pytest.importorskip("torch")
    import fusedrnn.torch as ft

    module = getattr(ft, ops.cell_info(cell).torch_class)(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.zeros(0, 5, 3, requires_grad=True)
    y, h = module(x)
    assert y.shape == (0, 5, 8)
    (y.sum() + (h[0] if isinstance(h, tuple) else h).sum()).backward()
    assert x.grad.shape == x.shape and all(p.grad is not None and not p.grad.any() for p in module.parameters())


# ------------------------------------------------------------------------------------ threads, memory

@pytest.mark.parametrize("cell", CELLS)
def test_concurrent_calls_give_bitwise_the_results_of_one(rng, cell):
    params = _stack_params(rng, cell, 8, 16, 2, 2, np.float32)
    x = rng.standard_normal((6, 12, 8)).astype(np.float32)
    lengths = np.array([12, 3, 7, 12, 1, 9])

    def run():
        y, h_n, c_n, ctx = ops.stack_forward(cell, x, params, lengths=lengths, num_layers=2, bidirectional=True)
        g = ops.stack_backward(ctx, y, h_n, c_n)
        return [y, h_n, *([c_n] if c_n is not None else []), g.dx, *(a for p in g.params for a in p)]

    alone = run()
    results, errors = [], []

    def worker():
        try:
            for _ in range(15):
                results.append(run())
        except Exception as error:  # noqa: BLE001  reported below
            errors.append(error)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 60
    assert all(all(np.array_equal(a, b) for a, b in zip(r, alone)) for r in results)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident size from /proc")
@pytest.mark.parametrize("cell", CELLS)
def test_repeated_calls_do_not_grow_the_resident_memory(rng, cell):
    def resident_mb():
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    params = _stack_params(rng, cell, 8, 16, 1, 2, np.float32)
    x = rng.standard_normal((4, 10, 8)).astype(np.float32)

    def calls(n):
        for _ in range(n):
            y, h_n, c_n, ctx = ops.stack_forward(cell, x, params, bidirectional=True)
            ops.stack_backward(ctx, y, h_n, c_n)
            ops.stack_forward(cell, x, params, bidirectional=True, need_grad=False)
    calls(200)  # warm: pools, caches and the thread team are in place
    before = resident_mb()
    calls(2000)
    assert resident_mb() - before < 8
