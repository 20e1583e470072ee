"""The stub's state: an SQLite file shaped like the slice of Airflow's metadata DB the Execution
API touches, split by table (see ``StubStore``).

Datetimes are stored as fixed-width UTC text (``2026-01-01T00:00:00.000000Z``) so that text order
is time order; ``api_time`` renders them the way pydantic does on the wire. HTTP semantics live
in ``api.stub``; this package only knows rows.
"""

from ._common import api_time, db_time, utcnow, uuid7
from ._database import StateFileError
from ._stub_store import StubStore
from ._tasks import TaskInstanceRecord, ti_wire

__all__ = [
    "StateFileError",
    "StubStore",
    "TaskInstanceRecord",
    "api_time",
    "db_time",
    "ti_wire",
    "utcnow",
    "uuid7",
]
