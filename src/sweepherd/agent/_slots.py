"""Slots: how many trials an agent runs at once, and which GPUs each one sees.

An agent runs one trial per slot. With GPUs, each GPU carries ``trials_per_gpu`` slots (several
small trials may share a GPU), or a trial may take ``gpus_per_trial`` GPUs; the trial sees only
its own GPUs through ``CUDA_VISIBLE_DEVICES``. Without GPUs the agent simply runs ``n_slots``
trials and leaves ``CUDA_VISIBLE_DEVICES`` as it found it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sweepherd.errors import AgentError


@dataclass(frozen=True)
class Slot:
    """One place to run a trial. ``gpus`` is empty when the trial gets no GPU of its own."""

    index: int
    gpus: tuple[str, ...] = ()

    @property
    def cuda_visible_devices(self) -> str | None:
        """The ``CUDA_VISIBLE_DEVICES`` value for this slot, or None to leave it unset."""
        return ",".join(self.gpus) if self.gpus else None


def parse_gpus(spec: str | None, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Turn ``--gpus`` into GPU ids: ``"0,1"``, ``"auto"`` (from ``CUDA_VISIBLE_DEVICES``, as
    Slurm sets it for the step), or ``None``/``""``/``"none"`` for no GPUs."""
    env = os.environ if environ is None else environ
    if spec is None or spec.strip().lower() in ("", "none"):
        return ()
    if spec.strip().lower() == "auto":
        spec = env.get("CUDA_VISIBLE_DEVICES", "")
        if spec.strip() in ("", "NoDevFiles"):
            return ()
    ids = tuple(part.strip() for part in spec.split(",") if part.strip())
    if len(set(ids)) != len(ids):
        raise AgentError(f"--gpus lists a GPU twice: {spec!r}; give each GPU id once, e.g. 0,1")
    return ids


def plan_slots(
    *,
    n_slots: int | None = None,
    gpus: Sequence[str] = (),
    trials_per_gpu: int = 1,
    gpus_per_trial: int = 1,
) -> list[Slot]:
    """The slots for an agent.

    With ``gpus``: ``trials_per_gpu`` slots on each GPU (or one slot on each group of
    ``gpus_per_trial`` GPUs); ``n_slots``, if also given, must agree. Without: ``n_slots``
    (default 1) slots that get no GPU of their own.
    """
    if trials_per_gpu < 1:
        raise AgentError(f"--trials-per-gpu must be at least 1, not {trials_per_gpu}")
    if gpus_per_trial < 1:
        raise AgentError(f"--gpus-per-trial must be at least 1, not {gpus_per_trial}")
    if n_slots is not None and n_slots < 1:
        raise AgentError(f"--slots must be at least 1, not {n_slots}")
    if not gpus:
        return [Slot(i) for i in range(n_slots or 1)]
    if gpus_per_trial > 1:
        if trials_per_gpu != 1:
            raise AgentError("use either --trials-per-gpu or --gpus-per-trial, not both")
        if len(gpus) % gpus_per_trial:
            raise AgentError(
                f"{len(gpus)} GPUs cannot be split into groups of {gpus_per_trial}; "
                "make --gpus-per-trial divide the number of GPUs"
            )
        groups = [tuple(gpus[i : i + gpus_per_trial]) for i in range(0, len(gpus), gpus_per_trial)]
    else:
        # Round-robin over GPUs so that the first trials spread out before any GPU is shared.
        groups = [(gpu,) for _ in range(trials_per_gpu) for gpu in gpus]
    if n_slots is not None and n_slots != len(groups):
        raise AgentError(
            f"--slots {n_slots} does not match {len(gpus)} GPUs with {trials_per_gpu} trials per "
            f"GPU ({len(groups)} slots); leave --slots out when you give --gpus"
        )
    return [Slot(i, group) for i, group in enumerate(groups)]
