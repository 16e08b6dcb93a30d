"""The batch program of the fan-out tests: ``fan_out`` over the job's nodes, running
fake_agent.py on each, then records the result in OUT_DIR/results.jsonl and exits with its
status. ``fanout_driver.py OUT_DIR MODE [GRES|-] [JOB_ID]``: JOB_ID replaces $SLURM_JOB_ID for
fan_out, to make its ``scancel --signal=URG`` miss."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from sweepherd.launch.slurm import fan_out

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
out_dir, mode = Path(sys.argv[1]), sys.argv[2]
gres = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
env = dict(os.environ)
if len(sys.argv) > 4:
    env["SLURM_JOB_ID"] = sys.argv[4]
(out_dir / "driver.pid").write_text(str(os.getpid()))  # the batch shell's, after exec
agent = Path(__file__).with_name("fake_agent.py")
result = fan_out([sys.executable, str(agent), str(out_dir), mode], gres=gres, env=env)
with (out_dir / "results.jsonl").open("a") as f:
    line = {
        "nodes": result.nodes,
        "statuses": result.exit_statuses,
        "requeued": result.requeued,
        "exit_status": result.exit_status,
        "restart": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
    }
    f.write(json.dumps(line) + "\n")
sys.exit(result.exit_status)
