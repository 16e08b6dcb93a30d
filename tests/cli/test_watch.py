"""``sweepherd watch`` through the CLI: --once, a pipe, and a real terminal (a pty) with Ctrl-C."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from monitor.helpers import Sweep, make_sweep
from sweepherd.cli.main import main
from sweepherd.errors import ExitStatus


@pytest.fixture
def sweep(tmp_path: Path) -> Sweep:
    sweep = make_sweep(tmp_path / "sweeps")
    done = sweep.claim({"x": 1, "opt": {"lr": 0.1}}, node="node1", gpus="0")
    sweep.finish(done, metric=0.5)
    running = sweep.claim({"x": 2, "opt": {"lr": 0.1}}, node="node2", gpus="1")
    sweep.log(running, 0, loss=0.75)
    return sweep


def test_once_prints_plain_lines_when_stdout_is_not_a_terminal(
    sweep: Sweep, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep.store.heartbeat("agent-1")  # the running run's agent is alive
    code = main(["watch", sweep.id, "--dir", str(sweep.path.parent), "--once"])
    out = capsys.readouterr().out.splitlines()
    assert code == ExitStatus.OK
    assert out[0] == "sweep sw1 (demo): grid, minimize loss [running]"
    assert out[2] == "states: 1 running, 1 finished"
    assert out[3].startswith("running: sw1-0001 on node2:1, try 1, ")
    assert out[3].endswith(", loss 0.75 (1 steps)")
    assert out[4] == "best 1: sw1-0000 loss 0.5 x=1 opt={lr: 0.1}"


def test_unknown_sweep_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["watch", "nope", "--dir", str(tmp_path), "--once"])
    err = capsys.readouterr().err
    assert code == ExitStatus.STORE
    assert err.startswith("error: No sweep 'nope'")
    assert err.count("\n") == 1


def test_interval_below_the_minimum_is_refused(
    sweep: Sweep, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["watch", sweep.id, "--dir", str(sweep.path.parent), "--interval", "0.1"])
    assert code == ExitStatus.USAGE
    assert "0.1 is not in the range x>=0.5" in capsys.readouterr().err


def test_a_piped_watch_ends_when_the_sweep_is_done(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "sweeps")
    for x in (1, 2, 3):
        for lr in (0.1, 0.01):
            sweep.finish(sweep.claim({"x": x, "opt": {"lr": lr}}), metric=x * lr)
    proc = subprocess.run(
        [sys.executable, "-m", "sweepherd", "watch", str(sweep.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("sweep sw1 (demo): grid, minimize loss [done] · 6/6 runs done")
    assert "\x1b" not in proc.stdout


def _read_until(fd: int, needle: bytes, timeout_s: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    while needle not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data += os.read(fd, 65536)
            except OSError:
                break
    return data


def test_in_a_terminal_it_redraws_in_place_and_quits_cleanly_on_ctrl_c(sweep: Sweep) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweepherd", "watch", str(sweep.path), "--interval", "0.5"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    try:
        first = _read_until(master, b"slurm jobs", 60)
        later = _read_until(master, b"slurm jobs", 10)  # a second frame, drawn in place
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        rest = _read_until(master, b"\x1b[?25h", 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert code == 0
    text = first.decode()
    assert "\x1b[" in text  # styled and positioned for a terminal
    assert "running (1)" in text and "best by loss" in text
    assert b"\x1b[1A" in later or b"\x1b[2K" in later  # the cursor went back up to redraw
    assert b"Traceback" not in first + later + rest
    assert b"\x1b[?25h" in rest  # the cursor is shown again: the live view was stopped
    for line in (first + later).decode().splitlines():  # every line fits in 80 columns
        plain = _strip_ansi(line)
        assert len(plain) <= 80, plain


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", text)
