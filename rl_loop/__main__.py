"""`python -m rl_loop`: the trainer (`rl_loop/entrypoint.py`)."""

import sys

from rl_loop.entrypoint import main

sys.exit(main())
