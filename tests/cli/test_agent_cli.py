"""`sweepherd agent --all-nodes` hands every parsed option on to the agents it starts per node.

The fan-out itself runs on the real Slurm cluster in tests/launch/slurm and tests/cli/test_submit;
here only the hand-over of the command line is checked, so run_on_all_nodes is replaced by a
recorder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import sweepherd.launch.slurm as slurm
from support.agents import write_trial
from sweepherd.cli.main import main
from sweepherd.config import parse_config
from sweepherd.store import create_sweep


def test_all_nodes_forwards_the_parsed_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(slurm, "run_on_all_nodes", lambda argv: seen.append(list(argv)) or 0)
    argv = ["agent", "/s/x", "--dir", "/r", "--gpus", "auto", "--trials-per-gpu", "2"]
    assert main([*argv, "-vv", "--all-nodes", "--lost-after", "30", "--count", "3"]) == 0
    assert seen == [
        [
            "agent",
            "/s/x",
            "--dir",
            "/r",
            "--gpus",
            "auto",
            "--trials-per-gpu",
            "2",
            "--count",
            "3",
            "--lost-after",
            "30.0",
            "-v",
            "-v",
        ]
    ]


def test_a_stop_grace_longer_than_the_slurm_warning_allows_is_cut_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Trials must stop before Slurm kills the job: half the warning's lead at most."""
    write_trial(tmp_path)
    config = {"program": "trial.py", "method": "grid", "parameters": {"x": {"values": [1]}}}
    store = create_sweep(
        tmp_path / "sweeps", parse_config(config), extra_meta={"workdir": str(tmp_path)}
    )
    monkeypatch.setenv("SWEEPHERD_SIGNAL_GRACE_S", "20")  # as the sbatch script sets it
    assert main(["agent", str(store.path), "--stop-grace", "60"]) == 0
    err = capfd.readouterr().err
    assert "W --stop-grace 60 s is cut to 10 s: half the 20 s between Slurm's warning" in err
    assert main(["agent", str(store.path)]) == 0  # the default 30 s is cut too: no warning
    assert "I --stop-grace 30 s is cut to 10 s" in capfd.readouterr().err
