"""Agent heartbeats: one small JSON file per agent, ``agents/<agent_id>.json``, replaced atomically.

An agent rewrites its file every few seconds (and with ``state="exited"`` when it exits
cleanly). Each write goes to a temporary file renamed over the old one, so readers see a whole
file, old or new. Heartbeats are not fsynced: after a machine crash an old or missing heartbeat
only makes the agent look silent, which is the truth.

The ``t`` in the file is the agent's clock, so ages across hosts assume clocks within a few
seconds of each other; the grace periods that use them are minutes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweepherd.errors import StoreError
from sweepherd.store._files import write_atomic

_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}")
_KNOWN = ("agent", "t", "state", "node", "host", "pid", "job")


def check_agent_id(agent_id: str) -> str:
    """Return ``agent_id`` if it can name a file; :class:`StoreError` otherwise."""
    if not _AGENT_ID.fullmatch(agent_id):
        raise StoreError(
            f"Invalid agent id {agent_id!r}: use 1-128 letters, digits and _ . : @ + - "
            "(starting with a letter or digit)."
        )
    return agent_id


@dataclass(frozen=True)
class Heartbeat:
    """An agent's last sign of life."""

    agent: str
    t: float  # unix time of the write, by the agent's clock
    state: str = "running"  # "running", or "exited" after a clean exit
    node: str | None = None
    host: str | None = None
    pid: int | None = None
    job: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)  # anything else the agent wrote

    def age_s(self, now: float | None = None) -> float:
        """Seconds since this heartbeat was written (``now`` defaults to the current time)."""
        return (time.time() if now is None else now) - self.t

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Heartbeat:
        pid = raw.get("pid")
        return cls(
            agent=str(raw["agent"]),
            t=float(raw["t"]),
            state=str(raw.get("state", "running")),
            node=None if raw.get("node") is None else str(raw["node"]),
            host=None if raw.get("host") is None else str(raw["host"]),
            pid=None if pid is None else int(pid),
            job=None if raw.get("job") is None else str(raw["job"]),
            info={k: v for k, v in raw.items() if k not in _KNOWN},
        )


def write_heartbeat(directory: Path, agent_id: str, state: str, info: Mapping[str, Any]) -> None:
    """Write ``directory/<agent_id>.json`` atomically with the current time."""
    check_agent_id(agent_id)
    record = {**info, "agent": agent_id, "t": round(time.time(), 3), "state": state}
    try:
        data = json.dumps(record, separators=(",", ":")).encode()
    except (TypeError, ValueError) as err:
        raise StoreError(f"Cannot write the heartbeat of {agent_id}: {err}.") from err
    write_atomic(directory / f"{agent_id}.json", data, durable=False)


def read_heartbeat(path: Path) -> Heartbeat | None:
    """The heartbeat in ``path``, or None if it is missing or unreadable."""
    try:
        return Heartbeat.from_json(json.loads(path.read_bytes()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def read_heartbeats(directory: Path) -> dict[str, Heartbeat]:
    """Every agent's heartbeat in ``directory`` (unreadable files are skipped)."""
    out: dict[str, Heartbeat] = {}
    try:
        paths = sorted(directory.glob("*.json"))
    except OSError:
        return out
    for path in paths:
        if path.name.startswith("."):
            continue
        hb = read_heartbeat(path)
        if hb is not None:
            out[hb.agent] = hb
    return out
