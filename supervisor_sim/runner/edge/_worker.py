"""``supervisor-sim worker``: an Edge worker in one trio process.

The loop follows ``airflow.providers.edge3.cli.worker.EdgeWorker``: register (state
``starting``), heartbeat (PATCH the worker's state, at once whenever the job count or the state
changes, else every ``heartbeat_interval``), fetch a job while a slot is free and neither a drain
nor maintenance is on (again at once after a job came, else after ``poll_interval``), report
``running``, supervise, push the log, report ``success``/``failed``; quit with ``offline``. Each
job is a ``supervise`` session of the workload against the real Execution API with the
workload's token, in one nursery: cancelling it kills every runtime's process group.

A drain (SIGTERM/SIGINT, a shutdown request) with a ``drain_timeout`` ends as
``EdgeWorker._enforce_drain_timeout`` ends it: once the timeout passes, every running task gets
SIGTERM (forwarded to its runtime by its session, as Airflow's supervisor forwards the SIGTERM
the worker sends it) and a note in its log; ``drain_kill_grace`` later the tasks left are
killed (process groups, SIGTERM then SIGKILL), reported ``failed`` and the worker quits.
"""

from __future__ import annotations

import signal
import socket
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from ...api import RetryPolicy, real_api_client
from ...supervision import Event, Journal, SupervisorConfig, TaskOutcome, TaskSession, TaskSpec
from .. import default_transcript, supervise
from . import _protocol as p
from ._client import EdgeAPIError, EdgeClient

__all__ = ["EdgeWorker", "WorkerSettings", "default_hostname", "prune_transcripts"]


def default_hostname() -> str:
    """The worker's name as Airflow's worker picks it (``$HOSTNAME`` or the FQDN)."""
    import os

    return os.environ.get("HOSTNAME") or socket.getfqdn()


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the worker runs with; the command line builds it."""

    api_url: str
    secret: str
    hostname: str
    #: queue -> runtime argv; ``"*"`` serves any queue without its own.
    runtimes: Mapping[str, list[str]]
    queues: list[str] | None = None
    concurrency: int = 8
    heartbeat_interval: float = 30.0
    poll_interval: float = 5.0
    push_log_chunk_size: int = 524288
    execution_api_url: str | None = None
    transcripts: Path | None = None
    keep_transcripts: int = 500
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    runtime_cwd: str | None = None
    api_retries: int = 5
    redact: bool = True
    #: [edge] drain_timeout_sec: seconds a drain waits before it SIGTERMs the tasks (0: for ever).
    drain_timeout: float = 0.0
    #: [edge] drain_kill_grace_sec: seconds after that SIGTERM before the tasks are killed.
    drain_kill_grace: float = 30.0

    def runtime_for(self, queue: str) -> list[str] | None:
        return self.runtimes.get(queue) or self.runtimes.get("*")


def prune_transcripts(folder: Path, keep: int) -> int:
    """Delete the oldest ``*.jsonl`` in ``folder`` beyond the newest ``keep``; how many went."""
    try:
        files = sorted(folder.glob("*.jsonl"), key=lambda f: f.stat().st_mtime, reverse=True)
    except OSError:
        return 0
    gone = 0
    for old in files[max(0, keep) :]:
        try:
            old.unlink()
            gone += 1
        except OSError:
            pass
    return gone


class _LogPusher:
    """A journal sink keeping the task's log lines (masked like the console's) until pushed."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.redact: Callable[[Any], Any] = lambda value: value

    def __call__(self, event: Event) -> None:
        if event.kind == "log":
            record = self.redact(event.data.get("record"))
            self.lines.append(p.log_line(str(event.data.get("source", "logs")), record))

    def take(self, chunk_size: int) -> list[str]:
        data, self.lines = "".join(self.lines), []
        return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]


class EdgeWorker:
    """One worker: ``run()`` until drained (SIGTERM/SIGINT, a shutdown request) or stopped
    (a second signal); returns the exit status."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        say: Callable[[str], None],
        client: EdgeClient | None = None,
    ) -> None:
        self.settings = settings
        self.say = say
        self.client = client or EdgeClient(
            settings.api_url, settings.secret, attempts=settings.api_retries
        )
        self.state = p.WorkerState(concurrency=settings.concurrency, queues=settings.queues)
        self.started = datetime.now(UTC)
        self.execution_url = settings.execution_api_url or p.execution_url(settings.api_url)
        self._changed = trio.Event()
        self._jobs_scope: trio.CancelScope | None = None
        self._next_id = 0
        self.stopped = False
        self.results: dict[str, str] = {}
        #: The running sessions, by job id (to forward a drain timeout's SIGTERM to).
        self._sessions: dict[int, TaskSession] = {}
        self._draining = trio.Event()
        #: Why the running jobs were killed (pushed to their logs), once they were.
        self._kill_note: str | None = None

    def _wake(self) -> None:
        if self.state.drain and not self._draining.is_set():
            self._draining.set()
        self._changed.set()
        self._changed = trio.Event()

    def _info(self, *, quitting: bool = False) -> dict[str, Any]:
        info = p.sysinfo(
            concurrency=self.state.concurrency,
            free_concurrency=self.state.free_concurrency,
            started=self.started,
            versions_match=self.state.versions_match,
        )
        if quitting:
            info["status"] = 0  # logging.NOTSET, as Airflow's worker quits
            info.pop("status_text", None)
        return info

    async def run(self) -> int:
        s = self.settings
        try:
            reply = await self.client.register(
                s.hostname,
                p.MAINTENANCE_MODE if self.state.maintenance else p.STARTING,
                self.state.queues,
                self._info(),
            )
            self.state.versions_match = bool(reply.get("versions_match", False))
            queues = ",".join(self.state.queues) if self.state.queues else "all queues"
            self.say(
                f"registered as {s.hostname!r} at {self.client.base} ({queues}, concurrency"
                f" {self.state.concurrency})"
            )
            async with trio.open_nursery() as root:
                root.start_soon(self._signals)
                root.start_soon(self._heartbeats)
                root.start_soon(self._drain_timeout)
                with trio.CancelScope() as self._jobs_scope:
                    async with trio.open_nursery() as jobs:
                        await self._fetch_loop(jobs)
                root.cancel_scope.cancel()
            with trio.move_on_after(30) as late:
                late.shield = True
                await self.client.set_state(
                    s.hostname,
                    self.state.offline_state,
                    jobs_active=0,
                    queues=self.state.queues,
                    info=self._info(quitting=True),
                    maintenance_comments=self.state.maintenance_comments,
                )
            self.say(f"worker {s.hostname!r} is {self.state.offline_state}")
        finally:
            with trio.CancelScope(shield=True):
                await self.client.aclose()
        return 130 if self.stopped else 0

    # -- the three loops ---------------------------------------------------------------------

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for sig in signals:
                name = signal.Signals(sig).name
                if not self.state.drain:
                    self.state.drain = True
                    self.say(
                        f"{name}: finishing {len(self.state.jobs)} running task(s), taking no new"
                        f" ones ({name} again stops at once; {self._drain_policy()})"
                    )
                    self._wake()
                else:
                    self.stopped = True
                    self.say(f"{name} again: stopping now, killing the running tasks")
                    self._kill_jobs("supervisor-sim worker stopped: task killed")

    def _drain_policy(self) -> str:
        s = self.settings
        if s.drain_timeout <= 0:
            return "no drain timeout: waiting for them however long they take"
        return (
            f"drain timeout {s.drain_timeout:g}s, then SIGTERM; kill grace "
            f"{s.drain_kill_grace:g}s, then killed"
        )

    def _kill_jobs(self, note: str) -> None:
        if self._kill_note is None:
            self._kill_note = note
        if self._jobs_scope is not None:
            self._jobs_scope.cancel()

    async def _until_no_jobs(self) -> None:
        while self.state.jobs:
            await self._changed.wait()

    async def _drain_timeout(self) -> None:
        """Once a drain started: ``drain_timeout`` seconds for the running tasks, then SIGTERM
        for each (and a note in its log), ``drain_kill_grace`` more, then kill what is left."""
        s = self.settings
        await self._draining.wait()
        if s.drain_timeout <= 0:
            return
        with trio.move_on_after(s.drain_timeout):
            await self._until_no_jobs()
        if not self.state.jobs:
            return
        self.say(
            f"drain timeout of {s.drain_timeout:g}s passed with {len(self.state.jobs)} task(s)"
            f" running: sending them SIGTERM, killing them after {s.drain_kill_grace:g}s more"
        )
        await self._notify_all(
            f"supervisor-sim worker drain timeout of {s.drain_timeout:g}s expired; sending "
            f"SIGTERM to the task's runtime. Will kill it after {s.drain_kill_grace:g}s grace.\n"
        )
        for session in list(self._sessions.values()):
            session.forward_signal(signal.SIGTERM)
        with trio.move_on_after(s.drain_kill_grace):
            await self._until_no_jobs()
        if not self.state.jobs:
            return
        self.say(
            f"drain kill grace of {s.drain_kill_grace:g}s passed with {len(self.state.jobs)}"
            " task(s) running: killing them and quitting"
        )
        self._kill_jobs(
            f"supervisor-sim worker drain kill-grace of {s.drain_kill_grace:g}s expired:"
            " task killed"
        )

    async def _notify_all(self, text: str) -> None:
        async with trio.open_nursery() as nursery:
            for job in list(self.state.jobs.values()):
                nursery.start_soon(self._push_text, job, text)

    async def _heartbeats(self) -> None:
        s = self.settings
        while True:
            sent = self.state.state
            changed = self._changed
            try:
                reply = await self.client.set_state(
                    s.hostname,
                    sent,
                    jobs_active=len(self.state.jobs),
                    queues=self.state.queues,
                    info=self._info(),
                    maintenance_comments=self.state.maintenance_comments,
                )
            except EdgeAPIError as exc:
                self.say(f"heartbeat failed: {exc}")
                again = False
            else:
                notes, again = self.state.heartbeat(reply, sent)
                for note in notes:
                    self.say(note)
                if notes:
                    self._wake()
            if again:
                await trio.sleep(0)
                continue
            with trio.move_on_after(s.heartbeat_interval):
                await changed.wait()

    async def _fetch_loop(self, jobs: trio.Nursery) -> None:
        s = self.settings
        while not self.state.drain:
            changed = self._changed
            if self.state.may_fetch:
                try:
                    job = await self.client.fetch(
                        s.hostname, self.state.queues, self.state.free_concurrency
                    )
                except EdgeAPIError as exc:
                    self.say(f"fetching a job failed: {exc}")
                    job = None
                if job is not None:
                    self._next_id += 1
                    self.state.jobs[self._next_id] = job
                    self._wake()
                    jobs.start_soon(self._run_job, self._next_id, job)
                    continue  # as Airflow's worker: fetch the next one at once
            with trio.move_on_after(s.poll_interval):
                await changed.wait()

    # -- one job -----------------------------------------------------------------------------

    async def _run_job(self, job_id: int, job: p.EdgeJob) -> None:
        pusher = _LogPusher()
        final = "failed"
        try:
            self.say(f"started {job.identifier} (queue {job.queue})")
            await self._report(job, "running")
            outcome, problem = await self._supervise(job_id, job, pusher)
            if outcome is not None and outcome.exit_code == 0 and problem is None:
                final = "success"
            await self._push(job, pusher)
            detail = None
            if final == "failed":
                detail = problem or (
                    f"the task ended {outcome.final_state if outcome else 'unstarted'}"
                    f" (exit code {outcome.exit_code if outcome else None})"
                )
                await self._push_text(job, f"Error executing job:\n{detail}\n")
            await self._report(job, final)
            shown = outcome.final_state if outcome is not None else "not started"
            if final == "failed":
                # Why, on the worker's own output too: the task log may never be read.
                shown = f"{shown}, exit code {outcome.exit_code if outcome else None}: {detail}"
            self.say(f"ended {job.identifier}: {shown} (job {final})")
        finally:
            self.results[job.identifier] = final
            self._sessions.pop(job_id, None)
            if final != "success" and self._kill_note is not None:
                with trio.move_on_after(10) as scope:
                    scope.shield = True
                    await self._push(job, pusher)
                    await self._push_text(job, f"{self._kill_note}\n")
                    await self._report(job, "failed")
                    self.say(f"ended {job.identifier}: killed (job failed)")
            del self.state.jobs[job_id]
            self._wake()
            if self.settings.transcripts is not None:
                prune_transcripts(self.settings.transcripts, self.settings.keep_transcripts)

    async def _report(self, job: p.EdgeJob, state: str) -> None:
        try:
            await self.client.set_job_state(job, state)
        except EdgeAPIError as exc:
            self.say(f"reporting {job.identifier} as {state} failed: {exc}")

    async def _push_text(self, job: p.EdgeJob, text: str) -> bool:
        try:
            await self.client.push_logs(job, text)
        except EdgeAPIError as exc:
            self.say(f"pushing the log of {job.identifier} failed: {exc}")
            return False
        return True

    async def _push(self, job: p.EdgeJob, pusher: _LogPusher) -> None:
        """Push what the task logged since the last push; what a failed push did not deliver
        goes back to the front of the queue, for the next one."""
        chunks = pusher.take(self.settings.push_log_chunk_size)
        for i, chunk in enumerate(chunks):
            if not await self._push_text(job, chunk):
                pusher.lines[:0] = chunks[i:]
                return

    async def _push_while(self, job: p.EdgeJob, pusher: _LogPusher) -> None:
        while True:
            await trio.sleep(self.settings.poll_interval)
            await self._push(job, pusher)

    async def _supervise(
        self, job_id: int, job: p.EdgeJob, pusher: _LogPusher
    ) -> tuple[TaskOutcome | None, str | None]:
        s = self.settings
        runtime = s.runtime_for(job.queue)
        if runtime is None:
            return None, f"supervisor-sim worker has no runtime for queue {job.queue!r}"
        command = job.command
        spec = TaskSpec(
            ti=dict(command["ti"]),
            runtime=runtime,
            dag_rel_path=str(command.get("dag_rel_path") or "."),
            bundle_info=dict(
                command.get("bundle_info") or {"name": "dags-folder", "version": None}
            ),
            cwd=s.runtime_cwd,
            hostname=s.hostname,
            sentry_integration=str(command.get("sentry_integration") or ""),
        )
        journal = Journal()
        journal.sinks.append(pusher)
        transcript = None
        if s.transcripts is not None:
            s.transcripts.mkdir(parents=True, exist_ok=True)
            transcript = default_transcript(s.transcripts, spec.ti)

        def session(api: Any) -> TaskSession:
            made = TaskSession(spec, api, config=s.supervisor, journal=journal)
            self._sessions[job_id] = made
            return made

        try:
            http = real_api_client(self.execution_url)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._push_while, job, pusher)
                outcome = await supervise(
                    spec,
                    http,
                    token=job.token,
                    config=s.supervisor,
                    journal=journal,
                    transcript=transcript,
                    redact=s.redact,
                    api_label=self.execution_url,
                    retry=RetryPolicy(),
                    forward_signals=False,
                    session_factory=session,
                )
                nursery.cancel_scope.cancel()
        except Exception as exc:  # one job's failure is that job's, never the worker's
            line = traceback.format_exception_only(exc)[-1].strip()
            return None, f"supervisor-sim could not supervise the task: {line}"
        if transcript is not None:
            self.say(f"transcript of {job.identifier}: {transcript}")
        return outcome, outcome.error
