"""Fixtures for the examples' tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.examples import SweepRunner, sweep_runner


@pytest.fixture
def run_sweep(tmp_path: Path) -> SweepRunner:
    """``run(config, *args)``: ``sweepherd run`` in tmp_path; the process and the new runs."""
    return sweep_runner(tmp_path)
