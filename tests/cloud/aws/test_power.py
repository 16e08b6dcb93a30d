"""Reading Slurm's node states and what cleanup does with them (states as slurmctld 22.05 shows
them in ``scontrol show node``, captured from the real cluster in test_power_slurm.py)."""

from __future__ import annotations

import pytest

from sweepherd.cloud.aws import node_flags, parse_node_line
from sweepherd.cloud.aws._power import _slurm_reason, _state_change


@pytest.mark.parametrize(
    ("state", "flags"),
    [
        ("IDLE+CLOUD+POWERED_DOWN", {"IDLE", "CLOUD", "POWERED_DOWN"}),
        ("MIXED+CLOUD+NOT_RESPONDING+POWERING_UP",
         {"MIXED", "CLOUD", "NOT_RESPONDING", "POWERING_UP"}),
        ("IDLE+CLOUD+POWERING_DOWN", {"IDLE", "CLOUD", "POWERING_DOWN"}),
        ("DOWN+CLOUD+POWERED_DOWN", {"DOWN", "CLOUD", "POWERED_DOWN"}),
        # sinfo's short forms
        ("idle~", {"idle", "POWERED_DOWN"}),
        ("mix#", {"mix", "POWERING_UP"}),
        ("down*", {"down", "NOT_RESPONDING"}),
        ("idle%", {"idle", "POWERING_DOWN"}),
    ],
)  # fmt: skip
def test_node_flags(state: str, flags: set[str]) -> None:
    assert node_flags(state) == flags


@pytest.mark.parametrize(
    ("state", "change"),
    [
        ("IDLE+CLOUD+POWERED_DOWN", None),
        ("MIXED+CLOUD+NOT_RESPONDING+POWERING_UP", None),  # booting: leave it to ResumeTimeout
        ("IDLE+CLOUD+POWERING_DOWN", None),
        ("ALLOCATED+CLOUD", None),
        ("DOWN+CLOUD+POWERED_DOWN", ("RESUME", "")),
        ("DOWN+CLOUD", ("POWER_DOWN_FORCE", "sweepherd: node was DOWN")),
        ("DOWN+CLOUD+NOT_RESPONDING", ("POWER_DOWN_FORCE", "sweepherd: node was DOWN")),
        ("IDLE+CLOUD+NOT_RESPONDING", ("POWER_DOWN_FORCE", "sweepherd: node not responding")),
    ],
)
def test_what_cleanup_does(state: str, change: tuple[str, str] | None) -> None:
    assert _state_change(node_flags(state)) == change


def test_only_sweepherds_own_drains_are_undone() -> None:
    flags = node_flags("IDLE+DRAIN+CLOUD+POWERED_DOWN")
    assert _state_change(flags, "sweepherd: node not responding") == ("UNDRAIN", "")
    assert _state_change(flags, "maintenance [admin@2026-11-24T01:00:00]") is None


def test_parse_node_line_keeps_values_with_spaces() -> None:
    line = (
        "NodeName=cpu-1 Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 NodeAddr=127.0.0.1 "
        "NodeHostName=vm OS=Linux 6.18.44 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=3686 "
        "State=DOWN+CLOUD Reason=sweepherd: launch failed: x [root@2026-11-24T01:51:52]"
    )
    node = parse_node_line(line)
    assert node["NodeName"] == "cpu-1" and node["State"] == "DOWN+CLOUD"
    assert node["OS"] == "Linux 6.18.44 #1 SMP PREEMPT_DYNAMIC @0"
    assert node["Reason"] == "sweepherd: launch failed: x [root@2026-11-24T01:51:52]"


def test_slurm_reasons_are_one_bounded_line() -> None:
    reason = _slurm_reason('could not launch "cpu-1":\n  ' + "x" * 300)
    assert '"' not in reason and "\n" not in reason and len(reason) == 120
    assert reason.startswith("sweepherd: could not launch 'cpu-1': x")
