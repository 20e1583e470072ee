"""Prepare an AIRFLOW_HOME for supervisor-sim: migrate the DB, register DAGs, seed data.

Runs with the Airflow venv's python (tools/airflow_venv.sh), with AIRFLOW_HOME,
AIRFLOW__CORE__DAGS_FOLDER and AIRFLOW__API_AUTH__JWT_SECRET set as for every other process.
Each ``airflow ...`` CLI call pays about 2.5 s of imports, so this runs the same CLI commands
in one process, in order:

    airflow db migrate
    airflow dags reserialize
    airflow variables set peer_var hello-from-var
    airflow connections add peer_conn --conn-type http --conn-host example.invalid \
        --conn-login bob --conn-password s3cret

Usage: python setup_home.py [--skip-migrate] [-- EXTRA CLI ARGS ...]
Copy tools/airflow_peer/example_dag.py into the DAGs folder first.
"""

from __future__ import annotations

import sys
import time

COMMANDS = [
    ["db", "migrate"],
    ["dags", "reserialize"],
    ["variables", "set", "peer_var", "hello-from-var"],
    [
        "connections",
        "add",
        "peer_conn",
        "--conn-type",
        "http",
        "--conn-host",
        "example.invalid",
        "--conn-login",
        "bob",
        "--conn-password",
        "s3cret",
    ],
]


def main(argv: list[str]) -> int:
    commands = list(COMMANDS)
    if "--skip-migrate" in argv:
        commands = commands[1:]
    if "--" in argv:
        commands.append(argv[argv.index("--") + 1 :])
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()
    for command in commands:
        started = time.monotonic()
        args = parser.parse_args(command)
        args.func(args)
        print(f"setup_home: airflow {' '.join(command[:3])} ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
