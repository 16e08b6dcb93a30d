"""ChangeWaiter: woken by a journal append or a removed lock file, else by its timeout."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sweepherd.store import _wake
from sweepherd.store._wake import ChangeWaiter


def _later(seconds: float, action: object) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        action()  # type: ignore[operator]

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _append(journal: Path) -> None:
    with journal.open("ab") as f:
        f.write(b"x\n")


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    journal = tmp_path / "journal.jsonl"
    journal.write_bytes(b"")
    return tmp_path, journal


def _waited(waiter: ChangeWaiter, timeout_s: float) -> float:
    start = time.monotonic()
    waiter.wait(timeout_s)
    return time.monotonic() - start


def test_wakes_when_the_journal_is_appended(files: tuple[Path, Path]) -> None:
    directory, journal = files
    with ChangeWaiter(directory, journal) as waiter:
        assert waiter.uses_inotify  # Linux: the tests run where sweeps run
        thread = _later(0.1, lambda: _append(journal))
        assert _waited(waiter, 5.0) < 2.0
        thread.join()


def test_wakes_when_the_lock_file_is_removed(files: tuple[Path, Path]) -> None:
    directory, journal = files
    lock = directory / "journal.lock"
    lock.write_bytes(b"{}")
    with ChangeWaiter(directory, journal) as waiter:
        thread = _later(0.1, lock.unlink)
        assert _waited(waiter, 5.0) < 2.0
        thread.join()


def test_a_change_before_the_wait_is_not_missed(files: tuple[Path, Path]) -> None:
    directory, journal = files
    with ChangeWaiter(directory, journal) as waiter:
        with journal.open("ab") as f:
            f.write(b"x\n")
        assert _waited(waiter, 5.0) < 1.0


def test_other_files_do_not_wake_it(files: tuple[Path, Path]) -> None:
    directory, journal = files
    with ChangeWaiter(directory, journal) as waiter:
        (directory / "journal.lock").write_bytes(b"{}")  # a lock being taken
        assert _waited(waiter, 0.2) >= 0.19


def test_falls_back_to_sleeping_without_inotify(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_wake, "_LIBC", None)
    directory, journal = files
    with ChangeWaiter(directory, journal) as waiter:
        assert not waiter.uses_inotify
        assert 0.1 <= _waited(waiter, 0.1) < 1.0
