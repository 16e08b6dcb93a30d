"""Whether anything is working on a sweep: for ``status`` and ``watch`` to say when nothing is.

Agents declare lost the runs of an agent that went silent; with no agent left alive nobody
does, and a run whose node died stays "running" until an agent starts. Then the views say so,
and how to start one, unless a Slurm job of the sweep is on its way (its agents will).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sweepherd.store import Heartbeat

#: An agent whose heartbeat is older than this is not counted alive (agents write every few
#: seconds; other agents re-run its runs after --lost-after, 60 s by default).
SILENT_AFTER_S = 60.0
#: Slurm states of a job that runs agents or will (``?``: Slurm could not tell).
_ON_ITS_WAY = frozenset(
    {
        "?",
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "STAGE_OUT",
    }
)


def n_alive(beats: Mapping[str, Heartbeat], now: float) -> int:
    """How many agents have written a heartbeat lately and not exited."""
    return sum(1 for b in beats.values() if b.state == "running" and b.age_s(now) <= SILENT_AFTER_S)


def stalled_note(
    state: str, n_running: int, n_agents_alive: int | None, job_states: Iterable[str], where: str
) -> str | None:
    """What to say when a sweep with work left (``state`` running or paused, as
    ``sweep_state`` says) has no agent alive and no Slurm job on its way; None otherwise
    (``n_agents_alive`` None: not known)."""
    if state not in ("running", "paused") or n_agents_alive is None or n_agents_alive > 0:
        return None
    if any(s in _ON_ITS_WAY for s in job_states):
        return None
    held = (
        f"{n_running} run(s) shown running lost their agent and run again once one starts. "
        if n_running
        else ""
    )
    return (
        f"{held}No agent is working on this sweep: start one with `sweepherd agent {where}`, "
        f"or on Slurm `sweepherd scale {where} --nodes N`."
    )
