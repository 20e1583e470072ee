"""Fuzz targets: the frame decoder and the log-line parser, fed arbitrary bytes.

Each target must only ever raise nothing (malformed input is reported, not raised) or, for the
decoder, ``ProtocolError``; it must terminate, and memory must stay bounded by the frame cap.
Run them with atheris (coverage-guided) or with the bundled random driver:

    .venv/bin/python fuzz/run.py --target frames --seconds 3600
    .venv/bin/python fuzz/run.py --target logs --seconds 3600
    .venv/bin/python fuzz/run.py --target frames --atheris -- -max_total_time=3600
"""

from __future__ import annotations

from supervisor_sim.protocol import (
    TO_SUPERVISOR,
    FrameDecoder,
    ProtocolError,
    decode_request,
    validate_body,
)
from supervisor_sim.protocol._lines import LineSplitter
from supervisor_sim.supervision._logs import parse_log_line, stream_record

#: Small cap so that hostile length headers exercise the discard path quickly.
MAX_FRAME = 1 << 16


def frames(data: bytes) -> None:
    """Split ``data`` into chunks by its first byte, decode every frame, validate every body."""
    if not data:
        return
    step = data[0] % 17 + 1
    decoder = FrameDecoder(max_frame_size=MAX_FRAME)
    body = data[1:]
    for i in range(0, len(body), step):
        decoder.feed(body[i : i + step])
        while True:
            try:
                raw = decoder.next_frame()
            except ProtocolError:
                continue
            if raw is None:
                break
            try:
                frame = decode_request(raw.payload, raw.offset)
            except ProtocolError:
                continue
            validate_body(frame.body, TO_SUPERVISOR)
        assert decoder.buffered <= MAX_FRAME + 4 + step
    try:
        decoder.end_of_stream()
    except ProtocolError:
        pass


def logs(data: bytes) -> None:
    """Split ``data`` into lines with a small cap and parse each as a logs-channel record."""
    splitter = LineSplitter(max_line_length=4096)
    for line in splitter.feed(data):
        parse_log_line(line)
        stream_record(line, "stderr")
    last = splitter.end_of_stream()
    if last is not None:
        parse_log_line(last)


TARGETS = {"frames": frames, "logs": logs}
