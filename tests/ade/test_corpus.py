"""Corpus reader on a tiny corpus in the real format: offset mapping, grouping, bad input, locations."""

from __future__ import annotations

import pytest
from ade_fixtures import S1, S2, S_TITLE, write_corpus

from fusedrnn.ade import corpus
from fusedrnn.ade.corpus import Span, read_corpus, resolve_data_dir


@pytest.fixture
def tiny(tmp_path):
    return write_corpus(tmp_path / "ade")


def _by_text(records):
    return {r.text: r for r in records}


def test_grouping_and_repeated_mentions(tiny):
    records, stats = read_corpus(tiny)
    recs = _by_text(records)
    assert set(recs) == {S1, S_TITLE, S2}
    r = recs[S1]
    # The second "rash" maps to its second occurrence through the shared shift, not the first.
    assert r.ade == [Span(13, 17, "ADE", "rash"), Span(39, 43, "ADE", "rash")]
    assert r.drug == [Span(0, 7, "DRUG", "Aspirin"), Span(24, 33, "DRUG", "ibuprofen")]
    assert r.relations == [(0, 0), (1, 1)]  # the repeated relation line is deduplicated
    assert stats.relation_lines == 7


def test_nested_spans_and_failed_mapping(tiny):
    records, stats = read_corpus(tiny)
    r = _by_text(records)[S2]
    assert r.ade == [Span(0, 33, "ADE", "Ifosfamide-induced encephalopathy"), Span(19, 33, "ADE", "encephalopathy")]
    assert r.drug == [Span(0, 10, "DRUG", "Ifosfamide"), Span(48, 58, "DRUG", "ifosfamide")]
    # The drug at a wrong offset is reported, not guessed; its relation is dropped.
    assert stats.failed_mappings == 1
    assert "ifosfamide" in stats.failed[0]
    assert r.relations == [(0, 0), (0, 1)]
    # Title (Aspirin inside "Aspirin-induced rash") and S2 (Ifosfamide inside its ADE).
    assert stats.drug_inside_ade == 2
    assert stats.drug_inside_ade_sentences == 2
    assert (stats.ade_mentions, stats.drug_mentions) == (5, 5)


def test_malformed_lines_skipped_with_counts(tiny):
    records, stats = read_corpus(tiny, negatives=True)
    assert sorted(stats.malformed) == ["ADE-NEG.txt:4", "DRUG-AE.rel:8", "DRUG-AE.rel:9"]
    neg = [r for r in records if r.negative]
    assert [(r.pmid, r.text) for r in neg] == [("111", "No effect was seen."), ("444", "Another quiet sentence.")]
    assert all(not r.ade and not r.drug for r in neg)
    assert stats.negative_records == 2 and stats.records == 5
    assert "5 sentences" in stats.summary()


def test_non_utf8_is_a_clear_error(tiny):
    (tiny / "DRUG-AE.rel").write_bytes(b"1|ok|a|0|1|b|0|1\n2|caf\xe9|a|0|1|b|0|1\n")
    with pytest.raises(ValueError, match=r"line 2 is not valid UTF-8"):
        read_corpus(tiny)


def test_data_dir_resolution(tmp_path, monkeypatch, tiny):
    monkeypatch.setattr(corpus, "default_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.delenv(corpus.ENV_VAR, raising=False)
    assert resolve_data_dir(tiny) == tiny
    with pytest.raises(FileNotFoundError, match=r"cache .*fusedrnn ade download"):
        resolve_data_dir()
    monkeypatch.setenv(corpus.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"\$FUSEDRNN_ADE_DIR .*nowhere.*cache"):
        resolve_data_dir()
    monkeypatch.setenv(corpus.ENV_VAR, str(tiny))
    assert resolve_data_dir() == tiny
    write_corpus(tmp_path / "cache")
    monkeypatch.delenv(corpus.ENV_VAR)
    assert resolve_data_dir() == tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match=r"--data .*missing"):
        resolve_data_dir(tmp_path / "missing")


def test_missing_negatives_file(tiny):
    (tiny / "ADE-NEG.txt").unlink()
    read_corpus(tiny)  # negatives are optional
    with pytest.raises(FileNotFoundError, match="ADE-NEG.txt"):
        read_corpus(tiny, negatives=True)
