"""Helpers for end-to-end agent tests: a real trial script, execution marks, waiting."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from sweepherd.store import SweepStore

#: A trial that records each execution in marks/ (run id, attempt, pid), logs a metric, and
#: behaves as its parameters say: sleep_s, exit_code, no_metric, argv_file, and kill_agent_x
#: (when x equals it, the trial SIGKILLs its agent and exits: the node died under both),
#: leave_child (starts a process in its group that ignores SIGTERM, and leaves it behind),
#: checkpoint_x (when x equals it, the trial writes a file into $SWEEPHERD_CHECKPOINT_DIR).
TRIAL = r"""
import json, os, signal, sys, time
import sweepherd
params = sweepherd.params()
run_id = os.environ["SWEEPHERD_RUN_ID"]
attempt = os.environ["SWEEPHERD_ATTEMPT"]
if params.get("checkpoint_x") == params.get("x"):  # keeps a checkpoint (before its mark)
    with open(os.path.join(os.environ["SWEEPHERD_CHECKPOINT_DIR"], "step"), "w") as f:
        f.write(attempt)
marks = os.path.join(os.path.dirname(os.path.abspath(__file__)), "marks")
os.makedirs(marks, exist_ok=True)
with open(os.path.join(marks, f"{run_id}.{attempt}.{os.getpid()}"), "w") as f:
    json.dump({"params": params, "argv": sys.argv[1:], "env": {
        k: v for k, v in os.environ.items() if k.startswith(("WANDB_", "SWEEPHERD_", "CUDA_"))
    }}, f)
print("hello from", run_id, flush=True)
if params.get("leave_child"):  # a process in the trial's group that ignores SIGTERM
    import subprocess
    child = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60"])
    children = os.path.join(os.path.dirname(marks), "children")
    os.makedirs(children, exist_ok=True)
    with open(os.path.join(children, run_id), "w") as f:
        f.write(str(child.pid))
if "kill_agent_x" in params and params.get("x") == params["kill_agent_x"]:
    os.kill(os.getppid(), signal.SIGKILL)
    sys.exit(1)
time.sleep(float(params.get("sleep_s", 0)))
if attempt == "1":
    time.sleep(float(params.get("sleep_first_s", 0)))
if params.get("nan_metric"):
    sweepherd.log({"loss": float("nan")})
elif not params.get("no_metric"):
    sweepherd.log({"loss": float(params.get("x", 0)) ** 2})
code = int(params.get("exit_code", 0))
if code:
    print(f"trial failing on purpose with {code}", file=sys.stderr, flush=True)
sys.exit(code)
"""


def write_trial(folder: Path) -> Path:
    path = folder / "trial.py"
    path.write_text(TRIAL)
    return path


def marks(folder: Path) -> list[tuple[str, int]]:
    """(run id, attempt) of every trial execution that started, from the marks folder."""
    out = []
    mark_dir = folder / "marks"
    if not mark_dir.is_dir():
        return out
    for p in mark_dir.iterdir():
        run_id, attempt, _pid = p.name.rsplit(".", 2)
        out.append((run_id, int(attempt)))
    return sorted(out)


SweepFactory = Callable[..., SweepStore]


def agent_argv(store: SweepStore, *args: str) -> list[str]:
    return [sys.executable, "-m", "sweepherd", "agent", str(store.path), *args]


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail the test with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")


def proc_state(pid: int) -> str | None:
    """The state letter of a process in /proc (R, S, Z, ...); None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]
