"""Fixtures files: the documented TOML format, and a clear FixtureError for every bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from supervisor_sim.api import FixtureError, Fixtures, StubStore, load_fixtures

ROOT = Path(__file__).resolve().parents[2]

FULL = """
[variables]
peer_var = "hello-from-var"
api_token = "tok-very-secret-123"
count = 3
flags = [true, false]
[variables.with_description]
value = "x"
description = "a described variable"
[variables.as_object]
value = {a = 1}

[connections.peer_conn]
conn_type = "http"
host = "example.invalid"
login = "bob"
password = "s3cret"

[connections.db]
conn_type = "postgres"
schema = "public"
port = 5432
extra = '{"sslmode": "require"}'

[connections.tabled]
conn_type = "http"
extra = {timeout = 5}

[[xcoms]]
dag_id = "example_dag"
run_id = "manual__seed"
task_id = "upstream"
key = "return_value"
value = {a = 1}

[[xcoms]]
dag_id = "example_dag"
run_id = "manual__seed"
task_id = "upstream"
key = "mapped"
value = [1, "two"]
map_index = 2

[dag_runs.example_dag]
conf = {greeting = "hi"}
logical_date = 2026-01-01T00:00:00Z
run_type = "manual"
run_id = "manual__shared"
data_interval_start = "2025-12-31T00:00:00+01:00"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fixtures.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(FixtureError) as info:
        load_fixtures(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: ") :]


class TestLoading:
    def test_full_example_parses_into_typed_fixtures(self, tmp_path: Path):
        """Every documented form loads: plain/long/JSON variables, connections, XComs, runs."""
        f = load_fixtures(write(tmp_path, FULL))
        assert f.variables["peer_var"].value == "hello-from-var"
        assert f.variables["count"].value == "3"
        assert f.variables["flags"].value == "[true,false]"
        assert f.variables["with_description"].description == "a described variable"
        assert json.loads(f.variables["as_object"].value) == {"a": 1}
        assert f.connections["peer_conn"].password == "s3cret"
        assert f.connections["peer_conn"].port is None
        assert f.connections["db"].port == 5432
        assert f.connections["db"].extra == '{"sslmode": "require"}'
        assert json.loads(f.connections["tabled"].extra) == {"timeout": 5}
        assert [(x.key, x.map_index, x.value) for x in f.xcoms] == [
            ("return_value", -1, {"a": 1}),
            ("mapped", 2, [1, "two"]),
        ]
        run = f.dag_runs["example_dag"]
        assert run.conf == {"greeting": "hi"}
        assert run.logical_date == datetime(2026, 1, 1, tzinfo=UTC)
        assert run.data_interval_start == datetime(2025, 12, 30, 23, tzinfo=UTC)
        assert run.run_id == "manual__shared"
        assert f.source == tmp_path / "fixtures.toml"

    def test_shipped_example_file_is_valid(self):
        """examples/fixtures.toml, which run-task uses by default, loads without error."""
        f = load_fixtures(ROOT / "examples" / "fixtures.toml")
        assert f.variables["peer_var"].value == "hello-from-var"
        assert f.connections["peer_conn"].conn_type == "http"

    def test_docs_example_is_valid(self, tmp_path: Path):
        """The full example in docs/fixtures.md loads, so the documentation cannot rot."""
        doc = (ROOT / "docs" / "fixtures.md").read_text()
        example = doc.split("## Full example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
        f = load_fixtures(write(tmp_path, example))
        assert f.xcoms[0].value == {"a": 1}
        assert f.dag_runs["example_dag"].run_type == "manual"

    def test_empty_file_gives_empty_fixtures(self, tmp_path: Path):
        """An empty file is valid and seeds nothing."""
        assert load_fixtures(write(tmp_path, "")) == Fixtures(source=tmp_path / "fixtures.toml")

    def test_local_datetime_is_taken_as_utc(self, tmp_path: Path):
        """A TOML local date-time (no offset) means UTC, since Airflow keeps only aware times."""
        f = load_fixtures(write(tmp_path, "[dag_runs.d]\nlogical_date = 2026-02-03T04:05:06\n"))
        assert f.dag_runs["d"].logical_date == datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


class TestErrors:
    def test_port_of_wrong_type_names_the_key_path(self, tmp_path: Path):
        """A string port is refused with the key path and the offending value."""
        text = '[connections.peer_conn]\nconn_type = "http"\nport = "abc"\n'
        msg = error_for(tmp_path, text)
        assert msg == "connections.peer_conn.port: expected an integer, got 'abc'"

    def test_boolean_is_not_an_integer(self, tmp_path: Path):
        """TOML booleans are not accepted where an integer is expected."""
        text = '[connections.c]\nconn_type = "http"\nport = true\n'
        assert error_for(tmp_path, text) == "connections.c.port: expected an integer, got True"

    def test_missing_conn_type_is_reported(self, tmp_path: Path):
        """A connection without conn_type is refused, naming the connection."""
        msg = error_for(tmp_path, '[connections.peer_conn]\nhost = "h"\n')
        assert msg == "connections.peer_conn: missing required key 'conn_type'"

    def test_unknown_top_level_section_is_refused(self, tmp_path: Path):
        """A section other than the four documented ones is an error listing the valid ones."""
        msg = error_for(tmp_path, "[secrets]\na = 1\n")
        assert (
            msg == "secrets: unknown section; expected one of asset_aliases, asset_events, assets, "
            "connections, dag_runs, dags, faults, runs, variables, xcoms"
        )

    def test_unknown_connection_key_is_refused(self, tmp_path: Path):
        """A misspelt connection key is reported rather than silently ignored."""
        msg = error_for(tmp_path, '[connections.c]\nconn_type = "x"\npasword = "p"\n')
        assert msg.startswith("connections.c.pasword: unknown key; expected one of ")

    def test_invalid_toml_is_a_fixture_error(self, tmp_path: Path):
        """A TOML syntax error becomes a FixtureError naming the file and the position."""
        msg = error_for(tmp_path, "a b = 1\n")
        assert msg.startswith("invalid TOML: ") and "line 1" in msg

    def test_missing_file_is_a_fixture_error(self, tmp_path: Path):
        """A path that does not exist is reported as a FixtureError, not an OSError."""
        with pytest.raises(FixtureError, match="cannot read fixtures file"):
            load_fixtures(tmp_path / "nope.toml")

    def test_long_form_variable_needs_a_value(self, tmp_path: Path):
        """The table form of a variable must contain 'value'."""
        msg = error_for(tmp_path, '[variables.v]\ndescription = "d"\n')
        assert msg == "variables.v: missing required key 'value'"

    def test_variable_description_must_be_a_string(self, tmp_path: Path):
        """A non-string description is refused with its key path."""
        msg = error_for(tmp_path, '[variables.v]\nvalue = "x"\ndescription = 1\n')
        assert msg == "variables.v.description: expected a string, got 1"

    def test_xcoms_must_be_an_array_of_tables(self, tmp_path: Path):
        """[xcoms] as a plain table (not [[xcoms]]) is refused with a hint."""
        msg = error_for(tmp_path, '[xcoms]\ndag_id = "d"\n')
        assert msg == "xcoms: expected an array of tables ([[xcoms]]), got a table"

    def test_xcom_missing_key_names_the_entry_index(self, tmp_path: Path):
        """A missing XCom field is reported with the entry's index."""
        text = '[[xcoms]]\ndag_id = "d"\nrun_id = "r"\ntask_id = "t"\nvalue = 1\n'
        assert error_for(tmp_path, text) == "xcoms[0]: missing required key 'key'"

    def test_xcom_value_with_a_toml_date_is_refused(self, tmp_path: Path):
        """TOML dates have no JSON form, so an XCom value containing one is refused."""
        text = (
            '[[xcoms]]\ndag_id = "d"\nrun_id = "r"\ntask_id = "t"\nkey = "k"\n'
            "value = {when = 2026-01-01}\n"
        )
        assert error_for(tmp_path, text).startswith("xcoms[0].value.when: TOML dates and times")

    def test_bad_extra_json_string_is_refused(self, tmp_path: Path):
        """A connection extra given as a string must hold JSON."""
        text = "[connections.c]\nconn_type = \"x\"\nextra = '{nope'\n"
        assert error_for(tmp_path, text).startswith("connections.c.extra: not valid JSON: ")

    def test_unknown_run_type_is_refused(self, tmp_path: Path):
        """run_type must be one of Airflow's DagRunType values."""
        msg = error_for(tmp_path, '[dag_runs.d]\nrun_type = "adhoc"\n')
        assert msg.startswith("dag_runs.d.run_type: expected one of backfill, scheduled, manual")

    def test_bad_logical_date_string_is_refused(self, tmp_path: Path):
        """A logical_date string that is not ISO 8601 is refused with its key path."""
        msg = error_for(tmp_path, '[dag_runs.d]\nlogical_date = "yesterday"\n')
        assert msg == "dag_runs.d.logical_date: expected an ISO 8601 date-time, got 'yesterday'"

    def test_conf_must_be_a_table(self, tmp_path: Path):
        """A DAG run conf that is not a table is refused."""
        msg = error_for(tmp_path, '[dag_runs.d]\nconf = "x"\n')
        assert msg == "dag_runs.d.conf: expected a table, got 'x'"


class TestSeeding:
    def test_seed_writes_every_kind_of_entry(self, tmp_path: Path):
        """Seeding stores variables, connections, XComs and creates a named DAG run."""
        store = StubStore(tmp_path / "s.sqlite")
        store.seed(load_fixtures(write(tmp_path, FULL)))
        assert store.variables.get("peer_var") == "hello-from-var"
        assert store.connections.get("db")["extra"] == '{"sslmode": "require"}'
        assert store.get_xcom("example_dag", "manual__seed", "upstream", "return_value") == {"a": 1}
        assert store.get_xcom("example_dag", "manual__seed", "upstream", "mapped", 2) == [1, "two"]
        run = store.get_dag_run("example_dag", "manual__shared")
        assert json.loads(run["conf"]) == {"greeting": "hi"}
        assert run["logical_date"] == "2026-01-01T00:00:00.000000Z"

    def test_reseeding_never_duplicates(self, tmp_path: Path):
        """Seeding the same fixtures twice leaves exactly the same rows."""
        store = StubStore(tmp_path / "s.sqlite")
        fixtures = load_fixtures(write(tmp_path, FULL))
        store.seed(fixtures)
        store.seed(fixtures)
        assert len(store.db.all("SELECT * FROM xcoms")) == 2
        assert len(store.db.all("SELECT * FROM variables")) == 6
        assert len(store.db.all("SELECT * FROM dag_runs")) == 1

    def test_task_writes_survive_a_reseed_of_unchanged_fixtures(self, tmp_path: Path):
        """An XCom or variable a task overwrote keeps the task's value when the fixture is
        unchanged; editing the fixture imposes the new value."""
        store = StubStore(tmp_path / "s.sqlite")
        store.seed(load_fixtures(write(tmp_path, FULL)))
        store.set_variable("peer_var", "set-by-task")
        store.xcoms.set(
            "example_dag",
            "manual__seed",
            "upstream",
            "return_value",
            '{"b":2}',
            -1,
            datetime.now(UTC),
        )
        store.seed(load_fixtures(write(tmp_path, FULL)))
        assert store.variables.get("peer_var") == "set-by-task"
        assert store.get_xcom("example_dag", "manual__seed", "upstream", "return_value") == {"b": 2}
        store.seed(load_fixtures(write(tmp_path, FULL.replace("hello-from-var", "edited"))))
        assert store.variables.get("peer_var") == "edited"

    def test_dag_run_defaults_apply_to_runs_created_later(self, tmp_path: Path):
        """prepare_task_instance uses the fixture's default run id, conf and logical date."""
        store = StubStore(tmp_path / "s.sqlite")
        store.seed(load_fixtures(write(tmp_path, FULL)))
        record = store.prepare_task_instance("example_dag", "t")
        assert record.run_id == "manual__shared"
        other = store.prepare_task_instance("example_dag", "t2", run_id="other")
        run = store.get_dag_run("example_dag", other.run_id)
        assert json.loads(run["conf"]) == {"greeting": "hi"}
        assert run["logical_date"] == "2026-01-01T00:00:00.000000Z"
