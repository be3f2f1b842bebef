"""The lexicons' knowledge beyond the tagger's input features, measured on the fold models of one
``fusedrnn ade cv`` run: each variant chosen on every fold's inner validation documents (the split
its training used, ade.model ``inner_split``), reported on its test documents.

    python benchmarks/ade_lexicon_variants.py --cv runs/cv --data DIR [--out FILE.md]

Variants (all at prediction time, on the same trained models; "none" is the spans as decoded):

- ``extend``: a span that overlaps a lexicon entry of its type grows to cover it (the product's
  ``Config.lexicon_spans = "extend"``; DRUG: the drug lexicon, ADE: the disease lexicon);
- ``trim``: a span that holds exactly one entry of its type and more tokens shrinks to the entry;
- ``canonical``: a word outside the vocabulary that is a one-word drug entry reads the word vector of
  its canonical name when that name is in the vocabulary (merging a drug's variants);
- ``seen``: a drug entry whose canonical name was a gold DRUG mention in the fold's training
  sentences (a synonym seen in training), left untagged by the DRUG head, becomes a DRUG span.

The cv folder's cv.json gives the folds, the seed and the preset; the folds and the inner validation
split are rebuilt as ``fusedrnn ade cv`` drew them (document folds, single models).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

VARIANTS = ("none", "extend", "trim", "canonical", "seen")
KEYS = ("ADE", "DRUG", "micro")


def trim_to_entries(tags, entries, label):
    """IOB2 ``tags`` in which a ``label`` entity that holds exactly one lexicon entry (first token, end
    token, canonical) and more tokens shrinks to that entry."""
    out, i, n = list(tags), 0, len(tags)
    while i < n:
        if tags[i] != f"B-{label}":
            i += 1
            continue
        end = i + 1
        while end < n and tags[end] == f"I-{label}":
            end += 1
        inside = [(a, b) for a, b, _ in entries if i <= a and b <= end]
        if len(inside) == 1 and inside[0] != (i, end):
            a, b = inside[0]
            out[i:end] = ["O"] * (end - i)
            out[a:b] = [f"B-{label}"] + [f"I-{label}"] * (b - a - 1)
        i = end
    return out


def _with_tags(model, transform):
    """``model`` whose head tags pass through ``transform(texts, spans, heads)``."""
    original = type(model).head_tags

    def head_tags(texts, batch_size=64, verbose=0):
        heads, spans = original(model, texts, batch_size, verbose)
        return transform(texts, spans, heads), spans

    model.head_tags = head_tags
    return model


def _seen(model, lex, canonicals):
    """A head-tags transform that tags the drug entries of ``canonicals`` left O by the DRUG head."""
    from fusedrnn.ade.tokens import token_texts

    drug_head = [k for k, tags in enumerate(model.config.heads) if "B-DRUG" in tags][0]

    def transform(texts, spans, heads):
        heads = [list(h) for h in heads]
        for i, (text, token_spans) in enumerate(zip(texts, spans)):
            seq = list(heads[drug_head][i])
            words = token_texts(text, token_spans[: model.config.maxlen], lower=True)
            for a, b, canonical in lex.drug.matches(words):
                if canonical in canonicals and all(t == "O" for t in seq[a:b]):
                    seq[a:b] = ["B-DRUG"] + ["I-DRUG"] * (b - a - 1)
            heads[drug_head][i] = seq
        return heads

    return transform


def _canonical(model, lex):
    """``model`` whose out-of-vocabulary one-word drug entries read their canonical name's word."""
    from fusedrnn.ade.embeddings import OOV
    from fusedrnn.ade.tokens import token_texts, tokenize

    original = type(model).encode_texts
    oov = model.index[OOV]

    def encode_texts(texts):
        enc = original(model, texts)
        for i, (text, token_spans) in enumerate(zip(texts, enc.spans)):
            words = token_texts(text, token_spans[: model.config.maxlen], lower=True)
            for a, b, canonical in lex.drug.matches(words):
                name = token_texts(canonical, tokenize(canonical, model.config.split_compounds), lower=True)
                if b - a == 1 and enc.ids[i, a] == oov and len(name) == 1 and name[0] in model.index:
                    enc.ids[i, a] = model.index[name[0]]
        return enc

    model.encode_texts = encode_texts
    return model


def _scores(folder, variant, fit, records):
    from fusedrnn.ade.ensemble import load_model
    from fusedrnn.ade.lexicons import load_lexicons
    from fusedrnn.ade.model import snap_to_lexicon

    model = load_model(folder)
    lex = load_lexicons(model.config.split_compounds)
    if variant == "extend":
        model.config.lexicon_spans = "extend"
    elif variant == "trim":
        _with_tags(model, lambda texts, spans, heads: snap_to_lexicon(texts, spans, heads, model.config.maxlen, lex,
                                                                      trim_to_entries))
    elif variant == "canonical":
        _canonical(model, lex)
    elif variant == "seen":
        canonicals = {e["canonical"] for r in fit for s in r.drug if (e := lex.drug.lookup(s.text))}
        _with_tags(model, _seen(model, lex, canonicals))
    span = model.evaluate(records)["span"]
    return {k: span[k]["f1"] for k in KEYS}


def main(argv=None) -> int:
    from fusedrnn.ade.corpus import read_corpus
    from fusedrnn.ade.ensemble import load_model
    from fusedrnn.ade.model import inner_split
    from fusedrnn.ade.splits import document_folds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cv", required=True, help="a `fusedrnn ade cv` output folder (document folds)")
    parser.add_argument("--data", default=None, help="the corpus folder the cv run read")
    parser.add_argument("--out", default=None, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    cv = json.loads((Path(args.cv) / "cv.json").read_text(encoding="utf-8"))
    if cv["split"] != "documents" or cv.get("ensemble", 1) != 1 or "--limit" in cv["command"]:
        raise SystemExit("--cv: needs a document-fold cv of single models on the whole corpus (no --limit)")
    records, _ = read_corpus(args.data)
    positives = [r for r in records if not r.negative]
    rows = []  # per fold: {"validation"|"test": {variant: {key: f1}}}
    for k, (train_idx, test_idx) in enumerate(document_folds(positives, cv["folds"], seed=cv["seed"]), 1):
        folder = Path(args.cv) / f"fold_{k}"
        train_all = [positives[i] for i in train_idx]
        fit_idx, val_idx = inner_split(load_model(folder).config, train_all, cv["seed"])
        fit = [train_all[i] for i in fit_idx]
        sides = {"validation": [train_all[i] for i in val_idx], "test": [positives[i] for i in test_idx]}
        rows.append({side: {v: _scores(folder, v, fit, recs) for v in VARIANTS} for side, recs in sides.items()})
        print(f"fold {k}: {rows[-1]}", file=sys.stderr)

    def mean(side, variant, key):
        values = [row[side][variant][key] for row in rows]
        return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"

    lines = [f"Fold models: `{cv['command']}`", "",
             "| strict span F1 | " + " | ".join(f"{side}, {v}" for side in ("validation", "test") for v in VARIANTS) + " |",
             "|---" * (1 + 2 * len(VARIANTS)) + "|"]
    for key in KEYS:
        lines.append(f"| {key} | " + " | ".join(mean(side, v, key) for side in ("validation", "test") for v in VARIANTS)
                     + " |")
    lines += ["", "Folds where a variant beat the spans as decoded on validation (ties are no win):", ""]
    for v in VARIANTS[1:]:
        wins = {key: sum(row["validation"][v][key] > row["validation"]["none"][key] for row in rows) for key in KEYS}
        lines.append(f"- {v}: " + ", ".join(f"{key} {wins[key]}/{len(rows)}" for key in KEYS))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
