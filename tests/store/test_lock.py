"""The journal lock: exclusion, timeouts, stale locks (dead pid, old, torn) and safe breaking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sweepherd.errors import LockTimeoutError, StoreError
from sweepherd.store import JournalLock, LockOwner
from sweepherd.store._lock import BOOT_ID, HOST, pid_alive


def _write_owner(path: Path, *, host: str = HOST, pid: int, age_s: float = 0.0) -> None:
    owner = LockOwner(
        host=host, boot=BOOT_ID, pid=pid, agent="other", token="t0k3n", t=time.time() - age_s
    )
    path.write_bytes(owner.to_bytes())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid is gone
    return proc.pid


def test_acquire_writes_the_owner_and_release_removes_it(tmp_path: Path) -> None:
    lock = JournalLock(tmp_path / "journal.lock", agent="a1")
    lock.acquire(timeout_s=1)
    owner = json.loads((tmp_path / "journal.lock").read_bytes())
    assert owner["pid"] == os.getpid() and owner["agent"] == "a1" and owner["host"] == HOST
    assert lock.held
    lock.verify()
    lock.release()
    assert not (tmp_path / "journal.lock").exists()
    assert not lock.held


def test_a_held_lock_times_out_with_the_holder_named(tmp_path: Path) -> None:
    holder = JournalLock(tmp_path / "journal.lock", agent="holder")
    holder.acquire(timeout_s=1)
    waiter = JournalLock(tmp_path / "journal.lock")
    start = time.monotonic()
    with pytest.raises(LockTimeoutError, match=rf"held by pid {os.getpid()} .*agent holder"):
        waiter.acquire(timeout_s=0.2)
    assert 0.2 <= time.monotonic() - start < 1.0
    holder.release()
    waiter.acquire(timeout_s=0.2)
    waiter.release()


def test_not_reentrant(tmp_path: Path) -> None:
    lock = JournalLock(tmp_path / "journal.lock")
    lock.acquire(timeout_s=1)
    with pytest.raises(StoreError, match="not re-entrant"):
        lock.acquire(timeout_s=1)
    lock.release()


def test_threads_exclude_each_other(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                lock = JournalLock(tmp_path / "journal.lock")
                lock.acquire(timeout_s=10)
                value = int(counter.read_text())  # an unprotected read-modify-write
                time.sleep(0)
                counter.write_text(str(value + 1))
                lock.release()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert counter.read_text() == "200"


def test_lock_of_a_dead_process_on_this_host_is_broken_at_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.lock"
    _write_owner(path, pid=_dead_pid())
    lock = JournalLock(path, stale_s=3600)
    start = time.monotonic()
    lock.acquire(timeout_s=5)
    assert time.monotonic() - start < 1.0
    assert lock.n_broken == 1
    lock.release()


def test_lock_of_a_live_process_is_respected_until_it_is_old(tmp_path: Path) -> None:
    path = tmp_path / "journal.lock"
    _write_owner(path, pid=os.getppid())  # alive, and not us
    with pytest.raises(LockTimeoutError):
        JournalLock(path, stale_s=3600).acquire(timeout_s=0.3)
    _write_owner(path, pid=os.getppid(), age_s=10)
    lock = JournalLock(path, stale_s=5)
    lock.acquire(timeout_s=2)
    assert lock.n_broken == 1
    lock.release()


def test_lock_from_another_host_is_judged_by_age_only(tmp_path: Path) -> None:
    path = tmp_path / "journal.lock"
    _write_owner(path, host="elsewhere", pid=_dead_pid())  # that pid means nothing here
    with pytest.raises(LockTimeoutError, match="elsewhere"):
        JournalLock(path, stale_s=3600).acquire(timeout_s=0.3)
    _write_owner(path, host="elsewhere", pid=1, age_s=120)
    lock = JournalLock(path, stale_s=60)
    lock.acquire(timeout_s=1)
    lock.release()


def test_empty_lock_file_is_stale_only_once_old(tmp_path: Path) -> None:
    path = tmp_path / "journal.lock"
    path.write_bytes(b"")  # its creator died before writing the owner, or is writing it now
    with pytest.raises(LockTimeoutError):
        JournalLock(path, stale_s=60).acquire(timeout_s=0.3)
    old = time.time() - 120
    os.utime(path, (old, old))
    lock = JournalLock(path, stale_s=60)
    lock.acquire(timeout_s=1)
    lock.release()


def test_verify_fails_when_the_lock_was_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "journal.lock"
    slow = JournalLock(path)
    slow.acquire(timeout_s=1)
    path.unlink()  # broken by someone who judged it stale...
    other = JournalLock(path)
    other.acquire(timeout_s=1)  # ...and taken by another process
    with pytest.raises(LockTimeoutError, match="taken over"):
        slow.verify()
    slow.release()  # does not remove the other holder's lock
    assert path.exists()
    other.verify()
    other.release()


def test_a_breaker_never_removes_a_lock_that_changed_since_it_was_judged(tmp_path: Path) -> None:
    path = tmp_path / "journal.lock"
    _write_owner(path, pid=_dead_pid())
    breaker = JournalLock(path)
    seen = breaker._read()
    assert seen is not None and breaker._is_stale(*seen)
    # Another waiter broke it first and a live process took the lock since.
    path.unlink()
    holder = JournalLock(path)
    holder.acquire(timeout_s=1)
    assert breaker._break(*seen) is False
    holder.verify()
    holder.release()


def test_a_leftover_break_file_is_cleared_when_old(tmp_path: Path) -> None:
    path = tmp_path / "journal.lock"
    _write_owner(path, pid=_dead_pid())
    brk = tmp_path / "journal.lock.break"
    brk.write_bytes(b"")  # a breaker died in its few microseconds
    old = time.time() - 120
    os.utime(brk, (old, old))
    lock = JournalLock(path, stale_s=60)
    lock.acquire(timeout_s=2)
    assert not brk.exists()
    lock.release()


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(_dead_pid())
    assert not pid_alive(0)


def test_zombie_counts_as_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # exited but not reaped: a zombie
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.01)
    try:
        assert not pid_alive(proc.pid)
    finally:
        proc.wait()


def test_full_disk_while_taking_the_lock_leaves_no_lock_file(
    mount_tmpfs: Callable[[int], Path], fill_disk: Callable[[Path], list[Path]]
) -> None:
    disk = mount_tmpfs(64)
    fill_disk(disk)
    with pytest.raises(StoreError, match="full"):
        JournalLock(disk / "journal.lock").acquire(timeout_s=1)
    assert not (disk / "journal.lock").exists()


def test_read_only_filesystem_is_a_clear_store_error(mount_tmpfs: Callable[[int], Path]) -> None:
    disk = mount_tmpfs(64)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    with pytest.raises(StoreError, match="read-only"):
        JournalLock(disk / "journal.lock").acquire(timeout_s=1)
