"""Which of a run's wandb logs an agent reads as its own attempt's (``AttemptLogs``), on copies
of a real offline run whose wandb debug log names the process that wrote it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sweepherd.wandb import AttemptLogs, RunLogReader, TransactionLogReader, find_run_logs

pytestmark = pytest.mark.wandb

Starter = Callable[..., subprocess.Popen[str]]  # conftest.py's fixture


@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory, wandb_starter: Starter) -> Path:
    root = tmp_path_factory.mktemp("real")
    proc = wandb_starter(
        root,
        "import wandb\nrun = wandb.init()\nrun.log({'loss': 1.0})\nrun.finish()\n",
        WANDB_RUN_ID="r",
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    (log,) = find_run_logs(root, "r")
    return log


def attempt(run_dir: Path, real_log: Path, stamp: str, pid: int | None) -> Path:
    """A copy of the real log as an attempt started at ``stamp`` by process ``pid``."""
    folder = run_dir / "wandb" / f"offline-run-{stamp}-r"
    shutil.copytree(real_log.parent, folder)
    debug = folder / "logs" / "debug.log"
    if pid is None:
        debug.unlink()
    else:
        debug.write_text(f"2026-01-01 INFO Configure stats pid to {pid}\n")
    return folder / real_log.name


def test_a_later_attempts_log_is_left_out_once_one_is_known(tmp_path: Path, real_log: Path) -> None:
    earlier = attempt(tmp_path, real_log, "20260101_000001", 1)
    ours = attempt(tmp_path, real_log, "20260101_000002", 4242)
    other = attempt(tmp_path, real_log, "20260101_000003", 4343)
    unnamed = attempt(tmp_path, real_log, "20260101_000004", None)
    logs = AttemptLogs(4242, [earlier])
    # While no later attempt exists, any log that appears is this attempt's.
    assert [logs(p) for p in (earlier, ours, other, unnamed)] == [True, True, True, True]
    logs.superseded = True
    # Then only its own process's: an earlier attempt's log stays (the run's history).
    assert [logs(p) for p in (earlier, ours, other)] == [True, True, False]
    assert logs(unnamed) is None  # wandb may not have written its debug log yet: ask again

    reader = RunLogReader(tmp_path, "r", logs)
    reader.read_new()
    assert reader.paths == [earlier, ours]
    (unnamed.parent / "logs" / "debug.log").write_text("Configure stats pid to 4242\n")
    reader.read_new()
    assert reader.paths == [earlier, ours, unnamed]  # asked again, and now known


def test_a_log_of_a_process_below_the_trial_is_its_own(tmp_path: Path, real_log: Path) -> None:
    """A command that runs python under a shell without exec: wandb names the inner process."""
    with subprocess.Popen(["sleep", "60"]) as child:  # a process below this one
        try:
            log = attempt(tmp_path, real_log, "20260101_000001", child.pid)
            logs = AttemptLogs(os.getpid(), [])
            logs.superseded = True
            assert logs(log) is True
            assert AttemptLogs(child.pid, [])(log) is True
            stranger = AttemptLogs(1, [])  # init's tree holds every process, but not this pid
            stranger.superseded = True
            assert stranger(attempt(tmp_path, real_log, "20260101_000002", 999_999_999)) is False
            # Told of a later attempt while the child runs, it still knows the child after.
            remembers = AttemptLogs(os.getpid(), [])
            remembers.note_later_attempt()
        finally:
            child.kill()
    assert remembers(log) is True  # the child is gone now


def test_an_earlier_attempts_log_is_read_only_as_far_as_it_went_at_the_start(
    tmp_path: Path, real_log: Path
) -> None:
    """The earlier attempt's trial may live on (its agent was only cut off) and keep logging
    into its file; none of that is this attempt's."""
    earlier = attempt(tmp_path, real_log, "20260101_000001", 1)
    whole = real_log.read_bytes()
    records = TransactionLogReader(real_log).read_new_records()
    assert len(records) > 3
    cut = len(whole) // 2
    earlier.write_bytes(whole[:cut])  # as far as it went when this attempt started
    logs = AttemptLogs(4242, [earlier])
    assert logs.end_of(earlier) == cut
    earlier.write_bytes(whole)  # it went on after that
    reader = RunLogReader(tmp_path, "r", logs)
    read = reader.read_new()
    assert 0 < len(read) < len(RunLogReader(tmp_path, "r").read_new())
    assert reader.read_new() == []  # and no further, however long it grows
