"""examples/pytorch: its sweep really trains, under `sweepherd run`, with the real wandb offline."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from support.examples import EXAMPLES, SweepRunner
from sweepherd.runs import RunState

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("wandb")
pytestmark = pytest.mark.wandb

EXAMPLE = EXAMPLES / "pytorch"


def test_the_example_sweep_runs_and_every_run_reports_val_loss(run_sweep: SweepRunner) -> None:
    proc, runs = run_sweep(EXAMPLE / "sweep.yaml", "--run-cap", "3", "--slots", "2")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert len(runs) == 3
    for run in runs:
        # hyperband (min_iter 3) may stop a run that is worse than the others at 3 epochs
        assert run.state in (RunState.FINISHED, RunState.STOPPED), run.reason
        assert run.metric is not None and math.isfinite(run.metric)
        assert run.summary is not None
        assert run.summary["epoch"] <= 2  # short mode: at most 3 epochs, each logged
        assert 0.0 <= run.summary["val_accuracy"] <= 1.0
    assert len({r.params["lr"] for r in runs}) == 3  # the search gave each its own values


def test_the_network_learns_the_digits(run_sweep: SweepRunner, tmp_path: Path) -> None:
    config = yaml.safe_load((EXAMPLE / "sweep.yaml").read_text())
    config.update(
        method="grid",
        program=str(EXAMPLE / "train.py"),
        parameters={"lr": {"value": 0.01}, "batch_size": {"value": 32}},
    )
    del config["run_cap"]
    path = tmp_path / "learn.yaml"
    path.write_text(yaml.safe_dump(config))
    proc, (run,) = run_sweep(path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert run.state is RunState.FINISHED
    assert run.summary is not None and run.summary["val_accuracy"] > 0.8  # chance is 0.1
    assert run.metric is not None and run.metric < 0.6  # val_loss; 2.3 at chance
