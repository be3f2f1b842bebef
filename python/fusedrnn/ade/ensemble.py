"""Several taggers trained alike from different seeds, decoded as one.

The members' tag scores are summed, and with a CRF their transition, start and end weights too, so
that Viterbi finds the path the members score best together (a product of their CRF distributions);
without a CRF the summed softmax probabilities give each token's tag. Every member encodes the text
with its own vocabulary; they share the preset, hence the tokens, ``maxlen`` and the tags.

An ensemble folder holds ``ensemble.json`` (``{"members": N}``) and the member folders
``member_1`` .. ``member_N``, each a complete tagger folder (ade.model), and a ``checksums.json``
for ensemble.json; ``load_model`` opens either kind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from .. import _files
from .model import SpanPredictor, Tagger

# The fields that must agree for the members' scores to line up and add up.
_SHARED = ("scheme", "nested", "maxlen", "split_compounds", "crf", "lexicon_spans")


class Ensemble(SpanPredictor):
    """Taggers of one preset (the fields of ``_SHARED`` equal) that predict and score as one."""

    def __init__(self, members: Sequence[Tagger]):
        members = list(members)
        if not members or not all(isinstance(m, Tagger) for m in members):
            raise TypeError("members: expected a non-empty list of Tagger")
        first = members[0].config
        for k, m in enumerate(members[1:], 2):
            differ = [f for f in _SHARED if getattr(m.config, f) != getattr(first, f)]
            if differ:
                raise ValueError(f"members: member {k} differs from member 1 in {', '.join(differ)}")
        self.members = members
        self.config = first

    def potentials(self, texts: Sequence[str], batch_size: int = 64, verbose: int = 0):
        enc, total = None, None
        for m in self.members:
            m_enc, heads = m.potentials(texts, batch_size, verbose)
            if enc is None:  # the spans and lengths are the same for every member
                enc, total = m_enc, heads
                continue
            total = [(scores + s, None if crf is None else tuple(a + b for a, b in zip(crf, c)))
                     for (scores, crf), (s, c) in zip(total, heads)]
        return enc, total

    def save(self, folder: str | os.PathLike, also: Sequence[str] = ()) -> Path:
        """Writes the ensemble folder; ``also`` as for Tagger.save."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for k, m in enumerate(self.members, 1):
            m.save(folder / f"member_{k}")
        _files.write_text(folder / "ensemble.json", json.dumps({"members": len(self.members)}) + "\n")
        _files.write_checksums(folder, ["ensemble.json", *also])  # each member folder has its own
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str = "cpu") -> Ensemble:
        folder = Path(folder)
        _files.verify_checksums(folder, ["ensemble.json"])
        try:
            count = json.loads((folder / "ensemble.json").read_text(encoding="utf-8"))["members"]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{folder}: unreadable ensemble.json ({exc!r})") from None
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{folder}: ensemble.json: members must be a positive integer, got {count!r}")
        return cls([Tagger.load(folder / f"member_{k}", device) for k in range(1, count + 1)])


def load_model(folder: str | os.PathLike, device: str = "cpu") -> Tagger | Ensemble:
    """The tagger or ensemble saved in ``folder``; loading never trains."""
    folder = Path(folder)
    if (folder / "ensemble.json").is_file():
        return Ensemble.load(folder, device)
    return Tagger.load(folder, device)
