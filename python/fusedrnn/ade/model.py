"""The ADE taggers: presets, training, a saved model folder, prediction and evaluation (``SpanPredictor``,
shared with the ensembles of ade.ensemble).

Presets (``PRESETS``):

- ``chapter``: the chapter's recipe, with correct labels and masking. Sentences post-padded or
  truncated to 30 tokens; frozen embeddings (``mask_zero=True``), BiLSTM 300 (concat), Dropout 0.2,
  TimeDistributed Dense 60 softmax, Dropout 0.2, TimeDistributed Dense 3 softmax (O, B-ADE, I-ADE),
  categorical cross-entropy, Adam, batch 1, 50 epochs; of the training sentences (in corpus order) the
  first 4000 train and the rest validate (with fewer than 4000+1, the same 4000/4272 fraction).
- ``best``: 5 classes (ADE and DRUG); tokens also split at "-" and "/"; words through the corpus
  Word2Vec (20 epochs, frozen), characters through a BiLSTM 25 per token (its final states joined to
  the word vector) and the token's drug and disease lexicon tags (ade.lexicons) through an 8-wide
  embedding, joined too; maxlen 100; two stacked BiLSTM 200 layers with Dropout 0.3; Dense tag scores into
  a CRF (trained on the paths' likelihood, decoded by Viterbi), one such head for ADE and one for
  DRUG (``nested``, below); Adam 0.003, batch 32, up to 30
  epochs, early stopping (patience 3, best weights restored) on an inner validation split of 10% of
  the training documents. Chosen on fold 1 of the document CV (seed 0), one change at a time
  (README): compound splitting, characters, the longer Word2Vec and the CRF each helped; fine-tuned
  embeddings and more dropout did not. The two heads came last: over the 10 folds they found 93 of
  the 120 drugs inside adverse effects (one 5-tag head: 48) and moved DRUG F1 from 0.891 to 0.897.
  The lexicon tags last (10 folds, benchmarks/results/2026-12-06-ade-lexicons-cv.md): DRUG 0.895 ->
  0.908, ADE unchanged, at the same training time; they need the lexicon packages of the [ade] extra.

Nested drugs: one 5-tag sequence cannot mark a drug inside an adverse effect ("ifosfamide-induced
encephalopathy"); the ADE takes its tokens. ``Config.nested`` (CLI ``--nested``) gives the network one
output head per type, each with its 3 tags (and CRF), so both spans come out; the heads' tags merge
back into the 5-tag sequence (ADE over DRUG) only for the chapter's token metrics.

Truncation: tokens past ``maxlen`` are never seen by the model and are tagged O, so a gold span that
reaches past the ``maxlen``-th token counts as a miss in evaluation (the chapter's preset truncates at
30 tokens, which cuts 14% of the sentences).

A model folder holds ``config.json`` (the preset's parameters, the scheme, the vocabulary size),
``vocab.json`` (the word of each embedding row), ``embeddings.npy`` (the initial table; a fine-tuned
one is in the weights), ``weights.npz`` (``model.save_weights``) and ``checksums.json`` (the sha256
of the four, written last); each file is written atomically. ``Tagger.load`` checks the sums (a
damaged or half-saved folder is a ValueError naming the file), rebuilds the network and loads the
weights, never training.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import _files
from .corpus import Record, Span
from .embeddings import build_vocabulary, encode
from .evaluation import chapter_metrics, overlap_scores, span_scores
from .lexicons import NUM_FEATURES, extend_to_entries, load_lexicons
from .splits import document_split
from .tokens import SCHEME_ADE, SCHEME_ADE_DRUG, SCHEME_DRUG, labels_for, spans_from_tags, token_texts, tokenize

SCHEMES = {"ade": SCHEME_ADE, "ade_drug": SCHEME_ADE_DRUG}
LEXICON_SPANS = ("none", "extend")
# The lexicon features' embedding size: the best preset's, and what ``--lexicons`` gives a preset without them.
LEXICON_DIM = 8
# A saved tagger's folder; its checksums.json holds their sha256, checked on load.
MODEL_FILES = ("config.json", "vocab.json", "embeddings.npy", "weights.npz")


@dataclasses.dataclass
class Config:
    """A tagger's architecture and training parameters (saved as config.json)."""

    preset: str = "custom"
    scheme: str = "ade"
    maxlen: int = 30
    units: int = 300
    layers: int = 1
    hidden_dense: int | None = 60
    dropout: float = 0.2
    batch_size: int = 1
    epochs: int = 50
    learning_rate: float = 0.001
    validation: str = "first"  # "first": first ``train_first`` sentences train; "documents": inner doc split
    train_first: int = 4000
    inner_fraction: float = 0.1
    patience: int | None = None  # early stopping on val_loss when set
    negatives: bool = False  # ADE-NEG sentences of training-side documents train too (ade.cli --negatives)
    split_compounds: bool = False  # also split tokens at "-" and "/" (tokens.tokenize)
    word2vec_epochs: int = 5  # epochs of the corpus Word2Vec (embeddings.Word2VecParams)
    train_embeddings: bool = False  # fine-tune the word vectors (frozen in the chapter)
    char_units: int = 0  # > 0: a character BiLSTM of this size per token, concatenated to the word vector
    char_dim: int = 25  # character embedding size
    max_chars: int = 20  # characters of a token the character BiLSTM reads (longer tokens: the first ones)
    crf: bool = False  # a CRF output layer (tags decoded as the best path) instead of a per-token softmax
    # ade_drug only: one output head (and CRF) per type, ADE and DRUG, on the shared network, so that a
    # drug inside an adverse effect keeps its own span (one 5-tag sequence gives it to the ADE).
    nested: bool = False
    # > 0: each token's drug and disease lexicon tags (ade.lexicons) through an embedding of this size,
    # concatenated to the word (and character) features.
    lexicon_dim: int = 0
    # "extend": a predicted span that overlaps a lexicon entry of its type (DRUG: the drug lexicon, ADE:
    # the disease lexicon) grows to cover it (ade.lexicons.extend_to_entries); "none": spans as decoded.
    lexicon_spans: str = "none"

    def __post_init__(self):
        dim = self.lexicon_dim
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise ValueError(f"lexicon_dim: expected a non-negative integer (0: no lexicon features), got {dim!r}")
        if self.lexicon_spans not in LEXICON_SPANS:
            raise ValueError(f"lexicon_spans: expected one of {', '.join(LEXICON_SPANS)}, got {self.lexicon_spans!r}")

    @property
    def tags(self) -> tuple[str, ...]:
        return SCHEMES[self.scheme]

    @property
    def heads(self) -> tuple[tuple[str, ...], ...]:
        """The tags of each output head: the scheme's, or with ``nested`` the ADE's and the DRUG's."""
        return (SCHEME_ADE, SCHEME_DRUG) if self.nested else (self.tags,)


PRESETS = {
    "chapter": Config(preset="chapter"),
    "best": Config(preset="best", scheme="ade_drug", maxlen=100, units=200, layers=2, hidden_dense=None,
                   dropout=0.3, batch_size=32, epochs=30, learning_rate=0.003, validation="documents", patience=3,
                   split_compounds=True, word2vec_epochs=20, char_units=25, char_dim=25, max_chars=20, crf=True,
                   nested=True, lexicon_dim=LEXICON_DIM),
}


def preset(name: str, **overrides) -> Config:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (have {', '.join(PRESETS)})")
    fields = {k: v for k, v in overrides.items() if v is not None}
    config = dataclasses.replace(PRESETS[name], **fields)
    if config.nested and config.scheme != "ade_drug":
        raise ValueError(f"nested: tags ADE and DRUG apart, so it needs the scheme ade_drug, not {config.scheme!r}")
    return config


def build_network(config: Config, matrix: np.ndarray, num_chars: int = 0):
    """The Keras-like network for ``config`` on the embedding table ``matrix``.

    Inputs: word ids (B, maxlen); with ``config.char_units``, also character ids (B, maxlen, max_chars)
    from a vocabulary of ``num_chars`` (0 padding, 1 unknown); with ``config.lexicon_dim``, also the
    lexicon feature ids (B, maxlen) of ade.lexicons."""
    from .. import nn

    words = nn.Input(shape=(config.maxlen,), dtype="int64")
    x = nn.Embedding(matrix.shape[0], matrix.shape[1], mask_zero=True, embeddings=matrix,
                     trainable=config.train_embeddings)(words)
    inputs = [words]
    if config.char_units:
        chars = nn.Input(shape=(config.maxlen, config.max_chars), dtype="int64")
        # Each token's characters through a BiLSTM (the steps fold into the batch); its two final
        # states join the word vector. Word-level masking comes from the word ids (first input).
        per_token = nn.Sequential([nn.Embedding(num_chars, config.char_dim, mask_zero=True),
                                   nn.Bidirectional(nn.LSTM(config.char_units))])
        x = nn.Concatenate()([x, nn.TimeDistributed(per_token)(chars)])
        inputs.append(chars)
    if config.lexicon_dim:
        lexicon = nn.Input(shape=(config.maxlen,), dtype="int64")
        x = nn.Concatenate()([x, nn.Embedding(NUM_FEATURES, config.lexicon_dim)(lexicon)])
        inputs.append(lexicon)
    for _ in range(config.layers):
        x = nn.Bidirectional(nn.LSTM(config.units, return_sequences=True))(x)
        if config.dropout:
            x = nn.Dropout(config.dropout)(x)
    if config.hidden_dense:
        x = nn.TimeDistributed(nn.Dense(config.hidden_dense, activation="softmax"))(x)
        if config.dropout:
            x = nn.Dropout(config.dropout)(x)
    outs, losses = [], []
    for tags in config.heads:
        if config.crf:
            crf = nn.CRF()
            outs.append(crf(nn.TimeDistributed(nn.Dense(len(tags)))(x)))
            losses.append(crf.loss)
        else:
            outs.append(nn.TimeDistributed(nn.Dense(len(tags), activation="softmax"))(x))
            losses.append("categorical_crossentropy")
    single = len(outs) == 1
    model = nn.Model(inputs if len(inputs) > 1 else words, outs[0] if single else outs)
    model.compile(optimizer=nn.optimizers.Adam(learning_rate=config.learning_rate),
                  loss=losses[0] if single else losses)
    return model


def character_vocabulary(texts: Sequence[str]) -> list[str]:
    """The characters of ``texts`` in first-seen order, after two reserved entries: padding and unknown."""
    chars = dict.fromkeys(ch for text in texts for ch in text if not ch.isspace())
    return ["", "\x00"] + list(chars)


@dataclasses.dataclass
class Encoded:
    """Sentences as padded ids, their token spans and (for records) their one-hot tags."""

    ids: np.ndarray  # (N, maxlen) int64, 0 = padding
    spans: list[list[tuple[int, int]]]  # all token spans of each sentence (also past maxlen)
    chars: np.ndarray | None = None  # (N, maxlen, max_chars) int64 character ids when the model reads them
    y: np.ndarray | list | None = None  # (N, maxlen, C) one-hot, zeros at padding; a list with several heads
    lexicon: np.ndarray | None = None  # (N, maxlen) int64 lexicon feature ids (0 padding) when the model reads them

    @property
    def inputs(self):
        """The network's inputs in build_network's order: the word ids alone, or with the others."""
        extra = [a for a in (self.chars, self.lexicon) if a is not None]
        return [self.ids, *extra] if extra else self.ids


class SpanPredictor:
    """Tags and spans from tag scores, and their evaluation: what a single tagger and an ensemble
    (ade.ensemble) share. Subclasses give ``config`` and ``potentials``."""

    config: Config

    def potentials(self, texts: Sequence[str], batch_size: int = 64, verbose: int = 0):
        """-> (Encoded texts, one (scores, crf) per output head of ``config.heads``): tag scores
        (N, maxlen, C) as NumPy, and the CRF's (transitions (C, C), start (C,), end (C,)) or None.
        With a CRF the best path of the scores decodes; else each step's argmax."""
        raise NotImplementedError

    def gold_mentions(self, record: Record) -> list[Span]:
        return record.ade + (record.drug if self.config.scheme == "ade_drug" else [])

    def head_tags(self, texts: Sequence[str], batch_size: int = 64, verbose: int = 0):
        """-> (IOB2 tags per head (``config.heads``) per text, for every token (O past maxlen); token
        spans per text). verbose=1 shows a progress bar over the batches."""
        from ..nn.crf import viterbi

        if not texts:
            return [[] for _ in self.config.heads], []
        enc, heads = self.potentials(texts, batch_size, verbose)
        lengths = np.maximum((enc.ids != 0).sum(axis=1), 1)
        out = []
        for tags, (scores, crf) in zip(self.config.heads, heads):
            best = viterbi(np, scores, lengths, *crf) if crf is not None else scores.argmax(axis=-1)
            per_text = []
            for i, spans in enumerate(enc.spans):
                k = min(len(spans), self.config.maxlen)
                per_text.append([tags[j] for j in best[i, :k]] + ["O"] * (len(spans) - k))
            out.append(per_text)
        if self.config.lexicon_spans == "extend":
            out = self._extended(texts, enc.spans, out)
        return out, enc.spans

    def _extended(self, texts, spans, heads):
        """The heads' tags with each span grown over the lexicon entries it overlaps (Config.lexicon_spans)."""
        lex = load_lexicons(self.config.split_compounds)
        return snap_to_lexicon(texts, spans, heads, self.config.maxlen, lex, extend_to_entries)

    def predict_tags(self, texts: Sequence[str], batch_size: int = 64,
                     verbose: int = 0) -> tuple[list[list[str]], list[list[tuple[int, int]]]]:
        """IOB2 tags of the scheme for every token of each text (O past maxlen) and the token spans.
        A nested tagger's two sequences merge as the 5-tag labels do: ADE over DRUG."""
        heads, spans = self.head_tags(texts, batch_size, verbose)
        return _merged(heads), spans

    def predict_spans(self, texts: Sequence[str], batch_size: int = 64, verbose: int = 0) -> list[list[Span]]:
        """Character spans (labels ADE / DRUG) for each text; a nested tagger's may overlap."""
        return _spans_of_heads(texts, *self.head_tags(texts, batch_size, verbose))

    def evaluate(self, records: Sequence[Record], batch_size: int = 64, verbose: int = 0) -> dict:
        """Strict span scores (per type and micro) and the chapter's token metrics, side by side, plus
        the lenient overlap scores (``span_overlap``), which show how many errors are boundaries.

        Gold spans are the corpus mentions in the tagger's scheme, off-boundary and past-maxlen ones
        included (both are misses). The chapter metrics compare per-token tags of the scheme over all
        tokens (a nested tagger's merged as in ``predict_tags``).
        """
        if not records:
            raise ValueError("no sentences to evaluate")
        texts = [r.text for r in records]
        heads, spans = self.head_tags(texts, batch_size, verbose)
        pred, pred_tags = _spans_of_heads(texts, heads, spans), _merged(heads)
        gold_tags = [labels_for(s, self.gold_mentions(r), self.config.tags)[0] for r, s in zip(records, spans)]
        gold = [self.gold_mentions(r) for r in records]
        # Sentences with no tokens would make scikit-learn warn; they carry no tags to score.
        keep = [i for i, s in enumerate(spans) if s]
        return {
            "sentences": len(records),
            "span": span_scores(gold, pred),
            "span_overlap": overlap_scores(gold, pred),
            "chapter": chapter_metrics([gold_tags[i] for i in keep], [pred_tags[i] for i in keep]),
        }


def snap_to_lexicon(texts, spans, heads, maxlen: int, lexicons, snap) -> list[list[list[str]]]:
    """Heads' tags (SpanPredictor.head_tags) after ``snap(tags, entries, label)`` for every label that
    a sequence holds, ``entries`` being that label's lexicon matches (Lexicons.for_label,
    Lexicon.matches) among the first ``maxlen`` tokens: the ones the model saw (the others stay O)."""
    out = []
    for tags in heads:
        per_text = []
        for text, token_spans, seq in zip(texts, spans, tags):
            words = token_texts(text, token_spans[:maxlen], lower=True)
            for label in sorted({t[2:] for t in seq if t != "O"}):
                seq = snap(seq, lexicons.for_label(label).matches(words), label)
            per_text.append(seq)
        out.append(per_text)
    return out


def _merged(heads: list[list[list[str]]]) -> list[list[str]]:
    """One tag sequence per text from the heads' (SpanPredictor.head_tags): ADE over DRUG when nested."""
    if len(heads) == 1:
        return heads[0]
    ade, drug = heads
    return [[a if a != "O" else d for a, d in zip(x, y)] for x, y in zip(ade, drug)]


def _spans_of_heads(texts, heads, spans) -> list[list[Span]]:
    """The entities of every head's tags, per text, in order of position."""
    return [sorted((x for tags in per_head for x in spans_from_tags(text, s, tags)),
                   key=lambda x: (x.start, x.end, x.label))
            for text, s, *per_head in zip(texts, spans, *heads)]


class Tagger(SpanPredictor):
    """A network with its vocabulary: encode sentences, fit, predict spans, save and load."""

    def __init__(self, config: Config, words: list[str], matrix: np.ndarray, chars: Sequence[str] = (),
                 device: str = "cpu"):
        self.config = config
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.matrix = np.asarray(matrix, np.float32)
        self.chars = list(chars)
        self.char_index = {ch: i for i, ch in enumerate(self.chars)}
        if config.char_units and len(self.chars) < 2:
            raise ValueError("chars: a character vocabulary (padding, unknown, characters) is needed when char_units > 0")
        # device "cuda": weights, optimizer state and batches on the GPU; the host keeps the encoding,
        # the Viterbi decoding (on predict's NumPy scores) and the evaluation.
        # The lexicons first: without their packages this stops before the network is built.
        uses_lexicons = config.lexicon_dim or config.lexicon_spans != "none"
        self.lexicons = load_lexicons(config.split_compounds) if uses_lexicons else None
        self.model = build_network(config, self.matrix, len(self.chars)).to(device)
        self.history = None

    @classmethod
    def from_vectors(cls, config: Config, kv, sentences=None, oov: str = "mean", texts: Sequence[str] = (),
                     device: str = "cpu") -> Tagger:
        """A new tagger on the vectors ``kv``; ``texts`` give the character vocabulary (char_units > 0)."""
        words, matrix = build_vocabulary(kv, sentences, oov=oov)
        return cls(config, words, matrix, character_vocabulary(texts) if config.char_units else (), device)

    # -- data

    def encode_texts(self, texts: Sequence[str]) -> Encoded:
        c = self.config
        n, T = len(texts), c.maxlen
        ids = np.zeros((n, T), np.int64)
        # Padding tokens read one unknown character: the character BiLSTM needs a step in every row.
        chars = np.zeros((n, T, c.max_chars), np.int64) if c.char_units else None
        if chars is not None:
            chars[:, :, 0] = 1
        lexicon = np.zeros((n, T), np.int64) if c.lexicon_dim else None
        all_spans = []
        for i, text in enumerate(texts):
            spans = tokenize(text, c.split_compounds)
            all_spans.append(spans)
            row = encode(self.index, token_texts(text, spans[:T], lower=True))
            ids[i, : len(row)] = row
            if chars is not None:
                for t, (s, e) in enumerate(spans[:T]):
                    word = text[s:e][: c.max_chars]
                    chars[i, t, : len(word)] = [self.char_index.get(ch, 1) for ch in word]
            if lexicon is not None:
                lexicon[i, : min(len(spans), T)] = self.lexicons.feature_ids(text, spans)[:T]
        return Encoded(ids, all_spans, chars, lexicon=lexicon)

    def encode_records(self, records: Sequence[Record]) -> Encoded:
        enc = self.encode_texts([r.text for r in records])
        ys = []
        for tags in self.config.heads:  # each head's labels take the mentions of its types
            y = np.zeros(enc.ids.shape + (len(tags),), np.float32)
            for i, (r, spans) in enumerate(zip(records, enc.spans)):
                labels, _ = labels_for(spans[: self.config.maxlen], self.gold_mentions(r), tags)
                for t, label in enumerate(labels):
                    y[i, t, tags.index(label)] = 1.0
            ys.append(y)
        enc.y = ys[0] if len(ys) == 1 else ys
        return enc

    # -- training

    def fit(self, train: Sequence[Record], val: Sequence[Record] | None = None, *, seed: int = 0, verbose: int = 1,
            callbacks=None):
        from .. import nn

        c = self.config
        tr = self.encode_records(train)
        val_data = None
        if val:
            va = self.encode_records(val)
            val_data = (va.inputs, va.y)
        cbs = list(callbacks or [])
        if c.patience is not None and val_data is not None:
            cbs.append(nn.EarlyStopping(monitor="val_loss", patience=c.patience, restore_best_weights=True))
        self.history = self.model.fit(tr.inputs, tr.y, batch_size=c.batch_size, epochs=c.epochs, verbose=verbose,
                                      validation_data=val_data, shuffle=True, seed=seed, callbacks=cbs)
        return self.history

    # -- prediction

    def potentials(self, texts: Sequence[str], batch_size: int = 64, verbose: int = 0):
        from .. import nn
        from ..nn.layers.base import to_device

        enc = self.encode_texts(texts)
        scores = self.model.predict(enc.inputs, batch_size=batch_size, verbose=verbose)  # (N, maxlen, tags) per head
        scores = scores if isinstance(scores, list) else [scores]
        heads = []
        for out, head_scores in zip(self.model.outputs, scores):
            layer = out.node.layer  # the head's CRF, or its Dense
            crf = (tuple(to_device(w.data, "cpu") for w in (layer.transitions, layer.start, layer.end))
                   if isinstance(layer, nn.CRF) else None)
            heads.append((head_scores, crf))
        return enc, heads

    # -- persistence

    def save(self, folder: str | os.PathLike, extra: dict | None = None, also: Sequence[str] = ()) -> Path:
        """Writes the model folder; ``also``: names of files already in it to list in its checksums
        (the CLI's test_pmids.txt)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = dataclasses.asdict(self.config)
        config.update({"vocab_size": len(self.words), "dim": int(self.matrix.shape[1]), "tags": list(self.config.tags),
                       "chars": self.chars})
        if self.lexicons is not None:
            config["lexicon_versions"] = self.lexicons.versions
        if extra:
            config["extra"] = extra
        _files.write_text(folder / "config.json", json.dumps(config, indent=2) + "\n")
        _files.write_text(folder / "vocab.json", json.dumps(self.words, ensure_ascii=False) + "\n")
        with _files.atomic_path(folder / "embeddings.npy") as path, open(path, "wb") as f:
            np.save(f, self.matrix, allow_pickle=False)
        self.model.save_weights(folder / "weights.npz")
        # A folder that held an ensemble (ade.ensemble) now holds one tagger: load_model must open this.
        (folder / "ensemble.json").unlink(missing_ok=True)
        _files.write_checksums(folder, [*MODEL_FILES, *also])  # last: a save killed midway fails the check
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str = "cpu") -> Tagger:
        folder = Path(folder)
        if not folder.is_dir():
            what = " (that is a file; a model is a folder)" if folder.exists() else ""
            raise FileNotFoundError(f"model folder not found: {folder}{what}")
        missing = [n for n in MODEL_FILES if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: not a saved ADE model (missing {', '.join(missing)})")
        _files.verify_checksums(folder, MODEL_FILES)
        try:
            raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            words = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{folder}: unreadable config.json or vocab.json ({exc})") from None
        fields = {f.name for f in dataclasses.fields(Config)}
        try:
            config = Config(**{k: v for k, v in raw.items() if k in fields})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{folder / 'config.json'}: {exc}") from None
        try:
            matrix = np.load(folder / "embeddings.npy", allow_pickle=False)
        except Exception as exc:  # noqa: BLE001  NumPy raises many types for a damaged file
            raise ValueError(f"{folder / 'embeddings.npy'}: unreadable ({exc})") from None
        if matrix.shape[0] != len(words):
            raise ValueError(f"{folder}: {len(words)} words but {matrix.shape[0]} embedding rows")
        tagger = cls(config, words, matrix, raw.get("chars", []), device)
        if tagger.lexicons is not None and raw.get("lexicon_versions") != tagger.lexicons.versions:
            warnings.warn(f"{folder}: trained with the lexicons {raw.get('lexicon_versions')}, running with "
                          f"{tagger.lexicons.versions}: its lexicon features may differ", stacklevel=2)
        tagger.model.load_weights(folder / "weights.npz")
        return tagger


def inner_split(config: Config, records: Sequence[Record], seed: int) -> tuple[list[int], list[int]]:
    """(fit, validation) indices of a training side: the chapter's first ``train_first`` sentences
    (``validation="first"``), else a seeded ``inner_fraction`` of its documents (all fit when it has
    only one document)."""
    if config.validation == "first":
        return chapter_split(len(records), config.train_first)
    if len({r.pmid for r in records}) >= 2:
        return document_split(records, config.inner_fraction, seed=seed)
    return list(range(len(records))), []


def chapter_split(n: int, train_first: int = 4000) -> tuple[list[int], list[int]]:
    """The chapter's split of n sentences in order: the first 4000 train, the rest validate
    (with n <= 4000, the same 4000/4272 fraction)."""
    k = train_first if n > train_first else max(1, int(round(n * 4000 / 4272)))
    k = min(k, n - 1) if n > 1 else n
    return list(range(k)), list(range(k, n))
