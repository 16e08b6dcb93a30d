"""Syncing ended runs with the REAL ``wandb sync`` against a local stand-in W&B server.

The only stand-in is at the server boundary: ``FakeWandbServer`` (conftest.py) listens on
127.0.0.1 and answers the few calls ``wandb sync`` makes; everything else is real (offline wandb
runs in child processes, the sweep store, the ``wandb sync`` command).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sweepherd.config import parse_config
from sweepherd.errors import WandbError
from sweepherd.runs import MAX_LOSSES, RunState
from sweepherd.store import SweepStore, create_sweep
from sweepherd.wandb import (
    ALIVE_QUIET_S,
    MARKER_NAME,
    SYNC_STATES,
    SyncItem,
    find_run_logs,
    logs_started_here,
    plan_sync,
    read_marker,
    record_attempt_logs,
    run_record,
    sync,
    wandb_sync_argv,
)
from sweepherd.wandb._adopt import link_run_folder

pytestmark = pytest.mark.wandb

Starter = Callable[..., subprocess.Popen[str]]  # conftest.py's fixtures

CONFIG = {
    "name": "mysweep",
    "project": "proj",
    "method": "grid",
    "parameters": {"x": {"values": list(range(20))}},
}

TRAIN = """
    import os, wandb
    run = wandb.init()
    for i in range(3):
        wandb.log({"loss": float(os.environ["LOSS"]) + i})
    run.finish()
"""


def agent_env(store: SweepStore, run_id: str) -> dict[str, str]:
    """What the agent gives a trial (docs/architecture.md), as far as wandb is concerned."""
    return {
        "WANDB_DIR": str(store.runs_dir / run_id),
        "WANDB_RUN_ID": run_id,
        "WANDB_PROJECT": "proj",
        "WANDB_RUN_GROUP": "mysweep",
    }


@pytest.fixture
def store(tmp_path: Path) -> SweepStore:
    return create_sweep(tmp_path / "sweeps", parse_config(CONFIG), sweep_id="sw1")


def new_run(store: SweepStore, state: RunState | None = None) -> str:
    """A run claimed by an agent, then ended in ``state`` (None: still running)."""
    with store.transaction(agent="a1") as txn:
        run = txn.claim_new({"x": txn.snapshot.next_seq}, agent="a1")
    with store.transaction(agent="a1") as txn:
        if state is RunState.LOST:
            txn.mark_lost(run.id, "agent silent")
        elif state is not None:
            txn.finish(run.id, run.attempt, state, exit_code=0)
    store.run_dir(run.id)
    return run.id


def sync_env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        HOME=str(tmp_path / "home"),
        WANDB_CONFIG_DIR=str(tmp_path / "home" / ".config"),
        WANDB_CACHE_DIR=str(tmp_path / "home" / ".cache"),
        WANDB_BASE_URL=url,
        WANDB_API_KEY="k" * 40,  # only the stand-in server sees it
    )
    return env


# -- a real offline run whose folder the selection tests copy ---------------------------------


@pytest.fixture(scope="module")
def template_run(tmp_path_factory: pytest.TempPathFactory, wandb_starter: Starter) -> Path:
    root = tmp_path_factory.mktemp("template")
    proc = wandb_starter(root, TRAIN, WANDB_RUN_ID="tmpl", LOSS="1")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    (path,) = find_run_logs(root, "tmpl")
    return path.parent


def place(
    template: Path, run_dir: Path, run_id: str, stamp: str, data: bytes | None = None
) -> Path:
    """Put a copy of ``template`` in ``run_dir`` as the attempt started at ``stamp``."""
    folder = run_dir / "wandb" / f"offline-run-{stamp}-{run_id}"
    shutil.copytree(template, folder)
    log = folder / f"run-{run_id}.wandb"
    (folder / "run-tmpl.wandb").rename(log)
    if data is not None:
        log.write_bytes(data)
    old = time.time() - 60
    os.utime(log, (old, old))
    return log


def test_plan_selects_exactly_the_ended_unsynced_runs(
    store: SweepStore, template_run: Path
) -> None:
    data = (template_run / "run-tmpl.wandb").read_bytes()
    ids: dict[str, str] = {}
    for name, state in [
        ("finished", RunState.FINISHED),
        ("failed", RunState.FAILED),
        ("stopped", RunState.STOPPED),
        ("killed", RunState.KILLED),
        ("running", None),
        ("preempted", RunState.PREEMPTED),
        ("lost", RunState.LOST),
        ("given_up", RunState.LOST),
        ("no_wandb", RunState.FINISHED),
        ("marked", RunState.FINISHED),
        ("attempts", RunState.FINISHED),
        ("torn", RunState.FINISHED),
        ("fresh", RunState.FINISHED),
    ]:
        ids[name] = rid = new_run(store, state)
        run_dir = store.runs_dir / rid
        if name == "no_wandb":
            continue
        if name == "given_up":  # lost MAX_LOSSES times: it will not run again
            for _ in range(MAX_LOSSES - 1):
                with store.transaction(agent="a1") as txn:
                    txn.claim_again(rid, agent="a2")
                    txn.mark_lost(rid, "agent silent")
        if name == "attempts":
            empty = place(template_run, run_dir, rid, "20260101_000001", data[:7])
            done = place(template_run, run_dir, rid, "20260101_000002")
            (done.parent / (done.name + ".synced")).touch()  # wandb sync's own marker
            last = place(template_run, run_dir, rid, "20260101_000003")
            continue
        log = place(template_run, run_dir, rid, "20260101_000001")
        if name == "marked":
            (run_dir / MARKER_NAME).write_text("{}")
        if name == "torn":
            log.write_bytes(data[: len(data) - 5])
            os.utime(log, (time.time() - 60,) * 2)
        if name == "fresh":
            log.touch()

    plan = plan_sync(store)
    by_id = {item.run_id: item for item in plan.items}
    wanted = {
        ids[n] for n in ("finished", "failed", "stopped", "killed", "given_up", "attempts", "torn")
    }
    assert set(by_id) == wanted
    assert plan.waiting == [ids["fresh"]]
    assert {by_id[ids[n]].state for n in ("finished", "failed", "stopped", "killed")} == set(
        SYNC_STATES
    )
    item = by_id[ids["attempts"]]
    assert item.files == (last,) and item.empty == (empty,) and item.done == (done,)
    assert item.torn == ()
    torn = by_id[ids["torn"]]
    assert torn.torn == torn.files and len(torn.files) == 1
    # The fresh run qualifies once its file has settled.
    assert ids["fresh"] in {i.run_id for i in plan_sync(store, settle_s=0).items}


def test_in_a_cancelled_sweep_preempted_and_lost_runs_are_synced_as_they_are(
    store: SweepStore, template_run: Path
) -> None:
    ids = [new_run(store, RunState.PREEMPTED), new_run(store, RunState.LOST)]
    for rid in ids:
        place(template_run, store.runs_dir / rid, rid, "20260101_000001")
    assert plan_sync(store, settle_s=0).items == []  # they will run again
    with store.transaction() as txn:
        txn.cancel("enough")
    assert sorted(i.run_id for i in plan_sync(store, settle_s=0).items) == sorted(ids)


def _late_finish(store: SweepStore, *, preempted_between: bool = False) -> str:
    """A run whose attempt 1's agent was only cut off: declared lost, run again (attempt 2,
    held by agent "a2"; with ``preempted_between`` attempt 2 was preempted and attempt 3
    holds it), and then attempt 1 finished after all."""
    rid = new_run(store)
    with store.transaction(agent="a2") as txn:
        txn.mark_lost(rid, "agent silent")
        txn.claim_again(rid, agent="a2")
    if preempted_between:
        with store.transaction(agent="a2") as txn:
            txn.finish(rid, 2, RunState.PREEMPTED)
            txn.claim_again(rid, agent="a2")
    with store.transaction(agent="a1") as txn:
        txn.finish(rid, 1, RunState.FINISHED, exit_code=0)
    return rid


def test_the_attempts_after_an_earlier_ones_late_result_are_left_out(
    store: SweepStore, template_run: Path
) -> None:
    """Sent after attempt 1's, attempt 2's partial data would become the W&B run's."""
    rid = _late_finish(store)
    run_dir = store.runs_dir / rid
    first = place(template_run, run_dir, rid, "20260101_000001")
    second = place(template_run, run_dir, rid, "20260101_000002")
    record_attempt_logs(run_dir, 1, [first])

    # While attempt 2's agent is alive and has not recorded that attempt's end, the run waits;
    store.heartbeat("a2")
    assert plan_sync(store, settle_s=0).waiting == [rid]
    # once it has, attempt 2's log is left out.
    record_attempt_logs(run_dir, 2, [second])
    (item,) = plan_sync(store, settle_s=0).items
    assert (item.files, item.later) == ((first,), (second,))
    assert wandb_sync_argv(item) == [
        [sys.executable, "-m", "wandb", "sync", "--id", rid, str(first.parent)]
    ]


def test_an_attempt_preempted_before_the_late_result_is_left_out_too(
    store: SweepStore, template_run: Path
) -> None:
    rid = _late_finish(store, preempted_between=True)
    run_dir = store.runs_dir / rid
    logs = [place(template_run, run_dir, rid, f"20260101_00000{n}") for n in (1, 2, 3)]
    for attempt, log in enumerate(logs, 1):
        record_attempt_logs(run_dir, attempt, [log])
    (item,) = plan_sync(store, settle_s=0).items
    assert (item.files, item.later) == ((logs[0],), (logs[1], logs[2]))


def test_where_the_results_own_log_is_in_doubt_everything_is_sent(
    store: SweepStore, template_run: Path
) -> None:
    """Two attempts on one machine both saw a log appear (the earlier one may have started
    wandb late): it could be the result's, so it is sent. And with no record of the result's
    attempt, any log could be its: all are sent."""
    rid = _late_finish(store)
    run_dir = store.runs_dir / rid
    first = place(template_run, run_dir, rid, "20260101_000001")
    second = place(template_run, run_dir, rid, "20260101_000002")
    record_attempt_logs(run_dir, 2, [first, second])
    (item,) = plan_sync(store, settle_s=0).items
    assert (item.files, item.later) == ((first, second), ())  # attempt 1 left no record

    record_attempt_logs(run_dir, 1, [first, second])
    (item,) = plan_sync(store, settle_s=0).items
    assert (item.files, item.later) == ((first, second), ())  # both claim both

    record_attempt_logs(run_dir, 1, [first])
    (item,) = plan_sync(store, settle_s=0).items
    assert (item.files, item.later) == ((first,), (second,))


def test_no_wait_for_a_gone_agent_nor_for_a_run_that_is_not_over(
    store: SweepStore, template_run: Path
) -> None:
    """An agent that is gone records nothing: its attempt's log is sent (after the result's,
    as before). A given-up run never waits: no later attempt is being stopped."""
    rid = _late_finish(store)
    run_dir = store.runs_dir / rid
    first = place(template_run, run_dir, rid, "20260101_000001")
    second = place(template_run, run_dir, rid, "20260101_000002")
    store.heartbeat("a2")
    assert plan_sync(store, settle_s=0).waiting == []  # attempt 1 left no record: no use
    record_attempt_logs(run_dir, 1, [first])
    assert plan_sync(store, settle_s=0).waiting == [rid]
    store.heartbeat("a2", state="exited")
    (item,) = plan_sync(store, settle_s=0).items
    assert (item.files, item.later) == ((first, second), ())

    given_up = new_run(store, RunState.PREEMPTED)  # an earlier result, then lost for good
    for _ in range(MAX_LOSSES):
        with store.transaction(agent="a2") as txn:
            txn.claim_again(given_up, agent="a3")
            txn.mark_lost(given_up, "agent silent")
    store.heartbeat("a3")
    place(template_run, store.runs_dir / given_up, given_up, "20260101_000001")
    assert given_up in {i.run_id for i in plan_sync(store, settle_s=0).items}


def _lost_for_good(store: SweepStore) -> str:
    """A run each of whose :data:`MAX_LOSSES` attempts was declared lost: it will not run
    again, and its last loss was declared just now."""
    rid = new_run(store, RunState.LOST)
    for _ in range(MAX_LOSSES - 1):
        with store.transaction(agent="a1") as txn:
            txn.claim_again(rid, agent="a2")
            txn.mark_lost(rid, "agent silent")
    return rid


def test_a_lost_run_whose_trial_still_logs_is_left_for_later(
    store: SweepStore, template_run: Path
) -> None:
    """Its agent was only cut off: the trial may yet finish. Sent now, the run would be marked
    synced with part of its data and the rest would never go up; so it is left for a later
    pass (not waited for) until its log has been quiet for ALIVE_QUIET_S."""
    alive, dead = _lost_for_good(store), _lost_for_good(store)
    lost_at = store.snapshot().runs[alive].ended_at
    assert lost_at is not None
    for rid in (alive, dead):
        place(template_run, store.runs_dir / rid, rid, "20260101_000001")  # 60 s ago
    log = find_run_logs(store.runs_dir / alive, alive)[0]
    os.utime(log, (lost_at + 30, lost_at + 30))  # written 30 s after the loss

    now = lost_at + 40
    plan = plan_sync(store, settle_s=5, now=now)
    assert plan.deferred == [alive] and plan.waiting == []
    assert [i.run_id for i in plan.items] == [dead]  # last written before the loss: sent

    # Quiet for ALIVE_QUIET_S since: taken for ended, and sent.
    later = lost_at + 30 + ALIVE_QUIET_S + 1
    assert sorted(i.run_id for i in plan_sync(store, now=later).items) == sorted([alive, dead])
    # Should its agent come back and record the end, it is synced as any ended run.
    with store.transaction(agent="a2") as txn:
        txn.finish(alive, MAX_LOSSES, RunState.FINISHED, exit_code=0)
    assert alive in {i.run_id for i in plan_sync(store, settle_s=5, now=now).items}

    # In a cancelled sweep a lost run is synced as it is: unless its trial still logs.
    with store.transaction(agent="a1") as txn:
        rid = txn.claim_new({"x": txn.snapshot.next_seq}, agent="a1").id
    with store.transaction(agent="a1") as txn:
        txn.mark_lost(rid, "agent silent")
        txn.cancel("enough")
    place(template_run, store.runs_dir / rid, rid, "20260101_000001").touch()
    assert plan_sync(store, settle_s=0).deferred == [rid]


def test_one_sync_does_not_wait_for_a_lost_run_still_logging_and_says_so(
    store: SweepStore, template_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweepherd.cli.main import main

    rid = _lost_for_good(store)
    place(template_run, store.runs_dir / rid, rid, "20260101_000001")
    log = find_run_logs(store.runs_dir / rid, rid)[0]
    written = store.snapshot().runs[rid].ended_at
    assert written is not None
    os.utime(log, (written + 0.01, written + 0.01))  # just after the loss
    report = sync(store, settle_s=0)  # nothing to send: no server is contacted
    assert (report.synced, report.waiting, report.deferred) == ([], [], [rid])
    assert main(["sync", str(store.path)]) == 0  # once its log has settled (5 s)
    captured = capsys.readouterr()
    assert "nothing to sync" in captured.out
    assert f"left for later: {rid}: declared lost, but its trial still writes" in captured.err
    assert main(["sync", str(store.path), "--dry-run"]) == 0
    assert f"{rid}: declared lost, but its trial still writes" in capsys.readouterr().out


def test_an_idle_wandb_run_still_writes_its_log(tmp_path: Path, wandb_starter: Starter) -> None:
    """What ALIVE_QUIET_S rests on: a live run that logs nothing for a while still adds to its
    transaction log (wandb's system metrics, every 15 s or so), well within that time."""
    proc = wandb_starter(
        tmp_path,
        """
        import pathlib, time, wandb
        run = wandb.init()
        run.log({"loss": 1.0})
        pathlib.Path("logged").touch()
        time.sleep(300)
        """,
        WANDB_RUN_ID="idle",
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "logged").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(2)  # the history record is flushed
    (log,) = find_run_logs(tmp_path, "idle")
    size, since = log.stat().st_size, time.monotonic()
    while log.stat().st_size == size:
        assert time.monotonic() - since < ALIVE_QUIET_S / 2, "an idle run's log did not change"
        time.sleep(0.5)
    proc.kill()


def test_the_run_record_is_read_from_the_start_of_a_long_log(
    tmp_path: Path, template_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a superseded attempt's host and start must not load hours of logging."""
    log = tmp_path / "run-tmpl.wandb"
    shutil.copy(template_run / "run-tmpl.wandb", log)
    with log.open("ab") as f:
        f.truncate(64 << 20)  # a long run's log (sparse)
    sizes: list[int] = []
    real_open = Path.open

    def spying_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        f = real_open(self, *args, **kwargs)
        real_read = f.read

        def read(n: int = -1) -> bytes:
            data = real_read(n)
            sizes.append(len(data))
            return data

        f.read = read
        return f

    monkeypatch.setattr(Path, "open", spying_open)
    record = run_record(log)
    assert record is not None and record.run_id == "tmpl"
    assert sizes and max(sizes) <= 1 << 20


def test_an_attempts_own_logs_are_those_started_here_since_it_began(
    tmp_path: Path, template_run: Path, wandb_starter: Starter
) -> None:
    """What the agent of a superseded attempt marks: not a log of the earlier attempt that
    started wandb late on another machine, nor one started before this attempt began."""
    here = template_run / "run-tmpl.wandb"
    record = run_record(here)
    assert record is not None and record.start_time is not None
    assert record.host == socket.gethostname()
    proc = wandb_starter(tmp_path, TRAIN, WANDB_RUN_ID="tmpl2", LOSS="1", WANDB_HOST="another-node")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    (there,) = find_run_logs(tmp_path, "tmpl2")
    began = record.start_time
    assert logs_started_here([here, there], since=began) == [here]
    assert logs_started_here([here, there], since=began, host="another-node") == [there]
    # Two attempts of a run at once on one machine: wandb's debug log names the process.
    mine = logs_started_here([there], since=began, host="another-node", pid=proc.pid)
    assert mine == [there]
    assert logs_started_here([there], since=began, host="another-node", pid=proc.pid + 1) == []
    copy = tmp_path / "copy" / there.parent.name
    shutil.copytree(there.parent, copy)
    (copy / "logs" / "debug.log").unlink()  # which process started it is not known: not ours
    assert logs_started_here([copy / there.name], since=began, host="another-node") != []
    unknown = logs_started_here([copy / there.name], since=began, host="another-node", pid=proc.pid)
    assert unknown == []
    assert logs_started_here([here], since=began + 60) == []  # it began after that log
    # A log that is not one (or is damaged at its start) is nobody's: never an error, since the
    # agent records its attempt as the trial ends, with its other trials still running.
    junk = tmp_path / "run-junk.wandb"
    junk.write_bytes(b"\0" * 4096)
    assert logs_started_here([junk, tmp_path / "gone.wandb", here], since=began) == [here]


def test_sync_argv(tmp_path: Path) -> None:
    files = (
        tmp_path / "wandb/offline-run-1-r/run-r.wandb",
        tmp_path / "wandb/offline-run-2-r/run-r.wandb",
    )
    item = SyncItem("r", RunState.FINISHED, tmp_path, files)
    argvs = wandb_sync_argv(item, project="proj", entity="team", python="/py")
    head = ["/py", "-m", "wandb", "sync", "--id", "r", "--project", "proj", "--entity", "team"]
    assert argvs == [[*head, str(files[0].parent)], [*head, str(files[1].parent)]]
    plain = wandb_sync_argv(item, python="/py")
    assert plain[0] == ["/py", "-m", "wandb", "sync", "--id", "r", str(files[0].parent)]


# -- the real wandb sync ------------------------------------------------------------------------


@pytest.fixture
def real_runs(store: SweepStore, wandb_starter: Starter) -> dict[str, str]:
    """Real offline runs made as the agent makes them: two finished, one resumed after a kill
    (its first attempt killed after wandb flushed, plus an attempt killed before any flush),
    and one still running (a folder with data but not ended)."""
    a, b, c, running = (new_run(store) for _ in range(4))
    pa = wandb_starter(store.runs_dir / a, TRAIN, LOSS="1", **agent_env(store, a))
    pb = wandb_starter(store.runs_dir / b, TRAIN, LOSS="10", **agent_env(store, b))
    pc = wandb_starter(
        store.runs_dir / c,
        """
        import time, wandb
        wandb.init()
        wandb.log({"loss": 100.0})
        time.sleep(600)
        """,
        **agent_env(store, c),
    )
    for proc in (pa, pb):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    # c's first attempt: killed once its step is in the log (preempted).
    wait_until(lambda: len(find_run_logs(store.runs_dir / c, c)) == 1)
    first = find_run_logs(store.runs_dir / c, c)[0]
    wait_until(lambda: first.stat().st_size > 1000)
    time.sleep(1.5)
    pc.send_signal(signal.SIGKILL)
    pc.communicate(timeout=30)
    # An attempt killed before wandb's first flush leaves only the 7-byte header (measured).
    header_only = first.parent.parent / f"offline-run-20000101_000000-{c}"
    header_only.mkdir()
    (header_only / f"run-{c}.wandb").write_bytes(first.read_bytes()[:7])
    time.sleep(1.1)  # attempt folders are named by the second they start
    second = wandb_starter(
        store.runs_dir / c, TRAIN, LOSS="200", WANDB_RESUME="allow", **agent_env(store, c)
    )
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    with store.transaction(agent="a1") as txn:
        txn.finish(a, 1, RunState.FINISHED, exit_code=0)
        txn.finish(b, 1, RunState.FAILED, exit_code=1)
        txn.finish(c, 1, RunState.FINISHED, exit_code=0)  # its second attempt, as far as W&B sees
    prun = wandb_starter(store.runs_dir / running, TRAIN, LOSS="0", **agent_env(store, running))
    prun.communicate(timeout=120)
    return {"a": a, "b": b, "c": c, "running": running}


def wait_until(predicate: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_sync_uploads_each_ended_run_once_grouped_by_sweep(
    store: SweepStore, real_runs: dict[str, str], fake_wandb_server: Any, tmp_path: Path
) -> None:
    a, b, c = real_runs["a"], real_runs["b"], real_runs["c"]
    seen: list[tuple[str, str | None]] = []
    report = sync(
        store,
        entity="team",
        settle_s=0,
        env=sync_env(tmp_path, fake_wandb_server.url),
        on_item=lambda item, err: seen.append((item.run_id, err)),
    )
    assert sorted(report.synced) == sorted([a, b, c]) and report.failed == {}
    assert sorted(seen) == sorted([(a, None), (b, None), (c, None)])

    upserts = fake_wandb_server.upserts()
    assert {u["name"] for u in upserts} == {a, b, c}  # the running run was not sent
    for u in upserts:
        assert (u["project"], u["entity"]) == ("proj", "team")
        assert u["sweep"] is None  # no sweep id the server would not know
    # The group comes from WANDB_RUN_GROUP at run time: wandb sync cannot set one.
    assert {u["groupName"] for u in upserts if u["groupName"]} == {"mysweep"}
    assert {u["name"] for u in upserts if u["groupName"] == "mysweep"} == {a, b, c}

    assert [r["loss"] for r in fake_wandb_server.history(a)] == [1, 2, 3]
    assert [r["loss"] for r in fake_wandb_server.history(b)] == [10, 11, 12]
    # Both attempts of c, in start order, into the one W&B run c.
    assert [r["loss"] for r in fake_wandb_server.history(c)] == [100, 200, 201, 202]

    for run_id in (a, b, c):
        marker = read_marker(store.runs_dir / run_id)
        assert marker is not None and marker["run_id"] == run_id
        assert marker["entity"] == "team" and marker["project"] == "proj"
    files_c = read_marker(store.runs_dir / c)["files"]  # type: ignore[index]
    assert sorted(files_c.values()) == ["empty: no record to send", "synced", "synced"]
    assert read_marker(store.runs_dir / real_runs["running"]) is None

    # Nothing is sent twice.
    n_requests = len(fake_wandb_server.requests)
    assert sync(store, settle_s=0, env=sync_env(tmp_path, fake_wandb_server.url)).synced == []
    assert len(fake_wandb_server.requests) == n_requests
    assert plan_sync(store, settle_s=0).items == []


def test_a_log_linked_in_from_elsewhere_goes_up_under_the_runs_id(
    store: SweepStore, template_run: Path, fake_wandb_server: Any, tmp_path: Path
) -> None:
    """A log the script wrote in a folder of its own and named after its own id
    (``wandb.init(dir=..., id=...)``), linked into the run's folder by its agent: wandb sync
    reads it through the link, and W&B gets it under the sweep's run id."""
    rid = new_run(store, RunState.FINISHED)
    elsewhere = tmp_path / "out" / "wandb" / "offline-run-20260101_000001-tmpl"
    shutil.copytree(template_run, elsewhere)
    os.utime(elsewhere / "run-tmpl.wandb", (time.time() - 60,) * 2)
    assert link_run_folder(store.runs_dir / rid, rid, elsewhere) is not None
    report = sync(store, settle_s=0, env=sync_env(tmp_path, fake_wandb_server.url))
    assert (report.synced, report.failed) == ([rid], {})
    assert {u["name"] for u in fake_wandb_server.upserts()} == {rid}
    assert [r["loss"] for r in fake_wandb_server.history(rid)] == [1, 2, 3]
    assert (elsewhere / "run-tmpl.wandb.synced").exists()  # wandb's own marker, through the link


def test_a_run_whose_linked_log_this_machine_cannot_see_is_not_synced_from_here(
    store: SweepStore, template_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its log is on a node's own disk: sent without it (its other attempts only), the run
    would be marked synced with part of its data, and never sent whole."""
    from sweepherd.cli.main import main

    rid = new_run(store, RunState.FINISHED)
    place(template_run, store.runs_dir / rid, rid, "20260101_000001")  # an attempt here
    node_tmp = tmp_path / "node-tmp" / "wandb" / "offline-run-20260101_000002-tmpl"
    shutil.copytree(template_run, node_tmp)
    assert link_run_folder(store.runs_dir / rid, rid, node_tmp) is not None
    shutil.rmtree(node_tmp)  # as the syncing machine sees it: not there
    plan = plan_sync(store, settle_s=0)
    assert (plan.items, plan.unreachable) == ([], [(rid, str(node_tmp))])
    assert sync(store, settle_s=0).unreachable == [(rid, str(node_tmp))]  # nothing sent
    assert not (store.runs_dir / rid / MARKER_NAME).exists()
    assert main(["sync", str(store.path)]) == 0
    assert (
        f"not synced: {rid}: its script wrote its wandb log outside the sweep, to {node_tmp}"
        in (capsys.readouterr().err)
    )


def test_refused_runs_are_reported_and_not_marked(
    store: SweepStore, template_run: Path, fake_wandb_server: Any, tmp_path: Path
) -> None:
    rid = new_run(store, RunState.FINISHED)
    place(template_run, store.runs_dir / rid, rid, "20260101_000001")
    fake_wandb_server.refuse_runs = True  # wandb sync still exits 0 here (measured)
    with pytest.raises(WandbError, match="could not be synced") as info:
        sync(store, settle_s=0, env=sync_env(tmp_path, fake_wandb_server.url))
    assert rid in str(info.value) and "not found" in str(info.value)
    assert read_marker(store.runs_dir / rid) is None
    fake_wandb_server.refuse_runs = False
    assert sync(store, settle_s=0, env=sync_env(tmp_path, fake_wandb_server.url)).synced == [rid]


def test_torn_tail_is_sent_up_to_its_last_record_and_marked(
    store: SweepStore, template_run: Path, fake_wandb_server: Any, tmp_path: Path
) -> None:
    data = (template_run / "run-tmpl.wandb").read_bytes()
    rid = new_run(store, RunState.FAILED)
    place(template_run, store.runs_dir / rid, rid, "20260101_000001", data[: len(data) - 5])
    assert sync(store, settle_s=0, env=sync_env(tmp_path, fake_wandb_server.url)).synced == [rid]
    marker = read_marker(store.runs_dir / rid)
    assert marker is not None
    assert list(marker["files"].values()) == ["synced up to its last complete record (torn tail)"]
    assert [r["loss"] for r in fake_wandb_server.history(rid)] == [1, 2, 3]


def _torn_then_whole(store: SweepStore, template_run: Path) -> str:
    """A finished run of two attempts: the first killed mid-write (torn tail), the second whole."""
    data = (template_run / "run-tmpl.wandb").read_bytes()
    rid = new_run(store, RunState.FINISHED)
    place(template_run, store.runs_dir / rid, rid, "20260101_000001", data[: len(data) - 5])
    place(template_run, store.runs_dir / rid, rid, "20260101_000002")
    return rid


def test_a_torn_earlier_attempt_does_not_hold_back_the_later_ones(
    store: SweepStore, template_run: Path, fake_wandb_server: Any, tmp_path: Path
) -> None:
    """wandb sync given both folders stops after the torn one: each retry sent it again."""
    rid = _torn_then_whole(store, template_run)
    env = sync_env(tmp_path, fake_wandb_server.url)
    assert sync(store, settle_s=0, env=env).synced == [rid]
    assert [r["loss"] for r in fake_wandb_server.history(rid)] == [1, 2, 3, 1, 2, 3]
    marker = read_marker(store.runs_dir / rid)
    assert marker is not None
    assert sorted(marker["files"].values()) == [
        "synced",
        "synced up to its last complete record (torn tail)",
    ]
    assert sync(store, settle_s=0, env=env).synced == []
    assert len(fake_wandb_server.history(rid)) == 6


def test_a_refused_attempt_stops_the_later_ones_and_all_go_up_once_later(
    store: SweepStore, template_run: Path, fake_wandb_server: Any, tmp_path: Path
) -> None:
    rid = _torn_then_whole(store, template_run)
    env = sync_env(tmp_path, fake_wandb_server.url)
    fake_wandb_server.refuse_runs = True
    with pytest.raises(WandbError, match="000001"):  # the first attempt; the second not tried
        sync(store, settle_s=0, env=env)
    assert len(fake_wandb_server.upserts()) == 1
    fake_wandb_server.refuse_runs = False
    assert sync(store, settle_s=0, env=env).synced == [rid]
    assert [r["loss"] for r in fake_wandb_server.history(rid)] == [1, 2, 3, 1, 2, 3]


def test_an_online_runs_folder_counts_as_uploaded(store: SweepStore, template_run: Path) -> None:
    rid = new_run(store, RunState.FINISHED)
    log = place(template_run, store.runs_dir / rid, rid, "20260101_000001")
    online = log.parent.with_name(log.parent.name.removeprefix("offline-"))
    log.parent.rename(online)
    (item,) = plan_sync(store, settle_s=0).items
    assert item.files == () and item.done == (online / log.name,)


def test_missing_api_key_is_wandbs_own_message(
    store: SweepStore, template_run: Path, fake_wandb_server: Any, tmp_path: Path
) -> None:
    rid = new_run(store, RunState.FINISHED)
    place(template_run, store.runs_dir / rid, rid, "20260101_000001")
    env = sync_env(tmp_path, fake_wandb_server.url)
    del env["WANDB_API_KEY"]
    with pytest.raises(WandbError, match="No API key configured"):
        sync(store, settle_s=0, env=env)
    assert fake_wandb_server.upserts() == []


def test_watch_picks_up_runs_as_they_end(
    store: SweepStore, template_run: Path, fake_wandb_server: Any, tmp_path: Path
) -> None:
    first = new_run(store, RunState.FINISHED)
    later = new_run(store)  # still running during the first pass
    for rid in (first, later):
        place(template_run, store.runs_dir / rid, rid, "20260101_000001")
    passes: list[list[str]] = []

    def should_stop() -> bool:
        passes.append(sorted(u["name"] for u in fake_wandb_server.upserts()))
        if len(passes) == 1:
            with store.transaction(agent="a1") as txn:
                txn.finish(later, 1, RunState.STOPPED, exit_code=0)
        return len(passes) == 2

    sync(
        store,
        watch=True,
        interval_s=0.1,
        settle_s=0,
        env=sync_env(tmp_path, fake_wandb_server.url),
        should_stop=should_stop,
    )
    assert set(passes[0]) == {first}
    assert set(passes[1]) == {first, later}


def test_one_sync_per_sweep(store: SweepStore, tmp_path: Path) -> None:
    lock = store.path / "sync.lock"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        lock.write_text(json.dumps({"host": socket.gethostname(), "pid": sleeper.pid}))
        with pytest.raises(WandbError, match="Another `sweepherd sync`"):
            sync(store, settle_s=0, env=sync_env(tmp_path, "http://127.0.0.1:9"))
    finally:
        sleeper.kill()
        sleeper.wait()
    # Its process is gone: the lock is stale and taken over (nothing to sync here).
    assert sync(store, settle_s=0, env=sync_env(tmp_path, "http://127.0.0.1:9")).synced == []
    assert not lock.exists()


@pytest.fixture(autouse=True)
def _no_leftover_lock(store: SweepStore) -> Iterator[None]:
    yield
    assert not (store.path / "sync.lock").exists()


def test_cli_syncs_and_reports(
    store: SweepStore,
    template_run: Path,
    fake_wandb_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sweepherd.cli.main import main

    rid = new_run(store, RunState.FINISHED)
    place(template_run, store.runs_dir / rid, rid, "20260101_000001")
    for name, value in sync_env(tmp_path, fake_wandb_server.url).items():
        monkeypatch.setenv(name, value)
    assert main(["sync", str(store.path), "--project", "other"]) == 0
    out = capsys.readouterr().out
    assert f"synced {rid} (finished): 1 attempt(s) to send" in out and "1 run(s) synced" in out
    assert [u["project"] for u in fake_wandb_server.upserts()][:1] == ["other"]
    assert main(["sync", str(store.path)]) == 0
    assert "nothing to sync" in capsys.readouterr().out

    # A run that ended a moment ago: the wait is said once, not passed in silence.
    fresh = new_run(store, RunState.FINISHED)
    place(template_run, store.runs_dir / fresh, fresh, "20260101_000001").touch()
    assert main(["sync", str(store.path)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("waiting for 1 run(s) whose wandb files changed") == 1
    assert fresh in captured.err and f"synced {fresh}" in captured.out


def test_ctrl_c_stops_the_wandb_sync_it_started_before_releasing_the_lock(
    store: SweepStore, template_run: Path, tmp_path: Path
) -> None:
    rid = new_run(store, RunState.FINISHED)
    place(template_run, store.runs_dir / rid, rid, "20260101_000001")
    with socket.socket() as silent:  # a "server" on 127.0.0.1 that accepts and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        env = sync_env(tmp_path, f"http://127.0.0.1:{silent.getsockname()[1]}")
        cli = subprocess.Popen(
            [sys.executable, "-m", "sweepherd", "sync", str(store.path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        children: list[int] = []

        def wandb_sync_started() -> bool:
            children[:] = [
                pid
                for pid in (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
                # its own folder: other tests' runs have the same id (sweep sw1) in parallel
                if _cmdline(pid).startswith(f"{sys.executable} -m wandb sync --id {rid}")
                and str(store.runs_dir) in _cmdline(pid)
            ]
            return bool(children)

        wait_until(wandb_sync_started)
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=60) != 0
        assert not (store.path / "sync.lock").exists()
        assert [pid for pid in children if _cmdline(pid)] == []  # stopped, not left uploading


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
