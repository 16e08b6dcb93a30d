"""A sweep with work left and no agent alive (its only node died): status and watch say so,
and how to start one, instead of showing it "running" forever."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from monitor.helpers import Sweep, make_sweep
from sweepherd.cli.main import main
from sweepherd.errors import ExitStatus
from sweepherd.monitor import stalled_note


def test_the_note_is_for_work_left_with_nobody_on_it() -> None:
    note = stalled_note("running", 2, 0, [], "/s/sw1")
    assert note is not None
    assert note.startswith("2 run(s) shown running lost their agent and run again once")
    assert "`sweepherd agent /s/sw1`" in note and "`sweepherd scale /s/sw1 --nodes N`" in note
    assert stalled_note("paused", 0, 0, ["COMPLETED"], "x") is not None  # preempted runs wait
    assert stalled_note("running", 2, 1, [], "x") is None  # an agent is alive
    assert stalled_note("running", 2, None, [], "x") is None  # not known
    for on_its_way in ("PENDING", "RUNNING", "REQUEUED", "?"):
        assert stalled_note("running", 2, 0, ["FAILED", on_its_way], "x") is None
    for over in ("done", "cancelled", "empty"):
        assert stalled_note(over, 0, 0, [], "x") is None


def _beat(sweep: Sweep, agent: str, age_s: float) -> None:
    """The heartbeat an agent left ``age_s`` seconds ago (its node died then)."""
    record = {"agent": agent, "t": time.time() - age_s, "state": "running", "node": "node1"}
    (sweep.store.agents_dir / f"{agent}.json").write_text(json.dumps(record))


def test_status_and_watch_say_when_no_agent_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = make_sweep(tmp_path)
    sweep.claim({"x": 1, "opt": {"lr": 0.1}}, agent="agent-1")
    sweep.store.agents_dir.mkdir(exist_ok=True)
    _beat(sweep, "agent-1", 300)
    args = ["--dir", str(tmp_path)]
    assert main(["status", sweep.id, *args]) == ExitStatus.OK
    out = capsys.readouterr().out
    assert "1 run(s) shown running lost their agent" in " ".join(out.split())
    assert main(["status", sweep.id, "--json", *args]) == ExitStatus.OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["agents_alive"] == 0 and doc["stalled"].startswith("1 run(s) shown running")
    assert main(["watch", sweep.id, "--once", *args]) == ExitStatus.OK
    assert "stalled: 1 run(s) shown running lost their agent" in capsys.readouterr().out

    _beat(sweep, "agent-1", 1)  # alive after all (a slow disk): nothing to say
    assert main(["status", sweep.id, "--json", *args]) == ExitStatus.OK
    doc = json.loads(capsys.readouterr().out)
    assert (doc["agents_alive"], doc["stalled"]) == (1, None)
