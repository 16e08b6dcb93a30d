"""The environment of a trial."""

from __future__ import annotations

from pathlib import Path

from sweepherd.agent._env import TrialContext, trial_environment


def _ctx(tmp_path: Path, **kw: object) -> TrialContext:
    base = {
        "sweep_dir": tmp_path,
        "sweep_id": "abc12345",
        "sweep_name": "demo",
        "run_id": "abc12345-0003",
        "run_dir": tmp_path / "runs" / "abc12345-0003",
        "attempt": 1,
        "params_file": tmp_path / "p.yaml",
        "metrics_file": tmp_path / "m.jsonl",
        "checkpoint_dir": tmp_path / "ckpt",
        "node": "node1",
    }
    base.update(kw)
    return TrialContext(**base)  # type: ignore[arg-type]


def test_wandb_variables_and_no_fake_sweep_id(tmp_path: Path) -> None:
    env = trial_environment(
        {"PATH": "/bin", "WANDB_SWEEP_ID": "stale", "WANDB_SERVICE": "x"}, _ctx(tmp_path)
    )
    assert env["PATH"] == "/bin"
    assert env["WANDB_SWEEP_PARAM_PATH"] == str(tmp_path / "p.yaml")
    assert env["WANDB_RUN_ID"] == "abc12345-0003"
    assert env["WANDB_DIR"] == str(tmp_path / "runs" / "abc12345-0003")
    assert env["WANDB_MODE"] == "offline"
    assert env["WANDB_RUN_GROUP"] == "demo"
    assert "WANDB_SWEEP_ID" not in env  # a made-up sweep id breaks `wandb sync` (wandb 8115)
    assert "WANDB_SERVICE" not in env
    assert "WANDB_RESUME" not in env
    assert "CUDA_VISIBLE_DEVICES" not in env
    assert env["SWEEPHERD_METRICS_FILE"] == str(tmp_path / "m.jsonl")
    assert env["SWEEPHERD_CHECKPOINT_DIR"] == str(tmp_path / "ckpt")


def test_resume_gpu_project_and_real_sweep_id(tmp_path: Path) -> None:
    ctx = _ctx(
        tmp_path,
        attempt=2,
        cuda_visible_devices="1",
        wandb_project="proj",
        wandb_entity="team",
        wandb_sweep_id="wb123",
    )
    env = trial_environment({"CUDA_VISIBLE_DEVICES": "0,1"}, ctx)
    assert env["WANDB_RESUME"] == "allow"
    assert env["SWEEPHERD_ATTEMPT"] == "2"
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["WANDB_PROJECT"] == "proj"
    assert env["WANDB_ENTITY"] == "team"
    assert env["WANDB_SWEEP_ID"] == "wb123"


def test_user_run_group_is_kept(tmp_path: Path) -> None:
    env = trial_environment({"WANDB_RUN_GROUP": "mine"}, _ctx(tmp_path))
    assert env["WANDB_RUN_GROUP"] == "mine"
