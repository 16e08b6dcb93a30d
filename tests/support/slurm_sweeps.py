"""Helpers for sweeps run on the real Slurm cluster: a trial that records where it ran, and waiting.

The trial (``trial.py`` next to the sweep config) writes one JSON file per execution into
``marks/``: its run id and attempt, the Slurm and sweepherd environment it saw, and when it
started and ended. Parameters: ``sleep_s`` (every attempt), ``sleep_first_s`` (the first
``first_attempts`` attempts, default 1: a run that is still running when a test preempts it),
``x`` (the metric is ``x ** 2``), ``checkpoint_x`` (the run whose ``x`` is this writes a file
into ``$SWEEPHERD_CHECKPOINT_DIR``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from sweepherd.runs import Run
from sweepherd.store import SweepStore, open_sweep

TRIAL = r"""
import json, os, time
import sweepherd
params = sweepherd.params()
env = {k: v for k, v in os.environ.items() if k.startswith(("SLURM", "WANDB_", "SWEEPHERD_"))}
env["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES")
marks = os.path.join(os.path.dirname(os.path.abspath(__file__)), "marks")
os.makedirs(marks, exist_ok=True)
name = f"{env['SWEEPHERD_RUN_ID']}.{env['SWEEPHERD_ATTEMPT']}.{os.getpid()}.json"
record = {"run": env["SWEEPHERD_RUN_ID"], "attempt": int(env["SWEEPHERD_ATTEMPT"]),
          "env": env, "start": time.time(), "end": None}

def save():
    tmp = os.path.join(marks, "." + name)
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, os.path.join(marks, name))

save()
if params.get("checkpoint_x") == params.get("x"):  # this run keeps a checkpoint
    with open(os.path.join(env["SWEEPHERD_CHECKPOINT_DIR"], "step"), "w") as f:
        f.write(str(record["attempt"]))
if record["attempt"] <= int(params.get("first_attempts", 1)):
    time.sleep(float(params.get("sleep_first_s", 0)))
time.sleep(float(params.get("sleep_s", 0)))
sweepherd.log({"loss": float(params.get("x", 0)) ** 2})
record["end"] = time.time()
save()
"""

#: Agent options for tests: frequent heartbeats, runs of a silent agent re-run after 4 s.
FAST_AGENT = "--heartbeat 0.5 --lost-after 4 --stop-grace 5 -q"


def write_sweep(folder: Path, parameters: Mapping[str, Any], **raw: Any) -> Path:
    """Write ``trial.py`` and a grid ``sweep.yaml`` running it into ``folder``; the yaml's path."""
    (folder / "trial.py").write_text(TRIAL)
    config = {
        "program": "trial.py",
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": dict(parameters),
        **raw,
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def executions(folder: Path) -> list[dict[str, Any]]:
    """Every trial execution that started, from ``folder/marks`` (see the module doc)."""
    out = []
    marks = folder / "marks"
    if marks.is_dir():
        for path in sorted(marks.glob("*.json")):
            out.append(json.loads(path.read_text()))
    return out


def n_executions(folder: Path) -> Counter[str]:
    """How many times each run's trial was started."""
    return Counter(e["run"] for e in executions(folder))


def runs(store: SweepStore) -> dict[str, Run]:
    """The sweep's runs as a fresh reader sees them now."""
    return dict(open_sweep(store.path, store.path.parent).snapshot().runs)


def journal_events(store: SweepStore, kind: str) -> list[dict[str, Any]]:
    """The sweep's journal events of one kind (``"end"``, ``"claim"``, ``"job"``...)."""
    lines = (store.path / "journal.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("e") == kind]


def finished_results(store: SweepStore) -> Counter[str]:
    """How many ``finished`` results were recorded per run (must never exceed 1)."""
    return Counter(e["run"] for e in journal_events(store, "end") if e["state"] == "finished")


def sweeps_under(root: Path) -> Iterator[SweepStore]:
    """Every sweep in ``root``."""
    if root.is_dir():
        for path in root.iterdir():
            if (path / "meta.json").exists():
                yield open_sweep(path, root)


def poll(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.2) -> Any:
    """Call ``predicate`` until it returns something true; return it, or fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def scancel_at_end(request: Any, root: Path) -> None:
    """When the test ends, pass or fail, cancel every job recorded by the sweeps in ``root``,
    so a failed test leaves no job holding the shared cluster's nodes."""
    from sweepherd.launch.slurm import recorded_job_ids, scancel

    def cancel() -> None:
        ids = [j for s in sweeps_under(root) for j in recorded_job_ids(s.snapshot())]
        if ids:
            scancel(ids)

    request.addfinalizer(cancel)
