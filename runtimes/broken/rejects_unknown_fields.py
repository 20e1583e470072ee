"""Broken on purpose: its decoders refuse keys they do not know (Java SDK ADR 0003 says: drop them).

Otherwise it is _runtime.py, which passes every rule of `supervisor-sim check`.
"""

import sys

from _runtime import Breaks, main

sys.exit(main(Breaks(reject_unknown_fields=True)))
