"""Stand-ins for the two parts of ``--backend wandb`` that must reach the W&B server.

- :class:`RecordedSweepCreator` stands in for ``wandb.sweep`` (it creates the sweep on the
  server): it records the config, entity and project it was given and returns a sweep id;
- :func:`write_wandb_command` writes an executable ``wandb`` that stands in for
  ``wandb agent`` (it polls the server for runs): each start appends what it was started with
  (argv, working folder, GPU and Slurm variables) as one JSON file under ``$WANDB_STANDIN_DIR``.

Nothing else is stood in for: sweepherd's own code, the processes, the files and Slurm are real.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SWEEP_ID = "abc123xy"

_COMMAND = """#!{python}
# Stands in for the `wandb` command (`wandb agent` needs the W&B server).
import json, os, signal, sys, time
out = os.environ["WANDB_STANDIN_DIR"]
keys = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURMD_NODENAME", "SLURM_STEP_ID", "WANDB_MODE")
record = {{"argv": sys.argv[1:], "cwd": os.getcwd(), "pid": os.getpid(), "t": time.time(),
          "env": {{k: os.environ.get(k) for k in keys}}}}
path = os.path.join(out, "%s-%d.json" % (os.environ.get("SLURMD_NODENAME", "here"), os.getpid()))

def write():
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(path + ".tmp", path)

def on_signal(signum, frame):
    record["signal"] = signum
    write()
    sys.exit(0)

signal.signal(signal.SIGTERM, on_signal)
write()
print("wandb agent stand-in started", flush=True)
time.sleep(float(os.environ.get("WANDB_STANDIN_SLEEP_S", "0.5")))
sys.exit(int(os.environ.get("WANDB_STANDIN_EXIT", "0")))
"""


def write_wandb_command(folder: Path) -> Path:
    """An executable ``folder/wandb`` standing in for the real one; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "wandb"
    path.write_text(_COMMAND.format(python=sys.executable))
    path.chmod(0o755)
    return path


def agent_starts(record_dir: Path) -> list[dict[str, Any]]:
    """What every start of the stand-in ``wandb`` recorded, in start order."""
    records = [json.loads(p.read_text()) for p in record_dir.glob("*.json")]
    return sorted(records, key=lambda r: r["t"])


@dataclass
class RecordedSweepCreator:
    """Stands in for ``wandb.sweep(sweep, entity=None, project=None, prior_runs=None)``.

    Prints what wandb prints (the URL only when entity and project are known) and returns
    :data:`SWEEP_ID`; ``error`` makes it raise instead, as wandb does without a server.
    """

    calls: list[dict[str, Any]] = field(default_factory=list)
    error: Exception | None = None

    def __call__(
        self,
        sweep: Mapping[str, Any],
        entity: str | None = None,
        project: str | None = None,
        prior_runs: list[str] | None = None,
    ) -> str:
        self.calls.append(
            {"sweep": json.loads(json.dumps(sweep)), "entity": entity, "project": project}
        )
        if self.error is not None:
            raise self.error
        print("Create sweep with ID:", SWEEP_ID)
        if entity and project:
            print("Sweep URL:", f"https://wandb.example/{entity}/{project}/sweeps/{SWEEP_ID}")
        return SWEEP_ID


def same_signature_as_wandb_sweep() -> bool:
    """True while the stand-in takes exactly the parameters of the installed ``wandb.sweep``."""
    import wandb

    real = list(inspect.signature(wandb.sweep).parameters)
    ours = list(inspect.signature(RecordedSweepCreator.__call__).parameters)[1:]
    return real == ours
