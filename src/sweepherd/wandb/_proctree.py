"""The processes below a trial and the files they hold open, read from Linux's ``/proc``.

Elsewhere (no ``/proc``) every answer is empty: the callers then fall back to what they did
without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

_PROC = Path("/proc")


def child_map() -> dict[int, list[int]]:
    """Every live process's children, by parent pid (one reading of ``/proc``)."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents():
        children.setdefault(parent, []).append(child)
    return children


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``."""
    return below(pid, child_map())


def below(pid: int, children: dict[int, list[int]]) -> list[int]:
    """Every process below ``pid`` (children, their children...) in a child map."""
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.append(child)
                todo.append(child)
    return out


def _parents() -> Iterable[tuple[int, int]]:
    """``(pid, parent pid)`` of every process ``/proc`` shows."""
    try:
        entries = list(_PROC.iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            yield int(entry.name), int(fields[1])


def open_files(pid: int) -> list[str]:
    """What the file descriptors of ``pid`` point to (none if it is gone or not ours)."""
    fd_dir = _PROC / str(pid) / "fd"
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return []
    targets = []
    for fd in fds:
        try:
            targets.append(str(fd.readlink()))
        except OSError:
            continue
    return targets
