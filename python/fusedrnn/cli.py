"""The ``fusedrnn`` command line: ``fusedrnn <subcommand> [options]``.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> exit status`` and whose docstring's first line is the subcommand's help. Adding one
(``demo``, ``ade``) is one entry in SUBCOMMANDS. Modules are imported only to build the parser:
they keep heavy imports (torch) inside ``run``. A package of an extra that is missing
(fusedrnn._extras.MissingExtra) ends any subcommand with one line naming the extra, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

import fusedrnn
from fusedrnn._extras import MissingExtra

# subcommand name -> module (relative to this package)
SUBCOMMANDS = {
    "ade": ".ade.cli",  # the ADE tagger: download, stats, train, evaluate, cv, predict
    "bench": ".bench",  # side-by-side CPU benchmark against the NumPy reference and PyTorch
    "demo": ".demo",  # the chapter's examples: rnn-step, count-ones, seq2seq
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusedrnn", description="Fused RNN, LSTM and GRU layers.")
    parser.add_argument("--version", action="version", version=f"fusedrnn {fusedrnn.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name, __package__)
        summary = (module.__doc__ or "").strip().split("\n")[0]
        sub = subparsers.add_parser(name, help=summary, description=summary)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    """Parses ``argv`` (default: sys.argv[1:]) and runs the subcommand -> exit status."""
    args = build_parser().parse_args(argv)
    # What a saved result records as the command that produced it.
    # The command as a user would type it: no interpreter or install paths.
    args.command_line = shlex.join(["fusedrnn", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.run(args)
    except MissingExtra as error:  # an optional package is missing: the one line that says which extra
        print(f"fusedrnn {args.command}: error: {error}", file=sys.stderr)
        return 2
