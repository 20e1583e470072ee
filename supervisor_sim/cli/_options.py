"""The options several commands take, each declared once.

Every function returns a click decorator; where commands word an option differently, the help
text is a parameter and the declaration (flag, destination, type, default) stays here. Click
only: importing this module loads nothing of the layers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..runner import DEFAULT_RUNS, DEFAULT_STATE

__all__ = [
    "AIRFLOW_VERSION",
    "API_VERSION",
    "TASK_SDK_VERSION",
    "api_url_option",
    "bundle_name_option",
    "fault_option",
    "fixtures_option",
    "json_option",
    "jwt_secret_option",
    "log_format_option",
    "quiet_option",
    "real_api_options",
    "run_id_option",
    "runtime_option",
    "seconds_option",
    "startup_timeout_option",
    "state_option",
    "timeout_option",
    "transcript_options",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The Airflow-API-Version sent by default: ``supervisor_sim.api.API_VERSION``, repeated here so
#: that --help does not import the API layer (tests/cli/test_startup_imports.py checks they agree).
API_VERSION = "2026-06-30"
#: What supervisor-sim simulates (--version): Airflow's supervisor of this release, and the
#: task SDK its protocol models come from (``supervisor_sim.protocol``'s generated schema).
AIRFLOW_VERSION = "3.3.2"
TASK_SDK_VERSION = "1.3.2"


def _stacked(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several options as one decorator, listed in --help in the order given."""

    def apply(f: F) -> F:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def runtime_option(
    help: str = "Runtime command; default: from the config file.",
) -> Callable[[F], F]:
    """``--runtime CMD`` into ``runtime_cmd``."""
    return click.option("--runtime", "runtime_cmd", metavar="CMD", help=help)


def fixtures_option(help: str | None = None) -> Callable[[F], F]:
    """``--fixtures FILE``: the stub's TOML fixtures, as a ``Path``."""
    return click.option("--fixtures", type=click.Path(path_type=Path, dir_okay=False), help=help)


def state_option(help: str = "SQLite state of the stub.") -> Callable[[F], F]:
    """``--state PATH`` into ``state_path``: the stub's SQLite file (or ``:memory:``)."""
    return click.option("--state", "state_path", metavar="PATH", help=help)


#: ``--state``'s help where the default is worth showing.
STATE_HELP = f"SQLite file of the stub's state (default {DEFAULT_STATE}; ':memory:')."


def run_id_option() -> Callable[[F], F]:
    """``--run-id``: the DAG run."""
    return click.option("--run-id", help="DAG run id (default: a new manual run).")


def timeout_option(
    help: str, default: float | None = None, *, positive: bool = False
) -> Callable[[F], F]:
    """``--timeout SECONDS``: when to stop a runtime; ``positive``: more than 0 or a usage
    error."""
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True) if positive else float,
        metavar="SECONDS",
        default=default,
        show_default=default is not None,
        help=help,
    )


def seconds_option(
    *names: str, help: str, default: float | None = None, min: float = 0
) -> Callable[[F], F]:
    """An option of ``SECONDS`` (at least ``min``), its default shown when it has one."""
    return click.option(
        *names,
        type=click.FloatRange(min=min),
        default=default,
        show_default=default is not None,
        metavar="SECONDS",
        help=help,
    )


def startup_timeout_option(
    help: str = "Seconds to connect --comm/--logs (10).", default: float | None = None
) -> Callable[[F], F]:
    """``--startup-timeout SECONDS``: how long the runtime may take to connect back."""
    return click.option(
        "--startup-timeout",
        type=float,
        default=default,
        show_default=default is not None,
        help=help,
    )


def bundle_name_option() -> Callable[[F], F]:
    """``--bundle-name``: the DAG bundle named in the request."""
    return click.option("--bundle-name", default="dags-folder", show_default=True)


def json_option(what: str = "result") -> Callable[[F], F]:
    """``--json`` into ``as_json``: print ``what`` as one JSON object on stdout."""
    return click.option(
        "--json", "as_json", is_flag=True, help=f"Print the {what} as one JSON object."
    )


def log_format_option(help: str | None = None) -> Callable[[F], F]:
    """``--log-format auto|console|json`` (``auto``: console on a terminal, JSON otherwise)."""
    return click.option(
        "--log-format",
        type=click.Choice(["auto", "console", "json"]),
        default="auto",
        show_default=True,
        help=help,
    )


def quiet_option(help: str | None = None) -> Callable[[F], F]:
    """``-q/--quiet``, counted."""
    return click.option("-q", "--quiet", count=True, help=help)


def transcript_options(*, redact: bool = False) -> Callable[[F], F]:
    """``--transcript FILE`` and ``--no-transcript``; with ``redact``, ``--no-redact`` too."""
    options = [
        click.option(
            "--transcript",
            type=click.Path(path_type=Path, dir_okay=False),
            help=f"Where to record the transcript (default: a new file in {DEFAULT_RUNS}/).",
        ),
        no_transcript_option("Do not record a transcript."),
    ]
    if redact:
        options.append(
            click.option(
                "--no-redact",
                is_flag=True,
                help="Keep secrets (JWTs, passwords, masked values) in the transcript.",
            )
        )
    return _stacked(*options)


def no_transcript_option(help: str) -> Callable[[F], F]:
    """``--no-transcript``: record nothing."""
    return click.option("--no-transcript", is_flag=True, help=help)


def api_url_option(help: str) -> Callable[[F], F]:
    """``--api-url URL``: a real Execution API instead of the stub."""
    return click.option("--api-url", help=help)


def jwt_secret_option(help: str) -> Callable[[F], F]:
    """``--jwt-secret`` (or ``SUPERVISOR_SIM_JWT_SECRET``): Airflow's [api_auth] jwt_secret,
    to mint task tokens."""
    return click.option("--jwt-secret", envvar="SUPERVISOR_SIM_JWT_SECRET", help=help)


def real_api_options() -> Callable[[F], F]:
    """What it takes to run one task try on a real Execution API: the URL, the token (given or
    minted), the task instance, the API version, retries and TLS."""
    tls_file = click.Path(exists=True, dir_okay=False)
    return _stacked(
        api_url_option("A real Execution API base URL instead of the stub."),
        click.option(
            "--token",
            envvar="SUPERVISOR_SIM_TOKEN",
            help="Task JWT for --api-url (or SUPERVISOR_SIM_TOKEN).",
        ),
        jwt_secret_option(
            "With --api-url and no --token: mint a workload token with Airflow's "
            "[api_auth] jwt_secret (or SUPERVISOR_SIM_JWT_SECRET)."
        ),
        click.option("--ti-id", help="Task instance id (required with --api-url)."),
        click.option(
            "--dag-version-id", help="dag_version_id sent in StartupDetails with --api-url."
        ),
        click.option(
            "--api-version",
            default=API_VERSION,
            show_default=True,
            help="Airflow-API-Version header sent to the Execution API.",
        ),
        click.option("--api-retries", type=int, help="HTTP attempts per call (Airflow: 5)."),
        click.option("--api-timeout", type=float, help="Seconds per HTTP attempt (Airflow: 5.0)."),
        click.option("--ca-file", type=tls_file, help="Extra CA bundle for an https --api-url."),
        click.option(
            "--client-cert", type=tls_file, help="Client certificate for mTLS (with --client-key)."
        ),
        click.option(
            "--client-key", type=tls_file, help="Client key for mTLS (with --client-cert)."
        ),
    )


def fault_option() -> Callable[[F], F]:
    """``--fault SPEC`` (repeatable) into ``faults``: API faults and outside events to inject
    (docs/unhappy-paths.md)."""
    return click.option(
        "--fault",
        "faults",
        metavar="SPEC",
        multiple=True,
        help="Inject an API fault or outside event, e.g. GetVariable:500, "
        "'PUT /task-instances/*/heartbeat:409@3', '*:delay=0.5s', event=ti-failed@2s, "
        "token-expiry=10s, seed=7 (repeatable; docs/unhappy-paths.md).",
    )
