"""Stands in for ``sweepherd agent`` in the fan-out tests (a real process on a real node).

``fake_agent.py OUT_DIR MODE`` appends JSON events to OUT_DIR/events.jsonl: where it runs
(SLURMD_NODENAME, CUDA_VISIBLE_DEVICES, SLURM_RESTART_COUNT) and the signals it gets. Like
an agent, it runs a "trial" child in its own session with default signal dispositions.
MODE ``preemptible``: on SIGURG, SIGWINCH (the time limit's stop), SIGUSR1 or SIGTERM record
whether the trial is still alive,
stop it and exit 75 ("requeue me"); after a requeue (SLURM_RESTART_COUNT >= 1) exit 0 at
once, as an agent that finds the sweep done.
MODE ``stubborn``: record SIGURG, SIGWINCH and SIGUSR1 and ignore them; die of SIGTERM as usual.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

out_dir, mode = Path(sys.argv[1]), sys.argv[2]


def record(event: str, **fields: object) -> None:
    line = {
        "event": event,
        "node": os.environ.get("SLURMD_NODENAME"),
        "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "restart": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
        "t": time.time(),
        **fields,
    }
    with (out_dir / "events.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")


trial: subprocess.Popen[bytes] | None = None


def preempted(signum: int, frame: FrameType | None) -> None:
    time.sleep(0.2)  # a trial killed by the same signal would be dead by now
    alive = trial is not None and trial.poll() is None
    record("signal", signal=signum, trial_alive=alive)
    if mode == "preemptible":
        if trial is not None:
            trial.terminate()
            trial.wait()
        sys.exit(75)


signal.signal(signal.SIGURG, preempted)
signal.signal(signal.SIGWINCH, preempted)
signal.signal(signal.SIGUSR1, preempted)
if mode == "preemptible":
    signal.signal(signal.SIGTERM, preempted)
if mode == "preemptible" and int(os.environ.get("SLURM_RESTART_COUNT", "0")) >= 1:
    record("start")
    record("done")
    sys.exit(0)
trial = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
)
record("start")
time.sleep(60)
record("timeout")
sys.exit(1)
