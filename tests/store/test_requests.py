"""Claim requests: the mailbox, and one lock hold serving many waiting processes."""

from __future__ import annotations

import errno
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sweepherd.errors import LockTimeoutError, StoreError
from sweepherd.runs import RunState
from sweepherd.store import (
    ClaimAnswer,
    ClaimRequest,
    JournalLock,
    RunResult,
    SweepStore,
    Transaction,
    open_sweep,
)
from sweepherd.store._requests import Mailbox


def _request(agent: str = "a1", t: float = 0.0, **kw: Any) -> ClaimRequest:
    return ClaimRequest(token=f"tok-{agent}-{t}", agent=agent, t=t or time.time(), **kw)


def _serve_new(txn: Transaction, requests: list[ClaimRequest]) -> None:
    """A minimal policy: record results, then a new run {"n": seq} for every request."""
    for request in requests:
        for result in request.results:
            txn.record(result, req=request.token)
        seq = txn.snapshot.next_seq
        txn.claim_new({"n": seq}, request.agent, node=request.node, req=request.token)


def _take_posted(store: SweepStore, timeout_s: float = 5.0) -> list[ClaimRequest]:
    """Take the requests posted to ``store`` as a holder does, once one has been written (its
    file exists a moment before its content, and a holder leaves it until then)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        taken = Mailbox(store._mailbox.dir).take_all()
        if taken:
            return taken
        time.sleep(0.01)
    return []


def test_request_round_trips_through_its_file(tmp_path: Path) -> None:
    result = RunResult(
        "s-0001", 2, RunState.FAILED, 3, 0.5, summary={"a": 1}, metric_range=(0.25, 1.5)
    )
    request = ClaimRequest("t1", "a1", node="n", gpus="0", job="7", results=(result,), t=1.5)
    assert ClaimRequest.from_bytes(request.to_bytes()) == request
    assert ClaimRequest.from_bytes(b"{torn") is None


def test_take_all_takes_oldest_first_and_removes_them(tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "requests")
    for agent, t in (("b", 2.0), ("a", 1.0), ("c", 3.0)):
        box.post(_request(agent, t))
    taken = box.take_all()
    assert [r.agent for r in taken] == ["a", "b", "c"]
    assert list((tmp_path / "requests").iterdir()) == []
    assert box.take_all() == []


def test_withdraw_and_take_exclude_each_other(tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "requests")
    first, second = _request("a", 1.0), _request("b", 2.0)
    box.post(first)
    box.post(second)
    assert box.withdraw(first.token)  # withdrawn before any holder took it
    assert [r.token for r in box.take_all()] == [second.token]
    assert not box.withdraw(second.token)  # taken: its owner must wait for the answer


def test_a_request_being_written_is_left_for_later(tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "requests")
    box.post(_request("a", 1.0))
    partial = tmp_path / "requests" / "half.json"
    partial.write_bytes(b'{"token": "half", "agent"')
    assert [r.agent for r in box.take_all()] == ["a"]
    assert partial.exists()


def test_put_back(tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "requests")
    box.post(_request("a", 1.0))
    taken = box.take_all()
    box.put_back(taken)
    assert box.take_all() == taken


def test_a_lone_request_is_served_by_its_own_process(store: SweepStore) -> None:
    answer = store.request_claim(_request("a1", node="n1"), _serve_new, timeout_s=5)
    assert answer.run is not None and answer.reason is None
    assert (answer.run.params, answer.run.agent, answer.run.node) == ({"n": 0}, "a1", "n1")
    assert answer.run == store.snapshot().runs[answer.run.id]
    assert list(store._mailbox.dir.iterdir()) == []
    assert not store.lock_path.exists()


def test_one_hold_serves_every_waiting_request_in_one_append(store: SweepStore) -> None:
    others = [_request(f"o{i}", t=float(i + 1)) for i in range(5)]
    for request in others:
        store._mailbox.post(request)
    seen: list[list[str]] = []

    def serve(txn: Transaction, requests: list[ClaimRequest]) -> None:
        seen.append([r.agent for r in requests])
        _serve_new(txn, requests)

    size = store.journal_path.stat().st_size
    answer = store.request_claim(_request("me"), serve, timeout_s=5)
    assert seen == [["o0", "o1", "o2", "o3", "o4", "me"]]
    new_lines = store.journal_path.read_bytes()[size:].splitlines()
    events = [json.loads(line) for line in new_lines]
    assert [e["req"] for e in events] == [r.token for r in others] + [answer.events[-1]["req"]]
    assert {r.agent for r in store.snapshot().runs.values()} == {"o0", "o1", "o2", "o3", "o4", "me"}


def test_results_travel_with_the_request(store: SweepStore) -> None:
    first = store.request_claim(_request("a1", t=1.0), _serve_new, timeout_s=5).run
    assert first is not None
    done = RunResult(first.id, 1, RunState.FINISHED, exit_code=0, metric=0.1)
    answer = store.request_claim(_request("a1", t=2.0, results=(done,)), _serve_new, timeout_s=5)
    assert [e["e"] for e in answer.events] == ["end", "claim"]
    assert store.snapshot().runs[first.id].state is RunState.FINISHED


def test_a_reply_without_run(store: SweepStore) -> None:
    def serve(txn: Transaction, requests: list[ClaimRequest]) -> None:
        for request in requests:
            txn.reply(request.token, "the grid is done", n_running=3)

    answer = store.request_claim(_request("a1"), serve, timeout_s=5)
    assert answer.run is None and answer.reason == "the grid is done"
    assert answer.reply is not None and answer.reply["n_running"] == 3


def test_a_failing_serve_puts_the_others_back_and_raises(store: SweepStore) -> None:
    other = _request("other", t=1.0)
    store._mailbox.post(other)

    def serve(txn: Transaction, requests: list[ClaimRequest]) -> None:
        raise RuntimeError("search failed")

    size = store.journal_path.stat().st_size
    with pytest.raises(RuntimeError, match="search failed"):
        store.request_claim(_request("me", t=2.0), serve, timeout_s=5)
    assert store.journal_path.stat().st_size == size
    assert [r.token for r in store._mailbox.take_all()] == [other.token]  # only the other's
    assert not store.lock_path.exists()


def test_an_unanswered_request_is_an_internal_error(store: SweepStore) -> None:
    with pytest.raises(StoreError, match="not answered"):
        store.request_claim(_request("me"), lambda txn, reqs: None, timeout_s=5)


def test_timeout_withdraws_the_request(store: SweepStore) -> None:
    holder = JournalLock(store.lock_path, agent="busy")
    holder.acquire(timeout_s=1)
    try:
        start = time.monotonic()
        with pytest.raises(LockTimeoutError, match="busy"):
            store.request_claim(_request("me"), _serve_new, timeout_s=0.3)
        assert time.monotonic() - start < 2
        assert list(store._mailbox.dir.iterdir()) == []  # withdrawn: never answered later
    finally:
        holder.release()
    assert store.snapshot().runs == {}


def test_a_request_taken_by_a_holder_that_died_is_served_by_its_owner(store: SweepStore) -> None:
    holder = JournalLock(store.lock_path, agent="doomed")
    holder.acquire(timeout_s=1)
    got: list[object] = []
    thread = threading.Thread(
        target=lambda: got.append(store.request_claim(_request("me"), _serve_new, timeout_s=10))
    )
    thread.start()
    assert len(_take_posted(store)) == 1  # the holder takes it...
    holder.release()  # ...and dies without answering
    thread.join(timeout=10)
    assert len(got) == 1
    answer = got[0]
    assert getattr(answer, "run", None) is not None
    assert len(store.snapshot().runs) == 1


def test_a_holder_stuck_past_the_stale_time_is_overtaken(store: SweepStore) -> None:
    store.lock_stale_s = 0.5
    holder = JournalLock(store.lock_path, agent="stuck")
    holder.acquire(timeout_s=1)
    got: list[object] = []
    thread = threading.Thread(
        target=lambda: got.append(store.request_claim(_request("me"), _serve_new, timeout_s=0.2))
    )
    thread.start()
    assert len(_take_posted(store)) == 1  # the stuck holder took the request, never answers
    thread.join(timeout=10)
    # Past its timeout the requester waited the stale time for the answer, then broke the
    # stuck lock and served its own request; the stuck holder can no longer write.
    assert len(got) == 1 and getattr(got[0], "run", None) is not None
    with pytest.raises(LockTimeoutError, match="taken over"):
        holder.verify()
    holder.release()


def test_a_full_disk_while_posting_leaves_no_request(
    store: SweepStore,
    tmp_path: Path,
    mount_tmpfs: Callable[[int], Path],
    fill_disk: Callable[[Path], list[Path]],
) -> None:
    box = Mailbox(mount_tmpfs(64) / "requests")
    box.dir.mkdir()
    fill_disk(box.dir.parent)
    with pytest.raises(StoreError, match="full"):
        box.post(_request("a1", results=(RunResult("r", 1, RunState.FINISHED, summary={}),)))
    assert list(box.dir.iterdir()) == []


def test_an_answer_whose_append_is_undone_is_not_taken(
    store: SweepStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder's write succeeds and a waiter can read its answer at once; then the holder's
    fsync fails (how NFS reports a full disk or quota) and the append is truncated away. The
    waiter must not act on that answer: its reported result would be lost and its run claimed
    again. The fsync failure is injected at ``_datasync`` (no local filesystem fails there after
    accepting a write); everything else is the real store, lock and mailbox."""
    from sweepherd.store import _journal

    with store.transaction(agent="setup") as txn:
        held = [txn.claim_new({"n": -1}, "a"), txn.claim_new({"n": -2}, "b")]
    gate = JournalLock(store.lock_path, agent="gate")
    gate.acquire(timeout_s=1)
    results: dict[str, object] = {}

    def ask(agent: str, run_id: str) -> None:
        request = _request(agent, results=(RunResult(run_id, 1, RunState.FINISHED, 0, 1.0),))
        try:
            results[agent] = store_for_thread[agent].request_claim(request, _serve_new, 10)
        except StoreError as exc:
            results[agent] = exc

    store_for_thread = {
        "a": open_sweep(store.path, store.path.parent),
        "b": open_sweep(store.path, store.path.parent),
    }
    threads = [
        threading.Thread(target=ask, args=(agent, run.id))
        for agent, run in zip("ab", held, strict=True)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(list(store._mailbox.dir.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    real = _journal._datasync
    failed: list[bool] = []

    def fsync_fails_once(fd: int) -> None:
        if failed:
            return real(fd)
        failed.append(True)
        time.sleep(1.0)  # the other requester reads its answer meanwhile
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_journal, "_datasync", fsync_fails_once)
    gate.release()  # one of the two takes the lock and serves both
    for thread in threads:
        thread.join(timeout=20)
    assert failed
    errors = [a for a, r in results.items() if isinstance(r, StoreError)]
    answered = {a: r for a, r in results.items() if isinstance(r, ClaimAnswer)}
    assert len(errors) == 1 and len(answered) == 1, results  # the server got the error
    ((agent, answer),) = answered.items()
    assert answer.run is not None
    store.request_claim(_request("third"), _serve_new, timeout_s=10)  # serves what is left
    runs = open_sweep(store.path, store.path.parent).snapshot().runs
    mine = [r for r in runs.values() if r.agent == agent]
    # Its result is in the journal, and it holds exactly the run it was told it got.
    assert runs[held["ab".index(agent)].id].state is RunState.FINISHED
    assert [r.id for r in mine if r.state is RunState.RUNNING] == [answer.run.id]


def test_requests_answered_by_an_append_that_could_not_be_undone_are_not_served_again(
    store: SweepStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fsync and then the truncation fail (injected at the os calls, as above): the
    answers may stand, so the others' requests are not posted again for a second answer."""
    from sweepherd.store import _journal

    gate = JournalLock(store.lock_path, agent="gate")
    gate.acquire(timeout_s=1)
    results: dict[str, object] = {}
    stores = {a: open_sweep(store.path, store.path.parent) for a in "ab"}

    def ask(agent: str) -> None:
        try:
            results[agent] = stores[agent].request_claim(_request(agent), _serve_new, 10)
        except StoreError as exc:
            results[agent] = exc

    threads = [threading.Thread(target=ask, args=(agent,)) for agent in "ab"]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(list(store._mailbox.dir.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # both written, so one hold serves both

    def fails(*_: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(_journal, "_datasync", fails)
    monkeypatch.setattr(_journal.os, "ftruncate", fails)
    gate.release()
    deadline = time.monotonic() + 10
    while len(results) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
        if any(isinstance(r, StoreError) for r in results.values()):
            monkeypatch.undo()  # the failing hold is over: the disk works again
    for thread in threads:
        thread.join(timeout=20)
    monkeypatch.undo()
    errors = [a for a, r in results.items() if isinstance(r, StoreError)]
    answered = {a: r for a, r in results.items() if isinstance(r, ClaimAnswer)}
    assert len(errors) == 1 and len(answered) == 1, results
    ((agent, answer),) = answered.items()
    assert answer.run is not None
    assert list(store._mailbox.dir.iterdir()) == []  # nothing posted again
    store.request_claim(_request("third"), _serve_new, timeout_s=10)
    runs = open_sweep(store.path, store.path.parent).snapshot().runs
    assert [r.id for r in runs.values() if r.agent == agent] == [answer.run.id]
