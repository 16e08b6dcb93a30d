"""A run's wandb log written outside where sweepherd looks (``wandb.init(dir=...)`` or
``id=...``): found open in the real wandb processes of a real offline run, and linked in."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sweepherd.wandb import adopt_logs, find_run_logs, open_transaction_logs
from sweepherd.wandb._adopt import link_run_folder

pytestmark = pytest.mark.wandb

Starter = Callable[..., subprocess.Popen[str]]  # conftest.py's fixture

HOLD = """
    import pathlib, time, wandb
    run = wandb.init({init})
    run.log({{"loss": 1.0}})
    pathlib.Path("started").touch()
    while not pathlib.Path("release").exists():
        time.sleep(0.1)
    run.finish()
"""


def wait_for_file(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


def test_the_log_a_script_holds_open_elsewhere_is_found_and_linked_in(
    tmp_path: Path, wandb_starter: Starter
) -> None:
    run_dir = tmp_path / "runs" / "sw-0001"
    run_dir.mkdir(parents=True)
    work = tmp_path / "work"
    proc = wandb_starter(
        work, HOLD.format(init='dir="out"'), WANDB_DIR=str(run_dir), WANDB_RUN_ID="sw-0001"
    )
    wait_for_file(work / "started", proc)
    assert find_run_logs(run_dir, "sw-0001") == []  # not where sweepherd looks

    with subprocess.Popen(["sleep", "60"]) as other:
        logs = open_transaction_logs([proc.pid, other.pid])
        other.kill()
    (log,) = logs[proc.pid]  # held by wandb-core, a child of the script
    assert log.parent.parent == work / "out" / "wandb" and log.name == "run-sw-0001.wandb"
    assert logs[other.pid] == []  # another process: not its log

    (link,) = adopt_logs(run_dir, "sw-0001", logs[proc.pid])
    assert link.parent == run_dir / "wandb" and link.resolve() == log.parent
    assert find_run_logs(run_dir, "sw-0001") == [link / log.name]
    assert adopt_logs(run_dir, "sw-0001", logs[proc.pid]) == []  # linked once
    (work / "release").touch()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert find_run_logs(run_dir, "sw-0001") == [link / log.name]  # it stays
    assert open_transaction_logs([proc.pid]) == {proc.pid: []}  # gone


def test_a_log_named_after_the_scripts_own_id_is_linked_by_a_relative_link(
    tmp_path: Path, wandb_starter: Starter
) -> None:
    """Under a shell that does not ``exec`` (the log is two processes down), with wandb's
    ``latest-run`` link beside it, which must not count as sweepherd's."""
    run_dir = tmp_path / "sw-0002"
    code = HOLD.format(init='id="mine"')
    script = run_dir / "script.py"
    run_dir.mkdir()
    script.write_text(code)
    proc = wandb_starter(
        run_dir,
        f"""
        import subprocess, sys, textwrap
        code = textwrap.dedent(open({str(script)!r}).read())
        sys.exit(subprocess.call(["/bin/sh", "-c", f"{{sys.executable}} -c '{{code}}'; true"]))
        """,
        WANDB_RUN_ID="sw-0002",
    )
    wait_for_file(run_dir / "started", proc)
    (log,) = open_transaction_logs([proc.pid])[proc.pid]
    assert log.parent.parent == run_dir / "wandb" and log.name == "run-mine.wandb"
    assert (run_dir / "wandb" / "latest-run").is_symlink()
    (link,) = adopt_logs(run_dir, "sw-0002", [log])
    assert str(link.readlink()) == log.parent.name  # the sweep folder can move
    assert find_run_logs(run_dir, "sw-0002") == [link / "run-mine.wandb"]
    (run_dir / "release").touch()
    proc.communicate(timeout=60)


def test_links_are_named_as_wandb_names_same_second_attempts(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    folders = []
    for n, where in enumerate(["a", "b"]):
        folder = tmp_path / where / "wandb" / "offline-run-20260101_000001-x"
        folder.mkdir(parents=True)
        (folder / "run-x.wandb").write_bytes(b"log")
        os.utime(folder / "run-x.wandb", (1000 + n, 1000 + n))
        folders.append(folder)
    links = [link_run_folder(run_dir, "r", f) for f in folders]
    assert [p.name for p in links if p] == [
        "offline-run-20260101_000001-r",
        "offline-run-20260101_000001-r-1",
    ]
    assert find_run_logs(run_dir, "r") == [p / "run-x.wandb" for p in links if p]
    # Not a wandb run folder, or the run's own folder where it belongs: nothing to link.
    assert link_run_folder(run_dir, "r", tmp_path / "a") is None
    own = run_dir / "wandb" / "offline-run-20260101_000002-r"
    own.mkdir()
    assert link_run_folder(run_dir, "r", own) is None


def test_of_several_open_logs_only_the_runs_own_is_linked(tmp_path: Path) -> None:
    """A script may hold runs of its own beside the sweep's (a data-prep run, an eval run)."""
    run_dir = tmp_path / "run"

    def open_log(where: str, run_id: str) -> Path:
        folder = tmp_path / where / "wandb" / f"offline-run-20260101_000001-{run_id}"
        folder.mkdir(parents=True)
        (folder / f"run-{run_id}.wandb").write_bytes(b"log")
        return folder / f"run-{run_id}.wandb"

    prep, ours = open_log("prep", "prep1"), open_log("out", "r")
    (link,) = adopt_logs(run_dir, "r", [prep, ours]) or []
    assert link.resolve() == ours.parent
    # Two runs of other ids and none of the run's: which is the sweep's cannot be told.
    assert adopt_logs(tmp_path / "other", "q", [prep, open_log("eval", "eval1")]) is None
    # A log under the run folder but outside wandb/ is linked relatively: the sweep may move.
    inside = run_dir / "checkpoints" / "wandb" / "offline-run-20260101_000002-mine"
    inside.mkdir(parents=True)
    (inside / "run-mine.wandb").write_bytes(b"log")
    (rel,) = adopt_logs(run_dir, "r", [inside / "run-mine.wandb"]) or []
    assert not rel.readlink().is_absolute() and rel.resolve() == inside
