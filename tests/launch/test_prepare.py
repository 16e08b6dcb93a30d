"""Making a sweep: the W&B project of a config that names none, chosen as ``wandb sweep``
chooses it, and given to every trial."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from support.agents import marks, write_trial
from support.cli import sweepherd
from sweepherd.config import parse_config
from sweepherd.launch import prepare_sweep
from sweepherd.launch._prepare import default_project

CONFIG = {"program": "trial.py", "method": "grid", "parameters": {"x": {"values": [1]}}}


def test_the_project_is_the_environments_else_the_git_repositorys(tmp_path: Path) -> None:
    repo = tmp_path / "my-repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "train" / "cnn").mkdir(parents=True)
    config = parse_config(CONFIG)
    assert default_project(config, repo, env={}) == "my-repo"
    # wandb's auto_project_name: the program's folder inside the repository joins the name
    assert default_project(config, repo / "train" / "cnn", env={}) == "my-repo-train_cnn"
    assert default_project(config, repo, env={"WANDB_PROJECT": "mine"}) == "mine"
    assert default_project(config, tmp_path, env={}) is None  # W&B's "uncategorized"
    nested = parse_config({**CONFIG, "program": "train/cnn/trial.py"})
    assert default_project(nested, repo, env={}) == "my-repo-train_cnn"
    no_program = parse_config(
        {k: v for k, v in CONFIG.items() if k != "program"} | {"command": ["python", "x.py"]}
    )
    assert default_project(no_program, repo / "train", env={}) == "my-repo"


def test_a_project_wandb_init_wrote_to_the_settings_comes_before_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "my-repo"
    (repo / ".git").mkdir(parents=True)
    config = parse_config(CONFIG)
    monkeypatch.chdir(repo)
    home = tmp_path / "config"
    home.mkdir()
    env = {"WANDB_CONFIG_DIR": str(home)}
    (home / "settings").write_text("[default]\nentity = team\nproject = global-one\n")
    assert default_project(config, repo, env=env) == "global-one"
    (repo / "wandb").mkdir()
    (repo / "wandb" / "settings").write_text("[default]\nproject = this-one\n")
    assert default_project(config, repo, env=env) == "this-one"
    (repo / "wandb" / "settings").write_text("[default\nbroken")
    assert default_project(config, repo, env=env) == "global-one"  # a broken file: skipped


def test_trials_of_a_sweep_made_in_a_repository_log_to_its_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "vision"
    (repo / ".git").mkdir(parents=True)
    write_trial(repo)
    (repo / "sweep.yaml").write_text(yaml.safe_dump(CONFIG))
    monkeypatch.chdir(repo)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "no-settings"))  # none of the user's
    store = prepare_sweep(repo / "sweep.yaml", repo / "sweeps")
    assert store.wandb_project == "vision"
    agent = sweepherd("agent", str(store.path), "-q", cwd=repo)
    assert agent.returncode == 0, agent.stderr
    assert len(marks(repo)) == 1
    (mark,) = (repo / "marks").iterdir()  # what the trial saw
    assert json.loads(mark.read_text())["env"]["WANDB_PROJECT"] == "vision"
    # A config that names its project keeps it.
    (repo / "named.yaml").write_text(yaml.safe_dump({**CONFIG, "project": "named"}))
    assert prepare_sweep(repo / "named.yaml", repo / "sweeps").wandb_project == "named"
