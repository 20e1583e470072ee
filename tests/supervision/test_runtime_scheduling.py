"""``runtime_nice``: runtimes run at the supervisor's priority, as under Airflow, unless the
opt-in lowers theirs."""

from __future__ import annotations

import os
import sys

import pytest

from supervisor_sim.supervision import SupervisorConfig, _process

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _nice_of(config: SupervisorConfig) -> int:
    launch = _process.start_runtime(SLEEPER, {}, None, config)
    try:
        assert launch.pid is not None, launch.error
        return os.getpriority(os.PRIO_PROCESS, launch.pid)
    finally:
        launch.close()


def test_runtimes_keep_the_supervisors_priority_by_default():
    """With no setting the runtime's nice value is the supervisor's own."""
    assert _nice_of(SupervisorConfig()) == os.getpriority(os.PRIO_PROCESS, 0)


def test_runtime_nice_is_added_to_the_runtimes_nice_value():
    """runtime_nice = 7 starts the runtime 7 nice levels below the supervisor (at most 19)."""
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert _nice_of(SupervisorConfig(runtime_nice=7)) == min(19, ours + 7)


@pytest.mark.parametrize("value", [-1, 20])
def test_a_runtime_nice_outside_0_to_19_is_refused(value: int):
    """A negative value (raising the runtime's priority) or one past 19 is refused by name."""
    with pytest.raises(ValueError, match="runtime_nice must be between 0 and 19"):
        SupervisorConfig(runtime_nice=value)
