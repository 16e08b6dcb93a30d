"""sweep_jobs: a sweep's recorded jobs joined with squeue's rows.

The rows here are squeue output captured from the real Slurm 22.05 (captured/squeue_mixed.txt,
parsed by the real parser); the query on the live cluster is checked end to end in
tests/cli/test_scale.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from sweepherd.config import parse_config
from sweepherd.launch.slurm import JobState, SweepJob, parse_squeue, sweep_jobs
from sweepherd.store import SweepStore, create_sweep

CAPTURED = Path(__file__).parent / "captured"


@pytest.fixture
def store(tmp_path: Path) -> SweepStore:
    config = parse_config(
        {"method": "grid", "command": ["true"], "parameters": {"x": {"value": 1}}}
    )
    return create_sweep(tmp_path, config)


class CapturedQuery:
    """squeue as captured: returns the rows that name one of the ids, as squeue -j does."""

    def __init__(self) -> None:
        self.rows = parse_squeue((CAPTURED / "squeue_mixed.txt").read_text())
        self.calls: list[list[str]] = []

    def __call__(self, ids: Sequence[str]) -> list[JobState]:
        self.calls.append(list(ids))
        wanted = set(ids)
        return [r for r in self.rows if wanted & {r.job_id, r.raw_job_id, r.array_job_id}]


def test_no_jobs_recorded_asks_no_one(store: SweepStore) -> None:
    query = CapturedQuery()
    assert sweep_jobs(store, query=query) == []
    assert query.calls == []


def test_recorded_jobs_and_run_jobs_joined_with_squeue(store: SweepStore) -> None:
    with store.transaction() as txn:
        txn.record_job("5", kind="submit", nodes=2)
        txn.record_job("6", kind="scale", nodes=6, array="0-5")
        txn.claim_new({"x": 1}, agent="a", job="6_1")  # an array task, as the agent names it
        txn.claim_new({"x": 2}, agent="b", job="2")  # an salloc job nobody recorded
        txn.record_job("777", kind="scale", nodes=1)  # gone from Slurm's memory
    query = CapturedQuery()
    jobs = sweep_jobs(store, query=query)
    assert query.calls == [["5", "6", "777", "6_1", "2"]]
    assert store.snapshot().job_ids() == ["5", "6", "777", "6_1", "2"]
    assert [j.job for j in jobs] == ["5", "6_[2-5%2]", "6_0", "6_1", "777", "2"]
    by_id = {j.job: j for j in jobs}
    assert by_id["5"] == SweepJob(
        "5", "RUNNING", nodes="node[1-2]", kind="submit", recorded_as="5", exit_code=0
    )
    assert (by_id["6_1"].state, by_id["6_1"].kind, by_id["6_1"].recorded_as) == (
        "RUNNING",
        "scale",
        "6",
    )
    assert (by_id["6_[2-5%2]"].state, by_id["6_[2-5%2]"].reason) == ("PENDING", "JobArrayTaskLimit")
    assert by_id["777"] == SweepJob("777", None, kind="scale", recorded_as="777")
    assert by_id["777"].is_terminal and not by_id["5"].is_terminal
    assert (by_id["2"].state, by_id["2"].exit_code, by_id["2"].kind) == ("FAILED", 3, None)
    runs = store.snapshot().runs.values()
    assert {r.job for r in runs} <= set(by_id)  # every run joins to its job by Run.job
