"""Running sessions: the glue between the layers that every command shares.

``supervise`` runs one session with a transcript and signal forwarding; the command line and
``run-dag`` call it, so a task run the same way whichever command started it.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import trio

from ..api import (
    API_VERSION,
    ExecutionAPIClient,
    Fixtures,
    RetryPolicy,
    StubStore,
    load_fixtures,
)
from ..supervision import (
    Journal,
    SupervisorConfig,
    TaskOutcome,
    TaskSession,
    TaskSpec,
    journal_exchanges,
)
from ._config import DEFAULT_RUNS, DEFAULT_STATE

__all__ = ["DEFAULT_RUNS", "DEFAULT_STATE", "open_store", "supervise", "ti_wire"]


def ti_wire(record: Any) -> dict[str, Any]:
    """The TaskInstance a StartupDetails carries, from a queued task-instance record."""
    return {
        "id": record.id,
        "task_id": record.task_id,
        "dag_id": record.dag_id,
        "run_id": record.run_id,
        "try_number": record.try_number,
        "dag_version_id": record.dag_version_id,
        "map_index": record.map_index,
        "queue": record.queue,
    }


def _transcript_header(spec: Any, api_label: str, config: SupervisorConfig) -> dict[str, Any]:
    header: dict[str, Any] = {
        "command": list(sys.argv),
        "runtime": list(spec.runtime),
        "api": api_label,
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


def default_transcript(base: Path, ti: dict[str, Any]) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f"{ti['dag_id']}.{ti['task_id']}.{ti['run_id']}.try{ti['try_number']}.{stamp}.jsonl"
    return base / re.sub(r"[^A-Za-z0-9._+-]", "_", name)


async def supervise(
    spec: TaskSpec,
    http: httpx.AsyncClient,
    *,
    token: str,
    config: SupervisorConfig,
    journal: Journal,
    transcript: Path | None,
    redact: bool,
    api_label: str,
    retry: RetryPolicy | None = None,
    api_version: str = API_VERSION,
    session_factory: Any = None,
    forward_signals: bool = True,
    launch: Any = None,
) -> TaskOutcome:
    """Run one session with signal forwarding and (optionally) a transcript of it.

    ``launch``: the runtime already started for ``spec`` (``supervision._process.Launch``), for
    the session to adopt; the caller closes it should this raise before the session runs."""
    async with http:
        api = ExecutionAPIClient(
            http,
            token=token,
            retry=retry or RetryPolicy(),
            api_version=api_version,
            on_exchange=journal_exchanges(journal),
        )
        if session_factory is not None:
            session = session_factory(api)
        else:
            session = TaskSession(spec, api, config=config, journal=journal, launch=launch)
        for sink in journal.sinks:
            # A sink that shows values (the console) redacts them with the session's masker.
            if hasattr(sink, "redact"):
                sink.redact = session.masker.redact
        writer = None
        if transcript is not None:
            # Imported here: with --no-transcript the transcript layer is never loaded.
            from ..transcript import TranscriptWriter

            masker = session.masker
            writer = TranscriptWriter(
                transcript,
                _transcript_header(spec, api_label, config),
                redact=masker.redact if redact else None,
                redact_bytes=(lambda b: masker.redact(b.decode("utf-8", "replace")).encode())
                if redact
                else None,
            )
            journal.sinks.insert(0, writer)
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
                        "final_state": locals().get("outcome") and outcome.final_state,
                        "exit_code": locals().get("outcome") and outcome.exit_code,
                        "violations": len(journal.violations),
                    }
                )
    return outcome


def open_store(state: Any, fixtures_path: Any) -> StubStore:
    fixtures = load_fixtures(fixtures_path) if fixtures_path else Fixtures()
    state_path = state or DEFAULT_STATE
    if state_path != ":memory:":
        Path(state_path).parent.mkdir(parents=True, exist_ok=True)
    store = StubStore(state_path)
    store.seed(fixtures)
    return store


async def forward_signals_to(session: Any) -> None:
    """Forward SIGINT/SIGTERM received by this process to a session (or anything with
    ``forward_signal``), for as long as the caller's nursery runs."""
    if not _in_main_thread():
        return
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for sig in signals:
            session.forward_signal(sig)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
