"""Generate docs/cli.md from the command line's own help texts.

Usage: python tools/gen_cli_doc.py   (tests/docs/test_docs.py fails when docs/cli.md is stale)
"""

from __future__ import annotations

from pathlib import Path

import click

from supervisor_sim import cli

INTRO = """# Command-line reference

Generated from `supervisor-sim --help` by `tools/gen_cli_doc.py`; a test fails when this page and
the command line disagree. From a checkout, run commands as `./supervisor-sim ...` (it sets up
`.venv` on first use); an installed package provides `supervisor-sim` and
`python -m supervisor_sim`.

## Exit statuses of `run-task`

| status | meaning |
|---|---|
| 0 | the task's final state is `success` |
| 1 | the task ran and ended in any other state (`failed`, `up_for_retry`, `skipped`, ...) |
| 2 | usage or configuration error (bad flag, fixtures or config file) |
| 3 | the task could not start (the runtime did not connect, `/run` was refused) |
| 4 | supervisor-sim could not do its job (Execution API unreachable) |
| 130 | interrupted: the signal was forwarded to the runtime, its outcome reported, then exit |

`replay` exits 0 when the runtime sent exactly the recorded frames and 1 when it diverged;
`diff` exits 0 when the two transcripts are equivalent and 1 otherwise. `show`, `diff` and
`replay` exit 2 when a transcript cannot be read (the message names the line at fault, see
[Transcripts](transcript.md#reading)), and `replay` also when there is nothing to replay.
"""


def render() -> str:
    parts = [INTRO]
    ctx = click.Context(cli.main, info_name="supervisor-sim", terminal_width=100)
    parts.append("## supervisor-sim\n\n```text\n" + cli.main.get_help(ctx) + "\n```\n")
    for name in sorted(cli.main.commands):
        command = cli.main.commands[name]
        sub = click.Context(command, info_name=name, parent=ctx, terminal_width=100)
        parts.append(f"## {name}\n\n```text\n{command.get_help(sub)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    target.write_text(render())
    print(f"wrote {target}")
