"""Ensembles of ADE taggers (fusedrnn.ade.ensemble): decoding the members' summed scores, the folder
and its errors, and the CLI's --ensemble."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ade_fixtures import fake_lexicons, write_corpus  # noqa: F401 (a fixture)

from fusedrnn import _files, cli, nn
from fusedrnn.ade.corpus import read_corpus
from fusedrnn.ade.embeddings import Word2VecParams, sentences_of, train_word2vec
from fusedrnn.ade.ensemble import Ensemble, load_model
from fusedrnn.ade.model import Tagger, preset
from fusedrnn.nn.crf import viterbi

# The best preset reads the lexicons: the small fake packages stand in for the real ones (ade.lexicons).
pytestmark = pytest.mark.usefixtures("fake_lexicons")


@pytest.fixture()
def tiny(tmp_path):
    folder = write_corpus(tmp_path / "ade")
    records, _ = read_corpus(folder, negatives=True)
    return folder, records


def _trained(records, crf, seed, **overrides):
    nn.set_random_seed(seed)
    kv = train_word2vec(sentences_of(records), Word2VecParams(dim=8, min_count=1, epochs=2, seed=seed))
    config = preset("best", **{**dict(maxlen=12, units=4, epochs=2, batch_size=2, patience=None, char_units=3,
                                      char_dim=4, crf=crf), **overrides})
    tagger = Tagger.from_vectors(config, kv, texts=[r.text for r in records])
    tagger.fit(records[:4], records[4:], seed=seed, verbose=0)
    return tagger


@pytest.mark.parametrize("crf, nested", [(False, False), (True, False), (True, True)])
def test_members_scores_add_up_and_decode(tiny, crf, nested):
    _, records = tiny
    a, b = _trained(records, crf, 0, nested=nested), _trained(records, crf, 1, nested=nested)
    texts = [r.text for r in records] + ["Aspirin gave a rash and headache."]
    enc, heads = Ensemble([a, b]).potentials(texts)
    (_, heads_a), (_, heads_b) = a.potentials(texts), b.potentials(texts)
    assert len(heads) == len(a.config.heads) == (2 if nested else 1)
    lengths = np.maximum((enc.ids != 0).sum(axis=1), 1)
    expected = []
    for (scores, weights), (sa, wa), (sb, wb), names in zip(heads, heads_a, heads_b, a.config.heads):
        np.testing.assert_allclose(scores, sa + sb, rtol=1e-6)
        if crf:
            for w, x, y in zip(weights, wa, wb):
                np.testing.assert_allclose(w, x + y, rtol=1e-6)
            best = viterbi(np, sa + sb, lengths, *[x + y for x, y in zip(wa, wb)])
        else:
            assert weights is None
            best = (sa + sb).argmax(axis=-1)
        T = a.config.maxlen
        expected.append([[names[j] for j in row[: min(len(s), T)]] + ["O"] * max(0, len(s) - T)
                         for row, s in zip(best, enc.spans)])
    assert Ensemble([a, b]).head_tags(texts)[0] == expected
    # Two copies of one member double every score exactly, so the best path is the member's.
    assert Ensemble([a, a]).predict_spans(texts) == a.predict_spans(texts)


def test_folder_round_trip_and_errors(tiny, tmp_path):
    _, records = tiny
    members = [_trained(records, True, seed) for seed in (0, 1)]
    texts = [r.text for r in records]
    folder = Ensemble(members).save(tmp_path / "ens")
    assert json.loads((folder / "ensemble.json").read_text(encoding="utf-8")) == {"members": 2}
    loaded = load_model(folder)
    assert isinstance(loaded, Ensemble) and len(loaded.members) == 2
    assert loaded.predict_spans(texts) == Ensemble(members).predict_spans(texts)
    assert isinstance(load_model(folder / "member_1"), Tagger)

    (folder / "ensemble.json").write_text('{"members": 1}', encoding="utf-8")
    with pytest.raises(ValueError, match="ensemble.json: damaged"):  # changed behind its checksum
        load_model(folder)

    def write_listed(text):  # ensemble.json changed along with its checksum: its content is checked
        (folder / "ensemble.json").write_text(text, encoding="utf-8")
        _files.write_checksums(folder, ["ensemble.json"])

    write_listed("{not json")
    with pytest.raises(ValueError, match="unreadable ensemble.json"):
        load_model(folder)
    write_listed('{"members": 0}')
    with pytest.raises(ValueError, match="members must be a positive integer"):
        load_model(folder)
    write_listed('{"members": 3}')
    with pytest.raises(FileNotFoundError, match="member_3"):
        load_model(folder)
    members[0].save(folder)  # one tagger saved over the ensemble: the folder now opens as that tagger
    assert isinstance(load_model(folder), Tagger)

    with pytest.raises(TypeError, match="members"):
        Ensemble([])
    other = _trained(records, True, 2, maxlen=10, nested=False)
    with pytest.raises(ValueError, match="member 2 differs from member 1 in nested, maxlen"):
        Ensemble([members[0], other])


def test_cli_train_cv_evaluate_predict_with_ensemble(tiny, tmp_path, monkeypatch, capsys):
    folder, _ = tiny
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the Word2Vec cache goes under ~/.cache
    out = tmp_path / "model"
    rc = cli.main(["ade", "train", "--preset", "best", "--data", str(folder), "--out", str(out), "--epochs", "1",
                   "--units", "4", "--ensemble", "2", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    for name in ("ensemble.json", "metrics.json", "learning_curve.png", "test_pmids.txt", "member_1/weights.npz",
                 "member_2/learning_curve.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["ensemble"] == 2 and [m["seed"] for m in metrics["members"]] == [0, 1]
    assert metrics["config"]["nested"]  # the best preset's two heads
    assert all(m["test"]["sentences"] == metrics["test"]["sentences"] for m in metrics["members"])
    capsys.readouterr()
    assert cli.main(["ade", "evaluate", "--model", str(out), "--data", str(folder), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["span"] == metrics["test"]["span"]
    (tmp_path / "in.txt").write_text("Aspirin gave a rash.\n", encoding="utf-8")
    assert cli.main(["ade", "predict", "--model", str(out), "--input", str(tmp_path / "in.txt"), "--output",
                     str(tmp_path / "out.jsonl"), "--quiet"]) == 0
    assert json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))["text"] == "Aspirin gave a rash."

    rc = cli.main(["ade", "cv", "--preset", "best", "--data", str(folder), "--folds", "2", "--out",
                   str(tmp_path / "cv"), "--epochs", "1", "--units", "4", "--ensemble", "2", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "cv" / "cv.json").read_text(encoding="utf-8"))["ensemble"] == 2
    assert (tmp_path / "cv" / "fold_2" / "member_2" / "weights.npz").is_file()

    rc = cli.main(["ade", "train", "--preset", "best", "--data", str(folder), "--out", str(tmp_path / "single"),
                   "--epochs", "1", "--units", "4", "--no-nested", "--quiet"])
    assert rc == 0 and not json.loads((tmp_path / "single" / "config.json").read_text(encoding="utf-8"))["nested"]
    capsys.readouterr()
    assert cli.main(["ade", "train", "--preset", "best", "--data", str(folder), "--out", str(out),
                     "--ensemble", "0"]) == 2
    assert "--ensemble must be a positive integer" in capsys.readouterr().err


@pytest.mark.gpu
def test_ensemble_on_the_gpu_tags_like_on_the_cpu(tiny, tmp_path):
    """An ensemble folder opened on the GPU: the members' scores and CRF weights come to the host and
    decode to the same spans as on the CPU."""
    pytest.importorskip("cupy")
    from fusedrnn import _native

    try:
        _native.cuda()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    _, records = tiny
    folder = Ensemble([_trained(records, True, seed) for seed in (0, 1)]).save(tmp_path / "ens")
    texts = [r.text for r in records] + ["Aspirin gave a rash and headache."]
    gpu = load_model(folder, device="cuda")
    assert all(m.model.device == "cuda" for m in gpu.members)
    assert gpu.predict_spans(texts) == load_model(folder).predict_spans(texts)
