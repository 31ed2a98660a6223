"""`python -m runtime`: the server (`runtime/entrypoint.py`)."""

import sys

from runtime.entrypoint import main

sys.exit(main())
