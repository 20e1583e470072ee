"""The wire protocol between Airflow's supervisor and a task runtime, without any I/O.

Feed bytes to a ``FrameDecoder`` and decode its frames with ``decode_request`` /
``decode_response``; build frames with ``encode_request`` / ``encode_response``; check bodies
against the catalogue with ``validate_body``. Nothing here touches a socket or an event loop.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ._catalogue import (
    ACK as ACK,
    CATALOGUE as CATALOGUE,
    PARSE_MESSAGES as PARSE_MESSAGES,
    SCHEMA_VERSION as SCHEMA_VERSION,
    TERMINAL as TERMINAL,
    TO_SUPERVISOR as TO_SUPERVISOR,
    TO_TASK as TO_TASK,
    MessageSpec as MessageSpec,
    message as message,
    validate_body as validate_body,
)
from ._codec import (
    format_datetime_json as format_datetime_json,
    format_duration as format_duration,
    format_duration_json as format_duration_json,
    from_jsonable as from_jsonable,
    json_encoder as json_encoder,
    json_type as json_type,
    jsonable_as_is as jsonable_as_is,
    packb as packb,
    parse_datetime as parse_datetime,
    parse_duration as parse_duration,
    to_jsonable as to_jsonable,
    unpackb as unpackb,
)
from ._convert import (
    as_pydantic_json as as_pydantic_json,
    materialize as materialize,
)
from ._errors import (
    ProtocolError as ProtocolError,
)
from ._framing import (
    DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE,
    FrameDecoder as FrameDecoder,
    RawFrame as RawFrame,
    RequestFrame as RequestFrame,
    ResponseFrame as ResponseFrame,
    decode_request as decode_request,
    decode_response as decode_response,
    encode_request as encode_request,
    encode_response as encode_response,
)
from ._lax import (
    LaxError as LaxError,
    lax_bool as lax_bool,
    lax_datetime as lax_datetime,
    lax_duration as lax_duration,
    lax_float as lax_float,
    lax_int as lax_int,
    lax_str as lax_str,
)
from ._limits import (
    LIMITS as LIMITS,
    Limits as Limits,
)
from ._lines import (
    Line as Line,
    LineSplitter as LineSplitter,
)
from ._masking import (
    MASK as MASK,
    SecretsMasker as SecretsMasker,
    is_sensitive_name as is_sensitive_name,
)
from ._schema import (
    DEFINITIONS as DEFINITIONS,
)
from ._states import (
    DAG_RUN_STATES as DAG_RUN_STATES,
    FINISHED_DAG_RUN_STATES as FINISHED_DAG_RUN_STATES,
    INTERMEDIATE_TI_STATES as INTERMEDIATE_TI_STATES,
    TERMINAL_NON_SUCCESS_TI_STATES as TERMINAL_NON_SUCCESS_TI_STATES,
    TERMINAL_TI_STATES as TERMINAL_TI_STATES,
    TI_STATES as TI_STATES,
    UNFINISHED_DAG_RUN_STATES as UNFINISHED_DAG_RUN_STATES,
)
from ._tracebacks import (
    exception_summary as exception_summary,
    render_traceback as render_traceback,
)
from ._types import (
    DATETIME as DATETIME,
    AnyOf as AnyOf,
    Field as Field,
    ListOf as ListOf,
    MapOf as MapOf,
    Model as Model,
    Problem as Problem,
    Ref as Ref,
    TupleOf as TupleOf,
    Type as Type,
)

__all__ = [
    "ACK",
    "CATALOGUE",
    "DAG_RUN_STATES",
    "DATETIME",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFINITIONS",
    "FINISHED_DAG_RUN_STATES",
    "INTERMEDIATE_TI_STATES",
    "LIMITS",
    "MASK",
    "PARSE_MESSAGES",
    "SCHEMA_VERSION",
    "TERMINAL",
    "TERMINAL_NON_SUCCESS_TI_STATES",
    "TERMINAL_TI_STATES",
    "TI_STATES",
    "TO_SUPERVISOR",
    "TO_TASK",
    "UNFINISHED_DAG_RUN_STATES",
    "AnyOf",
    "DagStructure",
    "Field",
    "FrameDecoder",
    "LaxError",
    "Limits",
    "Line",
    "LineSplitter",
    "ListOf",
    "MapOf",
    "MessageSpec",
    "Model",
    "Problem",
    "ProtocolError",
    "RawFrame",
    "Ref",
    "RequestFrame",
    "ResponseFrame",
    "SecretsMasker",
    "TaskNode",
    "TupleOf",
    "Type",
    "as_pydantic_json",
    "dag_structure",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "exception_summary",
    "format_datetime_json",
    "format_duration",
    "format_duration_json",
    "from_jsonable",
    "is_sensitive_name",
    "json_encoder",
    "json_type",
    "jsonable_as_is",
    "lax_bool",
    "lax_datetime",
    "lax_duration",
    "lax_float",
    "lax_int",
    "lax_str",
    "materialize",
    "message",
    "packb",
    "parse_datetime",
    "parse_duration",
    "render_traceback",
    "to_jsonable",
    "unpackb",
    "validate_body",
    "validate_serialized_dag",
]

if TYPE_CHECKING:
    from ._dags import (
        DagStructure as DagStructure,
        TaskNode as TaskNode,
        dag_structure as dag_structure,
        validate_serialized_dag as validate_serialized_dag,
    )

# Serialized DAGs are loaded on first use: run-task never needs them.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        name: "_dags"
        for name in ("DagStructure", "TaskNode", "dag_structure", "validate_serialized_dag")
    },
)
