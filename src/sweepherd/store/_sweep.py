"""The sweep directory: creating, opening and listing sweeps, and the :class:`SweepStore` handle.

Layout of ``<root>/<sweep_id>/`` (see docs/architecture.md)::

    sweep.yaml      the config as the user gave it (written once)
    meta.json       {"id", "name", "created_at", "backend", "seed", "version", ...}
    journal.jsonl   append-only events (see sweepherd.store._fold)
    journal.lock    exists only while a writer holds the lock
    agents/         <agent_id>.json heartbeats
    requests/       claim requests waiting for the lock holder to serve them
    runs/<run_id>/  one folder per run, written only by the agent that holds the run
    slurm/          sbatch scripts and Slurm output

``meta.json`` is written last when a sweep is created, so a directory without it is an
interrupted creation, never a half-made sweep that agents would use.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
import secrets
import shutil
import string
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sweepherd.errors import JournalUndoError, StoreError
from sweepherd.store._files import store_error, write_atomic
from sweepherd.store._fold import FoldState, Snapshot, run_from_claim
from sweepherd.store._heartbeat import (
    Heartbeat,
    check_agent_id,
    read_heartbeat,
    read_heartbeats,
    write_heartbeat,
)
from sweepherd.store._journal import Journal, JournalReader, encode_event, parse_lines
from sweepherd.store._lock import DEFAULT_STALE_S, JournalLock
from sweepherd.store._requests import ClaimAnswer, ClaimRequest, Mailbox
from sweepherd.store._transaction import Transaction
from sweepherd.store._wake import ChangeWaiter

if TYPE_CHECKING:
    from sweepherd.config import SweepConfig

#: Version of the sweep directory format, written to meta.json.
FORMAT_VERSION = 1
#: Default seconds a transaction waits for the journal lock (longer than the stale time, so a
#: dead holder's lock is broken before a waiter gives up).
DEFAULT_TIMEOUT_S = 60.0

#: Waits between lock attempts when inotify wakes the waiter on every change (see _wake.py).
_EVENT_MIN_WAIT_S = 0.005
_EVENT_MAX_WAIT_S = 0.05

_ID_ALPHABET = string.ascii_lowercase + string.digits
#: libyaml's safe loader when PyYAML was built with it: a 10,000-point grid loads in
#: milliseconds instead of seconds, which every agent pays at start.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SWEEP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def new_sweep_id() -> str:
    """A random 8-character id of ``[a-z0-9]``, like W&B's."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


class SweepStore:
    """A handle on one sweep directory. Cheap to make; safe to share between threads.

    Every process (agent, status, watch) opens its own handle; they coordinate only through
    the files. Writers go through :meth:`transaction`; readers call :meth:`snapshot`, which
    reads only what was appended since the previous call.
    """

    def __init__(self, path: Path, meta: Mapping[str, Any]) -> None:
        self.path = path
        self.meta: Mapping[str, Any] = meta
        self.sweep_id: str = str(meta["id"])
        #: Seconds after which another process breaks a lock this store's writers hold.
        self.lock_stale_s: float = DEFAULT_STALE_S
        self.journal_path = path / "journal.jsonl"
        self._journal_str = os.fspath(self.journal_path)
        self.lock_path = path / "journal.lock"
        self.agents_dir = path / "agents"
        self.runs_dir = path / "runs"
        self.slurm_dir = path / "slurm"
        self._mailbox = Mailbox(path / "requests")
        self._journal = Journal(self.journal_path)
        self._reader = JournalReader(self.journal_path)
        self._state = FoldState()
        self._mutex = threading.Lock()
        self._hb_cache: tuple[float, dict[str, Heartbeat]] | None = None
        self._waiting: dict[str, list[dict[str, Any]]] = {}  # request token -> its events
        self._n_resets = 0  # times the journal changed beneath the reader (an undone append)
        self._unfolded: list[bytes] = []  # journal lines read but not folded yet

    def __repr__(self) -> str:
        return f"SweepStore({str(self.path)!r})"

    @property
    def seed(self) -> int:
        """The sweep's random seed (from meta.json)."""
        return int(self.meta.get("seed", 0))

    @property
    def wandb_project(self) -> str | None:
        """The W&B project of the sweep's runs: the config's, else the one chosen when the
        sweep was made (``meta.json``'s ``wandb_project``), as ``wandb sweep`` chooses it."""
        project = self.config.project or self.meta.get("wandb_project")
        return str(project) if project else None

    @functools.cached_property
    def config(self) -> SweepConfig:
        """The sweep's configuration, parsed from ``sweep.yaml``."""
        from sweepherd.config import parse_config

        path = self.path / "sweep.yaml"
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
        except OSError as err:
            raise store_error("reading", path, err) from err
        except yaml.YAMLError as err:
            raise StoreError(f"{path} is not valid YAML: {err}".replace("\n", " ")) from err
        if not isinstance(raw, Mapping):
            raise StoreError(f"{path} does not hold a sweep configuration mapping.")
        return parse_config(raw)

    # -- the journal ---------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The sweep's state now. Reads only the journal lines appended since the last call."""
        with self._mutex:
            self._refresh()
            return self._state.snapshot()

    @contextlib.contextmanager
    def transaction(
        self, timeout_s: float = DEFAULT_TIMEOUT_S, *, agent: str | None = None
    ) -> Iterator[Transaction]:
        """Hold the journal lock; yield a :class:`Transaction` on a fresh snapshot.

        The transaction's events are appended in one write + fsync when the block exits
        normally; nothing is written if it raises. Raises :class:`LockTimeoutError` when the
        lock cannot be had within ``timeout_s`` (or was taken over; nothing written), and
        :class:`StoreError` when the append fails (disk full): the journal is left as it was.
        """
        lock = JournalLock(self.lock_path, agent=agent, stale_s=self.lock_stale_s)
        if not lock.try_acquire():
            with ChangeWaiter(self.path, self.journal_path) as waiter:
                if waiter.uses_inotify:
                    lock.min_wait_s, lock.max_wait_s = _EVENT_MIN_WAIT_S, _EVENT_MAX_WAIT_S
                lock.acquire(timeout_s, wait=waiter.wait)
        verified = False
        try:
            with self._mutex:
                self._refresh()
                state = self._state.copy()
            txn = Transaction(self.sweep_id, state)
            yield txn
            if txn.n_pending:
                lock.verify()
                verified = True
                self._journal.append(txn.encoded())
        finally:
            lock.release(verified=verified)

    def request_claim(
        self,
        request: ClaimRequest,
        serve: Callable[[Transaction, list[ClaimRequest]], None],
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> ClaimAnswer:
        """Post a claim request and return its answer: the run it got, or why none.

        While it waits, the caller tries the lock; when it gets it, it serves every request
        posted so far (its own included) by calling ``serve(txn, requests)``, which must answer
        each request with exactly one ``claim_new``, ``claim_again`` or ``reply`` carrying
        ``req=request.token`` (results it reports first, also tagged). All answers go out in
        one append. See ``sweepherd.store._requests`` for why this is safe.

        Raises :class:`LockTimeoutError` when no answer came within ``timeout_s`` (the request
        is then withdrawn, so it will never be answered), and whatever ``serve`` or the append
        raised when this process was the one serving (the other requests are put back).
        """
        token = request.token
        with self._mutex:
            self._waiting[token] = []
        lock = JournalLock(self.lock_path, agent=request.agent, stale_s=self.lock_stale_s)
        start = time.monotonic()
        deadline = start + timeout_s
        next_check = start + lock.stale_check_s
        extended = False
        waiter: ChangeWaiter | None = None
        try:
            self._mailbox.post(request)
            waiter = ChangeWaiter(self.path, self.journal_path)
            # Woken by changes, a waiter's timeouts only catch what inotify cannot see (other
            # hosts of a network filesystem): they can be long, and then cost no CPU.
            delay, max_delay = (
                (_EVENT_MIN_WAIT_S, _EVENT_MAX_WAIT_S)
                if waiter.uses_inotify
                else (lock.min_wait_s, lock.max_wait_s)
            )
            while True:
                events = self._answer(token)
                if events is not None:
                    events = self._settled(token, lock, events)
                    if events is not None:
                        return self._claim_answer(events)
                if lock.try_acquire():
                    self._serve_locked(lock, request, serve)
                    continue
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + lock.stale_check_s
                    if lock.break_if_stale():
                        continue
                if now >= deadline:
                    if self._mailbox.withdraw(token) or extended:
                        raise lock.timeout_error(timeout_s)
                    # A holder took the request: its answer comes before it releases the lock.
                    deadline, extended = now + lock.stale_s, True
                waiter.wait(min(delay * random.uniform(0.5, 1.5), max(deadline - now, 0.0)))
                delay = min(delay * 2.0, max_delay)
        except BaseException:
            # Whatever went wrong, do not leave the request to be answered with a run that no
            # one will start. (If a holder took it an instant ago, its run will be found lost
            # only if this agent stops; documented in _requests.py.)
            self._mailbox.withdraw(token)
            raise
        finally:
            if waiter is not None:
                waiter.close()
            with self._mutex:
                self._waiting.pop(token, None)

    def _settled(
        self, token: str, lock: JournalLock, events: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        """Request ``token``'s answer ``events`` once the hold that wrote them has ended.

        An answer can be read as soon as it is written, before its holder's fsync; if that
        fails (a full disk: NFS reports it there), the holder truncates the answer away before
        it releases the lock, and the request is served again. So an answer counts only once
        the lock is no longer held by the hold named in its ``by`` field, and only if a read
        made after that finds the journal unchanged beneath it. None: not yet (or undone).
        """
        by = _answering(events).get("by")
        if by is not None and lock.holder_token() == by:
            return None  # its holder is still writing (fsync): wait for the lock to change
        with self._mutex:
            resets = self._n_resets
            self._read_new()  # even if the size looks unchanged: an undone append shows here
            if self._n_resets != resets:
                return None
            return list(self._waiting.get(token, []))

    def _answer(self, token: str) -> list[dict[str, Any]] | None:
        """The events answering request ``token`` if its answer has been read; reads if needed.

        Waiting is cheap: new bytes are searched for the token and left unparsed until someone
        needs the folded state (a snapshot, or this process serving as the holder).
        """
        try:
            grown = os.stat(self._journal_str).st_size != self._reader.offset  # noqa: PTH116 (hot: no Path)
        except OSError:
            grown = True
        with self._mutex:
            if grown:
                self._read_new()
            events = self._waiting.get(token, [])
            if _answering(events):
                return list(events)
        return None

    def _claim_answer(self, events: list[dict[str, Any]]) -> ClaimAnswer:
        answer = _answering(events)
        if answer["e"] == "reply":
            return ClaimAnswer(events, None, str(answer.get("reason")))
        if int(answer["attempt"]) == 1:
            return ClaimAnswer(events, run_from_claim(answer), None)
        with self._mutex:  # a resumed run: its params and history are in the folded state
            self._refresh()
            return ClaimAnswer(events, self._state.runs[str(answer["run"])], None)

    def _serve_locked(
        self,
        lock: JournalLock,
        own: ClaimRequest,
        serve: Callable[[Transaction, list[ClaimRequest]], None],
    ) -> None:
        """Holding ``lock``: serve every posted request in one append, then release it."""
        taken: list[ClaimRequest] = []
        verified = False
        try:
            with self._mutex:
                self._refresh()
                state = self._state.copy()
                own_answered = bool(_answering(self._waiting[own.token]))
            if own_answered:
                return
            taken = self._mailbox.take_all()
            requests = list(taken)
            if all(r.token != own.token for r in taken):
                # Taken by a holder that died or lost the lock before answering: serve it now.
                requests.append(own)
            txn = Transaction(self.sweep_id, state)
            txn.holder = lock.owner.token if lock.owner else None
            serve(txn, requests)
            missing = [r.token for r in requests if r.token not in txn.answered]
            if missing:
                raise StoreError(f"Internal error: claim requests {missing} were not answered.")
            lock.verify()
            verified = True
            self._journal.append(txn.encoded())
        except JournalUndoError:
            # The answers may stand in the journal: serving those requests again would give
            # their agents runs they never hear of. Their owners find the answers, or time out
            # and ask again.
            raise
        except BaseException:
            # Still holding the lock, so no one can take these meanwhile: the caller gets the
            # error and its request is gone for good; the others wait for the next holder.
            self._mailbox.withdraw(own.token)
            self._mailbox.put_back([r for r in taken if r.token != own.token])
            raise
        finally:
            lock.release(verified=verified)

    def _refresh(self) -> None:
        """Read what was appended and fold it into the state. Hold ``self._mutex``."""
        self._read_new()
        for chunk in self._unfolded:
            events, n_skipped = parse_lines(chunk)
            for event in events:
                self._state.apply(event)
            self._state.n_skipped += n_skipped
        self._unfolded.clear()

    def _read_new(self) -> None:
        """Read what was appended, leaving it unfolded; route the answers waited for."""
        chunk, reset = self._reader.read_raw()
        if reset:
            self._state = FoldState()
            self._unfolded.clear()
            self._n_resets += 1
            for found in self._waiting.values():  # matched again from the re-read start
                found.clear()
        if not chunk:
            return
        self._unfolded.append(chunk)
        for token, found in self._waiting.items():
            needle = token.encode()
            if needle in chunk:
                lines = b"\n".join(line for line in chunk.split(b"\n") if needle in line)
                found.extend(e for e in parse_lines(lines)[0] if e.get("req") == token)

    # -- heartbeats ----------------------------------------------------------------------------

    def heartbeat(self, agent_id: str, *, state: str = "running", **info: Any) -> None:
        """Write ``agents/<agent_id>.json`` atomically: the agent is alive (or ``exited``)."""
        write_heartbeat(self.agents_dir, agent_id, state, info)

    def heartbeats(self, max_age_s: float = 0.0) -> dict[str, Heartbeat]:
        """Every agent's last heartbeat. With ``max_age_s``, reuse a reading that recent."""
        now = time.monotonic()
        cached = self._hb_cache
        if max_age_s > 0 and cached is not None and now - cached[0] <= max_age_s:
            return dict(cached[1])
        beats = read_heartbeats(self.agents_dir)
        self._hb_cache = (now, beats)
        return dict(beats)

    def read_heartbeat(self, agent_id: str) -> Heartbeat | None:
        """One agent's heartbeat, read now; None if it has none."""
        return read_heartbeat(self.agents_dir / f"{check_agent_id(agent_id)}.json")

    # -- run folders ---------------------------------------------------------------------------

    def run_path(self, run_id: str) -> Path:
        """``runs/<run_id>/``, which may not exist yet (for reading; see :meth:`run_dir`)."""
        if not _RUN_ID.fullmatch(run_id):
            raise StoreError(f"Invalid run id {run_id!r}.")
        return self.runs_dir / run_id

    def run_dir(self, run_id: str) -> Path:
        """``runs/<run_id>/``, created if missing."""
        path = self.run_path(run_id)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise store_error("creating", path, err) from err
        return path


def _answering(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The event that answers a claim request (its last ``claim`` or ``reply``); {} if none."""
    return next((e for e in reversed(events) if e["e"] in ("claim", "reply")), {})


# -- creating, opening, listing ----------------------------------------------------------------


def create_sweep(
    root: str | Path,
    config: SweepConfig,
    *,
    sweep_id: str | None = None,
    backend: str = "local",
    extra_meta: Mapping[str, Any] | None = None,
) -> SweepStore:
    """Create a new sweep directory under ``root`` and return its store.

    ``sweep_id`` defaults to a random 8-character id; an existing sweep is never overwritten.
    ``extra_meta`` adds keys to meta.json (the standard keys win on a clash).
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise store_error("creating the sweeps folder", root, err) from err
    path = _reserve(root, sweep_id)
    sid = path.name
    try:
        yaml_text = yaml.safe_dump(_plain(config.raw), sort_keys=False, allow_unicode=True)
        write_atomic(path / "sweep.yaml", yaml_text.encode())
        for sub in ("agents", "requests", "runs", "slurm"):
            (path / sub).mkdir()
        now = round(time.time(), 6)
        created = encode_event({"e": "created", "t": now, "sweep": sid})
        Journal(path / "journal.jsonl").create(created)
        meta: dict[str, Any] = dict(extra_meta or {})
        meta.update(
            id=sid,
            name=config.name,
            created_at=now,
            backend=backend,
            seed=secrets.randbelow(2**31),
            version=FORMAT_VERSION,
        )
        write_atomic(path / "meta.json", json.dumps(meta, indent=1).encode() + b"\n")
    except OSError as err:
        shutil.rmtree(path, ignore_errors=True)
        raise store_error("creating", path, err) from err
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return SweepStore(path, meta)


def _reserve(root: Path, sweep_id: str | None) -> Path:
    """Create the sweep's empty directory (exclusively) and return it."""
    if sweep_id is not None and not _SWEEP_ID.fullmatch(sweep_id):
        raise StoreError(
            f"Invalid sweep id {sweep_id!r}: use 1-64 letters, digits and _ . - "
            "(starting with a letter or digit)."
        )
    for _ in range(100):
        path = root / (sweep_id or new_sweep_id())
        try:
            path.mkdir()
            return path
        except FileExistsError:
            if sweep_id is not None:
                raise StoreError(
                    f"A sweep (or file) named {sweep_id} already exists in {root}; refusing to "
                    "overwrite it.",
                    hint="Choose another sweep id, or remove the old sweep first.",
                ) from None
        except OSError as err:
            raise store_error("creating a sweep directory in", root, err) from err
    raise StoreError(f"Could not find a free sweep id in {root}.")


def open_sweep(ref: str | Path, root: str | Path) -> SweepStore:
    """Open a sweep by its directory or by its id under ``root``.

    Raises a one-line :class:`StoreError` when it does not exist (naming the paths tried), is
    not a sweep directory, or cannot be read.
    """
    ref_path = Path(ref)
    if ref_path.is_absolute() or len(ref_path.parts) != 1 or str(ref) in (".", ".."):
        candidates = [ref_path]
    else:
        candidates = [Path(root) / ref_path, ref_path]
    for candidate in candidates:
        if candidate.is_dir():
            return _open_dir(candidate)
        if candidate.exists():
            raise StoreError(f"{candidate} is a file, not a sweep directory.")
    tried = (
        f"{candidates[0]} does not exist"
        if len(candidates) == 1
        else f"neither {' nor '.join(str(c) for c in candidates)} exists"
    )
    raise StoreError(
        f"No sweep {str(ref)!r}: {tried}.",
        hint=f"List the sweeps with `sweepherd ls --dir {root}`, or point --dir at the folder "
        "that holds them.",
    )


def _open_dir(path: Path) -> SweepStore:
    meta_path = path / "meta.json"
    if not meta_path.exists():
        raise StoreError(
            f"{path} is not a sweep directory (it has no meta.json).",
            hint="Pass a sweep directory or a sweep id with --dir; an interrupted sweep "
            "creation leaves such a folder, which can be removed.",
        )
    try:
        meta = json.loads(meta_path.read_bytes())
    except OSError as err:
        raise store_error("reading", meta_path, err) from err
    except ValueError as err:
        raise StoreError(f"{meta_path} is unreadable: not valid JSON ({err}).") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("id"), str):
        raise StoreError(f"{meta_path} is unreadable: it has no sweep id.")
    if not (path / "journal.jsonl").is_file():
        raise StoreError(f"{path} is not a sweep directory (it has no journal.jsonl).")
    return SweepStore(path, meta)


def list_sweeps(root: str | Path) -> list[SweepStore]:
    """Every sweep directly under ``root``, oldest first; a missing root has none."""
    root = Path(root)
    try:
        children = [p for p in root.iterdir() if (p / "meta.json").is_file()]
    except FileNotFoundError:
        return []
    except OSError as err:
        raise store_error("listing", root, err) from err
    stores = []
    for child in children:
        with contextlib.suppress(StoreError):
            stores.append(_open_dir(child))
    return sorted(stores, key=lambda s: (float(s.meta.get("created_at") or 0), s.sweep_id))


def _plain(value: Any) -> Any:
    """Mappings and sequences as plain dicts and lists, so YAML dumps them without tags."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
