"""A user's training script that uses wandb as W&B's own examples do, and knows no sweepherd.

Its ``mode`` parameter picks a behaviour for the agent tests:

- ``ok``: logs ``val_loss`` every epoch and ends normally;
- ``summary``: the same, then sets ``wandb.summary["val_loss"]`` to the best value;
- ``crash``: logs one epoch, then raises;
- ``silent``: logs only ``train_loss``, never the sweep's metric;
- ``selfkill``: logs, waits for the log to be flushed, then kills itself with SIGKILL;
- ``wait``: logs every epoch, sets ``script_pid`` in the summary, then waits until the file
  ``release-<run id>`` (or, for this attempt alone, ``release-<pid>``) appears in its working
  directory (so a test can look at the run while it is still going);
- ``nested``: logs ``{"val": {"loss": ...}}`` (wandb stores it as ``val/loss``);
- ``overfit``: asks wandb to summarise ``val_loss`` by its minimum (``define_metric``) and logs
  losses that fall, then rise again;
- ``bad``: logs ten times the losses, then runs on forever (until it is stopped);
- ``bad-finished``: a hundred times the losses, and ends its wandb run (``run.finish()``)
  before running on (saving, evaluating);
- ``dir`` / ``id``: as ``ok``, but passes ``dir="elsewhere"`` (a folder of its working
  directory) / an ``id=`` of its own to ``wandb.init``, as many scripts do, and keeps its run
  open 8 s longer (a real training run lasts longer than the agent takes to look for it).

Every mode prints ``CONFIG <json>`` (the ``wandb.config`` it got) and writes its pid to
``pid-<run id>`` in its working directory.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import wandb

DEFAULTS = {
    "lr": 0.001,
    "epochs": 3,
    "mode": "ok",
    "optimizer": {"name": "sgd", "momentum": 0.0, "nesterov": False},
    "untouched": "default",
}

# The sweep's values are also the script's arguments (W&B's default command): the ``dir`` and
# ``id`` modes must choose wandb.init's arguments before wandb.config exists.
ARGV_MODE = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--mode=")), None)
INIT_ARGS = {"dir": {"dir": "elsewhere"}, "id": {"id": f"own{os.getpid()}"}}.get(ARGV_MODE, {})
if "dir" in INIT_ARGS:
    Path("elsewhere").mkdir(exist_ok=True)
run = wandb.init(config=DEFAULTS, **INIT_ARGS)
config = wandb.config
Path(f"pid-{run.id}").write_text(str(os.getpid()))
print("CONFIG " + json.dumps(dict(config), sort_keys=True), flush=True)

mode = config.mode
losses = [config.lr * (config.epochs - epoch) for epoch in range(config.epochs)]
if mode == "overfit":
    wandb.define_metric("val_loss", summary="min")
    losses = [losses[0], losses[-1], losses[1]]
for epoch, loss in enumerate(losses):
    if mode == "silent":
        wandb.log({"epoch": epoch, "train_loss": loss})
    elif mode == "nested":
        wandb.log({"epoch": epoch, "val": {"loss": loss}})
    elif mode == "bad":
        wandb.log({"epoch": epoch, "val_loss": 10 * loss})
    elif mode == "bad-finished":
        wandb.log({"epoch": epoch, "val_loss": 100 * loss})
    else:
        wandb.log({"epoch": epoch, "val_loss": loss})
    if mode == "crash":
        raise RuntimeError(f"boom in epoch {epoch}")

if mode == "summary":
    wandb.summary["val_loss"] = -1.0
elif mode == "selfkill":
    time.sleep(4)  # the agent makes wandb flush its log every 2 s
    print("killing myself", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
elif mode == "bad":
    while True:
        time.sleep(0.1)
elif mode == "bad-finished":  # its run ends, then the script lingers (saving, evaluating)
    run.finish()
    while True:
        time.sleep(0.1)
elif mode in ("dir", "id"):
    time.sleep(8)
elif mode == "wait":
    run.summary["script_pid"] = os.getpid()  # which attempt's summary a result holds
    releases = [Path(f"release-{run.id}"), Path(f"release-{os.getpid()}")]
    while not any(release.exists() for release in releases):
        time.sleep(0.1)
run.finish()
