"""A run's metric history from its folder: sweepherd.log, a real offline wandb run, live.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor.helpers import Sweep
from sweepherd.monitor import MetricPoint, RunMetricFollower, WatchCollector, load_history


def test_history_from_sweepherd_log(sweep: Sweep) -> None:
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    for step in (0, 2, 4):
        sweep.log(run, step, loss=1.0 / (step + 1), note="text is not a number")
    sweep.log(run, 5, loss=float("nan"))  # kept as "nan" in the file; not a point
    sweep.log(run, 6, other=3)
    points = load_history(sweep.store.runs_dir / run.id, run.id, "loss")
    assert points == [MetricPoint(0, 1.0), MetricPoint(2, 1 / 3), MetricPoint(4, 0.2)]


def test_the_follower_keeps_only_the_latest_value_unless_asked(sweep: Sweep) -> None:
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    follower = RunMetricFollower(sweep.store.runs_dir / run.id, run.id, "loss")
    assert not follower.poll()
    sweep.log(run, 0, loss=3.0)
    sweep.log(run, 1, loss=2.0)
    assert follower.poll()
    assert (follower.latest, follower.n_rows, follower.history) == (2.0, 2, [])
    assert not follower.poll()


WANDB_SCRIPT = """
import wandb
run = wandb.init(id="{run_id}", project="monitor-test")
for i in range(5):
    wandb.log({{"loss": 1.0 / (i + 1), "val": {{"acc": i / 10}}}})
run.finish()
"""


def run_offline_wandb(run_dir: Path, run_id: str) -> None:
    """Run a real wandb script offline with the run folder as WANDB_DIR, as the agent does."""
    pytest.importorskip("wandb")
    run_dir.mkdir(parents=True, exist_ok=True)
    script = run_dir.parent / f"{run_id}.py"
    script.write_text(textwrap.dedent(WANDB_SCRIPT.format(run_id=run_id)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        WANDB_MODE="offline",
        WANDB_DIR=str(run_dir),
        WANDB_CONFIG_DIR=str(run_dir.parent / ".wandb-config"),
        WANDB_CACHE_DIR=str(run_dir.parent / ".wandb-cache"),
        WANDB_DATA_DIR=str(run_dir.parent / ".wandb-data"),
        WANDB_SILENT="true",
        WANDB_BASE_URL="http://127.0.0.1:9",  # offline runs never call; a refused port if so
    )
    subprocess.run([sys.executable, str(script)], env=env, cwd=run_dir, check=True, timeout=120)


@pytest.mark.wandb
def test_history_and_latest_value_from_a_real_offline_wandb_run(sweep: Sweep) -> None:
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    run_dir = sweep.store.run_dir(run.id)
    run_offline_wandb(run_dir, run.id)
    points = load_history(run_dir, run.id, "loss")
    assert points == [MetricPoint(i, 1.0 / (i + 1)) for i in range(5)]
    nested = load_history(run_dir, run.id, "val.acc")  # wandb's "val/acc"
    assert [p.value for p in nested] == [0.0, 0.1, 0.2, 0.3, 0.4]
    model = WatchCollector(sweep.store).collect()  # the run is still running in the journal
    assert (model.running[0].latest, model.running[0].n_logged) == (0.2, 5)


@pytest.mark.wandb
def test_a_log_file_created_after_its_folder_is_still_found(sweep: Sweep) -> None:
    """wandb makes offline-run-*/ a moment before the log in it: a poll may land between."""
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    made = sweep.store.run_dir(run.id) / "made"
    made.mkdir()
    run_offline_wandb(made, run.id)
    (log,) = (made / "wandb").glob(f"offline-run-*/run-{run.id}.wandb")
    run_dir = sweep.store.run_dir(run.id)
    folder = run_dir / "wandb" / log.parent.name
    folder.mkdir(parents=True)
    follower = RunMetricFollower(run_dir, run.id, "loss")
    follower.poll()
    assert (follower.latest, follower.n_rows) == (None, 0)
    mtime = (run_dir / "wandb").stat().st_mtime_ns
    (folder / log.name).write_bytes(log.read_bytes())
    assert (run_dir / "wandb").stat().st_mtime_ns == mtime  # only the folder changed
    follower.poll()
    assert (follower.latest, follower.n_rows) == (0.2, 5)


LIVE_CHECK = """
import sys, json
sys.modules["wandb"] = None  # a login node without wandb: its logs cannot be decoded
from pathlib import Path
from sweepherd.monitor import RunMetricFollower
follower = RunMetricFollower(Path(sys.argv[1]), sys.argv[2], "loss", keep_history=True)
follower.poll()
print(json.dumps([follower.latest, follower.n_rows, [p.value for p in follower.history]]))
"""


def test_without_wandb_the_agents_live_file_is_read(sweep: Sweep) -> None:
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    run_dir = sweep.store.run_dir(run.id)
    # What the agent writes for a run that logs through wandb (sweepherd.agent's live.json).
    live = {"run": run.id, "attempt": 1, "metric": "loss", "n": 3, "last": 0.5}
    live.update(history=[2.0, 1.0, 0.5], t=1.0)
    (run_dir / "live.json").write_text(json.dumps(live))
    proc = subprocess.run(
        [sys.executable, "-c", LIVE_CHECK, str(run_dir), run.id],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(proc.stdout) == [0.5, 3, [2.0, 1.0, 0.5]]
