"""Heartbeat files: atomic writes, reading them back, ages."""

from __future__ import annotations

import json
import time

import pytest

from sweepherd.errors import StoreError
from sweepherd.store import Heartbeat, SweepStore


def test_heartbeat_round_trip(store: SweepStore) -> None:
    before = time.time()
    store.heartbeat("n1-123-ab", node="n1", host="h1", pid=123, job="7", runs=["r1"])
    path = store.agents_dir / "n1-123-ab.json"
    raw = json.loads(path.read_bytes())
    assert raw["agent"] == "n1-123-ab" and raw["state"] == "running"
    beat = store.heartbeats()["n1-123-ab"]
    assert (beat.node, beat.host, beat.pid, beat.job) == ("n1", "h1", 123, "7")
    assert beat.info == {"runs": ["r1"]}
    assert before - 0.001 <= beat.t <= time.time() + 0.001  # stored rounded to the millisecond
    assert -0.001 <= beat.age_s() < 5  # t may be up to 0.5 ms ahead, rounded
    assert beat.age_s(now=beat.t + 30) == pytest.approx(30)
    assert store.read_heartbeat("n1-123-ab") == beat
    assert store.read_heartbeat("nobody") is None


def test_exited_state_and_rewrite(store: SweepStore) -> None:
    store.heartbeat("a1")
    store.heartbeat("a1", state="exited")
    assert store.heartbeats()["a1"].state == "exited"
    assert [p.name for p in store.agents_dir.iterdir()] == ["a1.json"]  # no temporary files left


def test_unreadable_heartbeats_are_skipped(store: SweepStore) -> None:
    store.heartbeat("a1")
    (store.agents_dir / "a2.json").write_text("{torn")
    (store.agents_dir / ".a3.json.1.ab.tmp").write_text("{}")
    assert list(store.heartbeats()) == ["a1"]


def test_cached_heartbeats(store: SweepStore) -> None:
    store.heartbeat("a1")
    assert list(store.heartbeats(max_age_s=60)) == ["a1"]
    store.heartbeat("a2")
    assert list(store.heartbeats(max_age_s=60)) == ["a1"]  # the cached reading
    assert sorted(store.heartbeats()) == ["a1", "a2"]


def test_invalid_agent_id(store: SweepStore) -> None:
    with pytest.raises(StoreError, match="Invalid agent id"):
        store.heartbeat("../evil")


def test_from_json_keeps_unknown_fields() -> None:
    beat = Heartbeat.from_json({"agent": "a", "t": 1.0, "slots": 4})
    assert beat.state == "running" and beat.info == {"slots": 4}
