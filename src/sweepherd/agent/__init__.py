"""The agent: runs on a node, claims runs, runs the user's command, reports the results."""

from sweepherd.agent._agent import EXIT_REQUEUE, Agent, AgentOptions, AgentResult
from sweepherd.agent._slots import Slot, parse_gpus, plan_slots

__all__ = [
    "EXIT_REQUEUE",
    "Agent",
    "AgentOptions",
    "AgentResult",
    "Slot",
    "parse_gpus",
    "plan_slots",
]
