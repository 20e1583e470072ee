"""Transcripts: record a session as JSON Lines, read it back, show it, diff two, replay one."""

from ._diff import (
    Difference as Difference,
    TranscriptDiff as TranscriptDiff,
    diff_transcripts as diff_transcripts,
)
from ._html import render_html as render_html, write_html as write_html
from ._reader import (
    Transcript as Transcript,
    TranscriptError as TranscriptError,
    read_transcript as read_transcript,
)
from ._replay import (
    Divergence as Divergence,
    FrameMatcher as FrameMatcher,
    ReplayTransport as ReplayTransport,
)
from ._shape import MAX_DEPTH as MAX_DEPTH
from ._show import render_timeline as render_timeline
from ._writer import (
    FORMAT as FORMAT,
    VERSION as VERSION,
    TranscriptWriteError as TranscriptWriteError,
    TranscriptWriter as TranscriptWriter,
)

__all__ = [
    "FORMAT",
    "MAX_DEPTH",
    "VERSION",
    "Difference",
    "Divergence",
    "FrameMatcher",
    "ReplayTransport",
    "Transcript",
    "TranscriptDiff",
    "TranscriptError",
    "TranscriptWriteError",
    "TranscriptWriter",
    "diff_transcripts",
    "read_transcript",
    "render_html",
    "render_timeline",
    "write_html",
]
