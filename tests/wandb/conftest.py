"""Fixtures for the wandb tests: real offline wandb runs in child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

Starter = Callable[..., subprocess.Popen[str]]


def wandb_env(root: Path, **extra: str) -> dict[str, str]:
    """An environment for an offline wandb run that writes only under ``root``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        {
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(root),
            "WANDB_CONFIG_DIR": str(root / ".config"),
            "WANDB_CACHE_DIR": str(root / ".cache"),
            "WANDB_DATA_DIR": str(root / ".data"),
            "WANDB_SILENT": "true",
            "WANDB__TRANSACTION_LOG_FLUSH_INTERVAL": "1",
            # Offline runs never talk to a server; should one try, it gets a refused port here.
            "WANDB_BASE_URL": "http://127.0.0.1:9",
        }
    )
    env.update(extra)
    return env


def _start(
    started: list[subprocess.Popen[str]], root: Path, code: str, **env: str
) -> subprocess.Popen[str]:
    root.mkdir(parents=True, exist_ok=True)
    script = root / f"script{len(started)}.py"
    script.write_text(textwrap.dedent(code))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=wandb_env(root, **env),
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    return proc


def _reap(started: list[subprocess.Popen[str]]) -> None:
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


@pytest.fixture(scope="module")
def wandb_starter() -> Iterator[Starter]:
    """``start(root, code, **env)``: run ``code`` (a script using wandb) offline under ``root``.

    Keyword arguments become environment variables. Children still running when the module's
    tests end are killed.
    """
    pytest.importorskip("wandb")
    started: list[subprocess.Popen[str]] = []
    yield lambda root, code, **env: _start(started, root, code, **env)
    _reap(started)


@pytest.fixture
def wandb_script(tmp_path: Path) -> Iterator[Starter]:
    """``start(code, **env)``: run ``code`` offline with ``WANDB_DIR=tmp_path``; the Popen."""
    pytest.importorskip("wandb")
    started: list[subprocess.Popen[str]] = []
    yield lambda code, **env: _start(started, tmp_path, code, **env)
    _reap(started)
