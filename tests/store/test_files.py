"""OS errors in words, and atomic writes."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest

from sweepherd.errors import StoreError
from sweepherd.store._files import store_error, write_atomic


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "is full"),
        (errno.EDQUOT, "is full"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "Permission denied"),
        (errno.EIO, "errno 5"),
    ],
)
def test_store_error_says_what_happened_and_what_to_do(code: int, words: str) -> None:
    err = store_error("writing", Path("/s/journal.jsonl"), OSError(code, "x"))
    assert isinstance(err, StoreError)
    message = str(err)
    assert words in message and "/s/journal.jsonl" in message and "\n" not in message


def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    write_atomic(path, b"old")
    write_atomic(path, b"new", durable=False)
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]


def test_write_atomic_on_a_full_disk_keeps_the_old_file_and_no_temporary(
    mount_tmpfs: Callable[[int], Path], fill_disk: Callable[[Path], list[Path]]
) -> None:
    disk = mount_tmpfs(64)
    path = disk / "agent.json"
    write_atomic(path, b"old")
    fill_disk(disk)
    with pytest.raises(StoreError, match="full"):
        write_atomic(path, b"x" * 10_000)
    assert path.read_bytes() == b"old"
    assert not [p for p in disk.iterdir() if p.name.endswith(".tmp")]
