"""Supervising runtime children with trio: launch, connect back, serve, watch, report."""

from ._config import SupervisorConfig as SupervisorConfig
from ._events import Event as Event
from ._events import Journal as Journal
from ._events import Violation as Violation
from ._masking import SecretsMasker as SecretsMasker
from ._parse import PARSE_REQUESTS as PARSE_REQUESTS
from ._parse import ParseSession as ParseSession
from ._parse import ParseSpec as ParseSpec
from ._process import StartupError as StartupError
from ._session import TaskOutcome as TaskOutcome
from ._session import TaskSession as TaskSession
from ._session import TaskSpec as TaskSpec

__all__ = [
    "PARSE_REQUESTS",
    "Event",
    "Journal",
    "ParseSession",
    "ParseSpec",
    "SecretsMasker",
    "StartupError",
    "SupervisorConfig",
    "TaskOutcome",
    "TaskSession",
    "TaskSpec",
    "Violation",
]
