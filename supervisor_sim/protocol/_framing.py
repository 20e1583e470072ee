"""Length-prefixed msgpack frames, sans-IO.

A frame is a 4-byte big-endian payload length followed by that many bytes of msgpack holding one
array: ``[id, body, context_carrier]`` from the runtime, ``[id, body, error]`` from the
supervisor (protocol.md §1.2). ``FrameDecoder`` is fed bytes in any chunking and hands back
complete frames; it does no I/O, so it is tested on plain bytes and driven by any transport.

It never allocates from an untrusted length: a header announcing more than ``max_frame_size``
is rejected as soon as its 4 bytes are in, and the announced payload is then discarded as it
arrives instead of being buffered, which keeps the stream in step for the frames that follow.
A request nesting deeper than ``Limits.max_frame_depth`` is refused by ``decode_request``
(``frame-too-deep``), with its id when the id is readable, so it can still be answered.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._codec import first_int, packb, unpack_counted, unpackb
from ._errors import ProtocolError
from ._limits import LIMITS, Limits, depth_exceeds

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "FrameDecoder",
    "RawFrame",
    "RequestFrame",
    "ResponseFrame",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

DEFAULT_MAX_FRAME_SIZE = LIMITS.max_frame_size
_U32_MAX = 2**32 - 1
_HEADER = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One complete frame's payload and where its header started in the stream."""

    payload: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class RequestFrame:
    """A runtime -> supervisor frame, ``[id, body, context_carrier]``."""

    id: int
    body: dict[str, Any] | None
    context_carrier: dict[str, Any] | None = None
    payload: bytes = b""
    offset: int = 0
    elements: int = 3

    @property
    def type(self) -> str | None:
        body = self.body
        return (
            body.get("type")
            if isinstance(body, dict) and isinstance(body.get("type"), str)
            else None
        )


@dataclass(frozen=True, slots=True)
class ResponseFrame:
    """A supervisor -> runtime frame, ``[id, body, error]``."""

    id: int
    body: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    payload: bytes = b""
    offset: int = 0
    elements: int = 3

    @property
    def type(self) -> str | None:
        for part in (self.body, self.error):
            if isinstance(part, dict) and isinstance(part.get("type"), str):
                return part["type"]
        return None


class FrameDecoder:
    """Incremental decoder: ``feed()`` bytes, then iterate for complete ``RawFrame``s.

    Iteration raises ``ProtocolError`` for a frame that breaks the framing rules (a zero-length
    frame, a length over ``max_frame_size``) after stepping past it, so the caller may report it
    and keep iterating. ``end_of_stream()`` reports a frame cut short by EOF.
    """

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if not 1 <= max_frame_size <= _U32_MAX:
            raise ValueError(f"max_frame_size must be between 1 and {_U32_MAX}")
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._pos = 0  # read position inside _buf
        self._base = 0  # stream offset of _buf[0]
        self._skip = 0  # bytes of an oversized payload still to discard
        self._skip_offset = 0
        self.bytes_discarded = 0

    @property
    def offset(self) -> int:
        """Stream offset of the next unread byte."""
        return self._base + self._pos

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            self.bytes_discarded += n
            self._base += n
            data = memoryview(data)[n:]
        if data:
            self._buf += data

    def __iter__(self) -> Iterator[RawFrame]:
        while (frame := self.next_frame()) is not None:
            yield frame

    def next_frame(self) -> RawFrame | None:
        """The next complete frame, or None until more bytes arrive."""
        if self._skip:
            return None
        available = len(self._buf) - self._pos
        if available < 4:
            self._compact()
            return None
        start = self._pos
        (length,) = _HEADER.unpack_from(self._buf, start)
        offset = self._base + start
        if length == 0:
            self._pos += 4
            raise ProtocolError(
                "zero-length-frame",
                "a frame with length 0 carries no message (Airflow's supervisor would spin "
                "forever on it; its runtime cannot decode it)",
                offset=offset,
                raw=bytes(4),
            )
        if length > self.max_frame_size:
            self._pos += 4
            rest = len(self._buf) - self._pos
            take = min(rest, length)
            self._pos += take
            self.bytes_discarded += take
            self._skip = length - take
            self._compact()
            raise ProtocolError(
                "frame-too-large",
                f"length header announces {length} bytes, over the {self.max_frame_size}-byte "
                "limit; the payload is discarded without being buffered",
                offset=offset,
                raw=_HEADER.pack(length),
            )
        if available - 4 < length:
            return None
        payload = bytes(self._buf[start + 4 : start + 4 + length])
        self._pos = start + 4 + length
        self._compact()
        return RawFrame(payload, offset)

    def pending(self) -> bytes:
        """The bytes buffered but not yet part of a returned frame (for reporting at EOF)."""
        return bytes(self._buf[self._pos :])

    def end_of_stream(self) -> None:
        """Call at EOF: raises ``ProtocolError`` if a frame was cut short."""
        if self._skip:
            skipped, self._skip = self._skip, 0
            raise ProtocolError(
                "truncated-frame",
                f"stream ended {skipped} bytes short of an oversized frame being discarded",
                offset=self.offset,
            )
        left = len(self._buf) - self._pos
        if not left:
            return
        offset = self.offset
        if left < 4:
            detail = f"stream ended after {left} of 4 length-header bytes"
        else:
            (length,) = _HEADER.unpack_from(self._buf, self._pos)
            detail = f"stream ended after {left - 4} of {length} payload bytes"
        self._pos = len(self._buf)
        self._compact()
        raise ProtocolError("truncated-frame", detail, offset=offset)

    def _compact(self) -> None:
        # Drop consumed bytes once they dominate the buffer, so a long stream stays O(frame).
        if self._pos and (self._pos == len(self._buf) or self._pos > 65536):
            del self._buf[: self._pos]
            self._base += self._pos
            self._pos = 0


def _header(payload: bytes) -> bytes:
    if len(payload) > _U32_MAX:
        raise OverflowError("Cannot send messages larger than 4GiB")
    return _HEADER.pack(len(payload))


def encode_request(
    request_id: int,
    body: Mapping[str, Any] | None,
    context_carrier: Mapping[str, Any] | None = None,
) -> bytes:
    """A complete request frame, ``[id, body, context_carrier]`` as Airflow's runtime writes it."""
    payload = packb([request_id, body, context_carrier])
    return _header(payload) + payload


def encode_response(
    request_id: int, body: Mapping[str, Any] | None = None, error: Mapping[str, Any] | None = None
) -> bytes:
    """A complete response frame; always 3 elements, as Airflow 3.3's supervisor writes them."""
    payload = packb([request_id, body, error])
    return _header(payload) + payload


def _envelope(
    payload: bytes, offset: int, what: str, minimum: int, max_depth: int | None = None
) -> list[Any]:
    if max_depth is None or len(payload) <= max_depth:
        # Each level takes a byte at least: a payload this short cannot nest too deep.
        value = unpackb(payload, offset=offset)
    else:
        try:
            value, containers = unpack_counted(payload, offset=offset)
        except ProtocolError as exc:
            if exc.rule == "frame-too-deep":
                exc.request_id = first_int(payload)
            raise
        # Depth is at most the number of containers: most frames are never walked.
        if containers > max_depth and depth_exceeds(value, max_depth):
            raise ProtocolError(
                "frame-too-deep",
                f"the frame nests arrays and maps more than {max_depth} levels deep, over the "
                f"limit (max_frame_depth={max_depth}; the envelope array is level 1)",
                offset=offset,
                request_id=_id_of(value),
            )
    if not isinstance(value, list):
        kind = "map" if isinstance(value, dict) else type(value).__name__
        raise ProtocolError(
            "not-an-array", f"a {what} frame must hold a msgpack array, got a {kind}", offset=offset
        )
    if len(value) < minimum:
        shape = "[id, body]" if what == "request" else "[id]"
        raise ProtocolError(
            "too-few-elements",
            f"a {what} frame needs at least {shape}; got {len(value)} element(s)",
            offset=offset,
        )
    if not isinstance(value[0], int) or isinstance(value[0], bool):
        raise ProtocolError(
            "bad-id", f"the frame id must be an integer, got {_described(value[0])}", offset=offset
        )
    return value


def _id_of(value: Any) -> int | None:
    if type(value) is list and value and type(value[0]) is int:
        return value[0]
    return None


def _map_or_nil(value: Any, rule: str, name: str, offset: int, request_id: int) -> Any:
    if value is None or isinstance(value, dict):
        return value
    raise ProtocolError(
        rule,
        f"{name} must be a map or nil, got {_described(value)}",
        offset=offset,
        request_id=request_id,
    )


def _described(value: Any) -> str:
    """A value's type, with the value itself only when it holds no text: a message must not
    quote what may be a secret the masker has not learned."""
    name = type(value).__name__
    if value is None or isinstance(value, bool | int | float):
        return f"{name} {value!r:.40}"
    if isinstance(value, str):
        return f"a {name} of {len(value)} characters"
    if isinstance(value, bytes | list | tuple | dict):
        return f"a {name} of {len(value)} {'bytes' if isinstance(value, bytes) else 'items'}"
    return f"a {name}"


def decode_request(payload: bytes, offset: int = 0, *, limits: Limits = LIMITS) -> RequestFrame:
    """Decode a request payload; ``ProtocolError`` names what is wrong.

    When the envelope is broken, or the frame nests deeper than ``limits.max_frame_depth``, but
    its id is readable, the error carries ``request_id`` so the supervisor can still answer that
    request with an error instead of leaving it hanging.
    """
    value = _envelope(payload, offset, "request", 2, limits.max_frame_depth)
    req_id = value[0]
    body = _map_or_nil(value[1], "bad-body", "the body (element 1)", offset, req_id)
    carrier = value[2] if len(value) > 2 else None
    carrier = _map_or_nil(carrier, "bad-carrier", "the context carrier (element 2)", offset, req_id)
    return RequestFrame(req_id, body, carrier, payload, offset, len(value))


def decode_response(payload: bytes, offset: int = 0) -> ResponseFrame:
    """Decode a response payload (``[id]``, ``[id, body]`` or ``[id, body, error]``)."""
    value = _envelope(payload, offset, "response", 1)
    req_id = value[0]
    body = _map_or_nil(value[1] if len(value) > 1 else None, "bad-body", "the body", offset, req_id)
    error = _map_or_nil(
        value[2] if len(value) > 2 else None, "bad-error", "the error", offset, req_id
    )
    return ResponseFrame(req_id, body, error, payload, offset, len(value))
