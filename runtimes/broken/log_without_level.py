"""Broken on purpose: its log lines have no level key.

Otherwise it is _runtime.py, which passes every rule of `supervisor-sim check`.
"""

import sys

from _runtime import Breaks, main

sys.exit(main(Breaks(log_without_level=True)))
