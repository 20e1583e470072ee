"""Running sessions: the glue between the layers that every command shares.

``supervise`` runs one session with a transcript and signal forwarding; the command line and
``run-dag`` call it, so a task run the same way whichever command started it.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio

from ..api import (
    API_VERSION,
    ExecutionAPIClient,
    Fixtures,
    RetryPolicy,
    StateFileError,
    StubStore,
    StubTransport,
    load_fixtures,
    stub_http,
)
from ..protocol import MASK, is_sensitive_name
from ..supervision import (
    Journal,
    Launch,
    ParseSpec,
    SessionFactory,
    SupervisorConfig,
    TaskOutcome,
    TaskSession,
    TaskSpec,
    journal_exchanges,
)
from ._config import DEFAULT_STATE, ConfigError

__all__ = [
    "FORWARDED_SIGNALS",
    "SignalTarget",
    "default_transcript",
    "forward_signals_to",
    "open_store",
    "supervise",
]


class SignalTarget(Protocol):
    """Anything SIGINT/SIGTERM/SIGHUP can be forwarded to (a session)."""

    def forward_signal(self, sig: int) -> None: ...


def _transcript_header(
    spec: TaskSpec | ParseSpec, api_label: str, config: SupervisorConfig
) -> dict[str, Any]:
    header: dict[str, Any] = {
        "command": _shown_command(sys.argv),
        "runtime": list(spec.runtime),
        "api": _shown_url(api_label),
        "config": asdict(config),
    }
    if isinstance(spec, TaskSpec):
        header["task"] = {
            "ti": dict(spec.ti),
            "dag_rel_path": spec.dag_rel_path,
            "bundle_info": dict(spec.bundle_info),
            **{
                k: spec.ti.get(k)
                for k in ("dag_id", "task_id", "run_id", "try_number", "map_index")
            },
        }
    else:
        header["parse"] = {
            "file": spec.file,
            "bundle_path": spec.bundle_path,
            "bundle_name": spec.bundle_name,
        }
    return header


def _shown_command(argv: Sequence[str]) -> list[str]:
    """``argv`` with the value of every option named like a secret (``--jwt-secret``,
    ``--token``: ``is_sensitive_name``) replaced by ``***``, given as ``--opt=value`` or as
    ``--opt value``."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append(MASK)
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if arg.startswith("--") and len(name) > 2 and is_sensitive_name(name[2:]):
            if eq:
                shown.append(f"{name}={MASK}")
            else:
                shown.append(arg)
                hide_next = True
            continue
        shown.append(arg)
    return shown


def _shown_url(url: str) -> str:
    """An API URL without the password it may carry (``https://user:pw@host/...``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{netloc}"))


def default_transcript(base: Path, ti: Mapping[str, Any]) -> Path:
    """A new transcript file in ``base`` named for the try (DAG, task, run, try, time)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f"{ti['dag_id']}.{ti['task_id']}.{ti['run_id']}.try{ti['try_number']}.{stamp}.jsonl"
    return base / re.sub(r"[^A-Za-z0-9._+-]", "_", name)


async def supervise(
    spec: TaskSpec | ParseSpec,
    http: httpx.AsyncClient | StubTransport,
    *,
    token: str,
    config: SupervisorConfig,
    journal: Journal,
    transcript: Path | None,
    redact: bool,
    api_label: str,
    retry: RetryPolicy | None = None,
    api_version: str = API_VERSION,
    session_factory: SessionFactory | None = None,
    forward_signals: bool = True,
    launch: Launch | None = None,
    on_transcript_error: Callable[[str], None] | None = None,
) -> TaskOutcome:
    """Run one session with signal forwarding and (optionally) a transcript of it.

    A transcript that cannot be created, or whose header cannot be written, is found before
    the session starts and raises ``ConfigError`` (the message names the file and the fix).
    One that fails later (a full disk) does not stop the run: the journal gets one warning
    note, ``on_transcript_error`` the reason in one line (``TranscriptWriter.error``), and the
    transcript ends where the disk did (no footer). docs/reliability.md, "The host".

    ``http``: the client of a real Execution API, closed when the session ends, or the stub's
    transport, which the session's client then calls in-process (``ExecutionAPIClient``'s
    ``in_process``: no httpx machinery between a request and the stub).

    ``session_factory``: builds the session from the client (default: a ``TaskSession`` of
    ``spec``, which must then be a ``TaskSpec``). ``launch``: the runtime already started for
    ``spec`` (``supervision.start_runtime``), for the session to adopt; the caller closes it
    should this raise before the session runs."""
    in_process = None
    if isinstance(http, StubTransport):
        in_process, http = http, stub_http(http)
    async with http:
        api = ExecutionAPIClient(
            http,
            in_process=in_process,
            token=token,
            retry=retry or RetryPolicy(),
            api_version=api_version,
            on_exchange=journal_exchanges(journal),
        )
        if session_factory is not None:
            session = session_factory(api)
        else:
            assert isinstance(spec, TaskSpec), "a ParseSpec needs its session_factory"
            session = TaskSession(spec, api, config=config, journal=journal, launch=launch)
        # Masks what the session records; with --no-redact, what it received is kept as it was.
        session.redactor.keep_received = not redact
        for sink in journal.sinks:
            # A sink that shows values (the console) masks them too, map keys and bytes included.
            if hasattr(sink, "redact"):
                sink.redact = session.redactor.value
        writer = None
        if transcript is not None:
            # Imported here: with --no-transcript the transcript layer is never loaded.
            from ..transcript import TranscriptWriteError, TranscriptWriter

            def transcript_failed(message: str) -> None:
                journal.emit("note", level="warning", message=message)
                if on_transcript_error is not None and writer is not None:
                    on_transcript_error(writer.error or message)

            try:
                writer = TranscriptWriter(
                    transcript,
                    _transcript_header(spec, api_label, config),
                    redact=session.masker.redact if redact else None,
                    redact_bytes=session.redactor.bytes if redact else None,
                    on_error=transcript_failed,
                )
            except TranscriptWriteError as exc:
                raise ConfigError(str(exc)) from None
            journal.sinks.insert(0, writer)
        outcome: TaskOutcome | None = None
        try:
            async with trio.open_nursery() as nursery:
                if forward_signals:
                    nursery.start_soon(forward_signals_to, session)
                outcome = await session.run()
                nursery.cancel_scope.cancel()
        finally:
            if writer is not None:
                # Shielded: a footer is written even when the run was cancelled.
                writer.close(
                    {
                        "final_state": outcome and outcome.final_state,
                        "exit_code": outcome and outcome.exit_code,
                        "violations": len(journal.violations),
                        **(
                            {"violations_suppressed": dict(journal.suppressed)}
                            if journal.suppressed
                            else {}
                        ),
                    }
                )
    return outcome


def open_store(
    state: str | os.PathLike[str] | None, fixtures: Fixtures | str | os.PathLike[str] | None
) -> StubStore:
    """The stub's store at ``state`` (default ``DEFAULT_STATE``; ``":memory:"``), its folder
    made, seeded with ``fixtures`` (loaded first when given as a path). A state file that
    cannot be used raises ``ConfigError`` naming it and the fix."""
    if not isinstance(fixtures, Fixtures):
        fixtures = load_fixtures(fixtures) if fixtures else Fixtures()
    state_path = str(state or DEFAULT_STATE)
    try:
        store = StubStore(state_path)  # makes the folder
    except StateFileError as exc:
        raise ConfigError(str(exc)) from None
    try:
        store.seed(fixtures)
    except sqlite3.Error as exc:  # damage the header did not show, found by the first writes
        store.close()
        raise ConfigError(str(StateFileError(state_path, f"is damaged ({exc})"))) from None
    return store


#: The signals a supervisor-sim process forwards to its runtimes rather than dies of: Ctrl+C,
#: a kill, and the terminal closing (SIGHUP, handled as SIGTERM: ``Session.forward_signal``).
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def forward_signals_to(session: SignalTarget) -> None:
    """Forward SIGINT/SIGTERM/SIGHUP (``FORWARDED_SIGNALS``) received by this process to a
    session (or anything with ``forward_signal``), for as long as the caller's nursery runs."""
    if not _in_main_thread():
        return
    with trio.open_signal_receiver(*FORWARDED_SIGNALS) as signals:
        async for sig in signals:
            session.forward_signal(sig)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
