"""Every interval, timeout and limit a session uses, with Airflow 3.3's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import DEFAULT_MAX_FRAME_SIZE

__all__ = ["SupervisorConfig"]


@dataclass(frozen=True)
class SupervisorConfig:
    """Knobs of one session. Defaults are Airflow 3.3's.

    Tests set short intervals here instead of sleeping through Airflow's real ones.
    """

    #: Both --comm and --logs must be connected within this many seconds (task_startup_timeout).
    startup_timeout: float = 10.0
    #: [workers] min_heartbeat_interval.
    heartbeat_interval: float = 5.0
    #: [workers] max_failed_heartbeats.
    max_failed_heartbeats: int = 3
    #: [core] task_success_overtime: kill a child still alive this long after its terminal message.
    task_success_overtime: float = 20.0
    #: Seconds between the steps SIGTERM -> SIGKILL of a kill.
    kill_escalation_delay: float = 5.0
    #: [workers] socket_cleanup_timeout: channels still open this long after exit are closed.
    socket_cleanup_timeout: float = 60.0
    #: How long the connection-ownership lookup retries (Airflow: 1 s, every 50 ms).
    ownership_check_timeout: float = 1.0
    #: After a SIGINT/SIGTERM forwarded to the runtime, how long it may take to exit before the
    #: kill escalation starts (Airflow waits forever; a second signal also escalates at once).
    signal_grace: float = 20.0
    #: Overall limit for the whole task (None: none). The child is killed when it passes.
    task_timeout: float | None = None
    #: Largest comm frame accepted; larger ones are rejected from their header.
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    #: Longest log/stdout/stderr line kept; the rest is cut with a visible marker.
    max_log_line: int = 1024 * 1024
    #: Reproduce Airflow exactly where it is a trap (drop invalid requests unanswered, ...).
    airflow_strict: bool = False
    #: Passed to the child as AIRFLOW__LOGGING__LOGGING_LEVEL / ..._NAMESPACE_LEVELS.
    logging_level: str = "INFO"
    namespace_levels: str = ""
    #: [logging] min_length_masked_secret.
    min_length_masked_secret: int = 5
    #: Check that --comm/--logs connections come from the child's process tree.
    check_ownership: bool = True
    #: After answering a request, keep polling the comm socket up to this long (seconds) before
    #: going to sleep, while no other task is runnable. A lock-step runtime's next request then
    #: needs no wake-up of the supervisor: on the benchmark VM more round trips per second and
    #: *less* CPU per request than sleeping at once (docs/performance.md). The poll adapts to
    #: the runtime (``_io.Spin``): down to 10 us for one that thinks between requests. 0 disables
    #: it; at most 1 ms, since nothing else in the process runs while it polls.
    comm_spin: float = 200e-6

    def __post_init__(self) -> None:
        if not 0 <= self.comm_spin <= 1e-3:
            raise ValueError(f"comm_spin must be between 0 and 0.001 s, not {self.comm_spin!r}")
