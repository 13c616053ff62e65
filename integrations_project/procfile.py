"""The Procfile's process commands, for code that starts a process exactly as `make run` does
(the concurrency tests and the benchmarks)."""

from __future__ import annotations

from pathlib import Path

PROCFILE = Path(__file__).resolve().parents[1] / "Procfile"


def procfile_command(name: str) -> str:
    """The command line of process `name` (shell syntax: run it with `sh -c`, as honcho does)."""
    for line in PROCFILE.read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return command.strip()
    raise KeyError(f"no process {name!r} in {PROCFILE}")


def procfile_argv(name: str) -> list[str]:
    """`argv` starting process `name` through the shell, replaced by the process itself."""
    return ["/bin/sh", "-c", f"exec {procfile_command(name)}"]
