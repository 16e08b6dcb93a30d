"""Helpers for the Slurm tests: polling a job's state, and programs that stand in for Python."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sweepherd.launch.slurm import JobState, squeue_jobs

HERE = Path(__file__).parent


def wait_for_jobs(
    job_id: str,
    done: Callable[[list[JobState]], bool],
    *,
    timeout_s: float = 30.0,
) -> list[JobState]:
    """Poll squeue until ``done(states)`` holds; fail the test with the last states if not."""
    deadline = time.monotonic() + timeout_s
    states: list[JobState] = []
    while time.monotonic() < deadline:
        states = squeue_jobs([job_id])
        if states and done(states):
            return states
        time.sleep(0.2)
    pytest.fail(f"job {job_id} did not reach the expected state in {timeout_s} s: {states}")


def all_ended(states: list[JobState]) -> bool:
    return all(s.is_terminal for s in states)


_RECORDER = """#!{python}
import json, os, sys
keys = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURMD_NODENAME",
        "SLURM_RESTART_COUNT", "CUDA_VISIBLE_DEVICES", "NOTE", "FROM_SETUP",
        "SWEEPHERD_SIGNAL_GRACE_S", "PYTHONUNBUFFERED")
record = {{"argv": sys.argv[1:], "env": {{k: os.environ.get(k) for k in keys}}}}
with open(os.environ["RECORD_FILE"], "a") as f:
    f.write(json.dumps(record) + "\\n")
"""


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """An executable that stands in for ``python`` in a rendered script: it appends its argv
    and some environment variables as one JSON line to ``$RECORD_FILE``. Its path holds a
    space, to check the quoting of the exec line."""
    path = tmp_path / "bin dir" / "python"
    path.parent.mkdir()
    path.write_text(_RECORDER.format(python=sys.executable))
    path.chmod(0o755)
    return path
