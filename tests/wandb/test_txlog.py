"""The transaction-log reader on REAL offline wandb runs: live, finished, crashed, killed, torn."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sweepherd.errors import WandbError
from sweepherd.wandb import (
    BLOCK_SIZE,
    ConfigUpdate,
    Event,
    HistoryRow,
    MetricTracker,
    RunExited,
    RunLogReader,
    RunStarted,
    SummaryUpdate,
    TransactionLogReader,
    find_run_logs,
    transaction_log_source,
)

pytestmark = pytest.mark.wandb

Starter = Callable[..., subprocess.Popen[str]]  # the fixtures of conftest.py


def wait_for(predicate: Callable[[], bool], timeout_s: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def finish(proc: subprocess.Popen[str], timeout_s: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout_s)
    return proc.returncode, out, err


LIVE = """
    import pathlib, time, wandb
    run = wandb.init(project="p", config={"lr": 0.1, "opt": {"name": "adam"}})
    for i in range(5):
        wandb.log({"loss": 1.0 / (i + 1), "val": {"loss": 2.0 / (i + 1)}, "epoch": i})
    wandb.log({"note": "text", "bad": float("nan")})
    while not pathlib.Path("release").exists():
        time.sleep(0.05)
    wandb.log({"loss": 0.1})
    run.summary["best_loss"] = 0.123
    run.summary["loss"] = -1.0
    wandb.config.update({"extra": 3})
    run.finish()
"""


def test_live_run_is_visible_before_it_ends_and_final_summary_matches(
    tmp_path: Path, wandb_script: Starter
) -> None:
    proc = wandb_script(LIVE, WANDB_RUN_ID="live1")
    reader = RunLogReader(tmp_path, "live1")
    tracker = MetricTracker()
    seen: list[Event] = []

    def poll() -> bool:
        events = reader.read_new()
        seen.extend(events)
        tracker.update(events)
        return len(tracker.history("loss")) >= 5

    wait_for(poll, what="the run's first five steps in its transaction log")
    # The script is blocked until we release it: everything above was read from a live run.
    assert proc.poll() is None
    assert tracker.exit is None and tracker.exit_code is None
    assert tracker.history("loss") == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert tracker.history("val/loss") == [2.0, 1.0, 2 / 3, 0.5, 0.4]
    assert tracker.history("val.loss") == tracker.history("val/loss")
    assert tracker.run is not None and tracker.run.run_id == "live1"
    assert tracker.config["lr"] == 0.1 and tracker.config["opt"] == {"name": "adam"}

    (tmp_path / "release").touch()
    code, _, err = finish(proc)
    assert code == 0, err
    wait_for(lambda: poll() and tracker.exit is not None, what="the exit record")

    assert tracker.exit_code == 0
    assert tracker.history("loss") == [1.0, 0.5, 1 / 3, 0.25, 0.2, 0.1]
    # The script set summary["loss"] after its last log: that is the value W&B keeps.
    assert tracker.summary("loss") == -1.0
    assert tracker.value("loss") == -1.0
    assert tracker.summary("best_loss") == 0.123
    assert tracker.summary("val/loss") == 0.4
    assert tracker.summary("epoch") == 4
    assert tracker.summary("note") == "text"
    assert tracker.value("note") is None
    assert tracker.value("bad") is None  # NaN is not a finite number
    assert tracker.history("bad") == []
    assert tracker.config["extra"] == 3
    assert tracker.n_attempts == 1

    # Reading incrementally gave exactly what one read of the finished file gives.
    (path,) = find_run_logs(tmp_path, "live1")
    assert path.parent.name.startswith("offline-run-") and path.name == "run-live1.wandb"
    assert TransactionLogReader(path).read_new() == seen
    kinds = {type(e) for e in seen}
    assert {RunStarted, HistoryRow, SummaryUpdate, ConfigUpdate, RunExited} <= kinds


def test_crashed_runs_have_a_nonzero_exit_record(tmp_path: Path, wandb_starter: Starter) -> None:
    raising = wandb_starter(
        tmp_path / "a",
        """
        import wandb
        wandb.init(project="p")
        wandb.log({"loss": 1.0})
        raise RuntimeError("boom")
        """,
        WANDB_RUN_ID="crash1",
    )
    exiting = wandb_starter(
        tmp_path / "b",
        """
        import sys, wandb
        wandb.init(project="p")
        wandb.log({"loss": 2.0})
        sys.exit(3)
        """,
        WANDB_RUN_ID="crash2",
    )
    assert finish(raising)[0] == 1
    assert finish(exiting)[0] == 3
    for root, run_id, code, loss in (
        (tmp_path / "a", "crash1", 1, 1.0),
        (tmp_path / "b", "crash2", 3, 2.0),
    ):
        tracker = MetricTracker()
        tracker.update(RunLogReader(root, run_id).read_new())
        assert tracker.exit_code == code
        assert tracker.value("loss") == loss


def test_sigkilled_run_is_readable_up_to_its_last_flush_without_exit_record(
    tmp_path: Path, wandb_script: Starter
) -> None:
    proc = wandb_script(
        """
        import time, wandb
        wandb.init(project="p")
        for i in range(3):
            wandb.log({"loss": float(i)})
        time.sleep(600)
        """,
        WANDB_RUN_ID="kill1",
    )
    reader = RunLogReader(tmp_path, "kill1")
    tracker = MetricTracker(track=["loss"])
    wait_for(
        lambda: tracker.update(reader.read_new()) or len(tracker.history("loss")) == 3,
        what="three logged steps",
    )
    proc.send_signal(signal.SIGKILL)
    assert finish(proc)[0] == -signal.SIGKILL
    time.sleep(2)  # wandb-core notices its parent is gone; it must not add an exit record
    tracker.update(reader.read_new())
    assert tracker.exit is None
    fresh = MetricTracker(track=["loss"])
    fresh.update(RunLogReader(tmp_path, "kill1").read_new())
    assert fresh.history("loss") == [0.0, 1.0, 2.0] == tracker.history("loss")
    assert fresh.exit is None
    with pytest.raises(KeyError, match="not tracked"):
        fresh.history("other")


def test_attempts_of_one_run_id_are_read_in_order(tmp_path: Path, wandb_script: Starter) -> None:
    first = wandb_script(
        """
        import time, wandb
        wandb.init(project="p")
        wandb.log({"loss": 3.0}); wandb.log({"loss": 2.0})
        time.sleep(600)
        """,
        WANDB_RUN_ID="att1",
    )
    reader = RunLogReader(tmp_path, "att1")
    tracker = MetricTracker()
    wait_for(
        lambda: tracker.update(reader.read_new()) or len(tracker.history("loss")) == 2,
        what="the first attempt's steps",
    )
    first.kill()  # preempted
    finish(first)
    time.sleep(1.1)  # wandb names attempt folders by the second they started
    second = wandb_script(
        """
        import wandb
        run = wandb.init(project="p")
        wandb.log({"loss": 1.0})
        run.finish()
        """,
        WANDB_RUN_ID="att1",
        WANDB_RESUME="allow",
    )
    assert finish(second)[0] == 0
    tracker.update(reader.read_new())
    paths = find_run_logs(tmp_path, "att1")
    assert len(paths) == 2 and paths == reader.paths
    assert paths[0].parent.name < paths[1].parent.name
    assert tracker.n_attempts == 2
    assert tracker.history("loss") == [3.0, 2.0, 1.0]
    assert tracker.exit_code == 0
    assert tracker.summary("loss") == 1.0
    # Another run's folders under the same WANDB_DIR are not picked up.
    assert find_run_logs(tmp_path, "att") == []


def test_attempts_started_in_the_same_second_are_all_found_in_order(
    big_run: Path, tmp_path: Path
) -> None:
    """wandb names a second attempt that starts in the same second ``...-<id>-1``, ``-2``, ...

    The layout is built from a real run's transaction log. Runs whose id is this one's plus
    ``-<n>`` (sweepherd run ids contain a dash) are not taken for its attempts.
    """
    run_id = "swp1-0007"
    folders = [
        f"offline-run-20260101_120000-{run_id}",
        f"offline-run-20260101_120000-{run_id}-1",
        f"offline-run-20260101_120000-{run_id}-2",
        f"offline-run-20260101_120000-{run_id}-10",
        f"offline-run-20260101_120001-{run_id}",
    ]
    for i, name in enumerate(reversed(folders)):  # created newest first: order is not mtime
        folder = tmp_path / "wandb" / name
        folder.mkdir(parents=True)
        shutil.copy(big_run, folder / f"run-{run_id}.wandb")
        (folder / "marker").write_text(str(i))
    other = tmp_path / "wandb" / f"offline-run-20260101_120000-{run_id}-3"
    other.mkdir()
    shutil.copy(big_run, other / f"run-{run_id}-3.wandb")  # the run "swp1-0007-3"
    (tmp_path / "wandb" / f"offline-run-20260101_120000-{run_id}-x").mkdir()

    found = find_run_logs(tmp_path, run_id)
    assert [p.parent.name for p in found] == folders
    assert [p.parent.name for p in find_run_logs(tmp_path, f"{run_id}-3")] == [other.name]
    reader = RunLogReader(tmp_path, run_id)
    tracker = MetricTracker(track=["loss"])
    tracker.update(reader.read_new())
    assert reader.paths == found
    assert tracker.n_attempts == len(folders)


# -- the file format, on one finished run whose records span several 32 KiB blocks ------------

BIG = """
    import wandb
    run = wandb.init(project="p")
    for i in range(40):
        wandb.log({"loss": 1.0 / (i + 1), "blob": "x" * (3000 if i % 10 else 70000)})
    run.summary["final"] = "done"
    run.finish()
"""


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory, wandb_starter: Starter) -> Path:
    root = tmp_path_factory.mktemp("big")
    code, _, err = finish(wandb_starter(root, BIG, WANDB_RUN_ID="big1"))
    assert code == 0, err
    (path,) = find_run_logs(root, "big1")
    return path


def test_records_spanning_blocks_are_joined(big_run: Path) -> None:
    assert big_run.stat().st_size > 4 * BLOCK_SIZE
    reader = TransactionLogReader(big_run)
    events = reader.read_new()
    tracker = MetricTracker()
    tracker.update(events)
    assert reader.offset == big_run.stat().st_size
    assert reader.n_corrupt == 0
    assert tracker.history("loss") == [1.0 / (i + 1) for i in range(40)]
    blobs = [len(e.values["blob"]) for e in events if isinstance(e, HistoryRow)]
    assert blobs == [3000 if i % 10 else 70000 for i in range(40)]
    assert tracker.summary("final") == "done" and tracker.exit_code == 0


def test_torn_tail_gives_a_prefix_of_the_records(big_run: Path, tmp_path: Path) -> None:
    data = big_run.read_bytes()
    full = TransactionLogReader(big_run).read_new()
    rng = random.Random(7)
    cuts = sorted({0, 3, 7, 8, 13, 14, len(data) - 1, *rng.sample(range(len(data)), 150)})
    for k in range(1, len(data) // BLOCK_SIZE + 1):
        cuts += [k * BLOCK_SIZE - 1, k * BLOCK_SIZE, k * BLOCK_SIZE + 7]
    torn = tmp_path / "run-torn.wandb"
    n_before = 0
    for cut in sorted(set(cuts)):
        torn.write_bytes(data[:cut])
        events = TransactionLogReader(torn).read_new()
        assert events == full[: len(events)], cut
        assert len(events) >= n_before
        n_before = len(events)


def test_growing_file_read_incrementally_equals_one_read(big_run: Path, tmp_path: Path) -> None:
    data = big_run.read_bytes()
    full = TransactionLogReader(big_run).read_new()
    for seed in range(3):
        rng = random.Random(seed)
        path = tmp_path / f"run-grow{seed}.wandb"
        reader = TransactionLogReader(path)
        assert reader.read_new() == []  # not there yet
        events: list[Event] = []
        pos = 0
        with path.open("wb") as f:
            while pos < len(data):
                step = rng.choice([1, 2, 5, 7, 100, 4000, 33000])
                f.write(data[pos : pos + step])
                f.flush()
                pos += step
                events += reader.read_new()
        assert events == full
        assert reader.offset == len(data)


def test_zero_filled_tail_is_waited_for(big_run: Path, tmp_path: Path) -> None:
    """A network filesystem may show a longer file whose new bytes are still zeros."""
    data = big_run.read_bytes()
    path = tmp_path / "run-zero.wandb"
    path.write_bytes(data[: BLOCK_SIZE + 100])
    probe = TransactionLogReader(path)
    probe.read_new()
    boundary = probe.offset  # the end of the last whole chunk: zeros start right there
    assert 0 < boundary <= BLOCK_SIZE + 100
    path.write_bytes(data[:boundary] + b"\0" * 500)
    reader = TransactionLogReader(path)
    first = reader.read_new()
    assert reader.offset == boundary
    path.write_bytes(data)
    assert first + reader.read_new() == TransactionLogReader(big_run).read_new()
    assert reader.n_corrupt == 0


def test_corrupt_block_is_skipped_and_the_rest_read(big_run: Path, tmp_path: Path) -> None:
    data = bytearray(big_run.read_bytes())
    data[100] ^= 0xFF  # inside a record of block 0
    path = tmp_path / "run-bad.wandb"
    path.write_bytes(bytes(data))
    reader = TransactionLogReader(path)
    tracker = MetricTracker()
    tracker.update(reader.read_new())
    assert reader.n_corrupt == 1
    assert tracker.exit_code == 0  # the exit record at the end is still read
    assert tracker.summary("final") == "done"


def test_bad_header_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "run-x.wandb"
    path.write_bytes(b"not a wandb file at all")
    with pytest.raises(WandbError, match="not a wandb transaction log"):
        TransactionLogReader(path).read_new()
    path.write_bytes(b":W&")  # too short to judge yet
    assert TransactionLogReader(path).read_new() == []


def test_missing_wandb_package_is_a_clear_error(
    big_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sweepherd.wandb import _txlog

    shutil.copy(big_run, tmp_path / "run-c.wandb")
    _txlog._record_class.cache_clear()
    monkeypatch.setitem(sys.modules, "wandb.proto", None)  # as if wandb were not installed
    monkeypatch.setitem(sys.modules, "wandb", None)
    try:
        with pytest.raises(WandbError, match="needs the wandb package") as info:
            TransactionLogReader(tmp_path / "run-c.wandb").read_new()
        checkout = Path(__file__).resolve().parents[2]
        assert f"-m pip install -e '{checkout}[wandb]'" in str(info.value)
        assert transaction_log_source(tmp_path, "c") is None
    finally:
        _txlog._record_class.cache_clear()


def test_transaction_log_source_gives_history_and_summary_rows(big_run: Path) -> None:
    root = big_run.parent.parent.parent
    source = transaction_log_source(root, "big1")
    assert source is not None
    rows = source.read_new()
    history = [r.values["loss"] for r in rows if r.kind == "history"]
    assert history == [1.0 / (i + 1) for i in range(40)]
    assert any(r.kind == "summary" and r.values.get("final") == "done" for r in rows)
    assert source.read_new() == []
