"""The one exception root of sweepherd, and the exit status each kind of failure carries.

Every error a user can cause or meet derives from :class:`SweepherdError`. Its message is a
sentence that says what went wrong *and what to do about it*; the CLI prints it once, on one
line, without a traceback (``--debug`` shows the traceback). Code below the CLI never prints
errors itself and never calls ``sys.exit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit statuses of the ``sweepherd`` command."""

    OK = 0
    ERROR = 1  # an unexpected failure
    USAGE = 2  # bad command-line usage (click's own status)
    CONFIG = 3  # the sweep configuration is invalid
    STORE = 4  # the sweep directory is missing, unreadable, unwritable or full
    LAUNCH = 5  # a launcher (local processes, Slurm, W&B) could not start or control agents
    RUNS = 6  # the sweep ran, but runs failed or never reported the metric
    CLOUD = 7  # the cloud (AWS) part failed
    INTERRUPTED = 130  # stopped by Ctrl-C


class SweepherdError(Exception):
    """Root of every error sweepherd raises on purpose.

    ``hint`` is an optional sentence telling the user what to do; it is appended to the message
    (after a semicolon where the message does not end a sentence, so the two do not run
    together).
    """

    exit_status: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(_with_hint(message, hint))


def _with_hint(message: str, hint: str | None) -> str:
    if not hint:
        return message
    return (
        f"{message} {hint}"
        if message.rstrip().endswith((".", "!", "?", ":"))
        else (f"{message}; {hint}")
    )


class ConfigError(SweepherdError):
    """The sweep configuration is invalid. ``violations`` lists every problem found."""

    exit_status = ExitStatus.CONFIG

    def __init__(
        self, message: str, *, violations: Sequence[str] = (), hint: str | None = None
    ) -> None:
        self.violations = list(violations)
        super().__init__(message, hint=hint)

    def __str__(self) -> str:
        if not self.violations:
            return super().__str__()
        lines = [self.message, *(f"  - {v}" for v in self.violations)]
        return "\n".join(lines)


class StoreError(SweepherdError):
    """The sweep directory cannot be found, read or written."""

    exit_status = ExitStatus.STORE


class JournalUndoError(StoreError):
    """An append failed and truncating it away failed too: its lines may stay in the journal."""


class LockTimeoutError(StoreError):
    """The sweep's journal lock could not be taken in time."""


class AgentError(SweepherdError):
    """An agent could not run a trial (the program is missing, the command is malformed...)."""

    exit_status = ExitStatus.LAUNCH


class LaunchError(SweepherdError):
    """Agents could not be started or controlled (local processes, Slurm, W&B)."""

    exit_status = ExitStatus.LAUNCH


class SlurmError(LaunchError):
    """A Slurm command failed or is missing; the message carries Slurm's own words."""


class SlurmTimeoutError(SlurmError):
    """A Slurm command did not answer in time: what it asked for may or may not have happened."""


class RunsFailedError(SweepherdError):
    """The sweep completed, but some runs failed or never logged the metric."""

    exit_status = ExitStatus.RUNS


class WandbError(SweepherdError):
    """Talking to the wandb package or the W&B server failed."""

    exit_status = ExitStatus.LAUNCH


class CloudError(SweepherdError):
    """An AWS operation failed or its input is invalid."""

    exit_status = ExitStatus.CLOUD
