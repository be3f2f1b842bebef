"""Strict span scores and the chapter's per-sentence token metrics against hand-computed values."""

from __future__ import annotations

import pytest

from fusedrnn.ade.corpus import Span
from fusedrnn.ade.evaluation import (chapter_metrics, overlap_scores, seqeval_scores, sentence_token_scores,
                                     span_scores)


def S(a, b, label):
    return Span(a, b, label, "")


def test_strict_span_scores():
    gold = [[S(0, 4, "ADE"), S(10, 15, "DRUG")], [S(0, 3, "ADE")]]
    # Sentence 1: ADE exact (tp), DRUG boundary off by one (fp + fn). Sentence 2: ADE as DRUG (fp + fn).
    pred = [[S(0, 4, "ADE"), S(10, 14, "DRUG")], [S(0, 3, "DRUG")]]
    s = span_scores(gold, pred)
    assert s["ADE"]["precision"] == 1.0 and s["ADE"]["recall"] == 0.5 and s["ADE"]["f1"] == pytest.approx(2 / 3)
    assert s["DRUG"]["f1"] == 0.0 and s["DRUG"]["predicted"] == 2
    assert s["micro"]["precision"] == pytest.approx(1 / 3) and s["micro"]["recall"] == pytest.approx(1 / 3)
    assert span_scores([[]], [[]])["micro"]["f1"] == 0.0
    with pytest.raises(ValueError, match="1 gold"):
        span_scores([[]], [])


def test_overlap_span_scores():
    gold = [[S(0, 4, "ADE"), S(10, 15, "DRUG")], [S(0, 3, "ADE"), S(5, 9, "ADE")], [S(0, 2, "ADE")]]
    # Sentence 1: DRUG off by one now counts; a stray ADE overlaps nothing. Sentence 2: one wide
    # prediction overlaps both gold ADEs, a DRUG over the first does not (wrong label). Sentence 3:
    # a prediction that only touches the gold span's end (2 == 2) does not overlap it.
    pred = [[S(0, 4, "ADE"), S(10, 14, "DRUG"), S(20, 25, "ADE")], [S(1, 8, "ADE"), S(0, 3, "DRUG")],
            [S(2, 4, "ADE")]]
    s = overlap_scores(gold, pred)
    assert (s["ADE"]["matched_gold"], s["ADE"]["support"]) == (3, 4)
    assert (s["ADE"]["matched_predicted"], s["ADE"]["predicted"]) == (2, 4)
    assert s["ADE"]["recall"] == 0.75 and s["ADE"]["precision"] == 0.5 and s["ADE"]["f1"] == pytest.approx(0.6)
    assert s["DRUG"]["recall"] == 1.0 and s["DRUG"]["precision"] == 0.5
    assert s["micro"]["recall"] == pytest.approx(4 / 5) and s["micro"]["precision"] == pytest.approx(3 / 6)
    strict = span_scores(gold, pred)
    assert strict["ADE"]["tp"] == 1 and "tp" not in s["ADE"]
    assert overlap_scores([[]], [[]])["micro"]["f1"] == 0.0
    with pytest.raises(ValueError, match="1 gold"):
        overlap_scores([[]], [])


def test_seqeval_strict_agrees():
    gold = [["B-ADE", "I-ADE", "O", "B-DRUG"], ["B-ADE", "O"]]
    pred = [["B-ADE", "I-ADE", "O", "O"], ["I-ADE", "O"]]  # strict: the stray I-ADE is no entity
    s = seqeval_scores(gold, pred)
    assert s["ADE"]["precision"] == 1.0 and s["ADE"]["recall"] == 0.5
    assert s["micro"]["precision"] == 1.0 and s["micro"]["recall"] == pytest.approx(1 / 3)


def test_sentence_token_scores_by_hand():
    gold = ["O", "O", "O", "B-ADE", "I-ADE"]
    pred = ["O", "O", "B-ADE", "B-ADE", "O"]
    # O: p 2/3, r 2/3 (support 3); B-ADE: p 1/2, r 1 (support 1); I-ADE: p 0, r 0 (support 1).
    p, r, f = sentence_token_scores(gold, pred)
    assert p == pytest.approx((3 * 2 / 3 + 0.5) / 5)
    assert r == pytest.approx((3 * 2 / 3 + 1) / 5)
    assert f == pytest.approx((3 * 2 / 3 + 2 / 3) / 5)


def test_chapter_metrics_by_hand():
    gold = [["O", "B-ADE"], ["O", "O", "B-ADE", "I-ADE"]]
    pred = [["O", "B-ADE"], ["O", "O", "O", "O"]]
    # Sentence 1 perfect (1, 1, 1). Sentence 2: O p 1/2 r 1 f 2/3 (support 2), others 0 -> p 1/4 r 1/2 f 1/3.
    m = chapter_metrics(gold, pred)
    assert m["mean_f1"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["mean_precision"] == pytest.approx((1 + 0.25) / 2)
    assert m["mean_recall"] == pytest.approx((1 + 0.5) / 2)
    assert m["share_f1_above"] == 0.5 and m["sentences"] == 2
    with pytest.raises(ValueError, match="no sentences"):
        chapter_metrics([], [])
