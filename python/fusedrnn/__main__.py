"""``python -m fusedrnn <subcommand>``: the same as the ``fusedrnn`` command."""

import sys

from fusedrnn.cli import main

sys.exit(main())
