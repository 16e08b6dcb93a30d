"""A worker process for the claim tests: a minimal agent loop around claim_next.

Usage: ``python claim_worker.py SWEEP_DIR AGENT_ID MODE [LOST_GRACE_S]``

- ``loop``: heartbeat, then claim -> (instant run) -> report with the next claim, until there is
  nothing left; waits while other agents still hold runs that may come back. Prints one JSON
  line per claim (``{"run", "attempt", "params"}``) and a final ``{"done": reason}``.
- ``hold-lock``: take the journal lock, print ``locked``, and sleep (to be SIGKILLed).
- ``take-and-die``: take the journal lock, print ``locked``; on a line from stdin take every
  waiting claim request, print how many, and sleep (to be SIGKILLed without answering them).
- ``claim-and-hang``: heartbeat, claim one run, print it, and sleep (to be SIGKILLed).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from sweepherd.agent._claim import claim_next
from sweepherd.runs import RunState
from sweepherd.store import RunResult, open_sweep
from sweepherd.store._requests import Mailbox


def main() -> None:
    sweep_dir, agent_id, mode = sys.argv[1:4]
    grace_s = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
    store = open_sweep(Path(sweep_dir), Path(sweep_dir).parent)
    if mode == "hold-lock":
        with store.transaction(agent=agent_id):
            print("locked", flush=True)
            time.sleep(3600)
        return
    if mode == "take-and-die":
        with store.transaction(agent=agent_id):
            print("locked", flush=True)
            sys.stdin.readline()
            print(len(Mailbox(store.path / "requests").take_all()), flush=True)
            time.sleep(3600)
        return
    store.heartbeat(agent_id)
    if mode == "claim-and-hang":
        claim = claim_next(store, agent_id=agent_id, lost_grace_s=grace_s)
        assert claim.run is not None
        print(json.dumps({"run": claim.run.id, "attempt": claim.run.attempt}), flush=True)
        time.sleep(3600)
        return
    results: list[RunResult] = []
    while True:
        claim = claim_next(store, agent_id=agent_id, lost_grace_s=grace_s, results=results)
        if not all(claim.recorded):
            print(json.dumps({"error": "a result was not recorded"}), flush=True)
        results = []
        if claim.run is None:
            if claim.n_running and "cancelled" not in (claim.reason or ""):
                store.heartbeat(agent_id)
                time.sleep(0.2)  # runs held by others may still come back
                continue
            print(json.dumps({"done": claim.reason}), flush=True)
            return
        run = claim.run
        print(json.dumps({"run": run.id, "attempt": run.attempt, "params": run.params}), flush=True)
        metric = float(run.params["x"])
        results = [RunResult(run.id, run.attempt, RunState.FINISHED, exit_code=0, metric=metric)]


if __name__ == "__main__":
    main()
