"""The hint for a missing extra names this installation, never PyPI's ``sweepherd``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sweepherd import _extras
from sweepherd._extras import install_extra_hint


def test_an_editable_install_is_told_to_install_the_extra_from_its_checkout() -> None:
    checkout = Path(__file__).resolve().parents[1]
    hint = install_extra_hint("aws")
    assert hint == f"Install the aws extra: {sys.executable} -m pip install -e '{checkout}[aws]'"


def test_an_install_from_a_wheel_is_told_to_use_its_own_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_extras, "_CHECKOUT", tmp_path)  # site-packages: no checkout above it
    hint = install_extra_hint("plot")
    assert f"{sys.executable} -m pip install 'SOURCE[plot]'" in hint
    assert "checkout, git URL or wheel" in hint and "'sweepherd[plot]'" not in hint
