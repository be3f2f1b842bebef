"""Tokenization with character spans, BIO labels, and predicted tags back to character spans.

Tokens come from nltk's ``TreebankWordTokenizer().span_tokenize`` (pure regular expressions: no
``nltk.download`` needed). Each token is ``(start, end)`` into the original sentence, so predictions map
back to exact character offsets. ``split_compounds=True`` also splits tokens at "-" and "/" (each
separator becomes a token of its own): the corpus writes many drugs inside compounds
("azithromycin-induced", "ACE-inhibitor/diuretic"), which Treebank keeps whole. Lowercasing (as in the chapter) applies only to the vocabulary side,
``token_texts(..., lower=True)``; the spans always index the original text.

Label schemes (IOB2):
- ``SCHEME_ADE`` (the chapter's 3 classes): O, B-ADE, I-ADE.
- ``SCHEME_ADE_DRUG`` (5 classes): O, B-ADE, I-ADE, B-DRUG, I-DRUG. Where a drug lies inside an
  adverse-effect span ("ifosfamide-induced encephalopathy"), the adverse effect wins: its tokens are
  labelled ADE, the nested drug gets no tags (the corpus has 120 such relations; see corpus.py).
  A nested tagger (ade.model ``Config.nested``) instead tags each type in its own sequence,
  ``SCHEME_ADE`` and ``SCHEME_DRUG``, where the nested drug keeps its tags.

A mention is labelled on the tokens it overlaps. When a mention does not start and end on token
boundaries ("azithromycin" inside the token "azithromycin-induced") its tokens cover a wider span,
so it can never be recovered exactly by a tagger; ``labels_for`` counts such mentions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .._extras import require
from .corpus import Span

SCHEME_ADE = ("O", "B-ADE", "I-ADE")
SCHEME_ADE_DRUG = ("O", "B-ADE", "I-ADE", "B-DRUG", "I-DRUG")
SCHEME_DRUG = ("O", "B-DRUG", "I-DRUG")  # the drug head of a nested tagger (ade.model Config.nested)

_TOKENIZER = require("nltk.tokenize", "ade").TreebankWordTokenizer()


_COMPOUND_SEPARATORS = re.compile(r"[-/]")
# The version of ``tokenize``'s own rules, in the keys of the caches built on its tokens (the Word2Vec
# vectors, the tokenized lexicons): bump it when a rule here changes, so that those are rebuilt.
TOKENIZER_VERSION = 1


def tokenize(text: str, split_compounds: bool = False) -> list[tuple[int, int]]:
    """Token spans ``[(start, end), ...]`` (end-exclusive) of ``text``, in order."""
    try:
        spans = list(_TOKENIZER.span_tokenize(text))
    except ValueError:
        # Older nltk versions fail to align tokens whose quotes the tokenizer rewrote (" -> `` or '');
        # fall back to whitespace-separated pieces so that every character stays covered.
        spans = _whitespace_spans(text)
    spans = [(int(s), int(e)) for s, e in spans]
    if split_compounds:
        spans = [piece for s, e in spans for piece in _split_compound(text, s, e)]
    return spans


def _split_compound(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The pieces of the token text[start:end] around each "-" or "/", the separators included."""
    pieces, at = [], start
    for m in _COMPOUND_SEPARATORS.finditer(text, start, end):
        if m.start() > at:
            pieces.append((at, m.start()))
        pieces.append((m.start(), m.end()))
        at = m.end()
    if at < end:
        pieces.append((at, end))
    return pieces


def _whitespace_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], None
    for i, ch in enumerate(text + " "):
        if ch.isspace():
            if start is not None:
                spans.append((start, i))
                start = None
        elif start is None:
            start = i
    return spans


def token_texts(text: str, spans: Sequence[tuple[int, int]], *, lower: bool = True) -> list[str]:
    """The token strings for the vocabulary, lowercased by default as in the chapter."""
    return [text[s:e].lower() if lower else text[s:e] for s, e in spans]


def labels_for(
    token_spans: Sequence[tuple[int, int]],
    mentions: Sequence[Span],
    scheme: Sequence[str] = SCHEME_ADE,
) -> tuple[list[str], int]:
    """IOB2 tags, one per token, for ``mentions`` under ``scheme``; plus the count of mentions off token boundaries.

    Mentions whose label is not in the scheme (DRUG under SCHEME_ADE) are ignored. ADE mentions are
    written after drugs so that they win on overlap (the documented policy). A mention that overlaps
    no token is counted as off-boundary and gets no tags.
    """
    labels = {tag[2:] for tag in scheme if tag != "O"}
    tags = ["O"] * len(token_spans)
    off_boundary = 0
    # DRUG first, then ADE overwrites: the adverse effect wins where they overlap.
    for mention in sorted(mentions, key=lambda m: (m.label == "ADE", m.start)):
        if mention.label not in labels:
            continue
        covered = [i for i, (s, e) in enumerate(token_spans) if s < mention.end and mention.start < e]
        if not covered or token_spans[covered[0]][0] != mention.start or token_spans[covered[-1]][1] != mention.end:
            off_boundary += 1
        for k, i in enumerate(covered):
            tags[i] = ("B-" if k == 0 else "I-") + mention.label
    return tags, off_boundary


def spans_from_tags(text: str, token_spans: Sequence[tuple[int, int]], tags: Sequence[str]) -> list[Span]:
    """Character spans of the entities in IOB2 ``tags`` (lenient decoding: a stray I- starts an entity).

    An entity runs from a B-X (or an I-X that does not continue an X) over the following I-X tokens;
    its span runs from its first token's start to its last token's end in ``text``.
    """
    if len(tags) != len(token_spans):
        raise ValueError(f"{len(tags)} tags for {len(token_spans)} tokens")
    out: list[Span] = []
    current: list | None = None  # [label, start, end]
    for (s, e), tag in zip(token_spans, tags):
        prefix, _, label = tag.partition("-")
        if prefix == "I" and current is not None and current[0] == label:
            current[2] = e
            continue
        if current is not None:
            out.append(Span(current[1], current[2], current[0], text[current[1] : current[2]]))
            current = None
        if prefix in ("B", "I"):
            current = [label, s, e]
        elif tag != "O":
            raise ValueError(f"not an IOB2 tag: {tag!r}")
    if current is not None:
        out.append(Span(current[1], current[2], current[0], text[current[1] : current[2]]))
    return out
