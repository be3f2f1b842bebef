"""The ADE adverse-effect corpus: download it, or read it and print its counts.

``fusedrnn ade download [--dir DIR] [--url URL]`` fetches the corpus files and verifies their sha256;
``fusedrnn ade stats [--data DIR] [--negatives]`` reads the corpus and prints what the reader found
(sentences, mentions, failed offset mappings, drug-inside-ADE relations, skipped lines). Training,
evaluation and prediction subcommands come with the models.
"""

from __future__ import annotations

import sys


def add_arguments(parser):
    sub = parser.add_subparsers(dest="ade_command", metavar="ACTION", required=True)
    dl = sub.add_parser("download", help="fetch DRUG-AE.rel, ADE-NEG.txt, DRUG-DOSE.rel and verify sha256")
    dl.add_argument("--dir", default=None, help="target folder (default: ~/.cache/fusedrnn/ade)")
    dl.add_argument("--url", default=None, help="base URL of the mirror (default: the one in PROVENANCE.md)")
    dl.set_defaults(ade_run=_download)
    st = sub.add_parser("stats", help="read the corpus and print its counts")
    st.add_argument("--data", default=None, help="corpus folder (default: $FUSEDRNN_ADE_DIR, then the cache)")
    st.add_argument("--negatives", action="store_true", help="also read ADE-NEG.txt")
    st.set_defaults(ade_run=_stats)


def _download(args) -> int:
    from .download import MIRROR, download

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


def run(args) -> int:
    # Expected user errors (missing corpus, bad bytes, bad download) as one line, not a traceback.
    try:
        return args.ade_run(args)
    except (FileNotFoundError, ValueError, ConnectionError) as exc:
        print(f"fusedrnn ade {args.ade_command}: error: {exc}", file=sys.stderr)
        return 2
