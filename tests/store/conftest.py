"""Fixtures for the store tests: a small config, a fresh sweep, and real tiny filesystems.

The full-disk and read-only tests need a filesystem that really fills up or refuses writes;
root can write anywhere else, so they mount a small tmpfs (``mount -t tmpfs -o size=...``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sweepherd.config._model import Metric, Param, SweepConfig
from sweepherd.store import SweepStore, create_sweep

N_GRID = 200


def grid_config(n: int = N_GRID) -> SweepConfig:
    """A grid sweep over ``x`` in 0..n-1, as parse_config makes it from its raw mapping."""
    raw = {
        "program": "train.py",
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"values": list(range(n))}},
    }
    return SweepConfig(
        raw=raw,
        method="grid",
        parameters=(Param(("x",), "categorical", values=tuple(range(n))),),
        metric=Metric("loss"),
        program="train.py",
    )


@pytest.fixture
def config() -> SweepConfig:
    return grid_config()


@pytest.fixture
def store(tmp_path: Path, config: SweepConfig) -> SweepStore:
    return create_sweep(tmp_path / "sweeps", config)


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``mount_tmpfs(size_kb)`` mounts a fresh tmpfs of that size and returns its path."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the full-disk tests use a real small disk)")
    mounted: list[Path] = []

    def mount(size_kb: int) -> Path:
        mnt = tmp_path / f"tmpfs{len(mounted)}"
        mnt.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)], check=True
        )
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def fill_disk() -> Callable[[Path], list[Path]]:
    """``fill_disk(dir)`` fills dir's filesystem with 4 KiB files until it is full."""
    return _fill_disk


def _fill_disk(directory: Path) -> list[Path]:
    fillers: list[Path] = []
    block = b"\0" * 4096
    while True:
        path = directory / f"filler{len(fillers):05d}"
        try:
            with path.open("wb") as f:
                f.write(block)
        except OSError:
            path.unlink(missing_ok=True)
            return fillers
        fillers.append(path)
