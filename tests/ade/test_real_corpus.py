"""The real ADE corpus from $FUSEDRNN_ADE_DIR: the counts measured on it (see PROVENANCE.md there)."""

from __future__ import annotations

import os

import pytest

from fusedrnn.ade.corpus import read_corpus
from fusedrnn.ade.evaluation import span_scores
from fusedrnn.ade.splits import spert_folds
from fusedrnn.ade.tokens import SCHEME_ADE, SCHEME_ADE_DRUG, labels_for, spans_from_tags, tokenize

DATA = os.environ.get("FUSEDRNN_ADE_DIR")
pytestmark = pytest.mark.skipif(not DATA, reason="FUSEDRNN_ADE_DIR is not set (the real ADE corpus folder)")


@pytest.fixture(scope="module")
def corpus():
    return read_corpus(DATA, negatives=True)


def test_counts(corpus):
    records, stats = corpus
    assert stats.relation_lines == 6821 and not stats.malformed
    assert stats.records - stats.negative_records == 4272
    assert len({r.pmid for r in records if not r.negative}) == 1644
    assert (stats.ade_mentions, stats.drug_mentions) == (5776, 5063)
    assert stats.failed_mappings == 0
    assert (stats.drug_inside_ade, stats.drug_inside_ade_sentences) == (120, 119)
    # 16,695 lines in ADE-NEG.txt, of which 7 repeat an earlier (PubMed ID, sentence).
    assert stats.negative_records == 16688


def test_labels_round_trip(corpus):
    records = [r for r in corpus[0] if not r.negative]
    off_ade = off_drug = 0
    gold, pred = [], []
    for r in records:
        spans = tokenize(r.text)
        off_ade += labels_for(spans, r.ade, SCHEME_ADE)[1]
        off_drug += labels_for(spans, r.drug, SCHEME_ADE_DRUG)[1]
        tags, _ = labels_for(spans, r.ade, SCHEME_ADE)
        gold.append(r.ade)
        pred.append(spans_from_tags(r.text, spans, tags))
    # Mentions off Treebank token boundaries: a tagger can never produce these exactly.
    assert (off_ade, off_drug) == (18, 777)
    # The best strict ADE F1 any token tagger can reach with these tokens.
    assert span_scores(gold, pred)["ADE"]["recall"] == pytest.approx((5776 - 18) / 5776)


def test_spert_folds_cover_the_corpus():
    full, folds = spert_folds(os.path.join(DATA, "spert_folds"))
    assert len(full) == 4272 and len(folds) == 10
    assert sorted(i for _, test in folds for i in test) == list(range(4272))


def test_download_real_files_by_file_url(tmp_path):
    # The sha256 values in download.py are those of the real files (the mirror's copies).
    from pathlib import Path

    from fusedrnn.ade.download import SHA256, download

    out = download(tmp_path / "ade", base_url=Path(DATA).resolve().as_uri())
    assert sorted(p.name for p in out.iterdir()) == sorted(SHA256)


def test_the_word2vec_cache_reads_back_every_word_of_the_corpus(corpus, tmp_path):
    # The cache is in word2vec binary format (no pickle): every token of the real corpus must survive it.
    import numpy as np

    from fusedrnn.ade.embeddings import Word2VecParams, corpus_vectors

    params = Word2VecParams(dim=8, epochs=1, min_count=1)
    trained, info = corpus_vectors(DATA, corpus[0], params, cache_dir=tmp_path)
    cached, again = corpus_vectors(DATA, corpus[0], params, cache_dir=tmp_path)
    assert not info["cached"] and again["cached"]
    assert cached.index_to_key == trained.index_to_key and np.array_equal(cached.vectors, trained.vectors)
