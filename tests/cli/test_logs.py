"""``sweepherd logs``: in-process for output and errors; a real ``-f`` process following a run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.helpers import Sweep, make_sweep
from sweepherd.cli.main import main
from sweepherd.errors import ExitStatus


@pytest.fixture
def sweep(tmp_path: Path) -> Sweep:
    sweep = make_sweep(tmp_path / "sweeps")
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    sweep.write(run, "stdout.log", "hello from sw1-0000\n")
    sweep.write(run, "stderr.log", "Traceback (most recent call last):\nValueError: boom\n")
    sweep.finish(run, "failed", exit_code=1, reason="exited with status 1")
    return sweep


def _logs(sweep: Sweep, *args: str) -> int:
    return main(["logs", sweep.id, *args, "--dir", str(sweep.path.parent)])


def test_stdout_and_stderr_by_number(
    sweep: Sweep, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert _logs(sweep, "0") == ExitStatus.OK
    captured = capsysbinary.readouterr()
    assert captured.out == b"hello from sw1-0000\n"
    # A failed run's traceback is in stderr.log: the way there is said, beside the output.
    assert captured.err == (
        b"[run sw1-0000 failed (exited with status 1); its errors: sweepherd logs sw1 0 --stderr]\n"
    )
    assert _logs(sweep, "sw1-0000", "--stderr") == ExitStatus.OK
    captured = capsysbinary.readouterr()
    assert captured.out.endswith(b"ValueError: boom\n") and captured.err == b""


def test_unknown_run_is_a_one_line_error(sweep: Sweep, capsys: pytest.CaptureFixture[str]) -> None:
    assert _logs(sweep, "12") == ExitStatus.STORE
    err = capsys.readouterr().err
    assert err.startswith("error: Sweep sw1 has no run '12' (its runs are sw1-0000).")
    assert err.count("\n") == 1


def test_unknown_attempt_is_an_error(sweep: Sweep, capsys: pytest.CaptureFixture[str]) -> None:
    assert _logs(sweep, "0", "--attempt", "2") == ExitStatus.STORE
    assert "error: Run sw1-0000 has no attempt 2: its attempts are 1." in capsys.readouterr().err


def test_follow_a_running_run_until_it_ends(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "sweeps")
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    log = sweep.write(run, "stdout.log", "step 0\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweepherd", "logs", str(sweep.path), "0", "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"step 0\n"  # printed at once, then followed
        for i in (1, 2, 3):
            with log.open("a") as f:
                f.write(f"step {i}\n")
            assert proc.stdout.readline() == f"step {i}\n".encode()
        time.sleep(0.6)
        assert proc.poll() is None  # still following: the run is running
        sweep.finish(run, metric=0.5)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert out == b""
    assert err == b"[run sw1-0000 is finished]\n"
