"""Word vectors for the ADE tagger: a Word2Vec trained on the corpus (cached), or vectors from a file.

Default: a 200-dimensional gensim Word2Vec, skip-gram (``sg=1``), seeded, one worker thread (so a
run is reproducible), a few epochs, trained on the corpus sentences (DRUG-AE and ADE-NEG) tokenized
and lowercased exactly as ``tokens.py`` does for the tagger. The trained vectors are cached under
``<cache>/word2vec/<key>.w2v`` (word2vec binary format: no pickle) where the key is a sha256 of the
corpus files' contents and every training parameter; a second call with the same corpus and
parameters loads them instead of training, after checking the entry's sha256 (ade.cache: a damaged
entry is reported, deleted and trained again).
Training learns no labels, so it may use every sentence (test sentences included), as the chapter did.

``load_vectors(PATH)``: any word2vec file via gensim ``KeyedVectors.load_word2vec_format``, binary
first, then text (the chapter used PubMed/PMC vectors).

Vocabulary and out-of-vocabulary policy (``build_vocabulary``):
- index 0 is padding (a zero vector; ``Embedding(mask_zero=True)`` masks it);
- index 1 is the out-of-vocabulary token: the mean of all the vocabulary's vectors (or zeros when
  ``oov="zero"``);
- indices 2.. are the words, lowercased, that have a vector. With the corpus-trained Word2Vec these
  are the words seen at least ``min_count`` times; rarer words have no vector and map to OOV. With
  external vectors only the words of the given sentences that the file has are kept (files hold
  millions of words); every other word maps to OOV.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .._extras import require
from .cache import cached
from .corpus import NEG_FILE, REL_FILE, Record, default_cache_dir
from .tokens import TOKENIZER_VERSION, token_texts, tokenize

PAD, OOV = "<pad>", "<oov>"


@dataclasses.dataclass(frozen=True)
class Word2VecParams:
    """The training parameters of the corpus Word2Vec (all of them enter the cache key)."""

    dim: int = 200
    sg: int = 1
    window: int = 5
    min_count: int = 2
    epochs: int = 5
    seed: int = 0
    workers: int = 1
    split_compounds: bool = False  # tokens split at "-" and "/" (tokens.tokenize), as the tagger sees them


def sentences_of(records: Iterable[Record], split_compounds: bool = False) -> list[list[str]]:
    """Lowercased Treebank tokens of each record's text, as the tagger sees them."""
    return [token_texts(r.text, tokenize(r.text, split_compounds), lower=True) for r in records]


def corpus_key(files: Sequence[str | os.PathLike], params: Word2VecParams) -> str:
    """sha256 over the corpus files' contents (those that exist) and the parameters."""
    h = hashlib.sha256()
    for f in files:
        path = Path(f)
        h.update(path.name.encode())
        if path.is_file():
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    h.update(json.dumps(dataclasses.asdict(params), sort_keys=True).encode())
    return h.hexdigest()[:24]


def train_word2vec(sentences: Sequence[Sequence[str]], params: Word2VecParams = Word2VecParams()):
    """A gensim Word2Vec on ``sentences``; returns its KeyedVectors."""
    Word2Vec = require("gensim.models", "ade").Word2Vec

    model = Word2Vec(
        sentences=[list(s) for s in sentences], vector_size=params.dim, sg=params.sg, window=params.window,
        min_count=params.min_count, epochs=params.epochs, seed=params.seed, workers=params.workers,
    )
    return model.wv


def corpus_vectors(
    data_dir: str | os.PathLike,
    records: Sequence[Record],
    params: Word2VecParams = Word2VecParams(),
    cache_dir: str | os.PathLike | None = None,
    log=None,
):
    """Corpus-trained vectors, cached by (corpus files, params): (KeyedVectors, info dict).

    ``records``: the sentences to train on (read them with negatives to include ADE-NEG).
    info: ``{"cache": path, "cached": bool, "seconds": training time or 0.0}``.
    """
    KeyedVectors = require("gensim.models", "ade").KeyedVectors

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "word2vec"
    data_dir = Path(data_dir)
    key = corpus_key([data_dir / REL_FILE, data_dir / NEG_FILE], params)
    # The key covers the files, but a caller may pass a subset of their records: add their count.
    key = f"{key}-{len(records)}"
    path = folder / f"{key}.w2v"
    timing = {}

    def build():
        start = time.perf_counter()
        kv = train_word2vec(sentences_of(records, params.split_compounds), params)
        timing["seconds"] = time.perf_counter() - start
        if log:
            log(f"trained Word2Vec ({len(kv)} words, {params.dim} dims) in {timing['seconds']:.1f} s; cached in {path}")
        return kv

    kv, hit = cached(path, {"corpus": key, "tokenizer": TOKENIZER_VERSION, **dataclasses.asdict(params)}, build,
                     save=lambda kv, tmp: kv.save_word2vec_format(str(tmp), binary=True),
                     load=lambda tmp: KeyedVectors.load_word2vec_format(str(tmp), binary=True, unicode_errors="strict"),
                     log=log)
    return kv, {"cache": str(path), "cached": hit, "seconds": timing.get("seconds", 0.0)}


def load_vectors(path: str | os.PathLike):
    """KeyedVectors from a word2vec binary or text file (binary tried first)."""
    KeyedVectors = require("gensim.models", "ade").KeyedVectors

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--embeddings file not found: {path}")
    errors = []
    for binary in (True, False):
        try:
            return KeyedVectors.load_word2vec_format(str(path), binary=binary, unicode_errors="strict")
        except Exception as exc:  # gensim raises ValueError, UnicodeDecodeError, EOFError, ...
            errors.append(f"{'binary' if binary else 'text'}: {type(exc).__name__}: {exc}")
    raise ValueError(f"{path}: not a word2vec binary or text file ({'; '.join(errors)})")


def build_vocabulary(kv, sentences: Iterable[Sequence[str]] | None = None, oov: str = "mean") -> tuple[list[str], np.ndarray]:
    """(words, matrix): ``words[i]`` is row i of the float32 matrix; 0 padding, 1 OOV, then the words.

    With ``sentences`` only their words that ``kv`` has are kept (in first-seen order); without, all of
    ``kv``'s words (in its order). Words are lowercased; a lowercase key's vector wins, else the first cased key's.
    """
    if oov not in ("mean", "zero"):
        raise ValueError(f"oov: expected 'mean' or 'zero', got {oov!r}")
    if sentences is None:
        candidates: Iterable[str] = kv.index_to_key
    else:
        candidates = (w for s in sentences for w in s)
    # Lowercased key -> the file's key: an exact lowercase entry, else the first cased one.
    lower_keys: dict[str, str] = {}
    for k in kv.index_to_key:
        low = k.lower()
        if low not in lower_keys or k == low:
            lower_keys[low] = k
    words, rows, seen = [PAD, OOV], [], set()
    for w in candidates:
        low = w.lower()
        if low in seen:
            continue
        seen.add(low)
        key = lower_keys.get(low)
        if key is None:
            continue
        words.append(low)
        rows.append(np.asarray(kv[key], dtype=np.float32))
    dim = kv.vector_size
    body = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
    matrix = np.zeros((len(words), dim), np.float32)
    matrix[2:] = body
    if oov == "mean" and len(body):
        matrix[1] = body.mean(axis=0)
    return words, matrix


def encode(words_index: dict[str, int], tokens: Sequence[str]) -> list[int]:
    """Token strings -> ids (1 for OOV)."""
    return [words_index.get(t, 1) for t in tokens]
