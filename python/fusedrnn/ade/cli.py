"""The ADE adverse-effect tagger: download the corpus, print its counts, train, evaluate, predict.

``fusedrnn ade download [--dir DIR] [--url URL]`` fetches the corpus files and verifies their sha256;
``fusedrnn ade stats [--data DIR] [--negatives]`` reads the corpus and prints what the reader found
(sentences, mentions, failed offset mappings, drug-inside-ADE relations, skipped lines).

``fusedrnn ade train --preset chapter|best --out MODEL_DIR [--overwrite] [--data DIR] [--test-pmids FILE] [--seed N]
[--epochs N] [--batch-size N] [--units N] [--limit N] [--embeddings PATH] [--negatives] [--[no-]nested]
[--ensemble N] [--[no-]lexicons]``:
holds out the documents of ``--test-pmids`` (default: a seeded 10% of the documents, written to
MODEL_DIR/test_pmids.txt), trains on the rest, saves the model folder, and writes MODEL_DIR/metrics.json
(test scores, history, timings) and MODEL_DIR/learning_curve.png. ``--negatives`` also trains on the
ADE-NEG sentences (no adverse effect) of every document that has no sentence on the test or the inner
validation side; the test and validation sentences stay DRUG-AE's, as in the literature. ``--nested``
(the best preset's default; ``--no-nested`` turns it off) tags ADE and DRUG with two output heads
(ade.model ``Config.nested``), so that a drug inside an adverse effect keeps its span. ``--lexicons``
(the best preset's default; ``--no-lexicons`` turns it off) feeds each token's drug and disease lexicon
tags to the network (ade.lexicons); without the lexicon packages it stops before any work, saying what
to install. ``--ensemble N``
trains N taggers with seeds seed .. seed+N-1 (each with its own validation split and corpus Word2Vec)
and saves them as one model that decodes their summed scores (ade.ensemble); ``evaluate`` and
``predict`` open either kind of folder.

``fusedrnn ade evaluate --model MODEL_DIR [--data DIR] [--test-pmids FILE] [--output FILE] [--quiet]``:
strict span scores per type and micro (and their lenient overlap twins), and the chapter's token
metrics, as JSON (default test set: the model's test_pmids.txt).

``fusedrnn ade predict --model MODEL_DIR --input FILE --output FILE [--format jsonl|text|html] [--no-lexicons]
[--quiet]``: one sentence per input line (UTF-8; a trailing "\r" is dropped); by default (and for a
``.jsonl`` output) one JSON object per non-empty line, ``{"line": n, "text": ..., "spans": [{"start",
"end", "label", "text", "lexicon"}]}`` with character offsets into the line and each span's lexicon
entry (canonical name, DrugBank/MeSH/MedlinePlus IDs) or null (always null with ``--no-lexicons``);
``text`` (a ``.txt`` output) and ``html`` (``.html``) are views to read (ade.views). Empty or blank
lines are skipped and counted (reported on stderr).

``fusedrnn ade cv --preset P --folds 10 --out DIR [train's options]``: k-fold cross-validation by
document (no abstract on both sides); one model folder per fold and DIR/cv.json with each fold's and
the mean (and std) strict span scores and chapter metrics. ``--spert-folds DIR`` trains and scores on
the published sentence-level SpERT folds instead (``--folds`` is then ignored), for comparison with the
literature only: those folds put sentences of one abstract on both sides.

Every command that runs the network shows progress bars on stderr; ``--quiet`` turns them off.

``train``, ``cv``, ``evaluate`` and ``predict`` need the [ade] extra (``pip install 'fusedrnn[ade]'``);
without it they stop before any work, with one line saying so (exit status 2).

Nothing a user owns is lost (fusedrnn._files): every file is written atomically (a temporary file
beside it, fsynced, renamed into place); ``--output`` and ``--out`` are checked before any work and
refused (exit status 2, one line) when they are, or would replace, an input (also through a link)
or cannot be written. ``train`` and ``cv`` build their folder complete in a temporary sibling and
rename it into place; an existing non-empty ``--out`` is refused unless ``--overwrite``, which
replaces it only once the new one is whole. A model folder's ``checksums.json`` is verified on load
(a damaged file is named, never used); a damaged Word2Vec cache entry is reported and rebuilt.
"""

from __future__ import annotations

import argparse
import sys

from .. import _extras, _files

# Actions that tokenize, embed, score or plot: the [ade] extra's packages, checked before any work.
NEEDS_ADE_EXTRA = ("train", "cv", "evaluate", "predict")

def _add_data(parser):
    parser.add_argument("--data", default=None, help="corpus folder (default: $FUSEDRNN_ADE_DIR, then the cache)")


def _add_device(parser):
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where the network runs (cuda: the CUDA build, CuPy and a GPU; default cpu)")


def _add_lexicons(parser):
    parser.add_argument("--lexicons", action=argparse.BooleanOptionalAction, default=None,
                        help="feed each token's drug and disease lexicon tags to the tagger (ade.lexicons; "
                             "default: the preset's)")


def add_arguments(parser):
    sub = parser.add_subparsers(dest="ade_command", metavar="ACTION", required=True)
    dl = sub.add_parser("download", help="fetch DRUG-AE.rel, ADE-NEG.txt, DRUG-DOSE.rel and verify sha256")
    dl.add_argument("--dir", default=None, help="target folder (default: ~/.cache/fusedrnn/ade)")
    dl.add_argument("--url", default=None, help="base URL of the mirror (default: the one in PROVENANCE.md)")
    dl.set_defaults(ade_run=_download)
    st = sub.add_parser("stats", help="read the corpus and print its counts")
    _add_data(st)
    st.add_argument("--negatives", action="store_true", help="also read ADE-NEG.txt")
    st.set_defaults(ade_run=_stats)

    tr = sub.add_parser("train", help="train a tagger preset and save the model folder")
    _add_data(tr)
    tr.add_argument("--preset", choices=["chapter", "best"], required=True)
    tr.add_argument("--out", required=True, help="model folder to write (a new or empty one, unless --overwrite)")
    tr.add_argument("--overwrite", action="store_true",
                    help="replace an existing --out folder (only once the new one is complete)")
    tr.add_argument("--test-pmids", default=None, help="file of PubMed IDs (one per line) to hold out")
    tr.add_argument("--test-fraction", type=float, default=0.1,
                    help="without --test-pmids: the seeded share of documents held out (default 0.1)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    tr.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    tr.add_argument("--units", type=int, default=None, help="override the preset's LSTM units")
    tr.add_argument("--limit", type=int, default=None, help="use only the first N DRUG-AE sentences (short runs)")
    tr.add_argument("--embeddings", default=None, help="word2vec binary or text file (default: corpus Word2Vec)")
    tr.add_argument("--negatives", action="store_true",
                    help="also train on ADE-NEG sentences, of documents on the training side only")
    tr.add_argument("--nested", action=argparse.BooleanOptionalAction, default=None,
                    help="tag ADE and DRUG with two output heads, so that a drug inside an adverse effect is "
                         "found too (default: the preset's; best has it)")
    _add_lexicons(tr)
    tr.add_argument("--ensemble", type=int, default=1, metavar="N",
                    help="train N taggers with seeds seed..seed+N-1 and decode their summed scores (default 1)")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_device(tr)
    tr.set_defaults(ade_run=_train)

    cv = sub.add_parser("cv", help="k-fold document-level cross-validation of a preset")
    _add_data(cv)
    cv.add_argument("--preset", choices=["chapter", "best"], required=True)
    cv.add_argument("--folds", type=int, default=10)
    cv.add_argument("--out", required=True, help="folder for cv.json and one model folder per fold (a new or "
                                                  "empty one, unless --overwrite)")
    cv.add_argument("--overwrite", action="store_true",
                    help="replace an existing --out folder (only once the new one is complete)")
    cv.add_argument("--seed", type=int, default=0)
    cv.add_argument("--epochs", type=int, default=None)
    cv.add_argument("--batch-size", type=int, default=None)
    cv.add_argument("--units", type=int, default=None)
    cv.add_argument("--limit", type=int, default=None)
    cv.add_argument("--embeddings", default=None)
    cv.add_argument("--negatives", action="store_true",
                    help="also train on ADE-NEG sentences, of documents on the training side only")
    cv.add_argument("--spert-folds", default=None, metavar="DIR",
                    help="use the published sentence-level SpERT folds in DIR instead of document folds")
    cv.add_argument("--nested", action=argparse.BooleanOptionalAction, default=None,
                    help="two output heads, ADE and DRUG, as for train")
    _add_lexicons(cv)
    cv.add_argument("--ensemble", type=int, default=1, metavar="N",
                    help="N taggers per fold, as for train (default 1)")
    cv.add_argument("--quiet", action="store_true")
    _add_device(cv)
    cv.set_defaults(ade_run=_cv)

    ev = sub.add_parser("evaluate", help="score a saved model on held-out documents (JSON)")
    ev.add_argument("--model", required=True)
    _add_data(ev)
    ev.add_argument("--test-pmids", default=None, help="default: the model folder's test_pmids.txt")
    ev.add_argument("--output", default=None, help="also write the JSON here")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(ev)
    ev.set_defaults(ade_run=_evaluate)

    from .views import FORMATS  # (a light module: no tokenizer, no network)

    pr = sub.add_parser("predict", help="tag sentences, one per line, into JSON lines, text or HTML")
    pr.add_argument("--model", required=True)
    pr.add_argument("--input", required=True)
    pr.add_argument("--output", required=True, help="where the tagged sentences go")
    pr.add_argument("--format", choices=FORMATS, default=None,
                    help="JSON lines, text with bracketed spans, or an HTML page (default: from --output's "
                         "suffix: .txt text, .html html, else jsonl)")
    pr.add_argument("--no-lexicons", dest="lexicons", action="store_false",
                    help="leave every span's lexicon entry null (saves loading the lexicons, about 2 s, unless "
                         "the model reads them)")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(pr)
    pr.set_defaults(ade_run=_predict)


def _download(args) -> int:
    from .download import MIRROR, download

    if args.dir is not None:
        _files.check_folder_writable(args.dir, "--dir")
    folder = download(args.dir, base_url=args.url or MIRROR)
    print(f"ADE corpus ready in {folder}")
    return 0


def _stats(args) -> int:
    from .corpus import read_corpus

    _, stats = read_corpus(args.data, negatives=args.negatives)
    print(stats.summary())
    for where, why in sorted(stats.malformed.items()):
        print(f"skipped {where}: {why}")
    for failed in stats.failed:
        print(f"failed mapping: {failed}")
    return 0


def _positive_arg(name, value):
    if value is not None and value < 1:
        raise ValueError(f"--{name} must be a positive integer, got {value}")


def _setup(args):
    """Checks the options and that --out may be written, reads the corpus (refusing one without
    sentences), prepares the vectors: (config, positives, negatives,
    vectors, vocab); ``vectors(seed)`` -> (kv, info), the corpus Word2Vec of that seed (trained or
    cached once) or the --embeddings file for every seed; negatives is empty unless --negatives."""
    from .corpus import REL_FILE, NEG_FILE, read_corpus, resolve_data_dir
    from .embeddings import Word2VecParams, corpus_vectors, load_vectors, sentences_of
    from .model import LEXICON_DIM, PRESETS, preset

    for name in ("epochs", "batch_size", "units", "limit", "ensemble"):
        _positive_arg(name.replace("_", "-"), getattr(args, name))
    lexicon_dim = None
    if args.lexicons is not None:  # --lexicons keeps a preset's own size; a preset without them gets LEXICON_DIM
        lexicon_dim = (PRESETS[args.preset].lexicon_dim or LEXICON_DIM) if args.lexicons else 0
    config = preset(args.preset, epochs=args.epochs, batch_size=args.batch_size, units=args.units,
                    negatives=args.negatives or None, nested=args.nested, lexicon_dim=lexicon_dim)
    if config.lexicon_dim:
        _check_lexicons(config, full=False)
    data_dir = resolve_data_dir(args.data)
    inputs = [data_dir / REL_FILE, data_dir / NEG_FILE, args.embeddings, getattr(args, "test_pmids", None),
              getattr(args, "spert_folds", None)]
    _files.check_output_folder(args.out, inputs, args.overwrite)
    embeddings = load_vectors(args.embeddings) if args.embeddings else None
    records, _ = read_corpus(data_dir, negatives=True)
    positives = [r for r in records if not r.negative]
    if not positives:
        raise ValueError(f"{data_dir / REL_FILE}: no usable sentences; nothing to train on")
    if config.lexicon_dim:
        _check_lexicons(config, full=True)
    negatives = [r for r in records if r.negative] if config.negatives else []
    if args.limit:
        positives = positives[: args.limit]
        negatives = [r for r in negatives if r.pmid in {p.pmid for p in positives}]  # of the same abstracts
    if embeddings is None:
        by_seed = {}

        def vectors(seed):
            if seed not in by_seed:
                params = Word2VecParams(seed=seed, split_compounds=config.split_compounds,
                                        epochs=config.word2vec_epochs)
                by_seed[seed] = corpus_vectors(data_dir, records, params, log=_log)
            return by_seed[seed]
        vocab = None
    else:
        def vectors(seed):
            return embeddings, {"file": str(args.embeddings)}
        vocab = sentences_of(records, config.split_compounds)
    return config, positives, negatives, vectors, vocab


def _check_lexicons(config, full):
    """The lexicon packages are installed; with ``full``, the lexicons load too (data files, the cache
    built once, about 12 s), before Word2Vec's training rather than after. Each failure is one line."""
    from .lexicons import check_installed, load_lexicons

    try:
        if full:
            load_lexicons(config.split_compounds)
        else:
            check_installed()
    except _extras.MissingExtra as missing:
        raise _extras.MissingExtra(f"{missing} (or train without them: --no-lexicons)") from None
    except ValueError as error:
        raise ValueError(f"{error} (or train without the lexicons: --no-lexicons)") from None


def _log(msg):
    print(msg, file=sys.stderr)


def _fit_member(args, config, kv, vocab, train_all, test, seed, title, negatives):
    """One tagger trained with ``seed`` -> (tagger, its metrics without the test scores)."""
    import time

    from .. import nn
    from .model import Tagger, inner_split

    fit_idx, val_idx = inner_split(config, train_all, seed)
    fit_records, val_records = [train_all[i] for i in fit_idx], [train_all[i] for i in val_idx]
    held_out = {r.pmid for r in val_records} | {r.pmid for r in test}
    fit_records += [r for r in negatives if r.pmid not in held_out]
    nn.set_random_seed(seed)
    tagger = Tagger.from_vectors(config, kv, vocab, texts=[r.text for r in fit_records], device=args.device)
    _log(f"{title}: {len(fit_records)} training, {len(val_records)} validation, {len(test)} test sentences; "
         f"vocabulary {len(tagger.words)}")
    start = time.perf_counter()
    history = tagger.fit(fit_records, val_records, seed=seed, verbose=0 if args.quiet else 1)
    return tagger, {
        "seed": seed,
        "split": {"train": len(fit_records), "validation": len(val_records), "test": len(test),
                  "test_documents": len({r.pmid for r in test})},
        "train_seconds": time.perf_counter() - start,
        "epochs_run": len(history.epoch),
        "history": history.history,
    }


def _fit_one(args, config, vectors, vocab, train_all, test, out, title, negatives=()):
    """Trains on ``train_all`` (with the preset's validation split) and the ``negatives`` of documents
    on neither the test nor the validation side, saves into ``out``, scores ``test``. With --ensemble
    N, N members with seeds seed .. seed+N-1 (each its own validation split, dropout, and corpus
    Word2Vec), saved and scored as one (ade.ensemble)."""
    from .ensemble import Ensemble

    n = args.ensemble
    names = [title] if n == 1 else [f"{title}, member {k}/{n}" for k in range(1, n + 1)]
    members, reports = [], []
    for k, name in enumerate(names):
        tagger, report = _fit_member(args, config, vectors(args.seed + k)[0], vocab, train_all, test, args.seed + k,
                                     name, negatives)
        members.append(tagger)
        reports.append(report)
    model = members[0] if n == 1 else Ensemble(members)
    out.mkdir(parents=True, exist_ok=True)
    _files.write_text(out / "test_pmids.txt", "".join(f"{p}\n" for p in sorted({r.pmid for r in test})))
    model.save(out, also=["test_pmids.txt"])  # evaluate reads it: checksummed with the model
    # An ensemble's folder shows member 1's curves, and each member folder its own.
    members[0].history.plot(out / "learning_curve.png", title=names[0])
    metrics = {"command": args.command_line, "preset": args.preset, "config": members[0].config.__dict__}
    if n == 1:
        metrics.update({k: v for k, v in reports[0].items() if k != "seed"})
    else:
        for k, (tagger, report, name) in enumerate(zip(members, reports, names), 1):
            tagger.history.plot(out / f"member_{k}" / "learning_curve.png", title=name)
            report["test"] = tagger.evaluate(test) if test else None
        metrics.update(ensemble=n, split=reports[0]["split"],
                       train_seconds=sum(r["train_seconds"] for r in reports), members=reports)
    metrics["test"] = model.evaluate(test) if test else None
    return metrics


def _train(args) -> int:
    import json
    from pathlib import Path

    from .splits import document_split, heldout_split, read_pmid_file

    test_pmids = read_pmid_file(args.test_pmids) if args.test_pmids else None
    config, positives, negatives, vectors, vocab = _setup(args)
    if test_pmids is not None:
        train_idx, test_idx = heldout_split(positives, test_pmids)
        if not test_idx:
            raise ValueError(f"{args.test_pmids}: none of its PubMed IDs is in the corpus")
    else:
        train_idx, test_idx = document_split(positives, args.test_fraction, seed=args.seed)
    if not train_idx:
        raise ValueError("no training sentences are left once the test documents are held out")
    out = Path(args.out)
    with _files.atomic_folder(out, args.overwrite) as folder:  # becomes --out once complete; removed on failure
        metrics = _fit_one(args, config, vectors, vocab, [positives[i] for i in train_idx],
                           [positives[i] for i in test_idx], folder, f"ADE tagger, preset {args.preset}", negatives)
        metrics["embeddings"] = vectors(args.seed)[1]
        _files.write_text(folder / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if metrics["test"]:
        print(_score_line(metrics["test"]))
    print(f"model saved in {out} (metrics.json, learning_curve.png); trained in {metrics['train_seconds']:.1f} s")
    return 0


def _cv(args) -> int:
    import json
    from pathlib import Path

    from .splits import document_folds, spert_folds, spert_record

    if args.spert_folds and args.negatives:
        raise ValueError("--negatives: not with --spert-folds, whose sentences carry no PubMed ID to keep "
                         "an abstract's negatives off its test side")
    config, positives, negatives, vectors, vocab = _setup(args)
    if args.spert_folds:
        sentences, folds = spert_folds(args.spert_folds)
        positives = [spert_record(s) for s in sentences]
    else:
        folds = document_folds(positives, args.folds, seed=args.seed)
    out = Path(args.out)
    with _files.atomic_folder(out, args.overwrite) as folder:  # becomes --out once every fold is done
        results = _cv_folds(args, config, positives, negatives, vectors, vocab, folds, folder)
        summary = _cv_summary(results)
        cv = {"command": args.command_line, "preset": args.preset, "folds": len(folds), "seed": args.seed,
              "split": "spert (sentence-level, published)" if args.spert_folds else "documents",
              "embeddings": vectors(args.seed)[1], "ensemble": args.ensemble, "summary": summary,
              "train_seconds": [m["train_seconds"] for m in results]}
        _files.write_text(folder / "cv.json", json.dumps(cv, indent=2) + "\n")
    print("; ".join(f"{k} {v['mean']:.3f} +- {v['std']:.3f}" for k, v in summary.items() if k.endswith("_f1")
                    or k.startswith("chapter")))
    print(f"cross-validation results in {out / 'cv.json'} (one model folder per fold)")
    return 0


def _cv_folds(args, config, positives, negatives, vectors, vocab, folds, folder) -> list:
    """Trains and scores each fold into folder/fold_k -> each fold's metrics."""
    import json

    results = []
    for k, (train_idx, test_idx) in enumerate(folds, 1):
        if not train_idx or not test_idx:
            raise ValueError(f"fold {k}: {'no training' if not train_idx else 'no test'} sentences; "
                             "use fewer --folds or more sentences")
        m = _fit_one(args, config, vectors, vocab, [positives[i] for i in train_idx], [positives[i] for i in test_idx],
                     folder / f"fold_{k}", f"ADE tagger, preset {args.preset}, fold {k}/{len(folds)}", negatives)
        _files.write_text(folder / f"fold_{k}" / "metrics.json", json.dumps(m, indent=2) + "\n")
        _log(f"fold {k}: " + _score_line(m["test"]))
        results.append(m)
    return results


def _cv_summary(results) -> dict:
    """Mean, std and per-fold values of each strict and overlap span score and chapter metric."""
    import numpy as np

    summary = {}
    for key, suffix in (("span", ""), ("span_overlap", "_overlap")):
        for label in sorted({lab for m in results for lab in m["test"][key]}):
            for what in ("f1", "precision", "recall"):
                values = [m["test"][key].get(label, {}).get(what, 0.0) for m in results]
                summary[f"{label}_{what}{suffix}"] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                                                      "folds": values}
    for what in ("mean_f1", "share_f1_above"):
        values = [m["test"]["chapter"][what] for m in results]
        summary[f"chapter_{what}"] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "folds": values}
    return summary


def _score_line(m) -> str:
    parts = [f"{k} F1 {v['f1']:.3f} (P {v['precision']:.3f} R {v['recall']:.3f})" for k, v in m["span"].items()]
    c = m["chapter"]
    return ("strict span: " + "; ".join(parts) + f" | chapter: mean token F1 {c['mean_f1']:.3f}, "
            f"{100 * c['share_f1_above']:.2f}% of sentences > {c['threshold']}")


def _evaluate(args) -> int:
    import json
    from pathlib import Path

    from .corpus import REL_FILE, read_corpus, resolve_data_dir
    from .ensemble import load_model
    from .splits import heldout_split, read_pmid_file

    pmid_file = Path(args.test_pmids) if args.test_pmids else Path(args.model) / "test_pmids.txt"
    if args.output:
        _files.check_output_file(args.output, [args.model, pmid_file, resolve_data_dir(args.data) / REL_FILE])
    tagger = load_model(args.model, device=args.device)
    pmids = read_pmid_file(pmid_file)
    records, _ = read_corpus(args.data)
    _, test_idx = heldout_split(records, pmids)
    if not test_idx:
        raise ValueError(f"{pmid_file}: none of its PubMed IDs is in the corpus")
    metrics = tagger.evaluate([records[i] for i in test_idx], verbose=0 if args.quiet else 1)
    metrics["test_pmids"] = str(pmid_file)
    text = json.dumps(metrics, indent=2)
    if args.output:
        _files.write_text(args.output, text + "\n")
    print(text)
    print(_score_line(metrics), file=sys.stderr)
    return 0


def read_lines(path) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines of a UTF-8 file; a trailing "\\r" is dropped."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}: line {line} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(n, line[:-1] if line.endswith("\r") else line) for n, line in enumerate(lines, 1)]


def _annotating_lexicons(config):
    """The lexicons that give predicted spans their entries, or None (said once) when they cannot be
    read: the spans are the model's either way."""
    from .lexicons import load_lexicons

    try:
        return load_lexicons(config.split_compounds)
    except (_extras.MissingExtra, ValueError, OSError) as exc:
        _log(f"{exc}; the spans come without lexicon entries")
        return None


def _predict(args) -> int:
    from . import views
    from .ensemble import load_model

    lines = read_lines(args.input)
    out = _files.check_output_file(args.output, [args.input, args.model])  # before the work, not after
    tagger = load_model(args.model, device=args.device)
    kept = [(n, t) for n, t in lines if t.strip()]
    skipped = len(lines) - len(kept)
    fmt = views.format_for(out, args.format)
    lex = _annotating_lexicons(tagger.config) if args.lexicons else None  # before the long part
    spans = tagger.predict_spans([t for _, t in kept], verbose=0 if args.quiet else 1)
    rows = [(n, text, views.annotate(found, lex)) for (n, text), found in zip(kept, spans)]
    _files.write_text(out, views.render(fmt, rows))
    print(f"tagged {len(kept)} lines into {out} ({fmt}); skipped {skipped} empty lines", file=sys.stderr)
    return 0


def _require_cuda():
    """--device cuda without the CUDA build, CuPy or a GPU: a ValueError saying which, before any work."""
    from .. import ops

    try:
        ops.require_cuda()
    except RuntimeError as exc:
        raise ValueError(f"--device cuda: {exc}") from None


def run(args) -> int:
    # Expected user errors (missing corpus, bad bytes, bad download, a refused output, a full disk)
    # as one line, not a traceback.
    if args.ade_command in NEEDS_ADE_EXTRA:
        _extras.require_extra("ade")  # a MissingExtra is reported by cli.main, as one line
    try:
        if getattr(args, "device", "cpu") == "cuda":
            _require_cuda()
        return args.ade_run(args)
    except (OSError, ValueError) as exc:
        print(f"fusedrnn ade {args.ade_command}: error: {exc}", file=sys.stderr)
        return 2
