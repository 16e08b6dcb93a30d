"""The journal lock: an ``O_CREAT|O_EXCL`` lock file that works where ``fcntl`` locks do not.

On NFS, Lustre and GPFS ``fcntl``/``flock`` locks are unreliable, but creating a file with
``O_CREAT|O_EXCL`` is atomic (NFSv3 and later implement exclusive create on the server). The
lock is the file ``journal.lock``; whoever creates it holds it. It contains its owner as one
JSON object: host, kernel boot id, pid, agent id, a random token and the time it was taken.

Waiting: a waiter retries the create after sleeps that grow exponentially (from ``min_wait_s``,
1 ms, up to ``max_wait_s``, 20 ms) with +-50% jitter, so hundreds of waiters do not spin the CPU
that the holder needs. :meth:`JournalLock.acquire` takes the sleep as a function: the store
passes one that returns as soon as the lock file is removed (inotify, see ``_wake.py``), so the
lock is handed over at once while waiters sleep longer.

Staleness: a lock is stale when its owner is on this host (same host name and boot id) and its
pid is gone (or a zombie), or when it was taken more than ``stale_s`` seconds ago (the holders
of this lock keep it for milliseconds), or when it is empty or unreadable and its file is older
than ``stale_s`` (its creator died between creating and writing it). Waiters check this every
``stale_check_s``.

Breaking a stale lock safely: a breaker first takes a second lock, ``journal.lock.break``
(again by exclusive create), so breakers are serialised; it then reads the lock again and
removes it only if it is still the same file (same token) and still stale. So two waiters that
both saw the same dead owner cannot remove a fresh lock that the first of them (or anyone)
took since. A breaker that dies holding ``.break`` leaves it behind; it is removed once older
than ``stale_s``.

The remaining window, documented rather than hidden: an owner judged stale *by age* is alive
but was paused for more than ``stale_s`` (a stopped process, a hung NFS server). If it wakes
up exactly between a breaker's re-read and its removal, releases its lock, and a third process
takes the lock in those microseconds, the breaker removes the third process's fresh lock. And
a holder that was paused past ``stale_s`` may find its lock broken. Both cases are caught by
:meth:`JournalLock.verify`, which every writer calls just before appending: it reads the lock
and raises :class:`~sweepherd.errors.LockTimeoutError` (nothing written; retry) if the token is
not its own. What is left is a pause of more than ``stale_s`` that falls *between* that
verification and the end of the append (a few hundred microseconds), while another process
takes the broken lock and appends too; two appends can then interleave. Keep ``stale_s`` far
above any pause a healthy holder can suffer (default 30 s) and clocks across hosts within a
few seconds of each other (NTP), since the age is judged with the waiter's clock.

Same host, same pid namespace is assumed for the pid check: containers that share a host name
and a kernel but not a pid namespace must use distinct host names (the default in Docker).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from sweepherd.errors import LockTimeoutError, StoreError
from sweepherd.store._files import store_error

#: A lock older than this many seconds is stale (its holders keep it for milliseconds).
DEFAULT_STALE_S = 30.0


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


HOST = socket.gethostname()
BOOT_ID = _boot_id()


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this host and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): trust kill()
    fields = stat.rsplit(")", 1)[-1].split()
    return not (fields and fields[0] in ("Z", "X"))


@dataclass(frozen=True)
class LockOwner:
    """Who holds the lock, as written in the lock file."""

    host: str
    boot: str
    pid: int
    agent: str | None
    token: str
    t: float  # unix time the lock was taken

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LockOwner | None:
        """The owner in ``data``, or None if it is empty, torn or not an owner record."""
        try:
            raw = json.loads(data)
            return cls(
                host=str(raw["host"]),
                boot=str(raw.get("boot", "")),
                pid=int(raw["pid"]),
                agent=None if raw.get("agent") is None else str(raw["agent"]),
                token=str(raw["token"]),
                t=float(raw["t"]),
            )
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self, now: float) -> str:
        agent = f", agent {self.agent}" if self.agent else ""
        return f"pid {self.pid} on {self.host}{agent}, taken {now - self.t:.1f} s ago"


class JournalLock:
    """An exclusive, ``fcntl``-free lock on a sweep's journal. Not re-entrant.

    One instance can be used by one thread at a time; threads and processes that want the lock
    at the same time use their own instances (they share only the lock file).
    """

    def __init__(
        self,
        path: Path,
        *,
        agent: str | None = None,
        stale_s: float = DEFAULT_STALE_S,
        min_wait_s: float = 0.001,
        max_wait_s: float = 0.02,
        stale_check_s: float = 0.25,
    ) -> None:
        self.path = path
        self.agent = agent
        self.stale_s = stale_s
        self.min_wait_s = min_wait_s
        self.max_wait_s = max_wait_s
        self.stale_check_s = stale_check_s
        self._path_str = os.fspath(path)
        self._break_path = path.with_name(path.name + ".break")
        self._owner: LockOwner | None = None
        self._token: str | None = None
        #: How many stale locks this instance broke (for tests and diagnostics).
        self.n_broken = 0

    @property
    def held(self) -> bool:
        """True while this instance holds the lock (as far as it knows; see :meth:`verify`)."""
        return self._owner is not None

    @property
    def owner(self) -> LockOwner | None:
        """This instance's owner record while it holds the lock."""
        return self._owner

    def acquire(self, timeout_s: float, *, wait: Callable[[float], None] | None = None) -> None:
        """Take the lock, waiting at most ``timeout_s``; :class:`LockTimeoutError` if not.

        ``wait(seconds)`` sleeps between attempts (default :func:`time.sleep`); a waiter that
        returns early when the lock file is removed hands the lock over faster.
        """
        start = time.monotonic()
        deadline = start + timeout_s
        delay = self.min_wait_s
        next_check = start + self.stale_check_s
        sleep = wait or time.sleep
        while True:
            if self.try_acquire():
                return
            now = time.monotonic()
            if now >= next_check:
                next_check = now + self.stale_check_s
                if self.break_if_stale():
                    continue  # gone or broken: try again at once
            if now >= deadline:
                raise self.timeout_error(timeout_s)
            sleep(min(delay * random.uniform(0.5, 1.5), deadline - now))
            delay = min(delay * 2.0, self.max_wait_s)

    def try_acquire(self) -> bool:
        """Take the lock if it is free right now; never waits."""
        if self._owner is not None:
            raise StoreError(f"{self.path} is already held by this lock object (not re-entrant).")
        return self._try_create()

    def break_if_stale(self) -> bool:
        """Break the lock if it is stale (see the module doc); True if it is now free."""
        seen = self._read()
        return seen is None or (self._is_stale(*seen) and self._break(*seen))

    def holder_token(self) -> str | None:
        """The token of whoever holds the lock now (``""`` while its file is being written);
        None when it is free. For watching a hold end without taking the lock."""
        seen = self._read()
        if seen is None:
            return None
        return "" if seen[0] is None else seen[0].token

    def verify(self) -> None:
        """Raise :class:`LockTimeoutError` unless the lock file still holds this owner's token."""
        if self._owner is None:
            raise StoreError(f"{self.path} is not held by this process.")
        seen = self._read()
        if seen is None or seen[0] is None or seen[0].token != self._owner.token:
            raise LockTimeoutError(
                f"The journal lock {self.path} was taken over while this process held it "
                f"(it held it longer than the {self.stale_s:g} s stale time, or the lock file "
                "was removed by hand); nothing was written.",
                hint="Retry; if this repeats, look for a stalled filesystem.",
            )

    def release(self, *, verified: bool = False) -> None:
        """Remove the lock file if it is still ours. Safe to call when not held.

        ``verified``: :meth:`verify` succeeded an instant ago, so the file need not be read again.
        """
        owner, self._owner = self._owner, None
        if owner is None:
            return
        if not verified:
            seen = self._read()
            if seen is None or seen[0] is None or seen[0].token != owner.token:
                return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> JournalLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- internals -----------------------------------------------------------------------------

    def _try_create(self) -> bool:
        # One token per attempt series: a failed exclusive create costs one syscall, no more.
        if self._token is None:
            self._token = secrets.token_hex(8)
        try:
            fd = os.open(self._path_str, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as err:
            raise store_error("creating the lock file", self.path, err) from err
        owner = LockOwner(
            host=HOST,
            boot=BOOT_ID,
            pid=os.getpid(),
            agent=self.agent,
            token=self._token,
            t=time.time(),
        )
        self._token = None  # the next acquisition gets a new token
        data = owner.to_bytes()
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, "short write")
        except OSError as err:
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise store_error("writing the lock file", self.path, err) from err
        os.close(fd)
        self._owner = owner
        return True

    def _read(self) -> tuple[LockOwner | None, os.stat_result] | None:
        """The current lock file's owner (None if torn) and stat, or None if there is none."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise store_error("reading the lock file", self.path, err) from err
        try:
            st = os.fstat(fd)
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        return LockOwner.from_bytes(data), st

    def _is_stale(self, owner: LockOwner | None, st: os.stat_result) -> bool:
        now = time.time()
        if owner is None:  # empty or torn: its creator is writing it now, or died doing so
            return now - st.st_mtime > self.stale_s
        if owner.host == HOST and owner.boot == BOOT_ID and not pid_alive(owner.pid):
            return True
        return now - owner.t > self.stale_s

    def _break(self, owner: LockOwner | None, st: os.stat_result) -> bool:
        """Remove the stale lock seen as (owner, st) unless it changed since. True if removed."""
        try:
            fd = os.open(self._break_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            # Another waiter is breaking it right now (it takes microseconds), or died doing so.
            with contextlib.suppress(OSError):
                if time.time() - self._break_path.stat().st_mtime > self.stale_s:
                    self._break_path.unlink()
            return False
        except OSError as err:
            raise store_error("creating the lock-break file", self._break_path, err) from err
        os.close(fd)
        try:
            seen = self._read()
            if seen is None:
                return True
            cur_owner, cur_st = seen
            if owner is not None and cur_owner is not None:
                same = cur_owner.token == owner.token
            else:
                same = (cur_st.st_ino, cur_st.st_mtime_ns, cur_st.st_size) == (
                    st.st_ino,
                    st.st_mtime_ns,
                    st.st_size,
                )
            if not (same and self._is_stale(cur_owner, cur_st)):
                return False
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.n_broken += 1
            return True
        finally:
            with contextlib.suppress(OSError):
                self._break_path.unlink()

    def timeout_error(self, timeout_s: float) -> LockTimeoutError:
        """The error for a wait of ``timeout_s`` that did not get the lock, naming its holder."""
        seen = self._read()
        holder = "someone"
        if seen is not None and seen[0] is not None:
            holder = seen[0].describe(time.time())
        return LockTimeoutError(
            f"Timed out after {timeout_s:g} s waiting for the journal lock {self.path}, held by "
            f"{holder}.",
            hint=(
                f"A dead holder's lock is broken automatically after {self.stale_s:g} s; "
                "retry, or remove the lock file by hand if no agent of this sweep is running."
            ),
        )
