"""Slots: how trials map onto GPUs."""

from __future__ import annotations

import pytest

from sweepherd.agent import Slot, parse_gpus, plan_slots
from sweepherd.errors import AgentError


def test_no_gpus_gives_plain_slots() -> None:
    assert plan_slots(n_slots=3) == [Slot(0), Slot(1), Slot(2)]
    assert plan_slots() == [Slot(0)]
    assert all(s.cuda_visible_devices is None for s in plan_slots(n_slots=2))


def test_trials_per_gpu_spread_over_gpus_before_sharing() -> None:
    slots = plan_slots(gpus=("0", "1"), trials_per_gpu=2)
    assert [s.cuda_visible_devices for s in slots] == ["0", "1", "0", "1"]
    assert [s.index for s in slots] == [0, 1, 2, 3]


def test_gpus_per_trial_groups_gpus() -> None:
    slots = plan_slots(gpus=("0", "1", "2", "3"), gpus_per_trial=2)
    assert [s.cuda_visible_devices for s in slots] == ["0,1", "2,3"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_slots": 0}, "--slots must be at least 1"),
        ({"gpus": ("0",), "trials_per_gpu": 0}, "--trials-per-gpu"),
        ({"gpus": ("0", "1", "2"), "gpus_per_trial": 2}, "cannot be split"),
        ({"gpus": ("0", "1"), "n_slots": 3}, "does not match"),
        ({"gpus": ("0", "1"), "gpus_per_trial": 2, "trials_per_gpu": 2}, "not both"),
    ],
)
def test_bad_slot_plans_are_explained(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(AgentError, match=message):
        plan_slots(**kwargs)  # type: ignore[arg-type]


def test_parse_gpus() -> None:
    assert parse_gpus("0, 1,2") == ("0", "1", "2")
    assert parse_gpus(None) == ()
    assert parse_gpus("none") == ()
    assert parse_gpus("auto", {"CUDA_VISIBLE_DEVICES": "2,3"}) == ("2", "3")
    assert parse_gpus("auto", {}) == ()
    with pytest.raises(AgentError, match="twice"):
        parse_gpus("0,0")
