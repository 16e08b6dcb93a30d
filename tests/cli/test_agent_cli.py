"""`sweepherd agent --all-nodes` hands every parsed option on to the agents it starts per node.

The fan-out itself runs on the real Slurm cluster in tests/launch/slurm and tests/cli/test_submit;
here only the hand-over of the command line is checked, so run_on_all_nodes is replaced by a
recorder.
"""

from __future__ import annotations

import pytest

import sweepherd.launch.slurm as slurm
from sweepherd.cli.main import main


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
