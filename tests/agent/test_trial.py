"""A trial's process: how a stop request treats a process that has already ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sweepherd.agent._metrics import RunMetrics
from sweepherd.agent._slots import Slot
from sweepherd.agent._trial import StopCause, Trial, live_group_members
from sweepherd.runs import Run, RunState


def _trial(code: str) -> Trial:
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    run = Run("s-0000", {}, RunState.RUNNING)
    return Trial(run, Slot(0), process, RunMetrics(), time.monotonic())


def _wait_ended(trial: Trial) -> None:
    deadline = time.monotonic() + 30
    while not trial.has_ended():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_trial_killed_from_outside_keeps_no_stop_cause() -> None:
    """An OOM kill just before hyperband's decision is a failure, not a stop."""
    trial = _trial("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    _wait_ended(trial)
    trial.request_stop(StopCause.EARLY, grace_s=5)
    assert trial.stop_cause is None
    assert trial.poll() == -signal.SIGKILL


def test_a_running_trial_gets_the_cause_and_sigterm() -> None:
    trial = _trial("import time; time.sleep(60)")
    trial.request_stop(StopCause.EARLY, grace_s=5)
    assert trial.stop_cause is StopCause.EARLY
    assert trial.process.wait(timeout=30) == -signal.SIGTERM


def test_group_members_are_found_and_zombies_are_not() -> None:
    trial = _trial("import time; time.sleep(60)")
    assert live_group_members(trial.pid) == [trial.pid]
    trial.signal_group(signal.SIGKILL)
    _wait_ended(trial)  # a zombie until reaped
    assert live_group_members(trial.pid) == []
    trial.poll()


def test_a_trial_reaped_as_the_stop_signal_comes_is_judged_by_its_exit_status() -> None:
    """The agent's signal handler can run between ``poll()``'s reaping of the process and its
    storing of the exit status; the trial had ended by itself if that status says so."""
    for code, by_itself in (("pass", True), ("import os; os.kill(os.getpid(), 9)", False)):
        trial = _trial(code)
        _wait_ended(trial)
        os.waitpid(trial.pid, 0)  # what poll() does before it stores the status
        trial.ended_before_stop = trial.exited_by_itself()  # what the signal handler does
        assert trial.ended_before_stop is None
        assert trial.ended_by_itself_first(0 if by_itself else -signal.SIGKILL) is by_itself
        trial.poll()  # Popen learns the process is gone (and stops warning about it)


def test_a_trial_that_had_exited_or_still_runs_when_the_signal_came() -> None:
    ended = _trial("pass")
    _wait_ended(ended)
    running = _trial("import time; time.sleep(60)")
    for trial, before in ((ended, True), (running, False)):
        trial.ended_before_stop = trial.exited_by_itself()
        assert trial.ended_before_stop is before
        # the status it ends with later does not change what was seen at the signal
        assert trial.ended_by_itself_first(0) is before
    running.signal_group(signal.SIGKILL)
    running.process.wait(timeout=30)
    ended.poll()
