"""`--log-format json` writes without structlog (importing it costs ~50 ms of start-up: its
console renderer, rich, asyncio). The lines must be exactly what the structlog chain
`configure_logging("json")` used to set up wrote."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest
import structlog

from supervisor_sim.cli import _console
from supervisor_sim.cli._console import ConsoleSink, _timestamp_first, configure_logging
from supervisor_sim.supervision import Event


class Opaque:
    def __repr__(self) -> str:
        return "<opaque thing>"


class Custom:
    def __structlog__(self) -> str:
        return "custom rendering"


def events() -> list[Event]:
    log = {"source": "task", "logger": "airflow.task"}
    return [
        Event("log", 0.1, {"record": {"event": "hello", "level": "info", "timestamp": "1999-01-02T03:04:05.123456Z", **log}, "source": "logs"}),  # noqa: E501
        Event("log", 0.2, {"record": {"event": "careful", "level": "warn", "timestamp": "1999-01-02T03:04:05Z", "n": 3}, "source": "logs"}),  # noqa: E501
        Event("log", 0.3, {"record": {"event": "boom", "level": "exception", "error_detail": [{"exc_type": "ValueError"}]}, "source": "logs"}),  # noqa: E501
        Event("log", 0.4, {"record": {"event": "the end", "level": "fatal", "timestamp": None}, "source": "logs"}),  # noqa: E501
        Event("log", 0.5, {"record": {"event": "odd level", "level": "trace", "ünïcode": "é"}, "source": "stdout"}),  # noqa: E501
        Event("log", 0.6, {"record": {"level": "debug", "value": Opaque(), "custom": Custom()}, "source": "stderr"}),  # noqa: E501
        Event("log", 0.65, {"record": {"event": None, "level": "error"}, "source": "logs"}),
        Event("frame", 0.7, {"direction": "in", "type": "GetVariable", "id": 1, "body": {"type": "GetVariable", "key": "k"}}),  # noqa: E501
        Event("frame", 0.8, {"direction": "out", "type": None, "id": 1, "body": {"value": "x" * 80}, "error": {"detail": "nope"}}),  # noqa: E501
        Event("frame", 0.85, {"direction": "in", "type": "X", "id": 2, "error": "bad frame"}),
        Event("http", 0.9, {"method": "GET", "path": "/execution/variables/k", "status": 200}),
        Event("process", 1.0, {"event": "spawn", "pid": 123, "argv": ["a", "b"]}),
        Event("process", 1.1, {"event": "signal", "signal": "SIGTERM", "target": "group"}),
        Event("violation", 1.2, {"rule": "some-rule", "message": "m", "airflow": "a"}),
        Event("note", 1.3, {"level": "warning", "message": "w"}),
        Event("note", 1.4, {"level": "debug", "message": "d"}),
        Event("note", 1.5, {"level": "verbose", "message": "v"}),
    ]  # fmt: skip


@pytest.fixture
def restore_logging():
    saved = structlog.get_config()
    json_stream = _console._json_stream
    yield
    structlog.configure(**saved)
    _console._json_stream = json_stream


def structlog_json(stream: io.StringIO) -> None:
    """What configure_logging("json") configured when it still used structlog."""
    _console._json_stream = None
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            _timestamp_first,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def render(configure, **sink_args) -> list[str]:
    stream = io.StringIO()
    configure(stream)
    sink = ConsoleSink(**sink_args)
    sink.redact = lambda body: body
    for event in events():
        sink(event)
    # Our own emission times differ between the two runs: compare their shape, not their value
    # (the runtime's own timestamps, from 1999, are kept).
    now = re.compile(r'"timestamp": "(?!1999)\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z"')
    lines = stream.getvalue().splitlines()
    for line in lines:
        json.loads(line)
    return [now.sub('"timestamp": "NOW"', line) for line in lines]


@pytest.mark.parametrize(
    "sink_args",
    [
        {"verbosity": 2, "bind": True, "dag_id": "d", "task_id": "t", "try_number": 1},
        {"verbosity": 1, "bind": False, "dag_id": "d", "task_id": "t"},
        {"verbosity": 0, "bind": True, "dag_id": "d", "map_index": 3},
    ],
)
def test_json_lines_are_structlogs(restore_logging, sink_args):
    ours = render(lambda stream: configure_logging("json", stream), **sink_args)
    theirs = render(structlog_json, **sink_args)
    assert ours == theirs
    assert ours  # every case writes something (violations are shown at any verbosity)


def test_the_runtimes_timestamp_is_kept(restore_logging):
    lines = render(lambda stream: configure_logging("json", stream), verbosity=1, bind=False)
    first = json.loads(lines[0])
    assert list(first) == ["source", "logger", "event", "level", "timestamp"]
    assert first["timestamp"] == "1999-01-02T03:04:05.123456Z"


def test_the_json_format_does_not_import_structlog():
    code = (
        "import sys\n"
        "import supervisor_sim.cli  # as the command line runs it: without httpx's own CLI\n"
        "from supervisor_sim.cli._console import ConsoleSink, configure_logging\n"
        "from supervisor_sim.supervision import Event\n"
        "configure_logging('json')\n"
        "sink = ConsoleSink(verbosity=2, dag_id='d')\n"
        "sink(Event('log', 0.1, {'record': {'event': 'hi', 'level': 'info'}, 'source': 'logs'}))\n"
        "sink(Event('note', 0.2, {'level': 'warning', 'message': 'w'}))\n"
        "print(sorted(m for m in ('structlog', 'rich', 'asyncio') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "[]"
    assert [json.loads(line)["event"] for line in proc.stderr.splitlines()] == ["hi", "w"]
