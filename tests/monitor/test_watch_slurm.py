"""The live view's Slurm panel against the real local Slurm cluster."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rich.console import Console

from monitor.helpers import make_sweep
from sweepherd.launch.slurm import sbatch, scancel, sweep_jobs
from sweepherd.monitor import WatchCollector, WatchModel, render_watch


def _until(collector: WatchCollector, state: str, timeout_s: float = 60.0) -> WatchModel:
    deadline = time.monotonic() + timeout_s
    while True:
        model = collector.collect()
        if model.slurm.rows and model.slurm.rows[0].state == state:
            return model
        if time.monotonic() > deadline:
            raise AssertionError(f"job never {state}: {model.slurm}")
        time.sleep(0.3)


@pytest.mark.slurm
def test_the_sweeps_job_shows_with_its_state_and_runs(
    slurm_cluster: object, tmp_path: Path
) -> None:
    sweep = make_sweep(tmp_path / "sweeps")
    script = tmp_path / "job.sbatch"
    script.write_text(f"#!/bin/bash\n#SBATCH --output={tmp_path}/%j.out\nsleep 60\n")
    job_id = sbatch(script)
    try:
        sweep.record_job(job_id, kind="submit")
        sweep.claim({"x": 1, "opt": {"lr": 0.1}}, node="node1", job=job_id)
        collector = WatchCollector(sweep.store, slurm_jobs=sweep_jobs, slurm_every_s=0.0)
        model = _until(collector, "RUNNING")
        (row,) = model.slurm.rows
        assert (row.job_id, row.kind, row.n_running) == (job_id, "submit", 1)
        assert row.nodes and row.nodes.startswith("node")
        assert model.slurm.available and model.slurm.note is None
        console = Console(record=True, width=80)
        console.print(render_watch(model))
        text = console.export_text()
        panel = text[text.index("slurm jobs") :].splitlines()
        assert panel[1].split() == ["job", "state", "nodes", "runs", "reason"]
        assert panel[2].split()[:4] == [job_id, "RUNNING", row.nodes, "1"]
    finally:
        scancel([job_id])
    assert _until(collector, "CANCELLED").slurm.rows[0].job_id == job_id
