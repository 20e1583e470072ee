"""Broken on purpose: it ignores SIGTERM, so a task marked failed from outside goes on until the
supervisor escalates to SIGKILL (the killed-from-outside rule).

Otherwise it is _runtime.py, which passes every rule of `supervisor-sim check`.
"""

import signal
import sys

from _runtime import Breaks, main

signal.signal(signal.SIGTERM, signal.SIG_IGN)
sys.exit(main(Breaks()))
