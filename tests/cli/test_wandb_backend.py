"""``sweepherd run --backend wandb``: a W&B sweep and one real ``wandb agent`` process per slot.

Stood in for, because they need the W&B server, and only they: ``wandb.sweep`` (a recorded
fake at the function boundary) and the ``wandb`` command (a script on PATH that records how
each agent was started). The CLI, the sweep directory and the agent processes are real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.wandb_standin import (
    SWEEP_ID,
    RecordedSweepCreator,
    agent_starts,
    same_signature_as_wandb_sweep,
    write_wandb_command,
)
from sweepherd.cli.main import main
from sweepherd.errors import ExitStatus
from sweepherd.store import list_sweeps

pytestmark = pytest.mark.wandb


class Standins:
    def __init__(self, folder: Path, creator: RecordedSweepCreator) -> None:
        self.folder = folder
        self.creator = creator
        self.records = folder / "records"
        self.root = folder / "sweeps"

    def config(self, **raw: object) -> Path:
        config = {
            "program": "train.py",
            "method": "grid",
            "project": "proj",
            "entity": "ent",
            "metric": {"name": "val_loss", "goal": "minimize"},
            "parameters": {"x": {"values": [1, 2, 3, 4, 5, 6]}},
            **raw,
        }
        path = self.folder / "sweep.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def run(self, *args: str) -> int:
        return main(["run", "sweep.yaml", "--dir", str(self.root), "--backend", "wandb", *args])

    def meta(self) -> dict[str, Any]:
        (path,) = (p for p in self.root.iterdir() if p.is_dir())
        return dict(json.loads((path / "meta.json").read_text()))


def no_sweeps(root: Path) -> bool:
    return not list_sweeps(root)


@pytest.fixture
def standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Standins:
    wandb = pytest.importorskip("wandb")
    assert same_signature_as_wandb_sweep()  # the fake takes what the real one takes
    creator = RecordedSweepCreator()
    monkeypatch.setattr(wandb, "sweep", creator)
    bin_dir = tmp_path / "bin"
    write_wandb_command(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "records").mkdir()
    monkeypatch.setenv("WANDB_STANDIN_DIR", str(tmp_path / "records"))
    for name in ("CUDA_VISIBLE_DEVICES", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_STANDIN_EXIT"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "train.py").write_text("import wandb\n")
    monkeypatch.chdir(tmp_path)
    return Standins(tmp_path, creator)


def test_run_creates_the_wandb_sweep_and_one_agent_per_gpu_slot(
    standins: Standins, capsys: pytest.CaptureFixture[str]
) -> None:
    config = standins.config()
    assert standins.run("--gpus", "0,1", "--trials-per-gpu", "2") == 0
    out = capsys.readouterr().out

    # the sweep W&B got is the config as written, where the config says
    assert standins.creator.calls == [
        {"sweep": yaml.safe_load(config.read_text()), "entity": "ent", "project": "proj"}
    ]
    # four agents: two per GPU, each pinned to its GPU, 6 grid points shared out (2 each)
    starts = agent_starts(standins.records)
    assert len(starts) == 4
    for start in starts:
        assert start["argv"] == [
            "agent",
            "--count",
            "2",
            "--forward-signals",
            f"ent/proj/{SWEEP_ID}",
        ]
        assert Path(start["cwd"]) == standins.folder  # where the sweep's program is
    assert sorted(s["env"]["CUDA_VISIBLE_DEVICES"] for s in starts) == ["0", "0", "1", "1"]

    meta = standins.meta()
    assert meta["backend"] == "wandb"
    assert meta["wandb"] == {
        "sweep_id": SWEEP_ID,
        "entity": "ent",
        "project": "proj",
        "path": f"ent/proj/{SWEEP_ID}",
        "url": f"https://wandb.example/ent/proj/sweeps/{SWEEP_ID}",
    }
    assert f"https://wandb.example/ent/proj/sweeps/{SWEEP_ID}" in out
    logs = sorted((standins.root / str(meta["id"]) / "logs").glob("wandb-agent-*.log"))
    assert len(logs) == 4
    assert all("wandb agent stand-in started" in log.read_text() for log in logs)


def test_status_says_where_the_runs_are_and_agent_refuses_the_sweep(
    standins: Standins, capsys: pytest.CaptureFixture[str]
) -> None:
    standins.config()
    assert standins.run() == 0
    sweep_dir = str(standins.root / str(standins.meta()["id"]))
    capsys.readouterr()
    assert main(["status", sweep_dir]) == 0
    note = (
        f"runs on W&B's sweep controller: its runs are at "
        f"https://wandb.example/ent/proj/sweeps/{SWEEP_ID}; more agents: wandb agent "
        f"ent/proj/{SWEEP_ID}"
    )
    assert note in " ".join(capsys.readouterr().out.split())
    # sweepherd's own agent would run a search of its own on it
    assert main(["agent", sweep_dir]) == ExitStatus.LAUNCH
    assert note in " ".join(capsys.readouterr().err.split())


def test_run_without_gpus_starts_agents_times_slots_and_applies_overrides(
    standins: Standins,
) -> None:
    config = standins.config(method="random", parameters={"x": {"min": 0.0, "max": 1.0}})
    assert standins.run("--agents", "2", "--slots", "2", "--run-cap", "10", "--name", "n1") == 0
    (call,) = standins.creator.calls
    assert call["sweep"] == {**yaml.safe_load(config.read_text()), "run_cap": 10, "name": "n1"}
    starts = agent_starts(standins.records)
    assert len(starts) == 4
    assert all(s["argv"][:3] == ["agent", "--count", "3"] for s in starts)  # ceil(10 / 4)
    assert all(s["env"]["CUDA_VISIBLE_DEVICES"] is None for s in starts)


def test_an_unbounded_sweep_gives_the_agents_no_count(
    standins: Standins, capsys: pytest.CaptureFixture[str]
) -> None:
    standins.config(method="random", parameters={"x": {"min": 0.0, "max": 1.0}})
    assert standins.run() == 0
    (start,) = agent_starts(standins.records)
    assert start["argv"] == ["agent", "--forward-signals", f"ent/proj/{SWEEP_ID}"]
    assert "has no end of its own" in capsys.readouterr().out


def test_project_and_entity_come_from_the_environment_when_the_config_has_none(
    standins: Standins, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load(standins.config().read_text())
    del config["project"], config["entity"]
    (standins.folder / "sweep.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("WANDB_PROJECT", "envproj")
    assert standins.run() == 0
    assert standins.creator.calls[0]["project"] == "envproj"
    assert standins.creator.calls[0]["entity"] is None
    (start,) = agent_starts(standins.records)
    assert start["argv"][-1] == f"envproj/{SWEEP_ID}"  # W&B's default entity
    assert standins.meta()["wandb"]["url"] is None


def test_a_missing_program_is_refused_before_the_wandb_sweep_is_created(
    standins: Standins, capsys: pytest.CaptureFixture[str]
) -> None:
    standins.config(program="nosuch.py")
    assert standins.run() == ExitStatus.CONFIG
    assert "program 'nosuch.py' was not found" in capsys.readouterr().err
    assert standins.creator.calls == []
    assert no_sweeps(standins.root)
    assert agent_starts(standins.records) == []


def test_a_refusal_of_the_server_is_one_error_and_leaves_nothing(
    standins: Standins, capsys: pytest.CaptureFixture[str]
) -> None:
    import wandb

    standins.config()
    standins.creator.error = wandb.errors.UsageError("No API key configured.")
    assert standins.run() == ExitStatus.LAUNCH
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: could not create the sweep on the W&B server: No API key configured. The W&B "
        "backend needs the W&B server: log in with `wandb login` (or set WANDB_API_KEY) on a "
        "machine that reaches it. Without a server, leave out --backend: sweepherd's own "
        "backend runs the sweep offline and `sweepherd sync` uploads it later."
    ]
    assert no_sweeps(standins.root)
    assert agent_starts(standins.records) == []
    assert "WANDB_ENTITY" not in os.environ  # wandb.sweep's side effect was undone


def test_failing_agents_are_an_error_with_their_logs_kept(
    standins: Standins, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    standins.config()
    monkeypatch.setenv("WANDB_STANDIN_EXIT", "1")
    assert standins.run("--agents", "2") == ExitStatus.LAUNCH
    err = capsys.readouterr().err
    assert "2 of 2 `wandb agent` processes failed (agent 0: exit status 1)" in err
    sweep_dir = standins.root / str(standins.meta()["id"])
    assert f"see their logs in {sweep_dir / 'logs'}/" in err
    assert "stand-in started" in (sweep_dir / "logs" / "wandb-agent-1.log").read_text()


def test_a_sigterm_stops_the_agents_as_ctrl_c_does(
    standins: Standins, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The `wandb agent`s run in sessions of their own: killed without passing the stop on,
    the launcher would leave them pulling runs from the W&B sweep unseen."""
    standins.config()
    monkeypatch.setenv("WANDB_STANDIN_SLEEP_S", "60")

    def kill_once_started() -> None:
        deadline = time.monotonic() + 60
        while len(agent_starts(standins.records)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)  # the launcher is this process (main thread)

    handler = signal.getsignal(signal.SIGTERM)
    killer = threading.Thread(target=kill_once_started)
    killer.start()
    try:
        assert standins.run("--agents", "2") == ExitStatus.INTERRUPTED
    finally:
        killer.join()
    assert "Stopped. The W&B sweep keeps its runs" in capsys.readouterr().out
    assert [s.get("signal") for s in agent_starts(standins.records)] == [signal.SIGTERM] * 2
    assert signal.getsignal(signal.SIGTERM) == handler  # restored


def test_the_real_wandb_without_a_server_fails_clearly(tmp_path: Path) -> None:
    """Nothing stood in for: the real wandb.sweep, with no API key and no server."""
    pytest.importorskip("wandb")
    (tmp_path / "train.py").write_text("")
    (tmp_path / "sweep.yaml").write_text(
        yaml.safe_dump(
            {"program": "train.py", "method": "grid", "parameters": {"x": {"values": [1]}}}
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        HOME=str(tmp_path),  # no ~/.netrc holding a key
        WANDB_CONFIG_DIR=str(tmp_path / ".wandb-config"),
        WANDB_BASE_URL="http://127.0.0.1:9",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "sweepherd", "run", "sweep.yaml", "--backend", "wandb"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == ExitStatus.LAUNCH, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: could not create the sweep on the W&B server: ")
    assert "API key" in line
    assert no_sweeps(tmp_path / "sweeps")
