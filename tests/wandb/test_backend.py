"""The W&B backend's parts: where the W&B sweep lives, how many runs each agent takes, and the
local ``wandb agent`` processes, stopped by a real ``sweepherd cancel``.

Stood in for (they need the W&B server): ``wandb.sweep`` (:class:`RecordedSweepCreator`) and
the ``wandb`` command (a script on PATH recording each start).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from support.agents import wait_for
from support.wandb_standin import (
    SWEEP_ID,
    RecordedSweepCreator,
    agent_starts,
    write_wandb_command,
)
from sweepherd.config import parse_config
from sweepherd.errors import LaunchError, WandbError
from sweepherd.store import create_sweep
from sweepherd.wandb import (
    LocalWandbAgents,
    WandbSweep,
    create_backend_sweep,
    create_wandb_sweep,
    describe,
    gpu_slots,
    runs_per_agent,
    wandb_agent_argv,
    wandb_sweep_config,
)

GRID = {"program": "train.py", "method": "grid", "parameters": {"x": {"values": [1, 2, 3]}}}


@pytest.mark.parametrize(
    ("entity", "project", "path"),
    [
        ("ent", "proj", "ent/proj/s1"),
        (None, "proj", "proj/s1"),
        ("ent", None, "s1"),
        (None, None, "s1"),
    ],
)
def test_the_sweep_path_wandb_agent_takes(
    entity: str | None, project: str | None, path: str
) -> None:
    assert WandbSweep("s1", entity, project).path == path


def test_an_entity_without_a_project_reaches_wandb_agent() -> None:
    """``wandb agent ID`` alone would look the sweep up under the user's default entity."""
    sweep = WandbSweep("s1", "team", None)
    assert wandb_agent_argv(sweep, wandb="wandb", count=None) == [
        "wandb",
        "agent",
        "--forward-signals",
        "--entity",
        "team",
        "s1",
    ]
    assert sweep.agent_command == "wandb agent --entity team s1"
    assert WandbSweep("s1", None, None).agent_command == "wandb agent s1"


def test_argv_forwards_signals_and_counts_only_when_bounded() -> None:
    sweep = WandbSweep("s1", "e", "p")
    assert wandb_agent_argv(sweep, wandb="/x/wandb", count=3) == [
        "/x/wandb",
        "agent",
        "--count",
        "3",
        "--forward-signals",
        "e/p/s1",
    ]
    assert wandb_agent_argv(sweep, wandb="wandb", count=None) == [
        "wandb",
        "agent",
        "--forward-signals",
        "e/p/s1",
    ]


@pytest.mark.parametrize(
    ("raw", "n_agents", "count"),
    [
        (GRID, 2, 2),  # 3 grid points over 2 agents
        (GRID, 5, 1),
        ({**GRID, "run_cap": 2}, 1, 2),  # the cap is below the grid's size
        ({**GRID, "method": "random", "parameters": {"x": {"min": 0.0, "max": 1.0}}}, 4, None),
        ({**GRID, "method": "random", "run_cap": 10}, 4, 3),
    ],
)
def test_each_agent_takes_its_share_of_the_runs(
    raw: dict, n_agents: int, count: int | None
) -> None:
    assert runs_per_agent(parse_config(raw), n_agents) == count


def test_gpu_slots_give_each_gpu_one_agent_per_trial() -> None:
    assert gpu_slots(["0", "3"], trials_per_gpu=2) == ["0", "0", "3", "3"]
    assert gpu_slots([], n_cpu_slots=3) == [None, None, None]
    with pytest.raises(LaunchError):
        gpu_slots(["0"], trials_per_gpu=0)


def test_the_config_sent_is_the_users_with_nested_parameters_intact() -> None:
    raw = {
        **GRID,
        "parameters": {"opt": {"parameters": {"lr": {"values": [0.1, 0.01]}}}},
        "command": ["${env}", "${interpreter}", "${program}", "${args}"],
    }
    sent = wandb_sweep_config(parse_config(raw))
    assert sent == raw
    assert yaml.safe_load(yaml.safe_dump(sent)) == raw  # plain data, as wandb.sweep sends it


def test_creation_records_the_url_wandb_printed_and_undoes_its_env_side_effect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    monkeypatch.delenv("WANDB_ENTITY", raising=False)

    def creator(sweep: dict, entity: str | None = None, project: str | None = None) -> str:
        os.environ["WANDB_ENTITY"] = str(entity)  # as wandb.sweep does
        os.environ["WANDB_PROJECT"] = str(project)
        return RecordedSweepCreator()(sweep, entity=entity, project=project)

    sweep = create_wandb_sweep(parse_config(GRID), entity="team", creator=creator)
    assert sweep == WandbSweep(
        SWEEP_ID, "team", "from-env", f"https://wandb.example/team/from-env/sweeps/{SWEEP_ID}"
    )
    assert os.environ["WANDB_PROJECT"] == "from-env"
    assert "WANDB_ENTITY" not in os.environ


def test_an_empty_sweep_id_from_the_server_is_an_error() -> None:
    with pytest.raises(WandbError, match="returned no sweep id"):
        create_wandb_sweep(parse_config(GRID), creator=lambda sweep, **kw: "")


def test_describe_says_where_the_runs_are(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({**GRID, "project": "p"}))
    store, sweep = create_backend_sweep(
        tmp_path / "sweep.yaml", tmp_path / "sweeps", creator=RecordedSweepCreator()
    )
    assert WandbSweep.from_store(store) == sweep
    assert describe(store) == (
        f"runs on W&B's sweep controller: its runs are at W&B sweep p/{SWEEP_ID}; "
        f"more agents: wandb agent p/{SWEEP_ID}"
    )
    plain = create_sweep(tmp_path / "sweeps", parse_config(GRID))
    assert describe(plain) is None
    with pytest.raises(WandbError, match="does not run on W&B's controller"):
        WandbSweep.from_store(plain)


def test_sweepherd_cancel_stops_the_local_agents_which_forward_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wandb = write_wandb_command(tmp_path / "bin")
    records = tmp_path / "records"
    records.mkdir()
    (tmp_path / "train.py").write_text("")
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(GRID))
    store, _ = create_backend_sweep(
        tmp_path / "sweep.yaml", tmp_path / "sweeps", creator=RecordedSweepCreator()
    )
    env = {**os.environ, "WANDB_STANDIN_DIR": str(records), "WANDB_STANDIN_SLEEP_S": "120"}
    agents = LocalWandbAgents(
        store, ["0", "1"], count=2, wandb=str(wandb), workdir=tmp_path, base_env=env
    )
    agents.start()
    try:
        wait_for(lambda: len(agent_starts(records)) == 2, what="two agents started")
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "sweepherd", "cancel", str(store.path)],
            check=True,
            capture_output=True,
        )
        outcome = agents.wait(tick_s=0.1)
    finally:
        agents.stop(signal.SIGKILL)
    assert time.monotonic() - started < 30
    assert outcome.cancelled and not outcome.failed
    assert outcome.exit_codes == [0, 0]
    assert [r.get("signal") for r in agent_starts(records)] == [signal.SIGTERM, signal.SIGTERM]
