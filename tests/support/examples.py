"""Running the examples' sweeps through the real CLI, with the real wandb offline."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sweepherd.runs import Run
from sweepherd.store import list_sweeps

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: ``run(config_path, *args) -> (completed process, runs)``.
SweepRunner = Callable[..., tuple[subprocess.CompletedProcess[str], list[Run]]]


def example_env(folder: Path) -> dict[str, str]:
    """Offline wandb with its files under ``folder``, the examples' short mode, one thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SWEEPHERD_"))}
    env.update(
        {
            "EXAMPLE_FAST": "1",
            "OMP_NUM_THREADS": "1",  # trials share the cores; no oversubscription
            "WANDB_CONFIG_DIR": str(folder / ".wandb-config"),
            "WANDB_CACHE_DIR": str(folder / ".wandb-cache"),
            "WANDB_DATA_DIR": str(folder / ".wandb-data"),
            "WANDB_BASE_URL": "http://127.0.0.1:9",  # offline: a server is never reached
        }
    )
    return env


def sweep_runner(folder: Path) -> SweepRunner:
    """``sweepherd run CONFIG ARGS...`` in ``folder``; the process and the sweep's runs."""

    def run(config: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[Run]]:
        root = folder / "sweeps"
        before = {s.sweep_id for s in list_sweeps(root)}
        proc = subprocess.run(
            [sys.executable, "-m", "sweepherd", "run", str(config), "--dir", str(root), *args],
            cwd=folder,
            env=example_env(folder),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        new = [s for s in list_sweeps(root) if s.sweep_id not in before]
        runs = list(new[0].snapshot().runs.values()) if new else []
        return proc, runs

    return run
