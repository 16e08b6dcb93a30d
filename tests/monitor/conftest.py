"""Fixtures for the monitor tests: a root folder for sweeps and a small grid sweep in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.helpers import Sweep, make_sweep


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "sweeps"


@pytest.fixture
def sweep(root: Path) -> Sweep:
    return make_sweep(root)
