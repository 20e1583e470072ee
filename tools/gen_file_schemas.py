"""Generate the JSON Schemas of supervisor-sim.toml and of the fixtures file from their models.

Usage: python tools/gen_file_schemas.py   (tests/runner/test_config_validation.py fails when
docs/schema/ is stale)

The models are ``supervisor_sim.runner.ConfigFile`` and ``supervisor_sim.api.FixturesFile``;
editors use the schemas through a ``#:schema`` line (docs/configuration.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from supervisor_sim._typed_toml import json_schema
from supervisor_sim.api import FixturesFile
from supervisor_sim.runner import ConfigFile

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schema"
FILES = {
    "supervisor-sim.schema.json": (ConfigFile, "supervisor-sim.toml"),
    "fixtures.schema.json": (FixturesFile, "supervisor-sim fixtures file"),
}


def render() -> dict[str, str]:
    """File name -> the schema's text."""
    return {
        name: json.dumps(json_schema(model, title=title), indent=2) + "\n"
        for name, (model, title) in FILES.items()
    }


if __name__ == "__main__":
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (SCHEMA_DIR / name).write_text(text)
        print(f"wrote {SCHEMA_DIR / name}")
