"""Every exit status of `askta`, in one table: the README's list is tested against it."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What the process exit status of an `askta` command means."""

    OK = 0
    FAILED = 1
    USAGE = 2
    INVALID_KB = 3
    UNAVAILABLE = 4
    NOT_EMPTY = 5
    TIMEOUT = 124
    KILLED = 137


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "ok",
    ExitCode.FAILED: "a check, an evaluation or a demo failed; `askta check --overlaps`: "
    "entries that could be confused",
    ExitCode.USAGE: "usage error (a bad flag, or a device this machine lacks)",
    ExitCode.INVALID_KB: "invalid knowledge base",
    ExitCode.UNAVAILABLE: "the model or the sandbox cannot run here, "
    "or the session key is unusable",
    ExitCode.NOT_EMPTY: "`askta restore`: the data dir, the KB folder or the database is not empty",
    ExitCode.TIMEOUT: "`askta sandbox run`: the demo ran past its time limit",
    ExitCode.KILLED: "`askta sandbox run`: the sandbox killed the demo (memory, output)",
}


def table() -> str:
    """The Markdown table of exit codes, as the README shows it."""
    rows = ["| exit code | meaning |", "|---|---|"]
    rows += [f"| {int(code)} | {MEANINGS[code]} |" for code in ExitCode]
    return "\n".join(rows)
