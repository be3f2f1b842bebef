"""Run one of the chapter's examples: rnn-step, count-ones or seq2seq (fusedrnn demo NAME --help).

    fusedrnn demo rnn-step [--dtype float32]
    fusedrnn demo count-ones [--cell lstm] [--quick]
    fusedrnn demo seq2seq [--attention dot|general|additive|none] [--bidirectional] [--quick] [--out DIR]

Every example takes --seed, --quick (a smaller, faster configuration) and --out DIR (where PNGs go);
its progress goes to stderr and the table and notes to stdout, whose last line is a JSON object with
the metrics. Exit status 1 when the example reports a failed check ("ok": false).
"""

from __future__ import annotations

import importlib
import json
import sys

from . import _extras, _files
from .examples import EXAMPLES


def add_arguments(parser):
    examples = parser.add_subparsers(dest="example", metavar="NAME", required=True)
    for name, module_name in EXAMPLES.items():
        module = importlib.import_module(module_name, "fusedrnn.examples")
        summary = (module.__doc__ or "").strip().split("\n")[0]
        sub = examples.add_parser(name, help=summary, description=summary)
        sub.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        sub.add_argument("--quick", action="store_true", help="a smaller, faster configuration")
        sub.add_argument("--out", metavar="DIR", default=None,
                         help="folder for the PNG plots (default: no plots)")
        module.add_arguments(sub)
        sub.set_defaults(example_run=module.run)


def run(args) -> int:
    if args.out is not None:
        _extras.require("matplotlib", "plot")  # the plots: before the training, not after (cli.main reports it)
        try:
            _files.check_folder_writable(args.out, "--out")  # before the training, not after
        except ValueError as error:
            print(f"fusedrnn demo {args.example}: error: {error}", file=sys.stderr)
            return 2
    metrics = args.example_run(args)
    sys.stdout.flush()
    print(json.dumps(metrics, sort_keys=False), flush=True)
    return 0 if metrics.get("ok", True) else 1
