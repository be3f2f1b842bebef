"""Thread scaling of the CPU kernels against torch at the same thread count (issue 15, part 3).

For each thread count (default: 1, 2, 4, ... up to the logical CPUs), the LSTM and GRU rows of
``fusedrnn bench``'s grid run exactly as the benchmark runs them (fusedrnn.bench.bench_row: the
outputs checked against torch and the NumPy reference, then ours and torch timed interleaved,
medians), with ours and torch both set to that many threads. Writes a dated markdown table and a
PNG (time per call against threads, ours solid and torch dashed, one panel per row; inference and
forward+backward) to --save.

    python benchmarks/scaling.py --save benchmarks/results            # every power of two up to the CPUs
    python benchmarks/scaling.py --threads 1,2,4,8,16 --repeats 5 --save benchmarks/results
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import shlex
import sys

import fusedrnn
from fusedrnn import _files, bench


def thread_counts(limit: int) -> list[int]:
    counts, n = [], 1
    while n <= limit:
        counts.append(n)
        n *= 2
    return counts if counts[-1] == limit else counts + [limit]


def measure(counts, repeats, progress=print, quick=False) -> dict:
    """-> {"rows": [label, ...], "runs": {threads: [bench_row result per row]}} for the LSTM and GRU grid."""
    torch = bench._import_torch()
    if torch is None:
        raise SystemExit("scaling.py compares against torch at each thread count: pip install fusedrnn[bench]")
    # The NumPy reference checks every row but is not timed: it is no peer in a scaling curve.
    rows = [dataclasses.replace(row, time_reference=False) for row in bench.grid(("lstm", "gru"), quick)]
    previous = fusedrnn.get_num_threads(), torch.get_num_threads()
    runs = {}
    try:
        for n in counts:
            fusedrnn.set_num_threads(n)
            torch.set_num_threads(n)
            runs[n] = []
            for row in rows:
                progress(f"{n} threads: {row.label} ...")
                runs[n].append(bench.bench_row(row, repeats, torch))
    finally:
        fusedrnn.set_num_threads(previous[0])
        torch.set_num_threads(previous[1])
    return {"rows": [row.label for row in rows], "runs": runs, "torch": torch.__version__}


def table_lines(result) -> list[str]:
    counts = sorted(result["runs"])
    header = ["shape", "kind", *(f"ours {n}T ms" for n in counts), *(f"torch {n}T ms" for n in counts),
              *(f"torch/ours {n}T" for n in counts)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for k, label in enumerate(result["rows"]):
        for kind, name in (("fwd", "inference"), ("fwd+bwd", "fwd+bwd")):
            ours = [result["runs"][n][k]["ms"]["ours"][kind] for n in counts]
            torch = [result["runs"][n][k]["ms"]["torch"][kind] for n in counts]
            cells = [label, name, *(f"{v:.3g}" for v in ours), *(f"{v:.3g}" for v in torch),
                     *(f"{t / o:.2f}" for o, t in zip(ours, torch))]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def plot(result, path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = sorted(result["runs"])
    labels = result["rows"]
    columns = 4
    rows = (len(labels) + columns - 1) // columns
    fig = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for k, (ax, label) in enumerate(zip(axes, labels)):
        for kind, color in (("fwd", "tab:blue"), ("fwd+bwd", "tab:red")):
            for peer, style in (("ours", "-"), ("torch", "--")):
                ms = [result["runs"][n][k]["ms"][peer][kind] for n in counts]
                ax.plot(counts, ms, style, color=color, marker="o", markersize=3,
                        label=f"{peer} {'inference' if kind == 'fwd' else 'fwd+bwd'}")
        ax.set_title(label, fontsize=8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.set_xlabel("threads")
        ax.set_ylabel("ms per call")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    for ax in axes[len(labels):]:
        ax.set_visible(False)
    _files.save_figure(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default=None, metavar="LIST",
                        help="comma-separated thread counts (default: 1, 2, 4, ... up to the logical CPUs)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per row and thread count")
    parser.add_argument("--save", metavar="DIR", help="write DIR/YYYY-MM-DD-cpu-scaling.md and .png")
    parser.add_argument("--quick", action="store_true", help="the benchmark's tiny grid (a smoke test)")
    args = parser.parse_args(argv)
    counts = ([int(n) for n in args.threads.split(",")] if args.threads
              else thread_counts(os.cpu_count() or 1))
    if args.save:
        _files.check_folder_writable(args.save, "--save")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # others' work on a shared machine
    result = measure(counts, args.repeats, progress=lambda line: print(line, file=sys.stderr, flush=True),
                     quick=args.quick)
    lines = table_lines(result)
    print("\n".join(lines))
    failed = [label for n, rows in result["runs"].items() for label, r in zip(result["rows"], rows)
              if not r["check_ok"]]
    if args.save:
        stem = f"{datetime.date.today().isoformat()}-cpu-scaling"
        figure = os.path.join(args.save, f"{stem}.png")
        plot(result, figure)
        header = [f"CPU: {bench.cpu_model()} ({os.cpu_count()} logical CPUs); threads {counts} for ours and "
                  f"torch {result['torch']} alike; fusedrnn {fusedrnn.__version__}; {args.repeats} rounds; "
                  f"1-min load average before: {'n/a' if load is None else f'{load:.2f}'}"]
        footer = [f"Figure: {os.path.basename(figure)} (ms per call against threads, log-log).",
                  "ms: median of the rounds; each round runs ours and torch in turn (rotating order) after "
                  "0.15 s of untimed calls (fusedrnn.bench.time_interleaved). inference = ours with "
                  "need_grad=False, torch under no_grad; fwd+bwd keeps what the backward needs and runs it.",
                  "Every row is checked against torch and the NumPy reference at every thread count "
                  f"({'all ok' if not failed else 'FAILED: ' + ', '.join(failed)})."]
        saved = bench.write_markdown(args.save, stem, "CPU thread scaling against torch",
                                     shlex.join(["python", "benchmarks/scaling.py", *(argv or sys.argv[1:])]),
                                     header, lines, footer)
        print(f"saved {saved} and {figure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
