"""``sweepherd sync``: planning, dry run, and errors through the real CLI entry point.

The upload itself (real ``wandb sync`` against a local stand-in server) is tested in
tests/wandb/test_sync.py::test_cli_syncs_and_reports.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

import pytest

from sweepherd.cli.main import main
from sweepherd.config import parse_config
from sweepherd.errors import ExitStatus
from sweepherd.runs import RunState
from sweepherd.store import SweepStore, create_sweep

CONFIG = {
    "name": "s",
    "project": "proj",
    "method": "grid",
    "parameters": {"x": {"values": [1, 2, 3]}},
}


def ended_run(store: SweepStore, state: RunState = RunState.FINISHED) -> str:
    with store.transaction(agent="a1") as txn:
        run = txn.claim_new({"x": 1}, agent="a1")
    with store.transaction(agent="a1") as txn:
        txn.finish(run.id, run.attempt, state, exit_code=0)
    return run.id


def transaction_log(records: list[bytes]) -> bytes:
    """A wandb transaction log holding ``records`` (each small enough for one FULL chunk)."""
    out = bytearray(b":W&B" + struct.pack("<HB", 0xBEE1, 0))
    for data in records:
        crc = zlib.crc32(data, zlib.crc32(b"\x01"))
        out += struct.pack("<IHB", crc, len(data), 1) + data
    return bytes(out)


def attempt(store: SweepStore, run_id: str, data: bytes) -> Path:
    folder = store.runs_dir / run_id / "wandb" / f"offline-run-20260101_000000-{run_id}"
    folder.mkdir(parents=True)
    log = folder / f"run-{run_id}.wandb"
    log.write_bytes(data)
    os.utime(log, (time.time() - 60,) * 2)  # settled: wandb-core is long gone
    return folder


@pytest.fixture
def store(tmp_path: Path) -> SweepStore:
    return create_sweep(tmp_path / "sweeps", parse_config(CONFIG), sweep_id="sw1")


def test_dry_run_lists_runs_and_calls(
    store: SweepStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rid = ended_run(store)
    folder = attempt(store, rid, transaction_log([b"\x0a\x00"]))
    code = main(["sync", "sw1", "--dir", str(tmp_path / "sweeps"), "--dry-run", "-e", "team"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{rid} (finished): 1 attempt(s) to send" in out
    assert f"sync --id {rid} --project proj --entity team {folder}" in out
    assert "1 run(s) to sync" in out
    assert not (store.runs_dir / rid / ".synced").exists()


def test_nothing_to_sync(
    store: SweepStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ended_run(store)  # ended, but never used wandb
    assert main(["sync", str(store.path), "--dry-run"]) == 0
    assert "nothing to sync" in capsys.readouterr().out


def test_empty_attempt_is_marked_without_calling_wandb(
    store: SweepStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rid = ended_run(store, RunState.FAILED)
    attempt(store, rid, transaction_log([]))  # killed before wandb's first flush
    assert main(["sync", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert f"synced {rid} (failed): 0 attempt(s) to send, 1 empty" in out
    assert (store.runs_dir / rid / ".synced").exists()


@pytest.mark.wandb
def test_missing_login_is_an_error_with_wandbs_words(
    store: SweepStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("wandb")
    rid = ended_run(store)
    attempt(store, rid, transaction_log([b"\x0a\x00"]))
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / "cfg"))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # never reached: no key
    code = main(["sync", str(store.path)])
    err = capsys.readouterr().err
    assert code == ExitStatus.LAUNCH
    assert f"failed {rid}" in err and "No API key configured" in err
    assert "run `sweepherd sync` again" in err
    assert not (store.runs_dir / rid / ".synced").exists()
