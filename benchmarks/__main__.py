"""``python -m benchmarks``: the benchmarks suite (see benchmarks/_suite.py)."""

import sys

from ._suite import main

sys.exit(main())
