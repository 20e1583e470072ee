"""supervisor-sim.toml and the fixtures file: one validation (typed models, unknown keys refused
with the closest known one), messages as documented, and JSON Schemas that are current."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from supervisor_sim._typed_toml import ModelError, closest, load
from supervisor_sim.api import FixtureError, FixturesFile, load_fixtures
from supervisor_sim.runner import (
    REFERENCE_RUNTIME,
    ConfigError,
    ConfigFile,
    load_project_config,
    runtime_argv,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schema"
CONFIGURATION_DOC = (ROOT / "docs" / "configuration.md").read_text()
FIXTURES_DOC = (ROOT / "docs" / "fixtures.md").read_text()


def config_error(tmp_path: Path, text: str) -> str:
    """The message for a supervisor-sim.toml holding ``text``, without the file's name."""
    path = tmp_path / "supervisor-sim.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_project_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: ") :]


def fixture_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "fixtures.toml"
    path.write_text(text)
    with pytest.raises(FixtureError) as info:
        load_fixtures(path)
    return str(info.value)[len(f"{path}: ") :]


class TestConfigFile:
    def test_unknown_runtime_key_names_the_key_meant(self, tmp_path: Path):
        """`cmd` instead of `command` is refused, suggesting `command`, as documented."""
        msg = config_error(tmp_path, '[runtime]\ncmd = "x"\n')
        assert msg == (
            "runtime.cmd: unknown key; expected one of command, cwd; did you mean 'command'?"
        )
        assert f"supervisor-sim.toml: {msg}" in CONFIGURATION_DOC

    def test_unknown_stub_and_transcripts_keys_are_refused(self, tmp_path: Path):
        """[stub] and [transcripts] refuse unknown keys like [supervisor] always did."""
        assert config_error(tmp_path, '[stub]\nfixture = "f.toml"\n') == (
            "stub.fixture: unknown key; expected one of fixtures, state; did you mean 'fixtures'?"
        )
        assert config_error(tmp_path, '[transcripts]\ndirectory = "d"\n').startswith(
            "transcripts.directory: unknown key; expected one of dir"
        )

    def test_unknown_section_suggests_the_closest(self, tmp_path: Path):
        """A misspelt section is an unknown section naming the five and the one meant."""
        msg = config_error(tmp_path, '[transcript]\ndir = "x"\n')
        assert msg == (
            "transcript: unknown section; expected one of runtime, stub, supervisor, "
            "transcripts, worker; did you mean 'transcripts'?"
        )
        assert f"supervisor-sim.toml: {msg}" in CONFIGURATION_DOC

    def test_supervisor_settings_are_checked_against_the_session_settings(self, tmp_path: Path):
        """[supervisor] keys are SupervisorConfig's fields, typed, with its own range checks."""
        msg = config_error(tmp_path, "[supervisor]\nstartup_timeot = 3\n")
        assert msg.startswith("supervisor.startup_timeot: unknown key; expected one of ")
        assert msg.endswith("; did you mean 'startup_timeout'?")
        msg = config_error(tmp_path, "[supervisor]\nstartup_timeout = 'ten'\n")
        assert msg == "supervisor.startup_timeout: expected a number, got 'ten'"
        assert f"supervisor-sim.toml: {msg}" in CONFIGURATION_DOC
        msg = config_error(tmp_path, "[supervisor]\ncomm_spin = 0.5\n")
        assert msg == "supervisor: comm_spin must be between 0 and 0.001 s, not 0.5"
        assert f"supervisor-sim.toml: {msg}" in CONFIGURATION_DOC
        assert config_error(tmp_path, "[supervisor]\nairflow_strict = 1\n") == (
            "supervisor.airflow_strict: expected true or false, got 1"
        )

    def test_an_integer_is_a_number_of_seconds(self, tmp_path: Path):
        """`startup_timeout = 3` is taken as 3.0; only the keys given are kept."""
        path = tmp_path / "c.toml"
        path.write_text("[supervisor]\nstartup_timeout = 3\nairflow_strict = true\n")
        assert load_project_config(path).supervisor == {
            "startup_timeout": 3.0,
            "airflow_strict": True,
        }

    def test_runtime_command_is_a_string_or_an_array_of_strings(self, tmp_path: Path):
        """Any other command is refused with its key path."""
        assert config_error(tmp_path, "[runtime]\ncommand = 1\n") == (
            "runtime.command: expected a string or an array of strings, got 1"
        )
        assert config_error(tmp_path, '[runtime]\ncommand = ["a", 2]\n') == (
            "runtime.command[1]: expected a string, got 2"
        )

    def test_a_missing_or_broken_file_says_what_to_do(self, tmp_path: Path):
        """No such file points at `init`; a TOML error names the position."""
        with pytest.raises(
            ConfigError, match=r"config file not found; create it with `supervisor-"
        ):
            load_project_config(tmp_path / "nope.toml")
        assert config_error(tmp_path, "[runtime\n").startswith("invalid TOML: ")

    def test_the_repository_config_and_the_reference_runtime_placeholder(self, tmp_path: Path):
        """The checkout's config loads; {reference_runtime} is the runtime shipped in the
        package, which is the checkout's runtimes/reference/runtime.py."""
        project = load_project_config(ROOT / "supervisor-sim.toml")
        assert project.runtime == [sys.executable, str(ROOT / "runtimes/reference/runtime.py")]
        assert project.fixtures == ROOT / "examples" / "fixtures.toml"
        assert runtime_argv("{python} {reference_runtime} --x") == [
            sys.executable,
            str(REFERENCE_RUNTIME),
            "--x",
        ]
        assert REFERENCE_RUNTIME.resolve() == (ROOT / "runtimes/reference/runtime.py").resolve()


#: A key no table has, put into each table of both files: every one refuses it.
UNKNOWN_IN_EVERY_TABLE = [
    (ConfigFile, {"runtime": {"zz": 1}}, "runtime.zz"),
    (ConfigFile, {"stub": {"zz": 1}}, "stub.zz"),
    (ConfigFile, {"transcripts": {"zz": 1}}, "transcripts.zz"),
    (ConfigFile, {"supervisor": {"zz": 1}}, "supervisor.zz"),
    (ConfigFile, {"worker": {"zz": 1}}, "worker.zz"),
    (FixturesFile, {"variables": {"v": {"value": 1, "zz": 1}}}, "variables.v.zz"),
    (FixturesFile, {"connections": {"c": {"conn_type": "x", "zz": 1}}}, "connections.c.zz"),
    (
        FixturesFile,
        {
            "xcoms": [
                {"dag_id": "d", "run_id": "r", "task_id": "t", "key": "k", "value": 1, "zz": 1}
            ]
        },
        "xcoms[0].zz",
    ),
    (FixturesFile, {"dag_runs": {"d": {"zz": 1}}}, "dag_runs.d.zz"),
    (FixturesFile, {"dags": {"d": {"zz": 1}}}, "dags.d.zz"),
    (FixturesFile, {"dags": {"d": {"tasks": {"t": {"zz": 1}}}}}, "dags.d.tasks.t.zz"),
    (
        FixturesFile,
        {"dags": {"d": {"tasks": {"t": {"inlets": [{"name": "a", "zz": 1}]}}}}},
        "dags.d.tasks.t.inlets[0].zz",
    ),
    (FixturesFile, {"assets": {"a": {"zz": 1}}}, "assets.a.zz"),
    (FixturesFile, {"asset_events": [{"asset": "a", "zz": 1}]}, "asset_events[0].zz"),
    (FixturesFile, {"runs": [{"dag_id": "d", "run_id": "r", "zz": 1}]}, "runs[0].zz"),
    (
        FixturesFile,
        {"runs": [{"dag_id": "d", "run_id": "r", "task_instances": [{"task_id": "t", "zz": 1}]}]},
        "runs[0].task_instances[0].zz",
    ),
]


@pytest.mark.parametrize(
    ("model", "document", "where"),
    UNKNOWN_IN_EVERY_TABLE,
    ids=[where for _, _, where in UNKNOWN_IN_EVERY_TABLE],
)
def test_every_table_of_both_files_refuses_an_unknown_key(
    model: type, document: dict[str, Any], where: str
):
    """One policy everywhere: no table of either file ignores a key it does not know."""
    with pytest.raises(ModelError) as info:
        load(model, document)
    assert info.value.where == where
    assert info.value.message.startswith("unknown key; expected one of ")


class TestFixturesFile:
    def test_a_misspelt_key_suggests_the_one_meant(self, tmp_path: Path):
        """The documented message, with the closest key appended."""
        msg = fixture_error(tmp_path, '[connections.peer_conn]\nconn_type = "x"\npasword = "p"\n')
        assert msg == (
            "connections.peer_conn.pasword: unknown key; expected one of conn_type, extra, "
            "host, login, password, port, schema; did you mean 'password'?"
        )
        assert f"examples/fixtures.toml: {msg}" in FIXTURES_DOC
        assert f"fixtures.toml: {msg}" in CONFIGURATION_DOC

    def test_no_suggestion_when_nothing_is_close(self, tmp_path: Path):
        """A far-off section name gets the list only (the documented message, unchanged)."""
        msg = fixture_error(tmp_path, "[secrets]\na = 1\n")
        assert msg.endswith("runs, variables, xcoms")
        assert closest("secrets", ["assets", "runs"]) is None
        assert closest("cmd", ["command", "cwd"]) == "command"


# --- the JSON Schemas ---------------------------------------------------------------------------


def _generated() -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_file_schemas
    finally:
        sys.path.pop(0)
    return gen_file_schemas.render()


def _as_json(value: Any) -> Any:
    """A TOML document as an editor's schema check sees it: dates and times are strings."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return value


def _validator(name: str) -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_the_published_schemas_are_current():
    """docs/schema/ is what tools/gen_file_schemas.py generates from the models now, and the
    package ships the same files."""
    for name, text in _generated().items():
        assert (SCHEMAS / name).read_text() == text, (
            f"docs/schema/{name} is stale: run `python tools/gen_file_schemas.py`"
        )
        packaged = REFERENCE_RUNTIME.parents[1] / "schema" / name
        assert packaged.read_text() == text


def test_the_shipped_files_match_their_schemas():
    """The repository's config, the example fixtures and the docs' example validate."""
    import tomllib

    config = _validator("supervisor-sim.schema.json")
    fixtures = _validator("fixtures.schema.json")
    assert not list(config.iter_errors(tomllib.loads((ROOT / "supervisor-sim.toml").read_text())))
    example = tomllib.loads((ROOT / "examples" / "fixtures.toml").read_text())
    assert not list(fixtures.iter_errors(_as_json(example)))
    doc = FIXTURES_DOC.split("## Full example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    assert not list(fixtures.iter_errors(_as_json(tomllib.loads(doc))))


def test_the_schemas_refuse_what_the_loaders_refuse():
    """A misspelt key, a wrong type or an unknown enum value fails the schema check too."""
    config = _validator("supervisor-sim.schema.json")
    fixtures = _validator("fixtures.schema.json")
    assert list(config.iter_errors({"runtime": {"cmd": "x"}}))
    assert list(config.iter_errors({"supervisor": {"startup_timeout": "ten"}}))
    assert list(fixtures.iter_errors({"connections": {"c": {"conn_type": "x", "pasword": "p"}}}))
    assert list(fixtures.iter_errors({"variables": {"v": {"value": 1, "descr": "d"}}}))
    assert list(fixtures.iter_errors({"dag_runs": {"d": {"run_type": "adhoc"}}}))
    assert list(fixtures.iter_errors({"runs": [{"dag_id": "d", "run_id": "r", "state": "done"}]}))
    assert not list(fixtures.iter_errors({"variables": {"v": [1, 2], "w": {"value": {"a": 1}}}}))
