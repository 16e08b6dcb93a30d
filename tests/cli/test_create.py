"""``sweepherd create``: a sweep made and no agent started, as `wandb sweep` does; then real
agents run it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from support.agents import write_trial
from support.cli import sweepherd
from sweepherd.cli.main import main
from sweepherd.errors import ExitStatus
from sweepherd.runs import RunState
from sweepherd.store import list_sweeps, open_sweep


def test_create_starts_nothing_and_says_how_to_start_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_trial(tmp_path)
    config = {
        "program": "trial.py",
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"values": [1, 2]}},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    assert main(["create", "sweep.yaml", "--name", "by hand"]) == ExitStatus.OK
    out = capsys.readouterr().out
    (store,) = list_sweeps(tmp_path / "sweeps")
    path = store.path.resolve()
    assert out.startswith(f"Created sweep {store.sweep_id} in {path}\n")
    assert f"sweepherd agent {path} --all-nodes --gpus auto" in out
    assert f"sweepherd scale {path} --nodes N" in out
    assert store.config.name == "by hand"
    assert store.snapshot().runs == {}
    assert not (store.path / "agents").exists() or not list((store.path / "agents").iterdir())

    agent = sweepherd("agent", str(path), "-q", cwd=tmp_path)
    assert agent.returncode == 0, agent.stderr
    runs = open_sweep(path, tmp_path).snapshot().runs.values()
    assert sorted((r.params["x"], r.state) for r in runs) == [
        (1, RunState.FINISHED),
        (2, RunState.FINISHED),
    ]


def test_a_bad_config_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.yaml").write_text("program: missing.py\nmethod: grid\nparameters: {}\n")
    assert main(["create", "sweep.yaml"]) == ExitStatus.CONFIG
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "sweeps").exists() or list_sweeps(tmp_path / "sweeps") == []
