"""Helpers for the monitor and CLI tests: real sweeps built with the store API, real run folders,
and a record of the files a piece of code opens (Python's audit hooks, independent of our own
counters).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sweepherd
from sweepherd.config import parse_config
from sweepherd.runs import Run
from sweepherd.store import SweepStore, create_sweep

GRID = {
    "name": "demo",
    "program": "train.py",
    "method": "grid",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "x": {"values": [1, 2, 3]},
        "opt": {"parameters": {"lr": {"values": [0.1, 0.01]}}},
    },
}


class Sweep:
    """A real sweep directory driven through the store's transactions, as agents drive it."""

    def __init__(self, store: SweepStore) -> None:
        self.store = store

    @property
    def id(self) -> str:
        return self.store.sweep_id

    @property
    def path(self) -> Path:
        return self.store.path

    def run(self, run_id: str) -> Run:
        return self.store.snapshot().runs[run_id]

    def claim(
        self,
        params: Mapping[str, Any],
        *,
        agent: str = "agent-1",
        node: str | None = "node1",
        gpus: str | None = None,
        job: str | None = None,
    ) -> Run:
        with self.store.transaction() as txn:
            return txn.claim_new(params, agent=agent, node=node, gpus=gpus, job=job)

    def claim_again(self, run_id: str, *, agent: str = "agent-2", node: str = "node2") -> Run:
        with self.store.transaction() as txn:
            return txn.claim_again(run_id, agent=agent, node=node)

    def finish(
        self,
        run: Run,
        state: str = "finished",
        *,
        metric: float | None = None,
        exit_code: int | None = None,
        reason: str | None = None,
        summary: Mapping[str, Any] | None = None,
        attempt: int | None = None,
    ) -> None:
        if exit_code is None:
            exit_code = 0 if state == "finished" else None
        if summary is None and metric is not None:
            summary = {"loss": metric}
        with self.store.transaction() as txn:
            txn.finish(
                run.id,
                attempt or self.run(run.id).attempt,
                state,
                exit_code=exit_code,
                metric=metric,
                summary=summary,
                reason=reason,
            )

    def cancel(self) -> None:
        with self.store.transaction() as txn:
            txn.cancel("test")

    def record_job(self, job_id: str, **info: Any) -> None:
        with self.store.transaction() as txn:
            txn.record_job(job_id, **info)

    def log(self, run: Run, step: int, **values: Any) -> None:
        """Log a row the way a trial does: through ``sweepherd.log`` with the agent's env var."""
        path = self.store.run_dir(run.id) / "metrics.jsonl"
        old = os.environ.get(sweepherd.client.ENV_METRICS_FILE)
        os.environ[sweepherd.client.ENV_METRICS_FILE] = str(path)
        try:
            sweepherd.log(values, step=step)
        finally:
            if old is None:
                del os.environ[sweepherd.client.ENV_METRICS_FILE]
            else:
                os.environ[sweepherd.client.ENV_METRICS_FILE] = old

    def write(self, run: Run, name: str, text: str, mode: str = "a") -> Path:
        path = self.store.run_dir(run.id) / name
        with path.open(mode, encoding="utf-8") as f:
            f.write(text)
        return path


def make_sweep(root: Path, raw: Mapping[str, Any] | None = None, sweep_id: str = "sw1") -> Sweep:
    return Sweep(create_sweep(root, parse_config(dict(raw or GRID)), sweep_id=sweep_id))


# -- which files does code open? ------------------------------------------------------------------

_recording: list[list[tuple[str, str]]] = []
_lock = threading.Lock()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _recording or event not in ("open", "os.listdir", "os.scandir"):
        return
    target = args[0] if args else None
    if isinstance(target, int) or target is None:
        return
    with _lock:
        for record in _recording:
            record.append((event, os.fsdecode(target)))


sys.addaudithook(_audit)


@contextmanager
def opened_files(under: Path) -> Iterator[list[tuple[str, str]]]:
    """Record every file opened and directory listed under ``under`` (audit events)."""
    record: list[tuple[str, str]] = []
    _recording.append(record)
    prefix = str(under)
    filtered: list[tuple[str, str]] = []
    try:
        yield filtered
    finally:
        _recording.remove(record)
        filtered.extend((e, p) for e, p in record if p.startswith(prefix))
