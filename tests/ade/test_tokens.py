"""Tokenization spans, BIO labels in both schemes, and predicted tags back to character spans."""

from __future__ import annotations

import pytest

from fusedrnn.ade.corpus import Span
from fusedrnn.ade.tokens import SCHEME_ADE, SCHEME_ADE_DRUG, labels_for, spans_from_tags, token_texts, tokenize

TEXT = "Ifosfamide-induced encephalopathy occurred with ifosfamide."
ADE = Span(0, 33, "ADE", "Ifosfamide-induced encephalopathy")
DRUG_IN = Span(0, 10, "DRUG", "Ifosfamide")
DRUG = Span(48, 58, "DRUG", "ifosfamide")


def test_spans_index_the_original_text():
    spans = tokenize(TEXT)
    assert token_texts(TEXT, spans, lower=False) == [
        "Ifosfamide-induced", "encephalopathy", "occurred", "with", "ifosfamide", "."]
    assert token_texts(TEXT, spans) == ["ifosfamide-induced", "encephalopathy", "occurred", "with", "ifosfamide", "."]
    assert spans[0] == (0, 18) and spans[-1] == (58, 59)


def test_split_compounds_puts_drugs_on_token_boundaries():
    spans = tokenize(TEXT, split_compounds=True)
    assert token_texts(TEXT, spans, lower=False) == [
        "Ifosfamide", "-", "induced", "encephalopathy", "occurred", "with", "ifosfamide", "."]
    assert spans[:3] == [(0, 10), (10, 11), (11, 18)]
    # The nested drug is now on token boundaries: every mention can be recovered exactly.
    assert labels_for(spans, [DRUG_IN, DRUG], SCHEME_ADE_DRUG) == (
        ["B-DRUG", "O", "O", "O", "O", "O", "B-DRUG", "O"], 0)
    text = "ACE-inhibitor/diuretic -- x/"
    assert [text[s:e] for s, e in tokenize(text, split_compounds=True)] == [
        "ACE", "-", "inhibitor", "/", "diuretic", "-", "-", "x", "/"]


def test_quotes_keep_their_spans():
    # The Treebank tokenizer rewrites quotes to `` and ''; the spans must still point at the originals.
    text = 'He had "retinoic acid syndrome." and \'\'x\'\'.'
    spans = tokenize(text)
    # Treebank splits a period only at the end of the string (it expects one sentence), hence "syndrome.".
    assert [text[s:e] for s, e in spans] == ["He", "had", '"', "retinoic", "acid", "syndrome.", '"', "and", "''", "x", "''", "."]


def test_labels_three_and_five_classes():
    spans = tokenize(TEXT)
    tags3, off3 = labels_for(spans, [ADE, DRUG_IN, DRUG], SCHEME_ADE)
    assert tags3 == ["B-ADE", "I-ADE", "O", "O", "O", "O"] and off3 == 0
    tags5, off5 = labels_for(spans, [DRUG_IN, ADE, DRUG], SCHEME_ADE_DRUG)
    # The ADE wins over the nested drug; the nested drug is off token boundaries (inside one token).
    assert tags5 == ["B-ADE", "I-ADE", "O", "O", "B-DRUG", "O"]
    assert off5 == 1


def test_round_trip_and_decoding():
    spans = tokenize(TEXT)
    tags, _ = labels_for(spans, [ADE, DRUG], SCHEME_ADE_DRUG)
    assert spans_from_tags(TEXT, spans, tags) == [ADE, DRUG]
    # A stray I- starts an entity; a change of type closes the previous one.
    assert spans_from_tags(TEXT, spans, ["I-ADE", "I-DRUG", "O", "B-ADE", "I-ADE", "O"]) == [
        Span(0, 18, "ADE", "Ifosfamide-induced"), Span(19, 33, "DRUG", "encephalopathy"),
        Span(43, 58, "ADE", "with ifosfamide")]
    with pytest.raises(ValueError, match="6 tokens"):
        spans_from_tags(TEXT, spans, ["O"])
    with pytest.raises(ValueError, match="IOB2"):
        spans_from_tags(TEXT, spans, ["X"] * 6)
