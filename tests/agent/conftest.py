"""Fixtures for end-to-end agent tests: a sweep with a real trial script, and real agents."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from support.agents import SweepFactory, agent_argv, write_trial
from sweepherd.config import parse_config
from sweepherd.store import SweepStore, create_sweep


@pytest.fixture
def make_sweep(tmp_path: Path) -> SweepFactory:
    """Create a sweep under tmp_path/sweeps whose program is the trial script."""
    write_trial(tmp_path)

    def make(parameters: Mapping[str, Any], **raw: Any) -> SweepStore:
        config = {
            "program": "trial.py",
            "method": "grid",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": dict(parameters),
            **raw,
        }
        return create_sweep(
            tmp_path / "sweeps", parse_config(config), extra_meta={"workdir": str(tmp_path)}
        )

    return make


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start real `sweepherd agent` processes; kill any left at the end of the test."""
    procs: list[subprocess.Popen[bytes]] = []
    logs = tmp_path / "agent-logs"
    logs.mkdir(exist_ok=True)

    def start(store: SweepStore, *args: str) -> subprocess.Popen[bytes]:
        log = (logs / f"agent-{len(procs)}.log").open("wb")
        proc = subprocess.Popen(
            agent_argv(store, *args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
