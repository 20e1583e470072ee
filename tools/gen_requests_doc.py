"""Generate docs/requests.md: every request a runtime may send, the HTTP call it causes, its reply.

Usage: python tools/gen_requests_doc.py        (rewrites docs/requests.md)

The table rows come only from the message catalogue (``CATALOGUE[name].http`` and ``.replies``),
so the page cannot drift from the code: tests/supervision/test_coverage_guard.py renders it in
memory and fails when the committed file differs. ``render()`` returns the text without
writing anything.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from supervisor_sim.protocol import ACK, CATALOGUE, TERMINAL, TO_SUPERVISOR  # noqa: E402

OUTPUT = ROOT / "docs" / "requests.md"

#: Group title -> (what to know about the group, its request types in display order).
GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "Task state (terminal messages)",
        "The state call is made at once, except for `TaskState`, which is reported after the "
        "process exits. `SkipDownstreamTasks` is not terminal. A `SucceedTask` with "
        "`task_outlets` / `outlet_events` records asset events that later tasks can read.",
        (
            "SucceedTask",
            "RetryTask",
            "DeferTask",
            "RescheduleTask",
            "AwaitInputTask",
            "TaskState",
            "SkipDownstreamTasks",
        ),
    ),
    (
        "Variables and connections",
        "Not found is a body `ErrorResponse` (`VARIABLE_NOT_FOUND`, `CONNECTION_NOT_FOUND`); "
        "401/403 is `PERMISSION_DENIED`. Passwords, extras and sensitive variables are masked.",
        ("GetConnection", "GetVariable", "GetVariableKeys", "PutVariable", "DeleteVariable"),
    ),
    (
        "XComs",
        "A missing XCom reads as `XComResult{value: nil}`; only a missing sequence item is "
        "`XCOM_NOT_FOUND`. `map_index` is sent only when it is 0 or more.",
        (
            "GetXCom",
            "GetXComCount",
            "GetXComSequenceItem",
            "GetXComSequenceSlice",
            "SetXCom",
            "DeleteXCom",
        ),
    ),
    (
        "Rendering",
        "HTTP 410 on `rtif` (a late write after a retry gave the TI a new id) is ignored.",
        ("SetRenderedFields", "SetRenderedMapIndex"),
    ),
    (
        "DAG runs and the DAG",
        "A 409 on `TriggerDagRun` is the body `ErrorResponse(DAGRUN_ALREADY_EXISTS)`, or with "
        "`reset_dag_run` a `POST dag-runs/{dag_id}/{run_id}/clear` answered `OKResponse`. A "
        "missing run or DAG on the other requests is an error frame. Replies are full dumps.",
        (
            "GetDagRun",
            "GetDagRunState",
            "GetDRCount",
            "GetPreviousDagRun",
            "TriggerDagRun",
            "GetDag",
        ),
    ),
    (
        "Task instances",
        "`GetPrevSuccessfulDagRun` asks about the supervisor's own TI, whatever `ti_id` says, "
        "and its reply leaves out nil dates. Filters go out as repeated query parameters, "
        "datetimes in ISO 8601, `map_index` only when 0 or more (`GetPreviousTI` always sends "
        "it).",
        (
            "GetTICount",
            "GetTaskStates",
            "GetTaskBreadcrumbs",
            "GetPreviousTI",
            "GetPrevSuccessfulDagRun",
            "GetTaskRescheduleStartDate",
            "ValidateInletsAndOutlets",
        ),
    ),
    (
        "Assets and asset events",
        "Only active assets are served; a missing one is the body "
        "`ErrorResponse(ASSET_NOT_FOUND)` with detail `{name}` or `{uri}`. `AssetResult.extra` "
        "and nil keys of asset events are left out of the reply.",
        (
            "GetAssetByName",
            "GetAssetByUri",
            "GetAssetsByAlias",
            "GetAssetEventByAsset",
            "GetAssetEventByAssetAlias",
        ),
    ),
    (
        "Task state store",
        "Values are kept per DAG run, task and map index, so they survive a retry. A missing "
        "key is the body `ErrorResponse(TASK_STORE_NOT_FOUND)` with detail `{key}`.",
        (
            "GetTaskStateStore",
            "SetTaskStateStore",
            "DeleteTaskStateStore",
            "ClearTaskStateStore",
        ),
    ),
    (
        "Asset state store",
        "The asset must be active. A missing key is the body "
        "`ErrorResponse(ASSET_STORE_NOT_FOUND)` with detail `{key}`.",
        (
            "GetAssetStateStoreByName",
            "GetAssetStateStoreByUri",
            "SetAssetStateStoreByName",
            "SetAssetStateStoreByUri",
            "DeleteAssetStateStoreByName",
            "DeleteAssetStateStoreByUri",
            "ClearAssetStateStoreByName",
            "ClearAssetStateStoreByUri",
        ),
    ),
    (
        "Human in the loop",
        "The task supervisor only creates the request part; updates and reads of the response "
        "belong to the triggerer, so the task supervisor answers them with the error frame "
        '`API_SERVER_ERROR {"status_code": 400, "message": "Unhandled request"}`.',
        ("CreateHITLDetailPayload", "UpdateHITLDetail", "GetHITLDetailResponse"),
    ),
    (
        "Supervisor-only",
        "`ResendLoggingFD` passes a file descriptor with SCM_RIGHTS, which needs Airflow's "
        "AF_UNIX fork-mode socket: over the TCP comm socket of a `--comm/--logs` runtime the "
        'reply is the error frame `API_SERVER_ERROR {"status_code": null, "exception_type": '
        '"OSError", ...}`.',
        ("MaskSecret", "ResendLoggingFD"),
    ),
)

INTRO = """\
# Requests and replies

<!-- GENERATED by tools/gen_requests_doc.py from supervisor_sim.protocol's catalogue; do not
     edit by hand. Regenerate with `python tools/gen_requests_doc.py`; a test fails when this
     file is stale. -->

Every one of the {count} requests a runtime may send (`ToSupervisor`), the Execution API call
Airflow 3.3's task supervisor makes for it, and what the runtime gets back. supervisor-sim
answers each one the same way, from the embedded stub (seeded by fixtures: see
[fixtures.md](fixtures.md)) or from a real API server;
tests/supervision/test_coverage_guard.py sends each one through the real dispatcher and stub
and checks the reply's type and shape.

To watch one request of every group go through a session, run the reference runtime's `tour`
task (it also triggers a DAG run, writes the state stores and creates a HITL request); its log
shows each reply's type, and the verdict lists the two requests Airflow would refuse:

```sh
./supervisor-sim run-task requests_dag tour
```

How to read the **Reply** column:

* a message type is the body of the reply frame `[id, body, nil]`;
* **ack** is an empty reply `[id, nil, nil]`;
* `ErrorResponse` in the body slot is an expected outcome, such as "not found";
* **error slot** is `[id, nil, ErrorResponse]`: the request failed.

Besides the outcomes listed, any HTTP error the client does not turn into a body reaches the
runtime in the error slot as `API_SERVER_ERROR` with `{{status_code, message, detail}}` (detail
is the whole JSON error body), and any other failure as `API_SERVER_ERROR` with
`{{status_code: null, message, exception_type}}`. Terminal messages ({terminal}) are marked ★.
"""


def _reply(names: tuple[str, ...]) -> str:
    out = []
    for name in names:
        if name == ACK:
            out.append("**ack**")
        elif name.startswith("error slot"):
            out.append("**error slot**" + name[len("error slot") :])
        else:
            out.append(f"`{name}`")
    return " / ".join(out)


def render() -> str:
    grouped = [name for _, _, names in GROUPS for name in names]
    missing = sorted(set(TO_SUPERVISOR) - set(grouped))
    extra = sorted(set(grouped) - set(TO_SUPERVISOR))
    if missing or extra or len(grouped) != len(set(grouped)):
        raise SystemExit(f"GROUPS out of date: missing {missing}, unknown {extra}")
    terminal = ", ".join(f"`{n}`" for n in TO_SUPERVISOR if n in TERMINAL)
    parts = [INTRO.format(count=len(TO_SUPERVISOR), terminal=terminal)]
    for title, note, names in GROUPS:
        parts.append(f"## {title}\n\n{note}\n")
        rows = ["| Message | HTTP call | Reply |", "|---|---|---|"]
        for name in names:
            spec = CATALOGUE[name]
            star = " ★" if spec.terminal else ""
            http = spec.http
            if not http.startswith("none"):
                call, _, note = http.partition(" (")
                http = f"`{call}`" + (f" ({note}" if note else "")
            rows.append(f"| `{name}`{star} | {http} | {_reply(spec.replies)} |")
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def main() -> None:
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
