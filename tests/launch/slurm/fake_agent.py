"""Stands in for ``sweepherd agent`` in the fan-out tests (a real process on a real node).

``fake_agent.py OUT_DIR MODE`` appends JSON events to OUT_DIR/events.jsonl: where it runs
(SLURMD_NODENAME, CUDA_VISIBLE_DEVICES, SLURM_RESTART_COUNT) and the signals it gets.
MODE ``preemptible``: on SIGUSR1 or SIGTERM exit 75 ("requeue me"); after a requeue
(SLURM_RESTART_COUNT >= 1) exit 0 at once, as an agent that finds the sweep done.
MODE ``stubborn``: record SIGUSR1 and ignore it; die of SIGTERM as usual.
"""

from __future__ import annotations

import json
import os
import signal
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


def preempted(signum: int, frame: FrameType | None) -> None:
    record("signal", signal=signum)
    if mode == "preemptible":
        sys.exit(75)


signal.signal(signal.SIGUSR1, preempted)
if mode == "preemptible":
    signal.signal(signal.SIGTERM, preempted)
record("start")
if mode == "preemptible" and int(os.environ.get("SLURM_RESTART_COUNT", "0")) >= 1:
    record("done")
    sys.exit(0)
time.sleep(60)
record("timeout")
sys.exit(1)
