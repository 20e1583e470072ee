"""The stub store's read cache for variables and connections never answers with a stale row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from supervisor_sim.api import StubStore


def test_a_variable_set_or_deleted_in_this_process_is_read_back_at_once() -> None:
    """A write through the store, or straight SQL on its connection, is seen by the next read."""
    store = StubStore(":memory:")
    store.set_variable("k", "one")
    assert store.variables.lookup("k") == (True, "one")
    assert store.variables.lookup("k") == (True, "one")  # a hit
    store.variables.set("k", "two")
    assert store.variables.lookup("k") == (True, "two")
    with store.db.tx() as db:
        db.execute("UPDATE variables SET value = 'three' WHERE key = 'k'")
    assert store.variables.get("k") == "three"
    store.variables.delete("k")
    assert store.variables.lookup("k") == (False, None)
    store.set_variable("k", "four")  # a cached miss is forgotten too
    assert store.variables.lookup("k") == (True, "four")


def test_a_variable_written_by_another_process_sharing_the_state_file_is_seen(
    tmp_path: Path,
) -> None:
    """Another process committing to the same --state file empties this process's cache."""
    path = tmp_path / "state.db"
    store = StubStore(path)
    store.set_variable("k", "mine")
    assert store.variables.lookup("k") == (True, "mine")
    assert store.variables.lookup("missing") == (False, None)
    code = (
        "import sys; from supervisor_sim.api import StubStore; s = StubStore(sys.argv[1]); "
        "s.set_variable('k', 'theirs'); s.set_variable('missing', 'now'); s.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    assert store.variables.lookup("k") == (True, "theirs")
    assert store.variables.lookup("missing") == (True, "now")
    other = StubStore(path)  # another connection in this process
    other.variables.delete("k")
    assert store.variables.lookup("k") == (False, None)


def test_a_connection_deleted_or_changed_is_not_answered_from_the_cache(tmp_path: Path) -> None:
    """Connections: a change by straight SQL or by another connection is read back, and the row
    handed out is a copy the caller may change."""
    path = tmp_path / "state.db"
    store = StubStore(path)
    with store.db.tx() as db:
        db.execute("INSERT INTO connections (conn_id, conn_type, host) VALUES ('c', 'http', 'a')")
    row = store.connections.get("c")
    assert row is not None and row["host"] == "a"
    row["host"] = "changed by the caller"
    assert store.connections.get("c")["host"] == "a"  # type: ignore[index]
    other = StubStore(path)
    with other.db.tx() as db:
        db.execute("UPDATE connections SET host = 'b' WHERE conn_id = 'c'")
    assert store.connections.get("c")["host"] == "b"  # type: ignore[index]
    with store.db.tx() as db:
        db.execute("DELETE FROM connections WHERE conn_id = 'c'")
    assert store.connections.get("c") is None
