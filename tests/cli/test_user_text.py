"""User text that looks like Rich markup (``[/b]``, ``[v2]``) is shown as written, never parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.helpers import make_sweep
from sweepherd.cli.main import main
from sweepherd.errors import ExitStatus

RAW = {
    "name": "demo [v2]",
    "program": "train.py",
    "method": "grid",
    "metric": {"name": "loss[/b]", "goal": "minimize"},
    "parameters": {"tag": {"values": ["a[/b]", "[bold]x"]}},
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    sweep = make_sweep(tmp_path, RAW, sweep_id="sw1")
    first = sweep.claim({"tag": "a[/b]"})
    sweep.finish(first, metric=0.5, summary={"loss[/b]": 0.5})
    second = sweep.claim({"tag": "[bold]x"})
    sweep.finish(second, "failed", exit_code=1, reason="ValueError: bad [/red] value")
    return tmp_path


@pytest.mark.parametrize(
    "command",
    [["status", "sw1"], ["best", "sw1"], ["ls"], ["watch", "sw1", "--once"]],
)
def test_markup_like_text_is_shown_as_written(
    root: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--dir", str(root)]) == ExitStatus.OK
    out = capsys.readouterr().out
    if command[0] == "ls":
        assert "demo [v2]" in out
    else:
        assert "a[/b]" in out
    if command[0] == "status":
        assert "(demo [v2])" in out and "[bold]x" in out
