"""Protocol errors.

::

    ProtocolError            a byte stream or frame that breaks the wire format
    └── (rule names)         zero-length-frame, frame-too-large, bad-msgpack, not-an-array,
                             too-few-elements, bad-id, bad-body, bad-error, truncated-frame
"""

from __future__ import annotations

__all__ = ["ProtocolError"]


class ProtocolError(Exception):
    """A violation of the wire format, with the rule broken and the stream offset it was found at.

    ``offset`` is the position of the offending frame's 4-byte header in the connection's byte
    stream (0 for the first byte ever received), so a transcript can point at the exact bytes.
    """

    def __init__(
        self,
        rule: str,
        message: str,
        *,
        offset: int | None = None,
        request_id: int | None = None,
        raw: bytes = b"",
    ) -> None:
        self.rule = rule
        self.message = message
        self.offset = offset
        #: The id of the request the bad frame carried, when it could still be read.
        self.request_id = request_id
        #: Bytes of the stream the error consumed and no frame holds (e.g. a bad length header).
        self.raw = raw
        where = f" (at byte offset {offset})" if offset is not None else ""
        super().__init__(f"{rule}: {message}{where}")
