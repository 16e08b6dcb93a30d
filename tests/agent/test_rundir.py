"""What the agent writes in a run's folder as a trial ends."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from sweepherd.agent import _rundir
from sweepherd.agent._metrics import RunMetrics
from sweepherd.agent._slots import Slot
from sweepherd.agent._trial import Trial
from sweepherd.runs import Run, RunState


def test_recording_an_attempts_logs_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """It runs in the agent's loop as each trial ends: a stale NFS handle there must not cost
    the trial's result (nor the agent's other trials)."""

    def stale(run_dir: Path, run_id: str) -> list[Path]:
        raise OSError(errno.ESTALE, "Stale file handle")

    monkeypatch.setattr(_rundir, "wandb_logs", stale)
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    run = Run("s-0000", {}, RunState.RUNNING)
    trial = Trial(run, Slot(0), process, RunMetrics(), 0.0, run_dir=tmp_path)
    _rundir.record_attempt(trial)
    assert "could not record its attempt's wandb logs" in caplog.text
