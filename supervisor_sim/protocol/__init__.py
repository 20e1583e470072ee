"""The wire protocol between Airflow's supervisor and a task runtime, without any I/O.

Feed bytes to a ``FrameDecoder`` and decode its frames with ``decode_request`` /
``decode_response``; build frames with ``encode_request`` / ``encode_response``; check bodies
against the catalogue with ``validate_body``. Nothing here touches a socket or an event loop.
"""

from ._catalogue import (
    ACK as ACK,
)
from ._catalogue import (
    CATALOGUE as CATALOGUE,
)
from ._catalogue import (
    PARSE_MESSAGES as PARSE_MESSAGES,
)
from ._catalogue import (
    SCHEMA_VERSION as SCHEMA_VERSION,
)
from ._catalogue import (
    TERMINAL as TERMINAL,
)
from ._catalogue import (
    TO_SUPERVISOR as TO_SUPERVISOR,
)
from ._catalogue import (
    TO_TASK as TO_TASK,
)
from ._catalogue import (
    MessageSpec as MessageSpec,
)
from ._catalogue import (
    message as message,
)
from ._catalogue import (
    validate_body as validate_body,
)
from ._codec import (
    format_duration as format_duration,
)
from ._codec import (
    from_jsonable as from_jsonable,
)
from ._codec import (
    packb as packb,
)
from ._codec import (
    parse_datetime as parse_datetime,
)
from ._codec import (
    parse_duration as parse_duration,
)
from ._codec import (
    to_jsonable as to_jsonable,
)
from ._codec import (
    unpackb as unpackb,
)
from ._convert import materialize as materialize
from ._errors import (
    ProtocolError as ProtocolError,
)
from ._framing import (
    DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE,
)
from ._framing import (
    FrameDecoder as FrameDecoder,
)
from ._framing import (
    RawFrame as RawFrame,
)
from ._framing import (
    RequestFrame as RequestFrame,
)
from ._framing import (
    ResponseFrame as ResponseFrame,
)
from ._framing import (
    decode_request as decode_request,
)
from ._framing import (
    decode_response as decode_response,
)
from ._framing import (
    encode_request as encode_request,
)
from ._framing import (
    encode_response as encode_response,
)
from ._lines import (
    LineSplitter as LineSplitter,
)
from ._schema import (
    DEFINITIONS as DEFINITIONS,
)
from ._types import (
    Field as Field,
)
from ._types import (
    Model as Model,
)
from ._types import (
    Problem as Problem,
)

__all__ = [
    "ACK",
    "CATALOGUE",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFINITIONS",
    "PARSE_MESSAGES",
    "SCHEMA_VERSION",
    "TERMINAL",
    "TO_SUPERVISOR",
    "TO_TASK",
    "Field",
    "FrameDecoder",
    "LineSplitter",
    "MessageSpec",
    "Model",
    "Problem",
    "ProtocolError",
    "RawFrame",
    "RequestFrame",
    "ResponseFrame",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "format_duration",
    "from_jsonable",
    "materialize",
    "message",
    "packb",
    "parse_datetime",
    "parse_duration",
    "to_jsonable",
    "unpackb",
    "validate_body",
]
