"""Recording a session: one JSON Lines record per event, written as it happens.

The writer is a journal sink, so it sees exactly what the console and the summary see. Each
record it is given is one ``write(2)`` of one complete line, made before the sink returns, with
no buffer in this process: a crash, even a SIGKILL, loses at most the line being written (a
write(2) of ~400 bytes to a file costs ~1.3 µs, so buffering would save little). The footer
carries counts and a SHA-256 of every line before it, so truncation is visible. Secrets are
redacted unless the user asks otherwise (docs/transcript.md).

Speed (bench/transcript_micro.py): frames, HTTP exchanges and logs are assembled from JSON
fragments. A value proven to be its own record value (``SecretsMasker.leaves_plain`` when the
redactor is a ``SecretsMasker``: nothing to redact, nothing to tag; ``jsonable_as_is`` without
redaction) is encoded as it is, without the redacting copy and the ``to_jsonable`` copy; anything
else takes the general path (the writer as it was). Both give the same bytes
(tests/transcript/test_transcript_speedpaths.py).
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..protocol import jsonable_as_is, packb, to_jsonable

__all__ = ["FORMAT", "VERSION", "TranscriptWriteError", "TranscriptWriter"]

FORMAT = "supervisor-sim-transcript"
VERSION = 1

_SECRET_HEADERS = {"authorization", "refreshed-api-token", "cookie", "set-cookie"}

# --- JSON text, exactly as json.dumps(value, separators=(",", ":"), ensure_ascii=False) ---------
# _dumps is that call (header, footer, general path). _join(_chunks(value, 0)) is the same C
# encoder built once instead of once per call, without the circular-reference check: it only
# encodes trees (values proven plain by walking them, parsed JSON, header maps of strings), for
# which the check only costs time. It is written out in the hot paths, where a Python call costs
# more than encoding a small map.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(line: str) -> bytes:
    """``line`` as UTF-8. JSON lets a runtime's log line or an API body carry a lone surrogate
    (``"\\ud800"``), which Python keeps in the string but UTF-8 cannot encode; such a character
    can only sit inside a JSON string here, so it is written as the same ``\\uXXXX`` escape,
    which reads back as the same string."""
    try:
        return line.encode("utf-8")
    except UnicodeEncodeError:
        escaped = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
        return escaped.encode("utf-8")


_encode_str: Callable[[str], str] = json.encoder.encode_basestring
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_join = "".join
if _c_make_encoder is not None:
    _chunks = _c_make_encoder(
        None, json.JSONEncoder().default, _encode_str, None, ":", ",", False, False, True
    )
else:  # pragma: no cover - CPython always has the C encoder

    def _chunks(value: Any, _level: int) -> tuple[str, ...]:
        return (_dumps(value),)


def _scalar(value: Any) -> str:
    """JSON text of one value, with the common scalars formatted directly."""
    t = type(value)
    if t is str:
        return _encode_str(value)
    if t is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if t is float and value - value == 0.0:  # finite
        return float.__repr__(value)
    return _dumps(value)


def _tagged(value: Any) -> str:
    """JSON text of ``to_jsonable(value)``."""
    t = type(value)
    if t is int or t is str:
        return _scalar(value)
    return _dumps(to_jsonable(value))


_b2a = binascii.b2a_base64


def _b64(data: bytes | None) -> str | None:
    return None if data is None else _b2a(data, newline=False).decode("ascii")


_DECODER = json.JSONDecoder()
_scan_once = _DECODER.scan_once  # type: ignore[attr-defined]


_OPENERS = (b"{", b"[")


# Header names seen, and those of them that are secret (compared lower-case).
_header_names: set[Any] = set()
_secret_header_names: set[Any] = set()


def _is_secret_header(name: Any) -> bool:
    secret = name.lower() in _SECRET_HEADERS
    if len(_header_names) < 4096:
        _header_names.add(name)
        if secret:
            _secret_header_names.add(name)
    return secret


def _masked_headers(headers: dict[Any, Any]) -> dict[Any, Any]:
    """``headers``, or a copy with the value of every secret header replaced by ``***``."""
    if not headers.keys() <= _header_names:
        secret = [k for k in headers if _is_secret_header(k)]  # names never seen before
    elif _secret_header_names.isdisjoint(headers):
        return headers
    else:
        secret = [k for k in headers if k in _secret_header_names]
    if secret:
        headers = dict(headers)
        for k in secret:
            headers[k] = "***"
    return headers


#: Headers as JSON text, by every pair but the correlation id (new on every call): the text
#: before and after that id's value. A lock-step session repeats the same headers each request.
_HEADERS_JSON: dict[tuple[Any, ...], tuple[str, str]] = {}
#: Stands for the correlation id while a key's text is made; never sent (a NUL in a header
#: value is refused by any HTTP stack), and if it were, the text is made the slow way.
_ID_MARK = "\x00correlation-id\x00"
_ID_MARK_JSON = _encode_str(_ID_MARK)


def _headers_json(headers: dict[Any, Any]) -> str:
    """``_join(_chunks(headers, 0))``: the JSON text of a header map (str names and values),
    reusing the text of the same headers seen before, but for their correlation id."""
    cid = headers.get("correlation-id")
    if type(cid) is not str or len(headers) > 16:
        return _join(_chunks(headers, 0))
    keyed = headers.copy()
    keyed["correlation-id"] = _ID_MARK
    key = tuple(keyed.items())
    hit = _HEADERS_JSON.get(key)
    if hit is None:
        text = _join(_chunks(keyed, 0))
        parts = text.split(_ID_MARK_JSON)
        if len(parts) != 2:
            return _join(_chunks(headers, 0))
        hit = (parts[0], parts[1])
        if len(_HEADERS_JSON) >= 256:
            _HEADERS_JSON.clear()
        _HEADERS_JSON[key] = hit
    return hit[0] + _encode_str(cid) + hit[1]


def _plain_check(redact: Callable[[Any], Any] | None) -> Callable[[Any], bool] | None:
    """What proves a value is its own record: with no redaction, that it needs no tags; with a
    ``SecretsMasker``'s ``redact``, its ``leaves_plain``; with another redactor, nothing."""
    if redact is None:
        return jsonable_as_is
    owner = getattr(redact, "__self__", None)
    if owner is None:
        return None
    from ..protocol import SecretsMasker  # already imported if owner is one

    if type(owner) is SecretsMasker and getattr(redact, "__func__", None) is SecretsMasker.redact:
        return owner.leaves_plain
    return None


class TranscriptWriteError(OSError):
    """The transcript cannot be created or its header written (``filename``: its path). Its
    text is one line that says what to do."""

    def __init__(self, path: Path, exc: OSError, doing: str = "cannot write it") -> None:
        reason = exc.strerror or str(exc)
        super().__init__(
            exc.errno,
            f"{doing}: {reason}; free some space or fix its folder's permissions, give another "
            "--transcript, or pass --no-transcript",
            str(path),
        )

    def __str__(self) -> str:
        return f"transcript {self.filename}: {self.strerror}"


class TranscriptWriter:
    """Writes a transcript file. Use as a journal sink; ``close()`` writes the footer.

    A transcript may hold secrets (``redact=None`` keeps them), so its file is owner-only
    (``0600``) whether it is created or already existed. A file that cannot be created, or
    whose header cannot be written, raises ``TranscriptWriteError``. A write that fails later
    (a full disk, a file-size limit) never reaches the session: the writer stops, keeps the
    reason in ``error``, calls ``on_error`` once with a one-line message (``error`` and what
    follows from it), and writes no footer (the transcript reads as truncated, which it is).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: Mapping[str, Any],
        *,
        redact: Callable[[Any], Any] | None = None,
        redact_bytes: Callable[[bytes], bytes] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        #: Why the transcript is incomplete, once a write failed.
        self.error: str | None = None
        self._on_error = on_error
        fd = self._open(self.path)
        # Unbuffered: every record goes to the kernel with os.write before the sink returns. The
        # file object only owns the descriptor (closed by close(), or when garbage-collected).
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._fd = fd
        self._digest = hashlib.sha256()
        self._unhashed: list[bytes] = []  # lines written, not yet in the digest
        self._redact = redact
        self._redact_bytes = redact_bytes
        # Proves a value is already its record's value (None: an unknown redactor).
        self._plain = _plain_check(redact)
        self.counts: dict[str, int] = {}
        self.closed = False
        record = {
            "record": "header",
            "format": FORMAT,
            "version": VERSION,
            "tool_version": _tool_version(),
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "redacted": redact is not None,
            **header,
        }
        data = _utf8(_dumps(record) + "\n")
        try:
            self._write_all(data)
        except OSError as exc:
            self._file.close()
            self.closed = True
            raise TranscriptWriteError(self.path, exc) from None
        self._unhashed.append(data)
        self.counts["header"] = 1

    @staticmethod
    def _open(path: Path) -> int:
        """Open ``path`` for writing, owner-only, emptied; raises ``TranscriptWriteError``."""
        doing = "cannot create it"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError as exc:
            raise TranscriptWriteError(path, exc, doing) from None
        try:
            # An existing file keeps its mode on open: made private before anything is written
            # (or emptied). Not a device or a pipe (/dev/stdout, /dev/full): nothing to protect.
            if stat.S_ISREG(os.fstat(fd).st_mode):
                doing = "cannot make it owner-only (0600)"
                os.fchmod(fd, 0o600)
                doing = "cannot empty it"
                os.ftruncate(fd, 0)
        except OSError as exc:
            os.close(fd)
            raise TranscriptWriteError(path, exc, doing) from None
        return fd

    def __call__(self, event: Any) -> None:
        """Journal sink: turn one ``Event`` into one record."""
        if self.closed:
            return
        self._write_data(_utf8(self._line(event)), (event.kind,))

    def batch(self, events: Sequence[Any]) -> None:
        """Journal sink for events delivered together (``Journal.holding``): one record each,
        all in one ``write(2)``, so they reach the kernel together before this returns."""
        if self.closed:
            return
        self._write_data(_utf8(_join([self._line(e) for e in events])), [e.kind for e in events])

    def _line(self, event: Any) -> str:
        kind = event.kind
        line = None
        if kind == "frame":
            line = self._frame_line(event)
        elif kind == "http":
            line = self._http_line(event)
        elif kind == "log":
            line = self._log_line(event)
        if line is None:
            line = self._general_line(event)
        return line

    def _write_data(self, data: bytes, kinds: Sequence[str]) -> None:
        # One write(2) per call, straight to the kernel: nothing waits in a user-space buffer,
        # so even a SIGKILL right after this returns loses no record. (~1.3 µs per call.)
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # a short write (a signal, a nearly full disk): finish it
                written += os.write(self._fd, memoryview(data)[written:])
        except OSError as exc:
            self._failed(exc, "; it stops here, without a footer, and the run goes on without it")
            return
        # The digest is only read by close(): hash in batches of 128 writes (~50 KB here),
        # cheaper than one update per line. The lines are already in the file.
        unhashed = self._unhashed
        unhashed.append(data)
        if len(unhashed) >= 128:
            self._digest.update(b"".join(unhashed))
            unhashed.clear()
        counts = self.counts
        for kind in kinds:
            counts[kind] = counts.get(kind, 0) + 1

    def _write_all(self, data: bytes) -> None:
        written = os.write(self._fd, data)
        while written < len(data):
            written += os.write(self._fd, memoryview(data)[written:])

    def _failed(self, exc: OSError, consequence: str) -> None:
        """A write failed: stop writing (no footer: the transcript is truncated) and say so
        once."""
        self.error = f"cannot write the transcript {self.path}: {exc.strerror or exc}"
        self.closed = True
        try:
            self._file.close()
        except OSError:
            pass
        if self._on_error is not None:
            self._on_error(self.error + consequence)

    def _clean(self, value: Any) -> Any:
        return self._redact(value) if self._redact is not None else value

    # --- the general path: every record kind, every value ---------------------------------------

    def _general_line(self, event: Any) -> str:
        data = dict(event.data)
        record: dict[str, Any] = {"record": event.kind, "seq": event.seq, "t": event.t}
        if event.kind == "frame":
            record.update(self._frame(data))
        elif event.kind == "http":
            record.update(self._http(data))
        elif event.kind == "log":
            record.update(source=data["source"], line=to_jsonable(self._clean(data["record"])))
        else:
            plain = self._plain
            if plain is not None and plain(data):
                record.update(data)
            else:
                record.update(to_jsonable(self._clean(data)))
        return _dumps(record) + "\n"

    def _frame(self, d: dict[str, Any]) -> dict[str, Any]:
        body = d.get("body")
        error = d.get("error")
        payload: bytes = d.get("payload") or b""
        out: dict[str, Any] = {"dir": d["direction"], "id": d.get("id"), "type": d.get("type")}
        carrier = d.get("context_carrier")
        clean_body = self._clean(body)
        clean_error = self._clean(error)
        clean_carrier = self._clean(carrier)
        if self._redact is not None and (
            clean_body != body or clean_error != error or clean_carrier != carrier
        ):
            # The exact bytes held a secret: store an encoding of the redacted values instead.
            if d["direction"] == "out":
                payload = packb([d.get("id"), clean_body, clean_error])
            else:
                payload = packb([d.get("id"), clean_body, clean_carrier])
            out["raw_redacted"] = True
        elif d.get("raw_redacted"):
            out["raw_redacted"] = True  # the session recorded the frame masked already
        out["body"] = to_jsonable(clean_body)
        if error is not None:
            out["error"] = to_jsonable(clean_error)
        out["raw"] = _b64(payload)
        out["len"] = len(payload)
        for key, value in (
            ("offset", d.get("offset")),
            ("elements", d.get("elements")),
            ("context_carrier", clean_carrier),
        ):
            if value is not None:
                out[key] = to_jsonable(value)
        if d.get("error") and isinstance(d.get("error"), str):
            out["decode_error"] = d["error"]
            out.pop("error", None)
        return out

    def _http(self, d: dict[str, Any]) -> dict[str, Any]:
        def headers(h: Mapping[str, str] | None) -> dict[str, str]:
            h = dict(h or {})
            if self._redact is not None:
                for k in list(h):
                    if k.lower() in _SECRET_HEADERS:
                        h[k] = "***"
            return h

        def body(raw: bytes | None) -> dict[str, Any]:
            raw = raw or b""
            if not raw:
                return {}
            try:
                return {"json": self._clean(json.loads(raw))}
            except ValueError:
                if self._redact_bytes is not None:
                    raw = self._redact_bytes(raw)
                return {"b64": _b64(raw)}

        return {
            "method": d["method"],
            "path": d["path"],
            "query": d.get("query") or "",
            "status": d.get("status"),
            "error": d.get("error"),
            "attempt": d.get("attempt", 1),
            "duration_s": d.get("duration_s"),
            "cause": d.get("cause"),
            "request": {
                "headers": headers(d.get("request_headers")),
                **body(d.get("request_body")),
            },
            "response": {
                "headers": headers(d.get("response_headers")),
                **body(d.get("response_body")),
            },
        }

    # --- the fast paths: the same bytes as the general path, without its copies ------------------
    # Each returns None when its shortcut does not apply, and the general path writes the record.
    # They are written out flat: at this size a Python call costs as much as a step of the work.

    def _frame_line(self, event: Any) -> str | None:
        plain = self._plain
        d = event.data
        if plain is None or type(d) is not dict:
            return None
        body = d.get("body")
        error = d.get("error")
        # A str error is a decode error (recorded as decode_error): the general path has it, and
        # a frame the session masked itself (raw_redacted), which is said in the record.
        if (
            not plain(body)
            or (error is not None and (type(error) is str or not plain(error)))
            or "raw_redacted" in d
        ):
            return None
        # Nothing to redact: the exact payload is kept and the values are their own JSON view.
        seq = event.seq
        t = event.t
        direction = d["direction"]
        frame_id = d.get("id")
        type_ = d.get("type")
        if (
            type(seq) is int
            and type(t) is float
            and t - t == 0.0
            and type(direction) is str
            and type(frame_id) is int
        ):
            head = (
                f'{{"record":"frame","seq":{seq!r},"t":{t!r},"dir":{_encode_str(direction)},'
                f'"id":{frame_id!r}'
            )
        else:
            head = (
                f'{{"record":"frame","seq":{_scalar(seq)},"t":{_scalar(t)},'
                f'"dir":{_scalar(direction)},"id":{_scalar(frame_id)}'
            )
        payload = d.get("payload") or b""
        offset = d.get("offset")
        elements = d.get("elements")
        carrier = d.get("context_carrier")
        if carrier is not None and not plain(carrier):
            return None  # a carrier to redact: the general path does
        if offset is None and elements is None and carrier is None:
            tail = ""  # a frame out
        elif type(offset) is int and type(elements) is int and carrier is None:
            tail = f',"offset":{offset!r},"elements":{elements!r}'  # a frame in
        else:
            tail = ""
            if offset is not None:
                tail += ',"offset":' + _tagged(offset)
            if elements is not None:
                tail += ',"elements":' + _tagged(elements)
            if carrier is not None:
                tail += ',"context_carrier":' + _tagged(carrier)
        err = "" if error is None else ',"error":' + _join(_chunks(error, 0))
        return (
            f'{head},"type":{_encode_str(type_) if type(type_) is str else _scalar(type_)}'
            f',"body":{_join(_chunks(body, 0))}{err}'
            f',"raw":"{_b2a(payload, newline=False).decode("ascii")}","len":{len(payload)}'
            f"{tail}}}\n"
        )

    def _http_line(self, event: Any) -> str | None:
        d = event.data
        if type(d) is not dict:
            return None
        seq = event.seq
        t = event.t
        method = d["method"]
        path = d["path"]
        query = d.get("query") or ""
        status = d.get("status")
        error = d.get("error")
        attempt = d.get("attempt", 1)
        duration = d.get("duration_s")
        cause = d.get("cause")
        if (
            type(seq) is int
            and type(t) is float
            and t - t == 0.0
            and type(method) is str
            and type(path) is str
            and type(query) is str
            and type(status) is int
            and error is None
            and type(attempt) is int
            and type(duration) is float
            and duration - duration == 0.0
            and type(cause) is int
        ):
            head = (
                f'{{"record":"http","seq":{seq!r},"t":{t!r},"method":{_encode_str(method)}'
                f',"path":{_encode_str(path)},"query":{_encode_str(query)},"status":{status!r}'
                f',"error":null,"attempt":{attempt!r},"duration_s":{duration!r}'
                f',"cause":{cause!r},"request":{{"headers":'
            )
        else:
            head = (
                f'{{"record":"http","seq":{_scalar(seq)},"t":{_scalar(t)}'
                f',"method":{_scalar(method)},"path":{_scalar(path)},"query":{_scalar(query)}'
                f',"status":{_scalar(status)},"error":{_scalar(error)}'
                f',"attempt":{_scalar(attempt)},"duration_s":{_scalar(duration)}'
                f',"cause":{_scalar(cause)},"request":{{"headers":'
            )
        redacting = self._redact is not None
        parts = [head]
        for which in ("request", "response"):
            headers: Any = d.get(which + "_headers") or {}
            if type(headers) is not dict:
                headers = dict(headers)
            if redacting:
                if not headers.keys() <= _header_names:
                    headers = _masked_headers(headers)  # names never seen before
                elif not _secret_header_names.isdisjoint(headers):
                    masked = dict(headers)
                    for k in headers:
                        if k in _secret_header_names:
                            masked[k] = "***"
                    headers = masked
            parts.append(_headers_json(headers))
            raw = d.get(which + "_body")
            if raw:
                parts.append(self._body_json(raw))
            parts.append('},"response":{"headers":' if which == "request" else "}}\n")
        return _join(parts)

    def _body_json(self, raw: bytes) -> str:
        """``,"json":...`` or ``,"b64":...`` for a non-empty HTTP body (see _http)."""
        plain = self._plain
        try:
            # json.loads(raw), without its encoding sniffing and whitespace regexes for what the
            # Execution API sends: bytes that start with "{" or "[" then a non-NUL byte, which
            # json.loads decodes as UTF-8 ("surrogatepass") and scans from 0. Anything else, or
            # text after the value, goes to json.loads itself.
            if type(raw) is bytes and raw[:1] in _OPENERS and raw[1:2] != b"\x00":
                text = raw.decode("utf-8", "surrogatepass")
                try:
                    value, end = _scan_once(text, 0)
                except StopIteration:
                    value = end = None
                if end != len(text):
                    value = json.loads(raw)
            else:
                value = json.loads(raw)
            if plain is None or not plain(value):
                value = self._clean(value)
        except ValueError:
            if self._redact_bytes is not None:
                raw = self._redact_bytes(raw)
            return f',"b64":"{_b2a(raw, newline=False).decode("ascii")}"'
        return ',"json":' + _join(_chunks(value, 0))

    def _log_line(self, event: Any) -> str | None:
        plain = self._plain
        d = event.data
        if plain is None or type(d) is not dict:
            return None
        source = d["source"]
        line = d["record"]
        if not plain(line):
            line = to_jsonable(self._clean(line))
        return (
            f'{{"record":"log","seq":{_scalar(event.seq)},"t":{_scalar(event.t)}'
            f',"source":{_scalar(source)},"line":{_join(_chunks(line, 0))}}}\n'
        )

    def _hexdigest(self) -> str:
        if self._unhashed:
            self._digest.update(b"".join(self._unhashed))
            self._unhashed.clear()
        return self._digest.hexdigest()

    def close(self, footer: Mapping[str, Any] | None = None) -> None:
        """Write the footer (counts, digest of every line before it) and close the file."""
        if self.closed:
            return
        counts = dict(self.counts)
        record = {
            "record": "footer",
            "counts": counts,
            **to_jsonable(dict(footer or {})),
            "sha256": self._hexdigest(),
        }
        data = _utf8(_dumps(record) + "\n")
        try:
            self._write_all(data)
            # close(2) itself reports what a network filesystem could not store.
            self._file.close()
        except OSError as exc:
            self._failed(exc, "; it has no footer")
        finally:
            self.closed = True


def _tool_version() -> str:
    from .. import __version__

    return __version__
