"""The conformance kit behind ``supervisor-sim check``: scenarios (each a real session against
the stub, some acting exactly like Airflow's supervisor, some sending what a correct runtime
must tolerate), the rules judged from what they recorded, and the reports (a terminal table,
``--json``, JUnit XML)."""

from ._report import (
    EXIT_FAILED as EXIT_FAILED,
    EXIT_OK as EXIT_OK,
    junit_xml as junit_xml,
    render_table as render_table,
    run_check as run_check,
    skipped_scenarios as skipped_scenarios,
)
from ._rules import (
    FAIL as FAIL,
    NA as NA,
    PASS as PASS,
    RULE_IDS as RULE_IDS,
    RULES as RULES,
    WARN as WARN,
    evaluate as evaluate,
)
from ._scenarios import (
    SCENARIOS as SCENARIOS,
    CheckContext as CheckContext,
    ScenarioResult as ScenarioResult,
    run_scenarios as run_scenarios,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "FAIL",
    "NA",
    "PASS",
    "RULES",
    "RULE_IDS",
    "SCENARIOS",
    "WARN",
    "CheckContext",
    "ScenarioResult",
    "evaluate",
    "junit_xml",
    "render_table",
    "run_check",
    "run_scenarios",
    "skipped_scenarios",
]
