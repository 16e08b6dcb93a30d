"""Parse and check W&B sweep configs; report every problem at once, each with its key path.

>>> config = parse_config({"method": "grid", "parameters": {"bs": {"values": [16, 32]}}})
>>> [p.name for p in config.parameters]
['bs']
>>> violations({"method": "grid", "parameters": {"lr": {"min": 5, "max": 1}}})
['parameters.lr.min: must be less than max (min=5, max=1)']

W&B's own engine (the ``sweeps`` package) is the oracle in the tests: sweepherd accepts a config
only if W&B's engine does. Where sweepherd refuses a config W&B accepts, it is on purpose and the
message says why: W&B features sweepherd cannot run (``method: custom``, ``metrics``, external
schedulers) are reported as "not supported by sweepherd"; and a few mistakes W&B lets through
and then fails on, or samples NaN from, are caught here (see the module docs).
"""

from sweepherd.config._load import load_config
from sweepherd.config._model import (
    DISTRIBUTIONS,
    GRID_DISTRIBUTIONS,
    EarlyTerminate,
    Metric,
    Param,
    SweepConfig,
    flatten,
    nest,
)
from sweepherd.config._sections import COMMAND_MACROS
from sweepherd.config._sweep import parse_config, run_problems, violations

__all__ = [
    "COMMAND_MACROS",
    "DISTRIBUTIONS",
    "GRID_DISTRIBUTIONS",
    "EarlyTerminate",
    "Metric",
    "Param",
    "SweepConfig",
    "flatten",
    "load_config",
    "nest",
    "parse_config",
    "run_problems",
    "violations",
]
