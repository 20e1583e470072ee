"""Broken on purpose: it takes any reply as the answer to its request.

Otherwise it is _runtime.py, which passes every rule of `supervisor-sim check`.
"""

import sys

from _runtime import Breaks, main

sys.exit(main(Breaks(ignore_reply_ids=True)))
