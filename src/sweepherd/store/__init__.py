"""The sweep directory: the embedded store that needs no server.

A sweep lives in one directory on a (possibly shared) filesystem. Its state is an append-only
journal of small JSON events, written under an ``O_CREAT|O_EXCL`` lock file (no ``fcntl``,
so it works on NFS, Lustre and GPFS), each append fsynced. Agents announce that they are alive
with heartbeat files, and each run has its own folder for its high-volume data.

    store = create_sweep("sweeps", config)
    with store.transaction(agent="a1") as txn:
        run = txn.claim_new({"lr": 0.1}, agent="a1")
    with store.transaction(agent="a1") as txn:
        txn.finish(run.id, run.attempt, "finished", exit_code=0, metric=0.3)
    store.snapshot().runs[run.id].state   # RunState.FINISHED

The store never imports a search method: deciding *what* to run is the agent's job
(:func:`sweepherd.agent.claim_next`); the store only records it safely.
"""

from sweepherd.store._files import write_atomic
from sweepherd.store._fold import AgentInfo, Snapshot, result_applies
from sweepherd.store._heartbeat import Heartbeat
from sweepherd.store._lock import DEFAULT_STALE_S, JournalLock, LockOwner
from sweepherd.store._requests import ClaimAnswer, ClaimRequest, RunResult
from sweepherd.store._sweep import (
    DEFAULT_TIMEOUT_S,
    SweepStore,
    create_sweep,
    list_sweeps,
    new_sweep_id,
    open_sweep,
)
from sweepherd.store._transaction import Transaction

__all__ = [
    "DEFAULT_STALE_S",
    "DEFAULT_TIMEOUT_S",
    "AgentInfo",
    "ClaimAnswer",
    "ClaimRequest",
    "Heartbeat",
    "JournalLock",
    "LockOwner",
    "RunResult",
    "Snapshot",
    "SweepStore",
    "Transaction",
    "create_sweep",
    "list_sweeps",
    "new_sweep_id",
    "open_sweep",
    "result_applies",
    "write_atomic",
]
