"""``sweepherd ls``: every sweep under a folder with its state, runs done and best value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.helpers import make_sweep
from sweepherd.cli.main import main
from sweepherd.errors import ExitStatus


def _sweeps(root: Path) -> None:
    make_sweep(root, sweep_id="a-empty")
    running = make_sweep(root, sweep_id="b-running")
    running.finish(running.claim({"x": 1, "opt": {"lr": 0.1}}), metric=0.25)
    running.claim({"x": 2, "opt": {"lr": 0.1}})
    done = make_sweep(root, sweep_id="c-done")
    for i, (x, lr) in enumerate((x, lr) for x in (1, 2, 3) for lr in (0.1, 0.01)):
        done.finish(done.claim({"x": x, "opt": {"lr": lr}}), metric=1.0 + i)
    paused = make_sweep(root, sweep_id="d-paused")
    paused.finish(paused.claim({"x": 1, "opt": {"lr": 0.1}}), "failed", exit_code=1)
    cancelled = make_sweep(root, sweep_id="e-cancelled")
    cancelled.cancel()
    (root / "not-a-sweep").mkdir()


def test_lists_every_sweep_with_its_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _sweeps(tmp_path)
    assert main(["ls", "--dir", str(tmp_path)]) == ExitStatus.OK
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 80
    out = [line.split() for line in text.splitlines()]
    assert out[0] == ["sweep", "name", "method", "state", "runs", "best"]
    rows = {row[0]: row for row in out[1:]}
    assert set(rows) == {"a-empty", "b-running", "c-done", "d-paused", "e-cancelled"}
    assert rows["a-empty"][1:] == ["demo", "grid", "empty", "0/6", "-"]
    assert rows["b-running"][1:] == ["demo", "grid", "running", "1/6", "0.25", "loss"]
    assert rows["c-done"][1:] == ["demo", "grid", "done", "6/6", "1", "loss"]
    assert rows["d-paused"][1:] == ["demo", "grid", "paused", "1/6", "-"]
    assert rows["e-cancelled"][3] == "cancelled"
    assert [row[0] for row in out[1:]] == sorted(rows)  # oldest first: created in this order


def test_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _sweeps(tmp_path)
    assert main(["ls", "--dir", str(tmp_path), "--json"]) == ExitStatus.OK
    doc = {d["sweep_id"]: d for d in json.loads(capsys.readouterr().out)}
    assert doc["c-done"]["best"] == 1.0 and doc["c-done"]["best_run"] == "c-done-0000"
    assert doc["b-running"]["state"] == "running"
    assert doc["b-running"]["n_runs"] == 2 and doc["b-running"]["expected"] == 6


def test_an_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--dir", str(tmp_path)]) == ExitStatus.OK
    assert capsys.readouterr().out == f"no sweeps in {tmp_path}\n"


def test_a_missing_folder_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ls", "--dir", str(tmp_path / "nope")]) == ExitStatus.STORE
    err = capsys.readouterr().err
    assert err.startswith(f"error: No folder {tmp_path / 'nope'}: there are no sweeps there.")
    assert err.count("\n") == 1


def test_an_unreadable_sweep_is_listed_with_its_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = make_sweep(tmp_path, sweep_id="broken")
    (sweep.path / "sweep.yaml").write_text("method: [unclosed\n")
    assert main(["ls", "--dir", str(tmp_path)]) == ExitStatus.OK
    out = capsys.readouterr().out
    assert "broken" in out and "unreadable" in out
    assert "is not valid YAML" in out


def test_a_sweep_whose_config_is_no_longer_valid_does_not_hide_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_sweep(tmp_path, sweep_id="good")
    edited = make_sweep(tmp_path, sweep_id="edited")
    text = (edited.path / "sweep.yaml").read_text().replace("method: grid", "method: randm")
    (edited.path / "sweep.yaml").write_text(text)  # edited by hand, or from another version
    assert main(["ls", "--dir", str(tmp_path)]) == ExitStatus.OK
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert "unreadable" in rows["edited"] and "empty" in rows["good"]
    assert "randm" in out


def test_a_wandb_backend_sweep_says_where_its_runs_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sweep directory as ``--backend wandb`` leaves it (no server is contacted here)."""
    from monitor.helpers import GRID
    from sweepherd.config import parse_config
    from sweepherd.store import create_sweep
    from sweepherd.wandb import WandbSweep

    remote = WandbSweep("ab12cd34", "team", "proj", "https://wandb.ai/team/proj/sweeps/ab12cd34")
    create_sweep(
        tmp_path,
        parse_config(GRID),
        sweep_id="remote",
        backend="wandb",
        extra_meta={"wandb": remote.to_meta()},
    )
    assert main(["ls", "--dir", str(tmp_path)]) == ExitStatus.OK
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:4] == ["remote", "demo", "grid", "wandb"]
    assert main(["watch", "remote", "--dir", str(tmp_path), "--once"]) == ExitStatus.OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("note: runs on W&B's sweep controller: its runs are at https://")
