"""Broken on purpose: it sends end_date as an ISO string without a zone.

Otherwise it is _runtime.py, which passes every rule of `supervisor-sim check`.
"""

import sys

from _runtime import Breaks, main

sys.exit(main(Breaks(naive_datetimes=True)))
