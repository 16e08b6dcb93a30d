"""``sweepherd status``: a running run shows the metric it has logged so far."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.helpers import make_sweep
from sweepherd.cli.main import main
from sweepherd.live_metric import LIVE_FILE, live_document


def test_a_running_run_shows_its_latest_metric_from_its_agents_live_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = make_sweep(tmp_path)
    done = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    sweep.finish(done, metric=0.5)
    running = sweep.claim({"x": 2, "opt": {"lr": 0.1}})
    quiet = sweep.claim({"x": 3, "opt": {"lr": 0.1}})  # nothing logged yet
    sweep.store.heartbeat("agent-1")
    live = live_document(running.id, 1, "loss", [0.9, 0.0303], None)
    (sweep.store.run_dir(running.id) / LIVE_FILE).write_bytes(live)
    args = ["--dir", str(tmp_path)]
    assert main(["status", sweep.id, *args]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows[running.id][1:3] == ["running", "0.0303"]
    assert rows[quiet.id][1:3] == ["running", "-"]
    assert rows[done.id][1:3] == ["finished", "0.5"]
    assert main(["status", sweep.id, "--json", *args]) == 0
    by_id = {r["id"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert by_id[running.id]["live_metric"] == 0.0303 and by_id[running.id]["metric"] is None
    assert "live_metric" not in by_id[quiet.id] and "live_metric" not in by_id[done.id]


def test_a_sweep_that_met_its_target_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = {
        "program": "train.py",
        "method": "random",
        "metric": {"name": "loss", "goal": "minimize", "target": 0.1},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
    }
    sweep = make_sweep(tmp_path, raw)
    sweep.finish(sweep.claim({"x": 0.5}), metric=0.05)
    assert main(["status", sweep.id, "--dir", str(tmp_path)]) == 0
    assert "no new run starts: metric loss reached target 0.1 in run sw1-0000 (0.05)" in (
        " ".join(capsys.readouterr().out.split())
    )
    assert main(["status", sweep.id, "--json", "--dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["done_reason"].startswith("metric loss reached")
