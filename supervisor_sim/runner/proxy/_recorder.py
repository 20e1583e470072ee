"""Recording what crossed the proxy as a transcript, on a thread of its own.

The forwarding threads only queue what they read (a timestamp, which channel, the bytes) and
go back to forwarding; this thread decodes the frames and lines, learns the secrets they carry
and writes the records with the transcript layer's writer, in the order the bytes arrived. A
slow or full disk therefore never slows the task: the writer's failures, an unwritable folder,
a queue grown past ``MAX_BACKLOG`` or a bug here all end the recording, said once on stderr,
and forwarding goes on untouched.

The file is opened when Airflow's first frame arrives, because its name and header come from
it (the task instance of ``StartupDetails``, or the file of ``DagFileParseRequest``); what
happened before (the spawn, the connections, early output) waits in memory until then.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...protocol import (
    CATALOGUE,
    DEFAULT_MAX_FRAME_SIZE,
    TERMINAL,
    FrameDecoder,
    LineSplitter,
    ProtocolError,
    SecretsMasker,
    decode_request,
    decode_response,
    is_sensitive_name,
    to_jsonable,
)
from ...supervision import Event

__all__ = ["MAX_BACKLOG", "Recorder", "transcript_name"]

#: Bytes queued for the recorder past which it gives up rather than hold more in memory.
MAX_BACKLOG = 256 * 1024 * 1024
_MAX_FRAME = DEFAULT_MAX_FRAME_SIZE
#: How often a busy recorder looks at its queue (seconds).
POLL_S = 0.002
#: Events kept while waiting for Airflow's first frame (the file's name comes from it).
_MAX_EARLY = 10_000
_STOP = object()
_LOG_SOURCES = {"logs-in": "logs", "stdout": "stdout", "stderr": "stderr"}
_STREAM_LEVELS = {"stdout": "info", "stderr": "error"}


def transcript_name(first: Mapping[str, Any] | None, stamp: str) -> str:
    """The file name for a recording whose first frame from Airflow is ``first``: DAG, task,
    run, try and map index of a task try; the file of a parse; ``proxy`` when there was none."""
    kind = first.get("type") if first else None
    ti = first.get("ti") if first else None
    if kind == "StartupDetails" and isinstance(ti, Mapping):
        parts = [str(ti.get(k)) for k in ("dag_id", "task_id", "run_id")]
        parts.append(f"try{ti.get('try_number')}")
        map_index = ti.get("map_index")
        if isinstance(map_index, int) and map_index >= 0:
            parts.append(f"map{map_index}")
    elif kind == "DagFileParseRequest" and first is not None:
        parts = ["parse", Path(str(first.get("file") or "dag")).name]
    else:
        parts = ["proxy", "unstarted"]
    name = ".".join([*parts, stamp, "jsonl"])
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class Recorder:
    """Queue what the proxy sees (``note``, ``process``); ``close`` writes the footer.

    ``folder``: where the transcript is created, named by ``transcript_name``; ``path``: one
    file to write instead. ``header``: what the header holds besides the task (the runtime,
    the command, the upstream addresses). ``say``: how the proxy tells its stderr, once, that
    it stopped recording.
    """

    def __init__(
        self,
        *,
        folder: Path | None,
        path: Path | None,
        header: Mapping[str, Any],
        redact: bool,
        say: Callable[[str], None],
        sensitive_names: Sequence[str] = (),
        min_length: int = 5,
    ) -> None:
        self.started = time.monotonic()
        self.path: Path | None = None
        #: Why the recording stopped early (None while it goes on, or when it completed).
        self.error: str | None = None
        self._folder = folder
        self._path = path
        self._header = dict(header)
        self._redact = redact
        self._say = say
        self._sensitive = tuple(n.lower() for n in sensitive_names if n)
        self.masker = SecretsMasker(min_length=min_length)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Bytes queued, per key: each key is queued by one thread only, so no update is lost
        # (a shared counter's += is not atomic across threads); and bytes recorded.
        # (Every key is there from the start: the recorder sums them while they change.)
        self._queued = dict.fromkeys(("comm-in", "comm-out", "logs-in", "logs-out", "stdout",
                                      "stderr"), 0)  # fmt: skip
        self._recorded = 0
        self._off = False
        self._seq = 0
        self._early: list[Event] | None = []
        self._dropped_early = 0
        self._writer: Any = None
        self._first: dict[str, Any] | None = None
        self._decoders = {"in": FrameDecoder(), "out": FrameDecoder()}
        self._shift = {"in": 0, "out": 0}
        self._discarding: set[str] = set()
        self._splitters = {source: LineSplitter() for source in _LOG_SOURCES.values()}
        self._terminal_requests: dict[Any, str] = {}
        #: What the frames tell of the try's outcome: the state of the terminal message
        #: Airflow acknowledged (TaskState: received), and should_retry from StartupDetails.
        self.terminal_state: str | None = None
        self.should_retry = False
        self._batch: list[Event] = []
        self._thread = threading.Thread(target=self._run, name="proxy recorder", daemon=True)
        self._thread.start()

    # --- what the other threads call -------------------------------------------------------

    def note_function(self) -> Callable[[str, bytes], None]:
        """The forwarding threads' ``note``: one tuple queued per chunk, nothing else."""
        put = self._queue.put
        clock = time.monotonic
        queued = self._queued

        def note(key: str, data: bytes) -> None:
            if self._off:
                return
            try:
                queued[key] += len(data)
                put((clock(), key, data))
            except Exception as exc:  # never in the forwarding thread's way
                if not self._off:
                    self._off = True
                    self._say(f"recording stopped ({type(exc).__name__}: {exc}); the task goes on")

        return note

    def process(self, **data: Any) -> None:
        """Queue a ``process`` record (spawn, connect, signal, exit, ...). Safe in a signal
        handler: ``SimpleQueue.put`` is reentrant."""
        if not self._off:
            self._queue.put((time.monotonic(), "process", data))

    def note(self, level: str, message: str) -> None:
        """Queue a ``note`` record: the proxy's own words."""
        if not self._off:
            self._queue.put((time.monotonic(), "note", {"level": level, "message": message}))

    def close(self, footer: Mapping[str, Any], *, timeout: float = 30.0) -> None:
        """Record what is still queued, then the footer (``final_state`` is added here, from
        the frames, unless ``footer`` gives it); at most ``timeout`` seconds."""
        self._queue.put((time.monotonic(), "footer", dict(footer)))
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stop(f"the recorder did not finish within {timeout:g}s")

    # --- the recorder thread ---------------------------------------------------------------

    def _run(self) -> None:
        # Loaded now, while the runtime starts and Airflow calls /run, rather than when the
        # first frame arrives and every byte counts.
        from ... import transcript  # noqa: F401

        queue_ = self._queue
        get, get_nowait, empty = queue_.get, queue_.get_nowait, queue_.empty
        busy = False
        while True:
            if busy:
                # While the task is busy the queue is looked at every POLL_S instead of being
                # waited on: a chunk queued then costs the forwarding thread no wake-up call.
                time.sleep(POLL_S)
                if empty():
                    busy = False
                    continue
                item = get_nowait()
            else:
                item = get()
            busy = True
            while True:
                if item is _STOP:
                    return
                if not self._off:
                    self._item(*item)
                if empty():
                    break
                item = get_nowait()

    def _item(self, t: float, key: str, data: Any) -> None:
        try:
            self._handle(round(t - self.started, 6), key, data)
            self._flush()
        except Exception as exc:
            self._stop(f"recording failed ({type(exc).__name__}: {exc})")
        if type(data) is bytes:
            self._recorded += len(data)
            behind = sum(self._queued.values()) - self._recorded
            if behind > MAX_BACKLOG:
                self._stop(f"the recorder fell {behind:,} bytes behind the task (a slow disk?)")

    def _handle(self, t: float, key: str, data: Any) -> None:
        if key == "comm-in":
            self._comm("in", data, t)
        elif key == "comm-out":
            self._comm("out", data, t)
        elif key in _LOG_SOURCES:
            self._lines(_LOG_SOURCES[key], data, t)
        elif key == "logs-out":
            if data:
                self._emit(
                    "note",
                    t,
                    {"level": "warning", "message": f"Airflow sent {len(data)} bytes on --logs"},
                )
        elif key == "process":
            self._emit("process", t, data)
        elif key == "note":
            self._emit("note", t, data)
        elif key == "footer":
            self._finish(data, t)

    # --- frames ----------------------------------------------------------------------------

    def _comm(self, direction: str, data: bytes, t: float) -> None:
        decoder = self._decoders[direction]
        if not data:
            try:
                decoder.end_of_stream()
            except ProtocolError as exc:
                self._emit("note", t, {"level": "warning", "message": f"--comm: {exc}"})
            side = "runtime" if direction == "in" else "airflow"
            self._emit("process", t, {"event": "eof", "channel": "comm", "side": side})
            return
        # The common chunk is one whole frame: taken as it is, without the decoder's buffer.
        # (Its offsets then lag by the bytes taken here; ``_shift`` adds them back.)
        size = len(data) - 4
        if (
            not decoder.buffered
            and 0 < size <= _MAX_FRAME
            and int.from_bytes(data[:4], "big") == size
            and direction not in self._discarding
        ):
            offset = decoder.offset + self._shift[direction]
            self._shift[direction] += len(data)
            self._frame(direction, data[4:], offset, t)
            return
        decoder.feed(data)
        shift = self._shift[direction]
        while True:
            try:
                raw = decoder.next_frame()
            except ProtocolError as exc:
                if exc.rule == "frame-too-large":  # the decoder now discards its payload
                    self._discarding.add(direction)
                self._emit("note", t, {"level": "warning", "message": f"--comm: {exc}"})
                continue
            if raw is None:
                return
            self._frame(direction, raw.payload, raw.offset + shift, t)

    def _frame(self, direction: str, payload: bytes, offset: int, t: float) -> None:
        record: dict[str, Any]
        try:
            if direction == "in":
                request = decode_request(payload, offset)
                self._learn_request(request.id, request.body)
                record = {
                    "direction": "in",
                    "id": request.id,
                    "type": request.type,
                    "body": request.body,
                    "payload": payload,
                    "offset": offset,
                    "elements": request.elements,
                    "context_carrier": request.context_carrier,
                }
            else:
                reply = decode_response(payload)
                body = reply.body
                if self._first is None:
                    self._open(body if isinstance(body, dict) else {})
                self._learn_reply(reply.id, body, reply.error)
                record = {
                    "direction": "out",
                    "id": reply.id,
                    "type": reply.type,
                    "body": body,
                    "error": reply.error,
                    "payload": payload,
                }
        except ProtocolError as exc:
            # Recorded all the same: the bytes are kept, with why they do not decode.
            if direction == "out" and self._first is None:
                self._open({})
            record = {
                "direction": direction,
                "id": exc.request_id,
                "type": None,
                "body": None,
                "error": str(exc),
                "payload": payload,
            }
            if direction == "in":
                record["offset"] = offset
        self._emit("frame", t, record)

    def _is_sensitive(self, key: Any) -> bool:
        if not isinstance(key, str):
            return False
        return is_sensitive_name(key) or any(n in key.lower() for n in self._sensitive)

    def _learn_request(self, frame_id: int, body: Any) -> None:
        """What a request asks to be masked (MaskSecret, a sensitive PutVariable), and the
        terminal messages whose acknowledgement ends the try."""
        if type(body) is not dict:
            return
        kind = body.get("type")
        if kind == "MaskSecret" or (kind == "PutVariable" and self._is_sensitive(body.get("key"))):
            self.masker.add(body.get("value"))
        elif kind == "TaskState":
            self.terminal_state = str(body.get("state"))
        elif kind in TERMINAL:
            field = CATALOGUE[kind].model.by_name.get("state")
            default = getattr(field, "default", None)
            state = body.get("state", default)
            self._terminal_requests[frame_id] = str(state)

    def _learn_reply(self, frame_id: Any, body: Any, error: Any) -> None:
        """The secrets Airflow hands over (a connection's password and extra, a sensitive
        variable's value) and the state a terminal message's acknowledgement settles."""
        state = self._terminal_requests.pop(frame_id, None)
        if state is not None and error is None:
            self.terminal_state = state
        if type(body) is not dict:
            return
        kind = body.get("type")
        if kind == "ConnectionResult":
            self.masker.add(body.get("password"))
            self.masker.add(body.get("extra"))
        elif kind == "VariableResult" and self._is_sensitive(body.get("key")):
            self.masker.add(body.get("value"))
        elif kind == "StartupDetails":
            context = body.get("ti_context")
            if isinstance(context, dict):
                self.should_retry = bool(context.get("should_retry"))

    # --- lines -----------------------------------------------------------------------------

    def _lines(self, source: str, data: bytes, t: float) -> None:
        splitter = self._splitters[source]
        if data:
            lines = list(splitter.feed(data))
        else:
            last = splitter.end_of_stream()
            lines = [last] if last is not None else []
        for line in lines:
            record = _line_record(source, line.data)
            if line.truncated:
                record["truncated"] = line.dropped
            self._emit("log", t, {"source": source, "record": record})
        if not data and source == "logs":
            self._emit("process", t, {"event": "eof", "channel": "logs", "side": "runtime"})

    # --- records ---------------------------------------------------------------------------

    def _emit(self, kind: Any, t: float, data: dict[str, Any]) -> None:
        self._seq += 1
        event = Event(kind, t, data, self._seq)
        early = self._early
        if early is not None:
            if len(early) < _MAX_EARLY:
                early.append(event)
            else:
                self._dropped_early += 1
            return
        self._batch.append(event)

    def _flush(self) -> None:
        batch = self._batch
        if not batch or self._writer is None:
            batch.clear()
            return
        writer = self._writer
        try:
            if len(batch) == 1:
                writer(batch[0])
            else:
                writer.batch(batch)
        except OSError as exc:
            self._stop(f"cannot write the transcript {self.path}: {exc.strerror or exc}")
            return
        finally:
            batch.clear()
        self._check_writer()

    def _check_writer(self) -> None:
        # The writer stops by itself at a failed write (a full disk) and says why.
        error = getattr(self._writer, "error", None)
        if error:
            self._stop(str(error), explained=True)

    def _open(self, first: dict[str, Any]) -> None:
        """Airflow's first frame arrived: name the file after it, write the header and what
        waited for it."""
        self._first = first
        header = dict(self._header)
        kind = first.get("type")
        if kind == "StartupDetails":
            ti = to_jsonable(first.get("ti") or {})
            header["task"] = {
                "ti": ti,
                "dag_rel_path": str(first.get("dag_rel_path") or "."),
                "bundle_info": to_jsonable(first.get("bundle_info")),
                **{
                    k: ti.get(k) for k in ("dag_id", "task_id", "run_id", "try_number", "map_index")
                },
            }
        elif kind == "DagFileParseRequest":
            header["parse"] = {
                "file": first.get("file"),
                "bundle_path": first.get("bundle_path"),
                "bundle_name": first.get("bundle_name"),
            }
        path = self._path
        if path is None:
            assert self._folder is not None
            path = self._folder / transcript_name(first, _stamp())
        early, self._early = self._early or [], None
        from ...transcript import TranscriptWriter

        masker = self.masker
        try:
            if self._folder is not None and self._path is None:
                self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._writer = TranscriptWriter(
                path,
                header,
                redact=masker.redact if self._redact else None,
                redact_bytes=(lambda b: masker.redact(b.decode("utf-8", "replace")).encode())
                if self._redact
                else None,
            )
        except OSError as exc:
            self._stop(f"cannot record the transcript {path}: {exc.strerror or exc}")
            return
        self.path = path
        if self._dropped_early:
            self._seq += 1
            early.append(
                Event(
                    "note",
                    early[-1].t if early else 0.0,
                    {
                        "level": "warning",
                        "message": f"{self._dropped_early:,} early records were not kept",
                    },
                    self._seq,
                )
            )
        self._batch[:0] = early

    def _finish(self, footer: dict[str, Any], t: float) -> None:
        if self._first is None:
            self._open({})
            self._flush()
        for source, splitter in self._splitters.items():
            last = splitter.end_of_stream()  # a line its channel never finished (cut off)
            if last is not None:
                self._emit("log", t, {"source": source, "record": _line_record(source, last.data)})
        self._flush()
        writer = self._writer
        if writer is None or self._off:
            return
        if "final_state" not in footer:
            exit_code = footer.get("exit_code")
            final = None
            if self._first and self._first.get("type") == "StartupDetails":
                final = self._final_state(exit_code)
            footer["final_state"] = final
        footer.setdefault("violations", 0)
        try:
            writer.close(footer)
        except OSError as exc:
            self._stop(f"cannot finish the transcript {self.path}: {exc.strerror or exc}")
            return
        self._check_writer()

    def _final_state(self, exit_code: int | None) -> str:
        """Airflow's final-state table (``supervision.TaskState``) applied to what was seen."""
        from ...supervision import TaskState

        state = TaskState(ti_id="", should_retry=self.should_retry)
        state.terminal_state = self.terminal_state
        return state.final_state(exit_code)

    def _stop(self, reason: str, *, explained: bool = False) -> None:
        """Stop recording for good and say why on stderr, once (``explained``: ``reason``
        already says what becomes of the task and the transcript)."""
        if self._off:
            return
        self._off = True
        self.error = reason
        self._early = None
        self._batch.clear()
        # No footer: the transcript reads as cut short, which it is. (The writer's file is
        # closed with the writer.)
        self._writer = None
        self._say(reason if explained else f"{reason}; the task goes on, unrecorded from here")


def _line_record(source: str, data: bytes) -> dict[str, Any]:
    """A line as recorded: on --logs the JSON object it is, or its text marked malformed; on
    stdout and stderr a record as Airflow's supervisor logs them (INFO and ERROR)."""
    text = data.decode("utf-8", "replace").rstrip("\r")
    if source != "logs":
        return {"level": _STREAM_LEVELS[source], "event": text.rstrip(), "logger": f"task.{source}"}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict):
            return value
    return {"level": "info", "event": text, "malformed": True}
