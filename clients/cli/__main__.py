"""`python -m clients.cli`: the `rlvr` command line."""

import sys

from clients.cli import main

sys.exit(main())
