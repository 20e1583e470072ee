"""Generate docs/cli.md from the command line's own help texts.

Usage: python tools/gen_cli_doc.py   (tests/docs/test_docs.py fails when docs/cli.md is stale)
"""

# ruff: noqa: E501  (the intro's Markdown table rows cannot be wrapped)

from __future__ import annotations

from pathlib import Path

import click

from supervisor_sim import cli

INTRO = """# Command-line reference

Generated from `supervisor-sim --help` by `tools/gen_cli_doc.py`; a test fails when this page and
the command line disagree. From a checkout, run commands as `./supervisor-sim ...` (it sets up
`.venv` on first use); an installed package provides `supervisor-sim` and
`python -m supervisor_sim`. Outside a checkout, `supervisor-sim init` writes a config that runs
the reference runtime shipped with the package ([Configuration](configuration.md)).

## Options from the environment

Every option can also be given as `SUPERVISOR_SIM_<OPTION>`, the option's name in capitals with
`_` for `-`, whichever command takes it: `SUPERVISOR_SIM_STATE=:memory:` is `--state :memory:`,
`SUPERVISOR_SIM_CONFIG` is `--config`, a flag is `SUPERVISOR_SIM_NO_TRANSCRIPT=1`. A flag on the
command line wins over the environment, and both over supervisor-sim.toml. `NO_COLOR` (any
value) turns colour off in `show` and in the console output, `FORCE_COLOR` on even when it is
not a terminal; `SUPERVISOR_SIM_TRACEBACK=1` shows the traceback of an internal error instead of
its one line.

## Shell completion

Commands, options and choices complete in bash, zsh and fish (click's completion):

```text
eval "$(_SUPERVISOR_SIM_COMPLETE=bash_source supervisor-sim)"    # ~/.bashrc
eval "$(_SUPERVISOR_SIM_COMPLETE=zsh_source supervisor-sim)"     # ~/.zshrc
_SUPERVISOR_SIM_COMPLETE=fish_source supervisor-sim | source     # ~/.config/fish/completions/supervisor-sim.fish
```

## Exit statuses

The same in every command:

| status | meaning |
|---|---|
| 0 | yes: the task's final state is `success` (`run-task`); every task succeeded or was skipped (`run-dag`); the file parsed and every DAG is valid (`parse`); no rule failed (`check`); the runtime sent exactly the recorded frames (`replay`); the transcripts are equivalent (`diff`) |
| 1 | no: the task ended in any other state (`failed`, `up_for_retry`, `skipped`, `removed`, ...), or exited 0 without a terminal message (`run-task`: its `success` is never reported, Airflow's TI stays `running`; the `no-terminal-message` violation); a task of the DAG did; the parse failed or a DAG is invalid; a rule failed; the replay diverged (also when the runtime exits before connecting, or goes on past the end of a truncated transcript); the transcripts differ |
| 2 | a user mistake, said in one line `Error: <problem>; <fix>`: a bad flag, a path that cannot be read or written, the config or fixtures file ([Configuration](configuration.md), [Fixtures](fixtures.md#errors)), a transcript that cannot be read ([Transcripts](transcript.md#reading)), a `--transcript` in a folder that does not exist (only the transcripts folder is made) or that cannot be created or take its first line (`/dev/full`), a `--state` file that is not a state file, is damaged or cannot be opened ([Reliability](reliability.md#the-host)), a DAG or task the runtime's bundle does not have (`run-task`, unless `--allow-unknown`), a missing tool |
| 3 | the runtime could not start: it did not run or never connected, or `/run` was refused (`run-task`, `run-dag`, `parse`, `check`); for `replay`, only a runtime command that cannot be run at all (the line names it) |
| 4 | supervisor-sim could not do its job: the Execution API at `--api-url` does not answer (`run-task`, `run-dag`; said once while the calls are retried), a transcript that could not be written in full (a disk that filled mid-run: the run went on and its state is reported, `run-task`, `run-dag`), or an internal error (a bug: the line says so) |
| 130 | interrupted by SIGINT, SIGTERM or SIGHUP (the terminal closed): the signal was forwarded to the runtime (SIGHUP as SIGTERM), its outcome reported, then exit |
| 141 | the reader of standard output went away (`show T` piped to `head`, or `less` quit early): nothing more is printed, as for any command killed by SIGPIPE |

Standard output that cannot be written (`show T > /dev/full`) is status 2, said in one line.
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
