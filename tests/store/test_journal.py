"""The journal file: one-write appends, torn and garbage lines, incremental reads, full disks."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sweepherd.errors import JournalUndoError, StoreError
from sweepherd.store import _journal as journal_module
from sweepherd.store._journal import Journal, JournalReader, encode_event


def _journal(tmp_path: Path, *events: dict[str, object]) -> Journal:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.create(b"".join(encode_event(e) for e in events) or encode_event({"e": "created"}))
    return journal


def test_encode_event_is_one_compact_line() -> None:
    line = encode_event({"e": "claim", "t": 1.5, "params": {"name": "ü"}})
    assert line == '{"e":"claim","t":1.5,"params":{"name":"ü"}}\n'.encode()


def test_create_refuses_an_existing_journal(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    with pytest.raises(StoreError, match=r"journal\.jsonl"):
        journal.create(b"{}\n")


def test_reader_returns_only_new_complete_lines(tmp_path: Path) -> None:
    journal = _journal(tmp_path, {"e": "a", "t": 1})
    reader = JournalReader(journal.path)
    assert [e["e"] for e in reader.read().events] == ["a"]
    assert reader.read().events == []
    journal.append(encode_event({"e": "b", "t": 2}) + encode_event({"e": "c", "t": 3}))
    assert [e["e"] for e in reader.read().events] == ["b", "c"]
    assert reader.offset == journal.path.stat().st_size


def test_a_line_being_written_is_left_until_complete(tmp_path: Path) -> None:
    journal = _journal(tmp_path, {"e": "a", "t": 1})
    reader = JournalReader(journal.path)
    reader.read()
    with journal.path.open("ab") as f:
        f.write(b'{"e":"b","t"')
    result = reader.read()
    assert result.events == [] and result.n_skipped == 0
    with journal.path.open("ab") as f:
        f.write(b":2}\n")
    assert [e["e"] for e in reader.read().events] == ["b"]


def test_torn_last_line_is_terminated_by_the_next_append(tmp_path: Path) -> None:
    journal = _journal(tmp_path, {"e": "a", "t": 1})
    with journal.path.open("ab") as f:  # a writer crashed in the middle of a line
        f.write(b'{"e":"claim","run":"x-00')
    reader = JournalReader(journal.path)
    assert [e["e"] for e in reader.read().events] == ["a"]  # the torn tail is not fatal
    journal.append(encode_event({"e": "b", "t": 2}))
    lines = journal.path.read_bytes().split(b"\n")
    assert lines[1] == b'{"e":"claim","run":"x-00'  # kept on its own line, not merged
    assert json.loads(lines[2]) == {"e": "b", "t": 2}
    result = reader.read()
    assert [e["e"] for e in result.events] == ["b"]
    assert result.n_skipped == 1


def test_garbage_lines_anywhere_are_skipped_and_counted(tmp_path: Path) -> None:
    journal = _journal(tmp_path, {"e": "a", "t": 1})
    with journal.path.open("ab") as f:
        f.write(b'not json\n[1, 2]\n{"no_e": 1}\n\xff\xfe\n\n{"e": 5}\n')
    journal.append(encode_event({"e": "b", "t": 2}))
    result = JournalReader(journal.path).read()
    assert [e["e"] for e in result.events] == ["a", "b"]
    assert result.n_skipped == 5  # the empty line is not counted


def test_a_line_holding_two_objects_is_garbage_not_two_events(tmp_path: Path) -> None:
    journal = _journal(tmp_path, {"e": "a", "t": 1})
    with journal.path.open("ab") as f:
        f.write(b'{"e":"x","t":2},{"e":"y","t":3}\n')
    journal.append(encode_event({"e": "b", "t": 4}))
    result = JournalReader(journal.path).read()
    assert [e["e"] for e in result.events] == ["a", "b"]
    assert result.n_skipped == 1


def test_reader_starts_over_when_the_journal_changed_beneath_it(tmp_path: Path) -> None:
    journal = _journal(tmp_path, {"e": "a", "t": 1}, {"e": "b", "t": 2})
    reader = JournalReader(journal.path)
    reader.read()
    # The file is rewritten (as after a failed append that a reader had partly seen).
    journal.path.write_bytes(encode_event({"e": "a", "t": 1}) + encode_event({"e": "z", "t": 9}))
    result = reader.read()
    assert result.reset
    assert [e["e"] for e in result.events] == ["a", "z"]


def test_append_to_a_missing_journal_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"missing\.jsonl"):
        Journal(tmp_path / "missing.jsonl").append(b"{}\n")


def test_full_disk_truncates_back_and_the_retry_succeeds(
    mount_tmpfs: Callable[[int], Path], fill_disk: Callable[[Path], list[Path]]
) -> None:
    disk = mount_tmpfs(64)
    journal = _journal(disk, {"e": "a", "t": 1})
    before = journal.path.read_bytes()
    fillers = fill_disk(disk)
    big = encode_event({"e": "big", "t": 2, "pad": "x" * 10_000})  # needs new pages
    with pytest.raises(StoreError, match=r"disk .* is full.*retry"):
        journal.append(big)
    assert journal.path.read_bytes() == before  # nothing half-written stays
    for path in fillers:
        path.unlink()
    journal.append(big)
    result = JournalReader(journal.path).read()
    assert [e["e"] for e in result.events] == ["a", "big"]
    assert result.n_skipped == 0


def test_short_write_on_a_nearly_full_disk_is_undone(
    mount_tmpfs: Callable[[int], Path], fill_disk: Callable[[Path], list[Path]]
) -> None:
    disk = mount_tmpfs(64)
    journal = _journal(disk, {"e": "a", "t": 1})
    before = journal.path.read_bytes()
    fillers = fill_disk(disk)
    fillers.pop().unlink()  # one free page: part of the write fits, the rest does not
    lines = b"".join(encode_event({"e": "x", "t": i, "pad": "y" * 500}) for i in range(40))
    with pytest.raises(StoreError, match="full"):
        journal.append(lines)
    assert journal.path.read_bytes() == before


def test_an_append_whose_undo_fails_says_its_lines_may_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fdatasync failing and then ftruncate failing cannot be provoked on a local filesystem;
    both are injected at the os calls the journal makes. The error must not claim that nothing
    stayed."""
    journal = _journal(tmp_path, {"e": "a", "t": 1})

    def fails(*_: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(journal_module, "_datasync", fails)
    monkeypatch.setattr(journal_module.os, "ftruncate", fails)
    with pytest.raises(JournalUndoError, match="undoing it failed too") as caught:
        journal.append(encode_event({"e": "b", "t": 2}))
    assert "nothing was half-written" not in str(caught.value)
    monkeypatch.setattr(journal_module.os, "ftruncate", os.ftruncate)
    assert [e["e"] for e in JournalReader(journal.path).read().events] == ["a", "b"]
