"""Document-level splits, CV folds, --test-pmids files and the SpERT fold reader."""

from __future__ import annotations

import json

import pytest

from fusedrnn.ade.corpus import Record, Span
from fusedrnn.ade.splits import (document_folds, document_split, heldout_split, read_pmid_file, spert_folds,
                                  spert_record)

RECORDS = [Record(pmid=str(100 + i % 7), text=f"s{i}") for i in range(30)]


def _pmids(idx):
    return {RECORDS[i].pmid for i in idx}


def test_document_split_has_no_shared_abstract():
    train, test = document_split(RECORDS, 0.3, seed=1)
    assert sorted(train + test) == list(range(30))
    assert not _pmids(train) & _pmids(test) and len(_pmids(test)) == 2
    assert document_split(RECORDS, 0.3, seed=1) == (train, test)


def test_folds_cover_every_sentence_once():
    folds = document_folds(RECORDS, k=3, seed=0)
    tests = [i for _, t in folds for i in t]
    assert sorted(tests) == list(range(30))
    for train, test in folds:
        assert not _pmids(train) & _pmids(test) and sorted(train + test) == list(range(30))
    with pytest.raises(ValueError, match="k must be"):
        document_folds(RECORDS, k=8)


def test_pmid_file(tmp_path):
    p = tmp_path / "ids.txt"
    p.write_text("101\n\n# comment\n103  # inline\n", encoding="utf-8")
    assert read_pmid_file(p) == {"101", "103"}
    train, test = heldout_split(RECORDS, {"101", "103"})
    assert _pmids(test) == {"101", "103"} and "101" not in _pmids(train)
    p.write_text("101\nabc\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ids.txt:2"):
        read_pmid_file(p)
    with pytest.raises(FileNotFoundError, match="--test-pmids"):
        read_pmid_file(tmp_path / "none.txt")


def test_spert_folds(tmp_path):
    sent = [{"tokens": ["a", "b"], "entities": [{"type": "Drug", "start": 0, "end": 1}], "relations": [], "orig_id": i}
            for i in range(4)]
    (tmp_path / "ade_full.json").write_text(json.dumps(sent), encoding="utf-8")
    (tmp_path / "ade_split_0_test.json").write_text(json.dumps(sent[:2]), encoding="utf-8")
    (tmp_path / "ade_split_1_test.json").write_text(json.dumps(sent[2:]), encoding="utf-8")
    full, folds = spert_folds(tmp_path)
    assert full[0].entities == [(0, 1, "DRUG")]
    assert folds == [([2, 3], [0, 1]), ([0, 1], [2, 3])]
    (tmp_path / "ade_split_1_test.json").write_text("[{}]", encoding="utf-8")
    with pytest.raises(ValueError, match="SpERT fold format"):
        spert_folds(tmp_path)


def test_spert_record_maps_token_entities_to_character_spans(tmp_path):
    sent = {"tokens": ["Intravenous", "azithromycin", "-", "induced", "hearing", "loss", "."],
            "entities": [{"type": "Adverse-Effect", "start": 4, "end": 6}, {"type": "Drug", "start": 1, "end": 2}],
            "relations": [], "orig_id": 7}
    (tmp_path / "ade_full.json").write_text(json.dumps([sent]), encoding="utf-8")
    (tmp_path / "ade_split_0_test.json").write_text(json.dumps([sent]), encoding="utf-8")
    record = spert_record(spert_folds(tmp_path)[0][0])
    assert record.text == "Intravenous azithromycin - induced hearing loss ."
    assert record.pmid == "spert-7"
    assert record.ade == [Span(35, 47, "ADE", "hearing loss")]
    assert record.drug == [Span(12, 24, "DRUG", "azithromycin")]
