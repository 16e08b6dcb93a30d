"""Drive the REAL ``wandb.wandb_agent.Agent._command_run`` on a corpus of cases; no server.

Usage: ``python wandb_agent_oracle.py CASES.json OUT.json``. Each case is
``{"command": [...] | null, "program": str, "params": {...}, "env": {...}}``. For each case the
agent spawns the command as W&B would; the command's program records the argv it got into a
file. The output is, per case, ``{"argv": [...], "json_file": path, "json_text": str | null}``.

Runs in its own process because ``_command_run`` writes ``os.environ`` (WANDB_RUN_ID, ...).
"""

import json
import os
import sys
from pathlib import Path

from wandb.wandb_agent import Agent


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    work = Path(sys.argv[2]).parent
    os.environ["WANDB_DIR"] = str(work)
    os.environ["WANDB_SWEEP_ID"] = "oracle"
    results = []
    for i, case in enumerate(cases):
        base_env = dict(os.environ)
        os.environ.update(case["env"])
        record = work / f"argv-{i}.json"
        os.environ["ARGV_RECORDER_OUT"] = str(record)
        run_id = f"r{i}"
        agent = Agent(api=None, queue=None, sweep_id="oracle")
        agent._sweep_command = None if case["command"] is None else list(case["command"])
        agent._command_run(
            {
                "type": "run",
                "run_id": run_id,
                "program": case["program"],
                "args": {k: {"value": v} for k, v in case["params"].items()},
            }
        )
        proc = agent._run_processes[run_id]
        proc.wait()
        json_file = work / "wandb" / "sweep-oracle" / f"config-{run_id}.json"
        results.append(
            {
                "argv": json.loads(record.read_text()),
                "json_file": str(json_file),
                "json_text": json_file.read_text() if json_file.exists() else None,
            }
        )
        os.environ.clear()
        os.environ.update(base_env)
    Path(sys.argv[2]).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
