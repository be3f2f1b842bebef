"""fusedrnn.torch against torch.nn: training steps and inference, side by side (fusedrnn.bench_torch).

    python benchmarks/torch_dropin.py [--quick] [--cells lstm,gru] [--repeats N] [--threads N] [--save DIR] [--json]

The same as ``fusedrnn bench --torch``; results go to benchmarks/results/ with --save.
"""

import sys

from fusedrnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--torch", *sys.argv[1:]]))
