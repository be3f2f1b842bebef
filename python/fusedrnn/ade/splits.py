"""Train/test splits of ADE records: by document (our default), k-fold document CV, held-out PubMed IDs,
and the published sentence-level SpERT folds (for comparison with the literature only).

All document-level functions return lists of record indices and never put one PubMed ID on both
sides, because sentences of one abstract share drugs, effects and wording.

SpERT folds (``spert_folds/``): ``ade_full.json`` and ``ade_split_K_test.json`` are JSON lists of
``{"tokens": [str, ...], "entities": [{"type": "Adverse-Effect"|"Drug", "start": i, "end": j}, ...],
"relations": [...], "orig_id": n}`` with token-index entity spans (end-exclusive). A fold's training
set is ``ade_full.json`` minus its test sentences. The folds split by sentence, so abstracts cross sides.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .corpus import Record, Span

SPERT_LABELS = {"Adverse-Effect": "ADE", "Drug": "DRUG"}


def _pmids(records: Sequence[Record]) -> list[str]:
    return sorted({r.pmid for r in records})


def _indices(records: Sequence[Record], pmids: set[str]) -> list[int]:
    return [i for i, r in enumerate(records) if r.pmid in pmids]


def document_split(records: Sequence[Record], test_fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, test) record indices; a seeded ``test_fraction`` of the PubMed IDs goes to test."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    pmids = _pmids(records)
    perm = np.random.default_rng(seed).permutation(len(pmids))
    n_test = max(1, round(test_fraction * len(pmids)))
    test = {pmids[i] for i in perm[:n_test]}
    return _indices(records, set(pmids) - test), _indices(records, test)


def document_folds(records: Sequence[Record], k: int = 10, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """k (train, test) index pairs; the PubMed IDs are shuffled with ``seed`` and dealt into k groups."""
    pmids = _pmids(records)
    if not 2 <= k <= len(pmids):
        raise ValueError(f"k must be between 2 and the number of documents ({len(pmids)}), got {k}")
    perm = np.random.default_rng(seed).permutation(len(pmids))
    groups = [{pmids[j] for j in perm[f::k]} for f in range(k)]
    return [(_indices(records, set(pmids) - g), _indices(records, g)) for g in groups]


def read_pmid_file(path: str | os.PathLike) -> set[str]:
    """PubMed IDs from a file with one ID per line; blank lines and ``#`` comments are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--test-pmids file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not valid UTF-8") from None
    out = set()
    for lineno, line in enumerate(lines, 1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        if not item.isdigit():
            raise ValueError(f"{path}:{lineno}: {item!r} is not a PubMed ID (digits only, one per line)")
        out.add(item)
    return out


def heldout_split(records: Sequence[Record], test_pmids: set[str]) -> tuple[list[int], list[int]]:
    """(train, test) indices with the records of ``test_pmids`` held out."""
    return _indices(records, set(_pmids(records)) - test_pmids), _indices(records, test_pmids)


@dataclasses.dataclass
class SpertSentence:
    """One SpERT sentence: its tokens and entities as (start token, end token exclusive, "ADE"|"DRUG")."""

    tokens: list[str]
    entities: list[tuple[int, int, str]]
    orig_id: int


def _read_spert_file(path: Path) -> list[SpertSentence]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            SpertSentence(
                list(d["tokens"]),
                sorted({(int(e["start"]), int(e["end"]), SPERT_LABELS[e["type"]]) for e in d["entities"]}),
                int(d["orig_id"]),
            )
            for d in data
        ]
    except FileNotFoundError:
        raise FileNotFoundError(f"SpERT fold file missing: {path}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not in the SpERT fold format ({type(exc).__name__}: {exc})") from None


def spert_folds(folder: str | os.PathLike) -> tuple[list[SpertSentence], list[tuple[list[int], list[int]]]]:
    """(all sentences, folds): folds are (train, test) index lists into ``ade_full.json``'s sentences.

    Test sentences are matched to ``ade_full.json`` by ``orig_id``; a fold's train is the rest.
    """
    folder = Path(folder)
    full = _read_spert_file(folder / "ade_full.json")
    by_id = {s.orig_id: i for i, s in enumerate(full)}
    files = sorted(folder.glob("ade_split_*_test.json"), key=lambda p: int(p.name.split("_")[2]))
    if not files:
        raise FileNotFoundError(f"no ade_split_K_test.json files in {folder}")
    folds = []
    for path in files:
        test = _read_spert_file(path)
        missing = [s.orig_id for s in test if s.orig_id not in by_id]
        if missing:
            raise ValueError(f"{path}: {len(missing)} sentences not in ade_full.json (orig_id {missing[:3]})")
        test_idx = sorted(by_id[s.orig_id] for s in test)
        test_set = set(test_idx)
        folds.append(([i for i in range(len(full)) if i not in test_set], test_idx))
    return full, folds


def spert_record(sentence: SpertSentence) -> Record:
    """A SpERT sentence as a Record: its tokens joined by single spaces, entities as character spans.

    Spaces put a token boundary at every SpERT boundary, so a tagger that tokenizes the joined text can
    recover each entity exactly; the pseudo PubMed ID ``spert-<orig_id>`` makes every sentence its own
    document (these folds are sentence-level)."""
    starts, at = [], 0
    for token in sentence.tokens:
        starts.append(at)
        at += len(token) + 1
    text = " ".join(sentence.tokens)
    spans = {"ADE": [], "DRUG": []}
    for first, last, label in sentence.entities:
        start, end = starts[first], starts[last - 1] + len(sentence.tokens[last - 1])
        spans[label].append(Span(start, end, label, text[start:end]))
    return Record(f"spert-{sentence.orig_id}", text, sorted(spans["ADE"], key=lambda m: (m.start, m.end)),
                  sorted(spans["DRUG"], key=lambda m: (m.start, m.end)))

