"""Fault plans: the spec syntax, its errors, the TOML form and which call each rule takes."""

from __future__ import annotations

import pytest

from supervisor_sim.api import FaultPlan, FaultPlanError

TI = "/execution/task-instances/01a23c20-f8ea-74ca-9ebe-ebef6ea7301c"


def kinds(plan: FaultPlan, calls: list[tuple[str, str]]) -> list[object]:
    out: list[object] = []
    for method, path in calls:
        action = plan.before(method, path)
        out.append(None if action is None else (action.kind, action.status))
    return out


def test_request_type_targets_its_route_on_every_call():
    """GetVariable:500 answers every GET /variables/{key} 500, and nothing else."""
    plan = FaultPlan.parse(["GetVariable:500"])
    got = kinds(
        plan,
        [
            ("GET", "/execution/variables/a"),
            ("GET", "/execution/variables/b"),
            ("PUT", TI + "/heartbeat"),
        ],
    )
    assert got == [("status", 500), ("status", 500), None]


def test_route_pattern_on_the_nth_call_only():
    """PUT /task-instances/*/heartbeat:409@3 takes the third heartbeat alone."""
    plan = FaultPlan.parse(["PUT /task-instances/*/heartbeat:409@3"])
    got = kinds(plan, [("PUT", TI + "/heartbeat")] * 4)
    assert got == [None, None, ("status", 409), None]


def test_from_the_nth_call_on():
    """@2+ takes the second call and every later one."""
    plan = FaultPlan.parse(["GetConnection:503@2+"])
    got = kinds(plan, [("GET", "/execution/connections/c")] * 3)
    assert got == [None, ("status", 503), ("status", 503)]


def test_409_body_is_airflows_not_running_detail():
    """An injected 409 carries the detail Airflow's heartbeat route sends."""
    action = FaultPlan.parse(["*:409"]).before("PUT", TI + "/heartbeat")
    assert action is not None
    assert b'"reason":"not_running"' in action.body


def test_422_body_is_pydantic_shaped():
    """An injected 422 carries a list of pydantic-style errors under detail."""
    action = FaultPlan.parse(["*:422"]).before("GET", "/execution/variables/a")
    assert action is not None and action.body.startswith(b'{"detail":[{"type":"missing"')


def test_probability_is_reproducible_with_a_seed():
    """Two plans with the same seed take the same calls; another seed takes others."""

    def taken(seed: int) -> list[object]:
        plan = FaultPlan.parse([f"GetVariable:reset@p=0.5;seed={seed}"])
        return kinds(plan, [("GET", "/execution/variables/a")] * 40)

    assert taken(7) == taken(7)
    assert taken(7) != taken(8)
    assert ("reset", None) in taken(7) and None in taken(7)


def test_delay_reset_timeout_and_malformed_actions():
    """Each action parses to its kind; a delay keeps its seconds."""
    assert FaultPlan.parse(["*:delay=0.5s"]).before("GET", "/execution/variables/a").delay_s == 0.5
    assert FaultPlan.parse(["*:delay=200ms"]).before("GET", "/execution/x").delay_s == 0.2
    for action in ("reset", "timeout", "malformed"):
        got = FaultPlan.parse([f"*:{action}"]).before("GET", "/execution/variables/a")
        assert got is not None and got.kind == action


def test_token_expiry_after_n_calls_answers_403_invalid_token():
    """token-expiry=2calls: the third call on is 403 Invalid auth token."""
    plan = FaultPlan.parse(["token-expiry=2calls"])
    got = kinds(plan, [("PUT", TI + "/heartbeat")] * 3)
    assert got == [None, None, ("status", 403)]


def test_events_parse_with_time_or_trigger():
    """An event takes @TIME or @TARGET[#N]; its argument when the kind needs one."""
    plan = FaultPlan.parse(["event=ti-failed@2s", "event=variable-deleted:k@GetVariable#2"])
    assert plan.events[0].at_s == 2.0
    assert plan.events[1].event_arg == "k" and plan.events[1].after is not None


def test_a_real_api_refuses_events_in_one_line():
    """check_real names the event entry and says why."""
    with pytest.raises(FaultPlanError, match=r"event=ti-failed@2s.*need the stub"):
        FaultPlan.parse(["event=ti-failed@2s"]).check_real()


def test_toml_tables_mirror_the_spec():
    """[[faults]] tables give the same rules as their specs."""
    plan = FaultPlan.parse(
        [],
        [
            {"target": "GetVariable", "action": "500", "when": 2},
            {"event": "ti-failed", "at": "2s"},
            {"seed": 3},
        ],
    )
    assert [r.spec for r in plan.rules] == ["GetVariable:500@2"]
    assert plan.events[0].spec == "event=ti-failed@2s" and plan.seed == 3


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("GET /nope/*:500", "no Execution API route matches"),
        ("Nope:500", "'Nope' is not a request type"),
        ("GetVariable:700", "400-599"),
        ("GetVariable:explode", "unknown action"),
        ("GetVariable:500@0", "counted from 1"),
        ("GetVariable:500@p=2", "between 0 and 1"),
        ("event=ti-exploded@2s", "unknown event"),
        ("event=ti-failed", "needs @TIME"),
        ("event=variable-deleted@2s", "needs its argument"),
        ("*:delay=soon", "not a duration"),
        ("seed=x", "integer"),
        ("nonsense", "expected TARGET:ACTION"),
    ],
)
def test_bad_entries_are_one_line_errors_naming_the_entry(spec, message):
    """Every bad entry raises FaultPlanError quoting the entry, on one line."""
    with pytest.raises(FaultPlanError) as info:
        FaultPlan.parse([spec])
    text = str(info.value)
    assert repr(spec) in text and message in text and "\n" not in text


def test_unknown_toml_key_names_the_table():
    """A [[faults]] table with an unknown key names its index."""
    with pytest.raises(FaultPlanError, match=r"faults\[0\]: unknown key 'targte'"):
        FaultPlan.parse([], [{"targte": "x"}])
