"""Broken on purpose: it exits 0 without a terminal message.

Otherwise it is _runtime.py, which passes every rule of `supervisor-sim check`.
"""

import sys

from _runtime import Breaks, main

sys.exit(main(Breaks(no_terminal=True)))
