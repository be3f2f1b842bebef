"""Spans grown to the lexicon's entries (ade.model Config.lexicon_spans "extend") against the spans as
decoded, on the fold models of one ``fusedrnn ade cv`` run: chosen on each fold's inner validation
documents (the split its training used), reported on its test documents.

    python benchmarks/ade_lexicon_spans.py --cv runs/cv --data DIR [--out benchmarks/results/FILE.md]

The cv folder's cv.json gives the folds, the seed and the preset; the folds and the inner validation
split are rebuilt exactly as ``fusedrnn ade cv`` drew them (document folds only, single models).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

POLICIES = ("none", "extend")
KEYS = ("ADE", "DRUG", "micro")


def _fold_scores(model, records):
    out = {}
    for policy in POLICIES:
        model.config.lexicon_spans = policy
        span = model.evaluate(records)["span"]
        out[policy] = {k: span[k]["f1"] for k in KEYS}
    return out


def main(argv=None) -> int:
    from fusedrnn.ade.corpus import read_corpus
    from fusedrnn.ade.ensemble import load_model
    from fusedrnn.ade.splits import document_folds, document_split

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
    rows = []
    for k, (train_idx, test_idx) in enumerate(document_folds(positives, cv["folds"], seed=cv["seed"]), 1):
        train_all = [positives[i] for i in train_idx]
        _, val_idx = document_split(train_all, 0.1, seed=cv["seed"])
        model = load_model(Path(args.cv) / f"fold_{k}")
        val = _fold_scores(model, [train_all[i] for i in val_idx])
        test = _fold_scores(model, [positives[i] for i in test_idx])
        rows.append((k, val, test))
        print(f"fold {k}: validation {val}; test {test}", file=sys.stderr)

    def mean(which, policy, key):
        values = [row[which][policy][key] for row in rows]
        return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"

    lines = [f"Fold models: `{cv['command']}`", "",
             "| strict span F1 | validation, as decoded | validation, extended | test, as decoded | test, extended |",
             "|---|---|---|---|---|"]
    for key in KEYS:
        lines.append(f"| {key} | {mean(1, 'none', key)} | {mean(1, 'extend', key)} | {mean(2, 'none', key)} | "
                     f"{mean(2, 'extend', key)} |")
    wins = {key: sum(row[1]["extend"][key] > row[1]["none"][key] for row in rows) for key in KEYS}
    lines += ["", "Folds where extending helped on validation: "
              + ", ".join(f"{key} {wins[key]}/{len(rows)}" for key in KEYS)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
