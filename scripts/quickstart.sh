#!/usr/bin/env bash
# Set up sweepherd and run the quickstart sweep on this machine with 4 agents.
# Extra arguments go to `sweepherd run`, e.g. scripts/quickstart.sh --agents 2
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/sweepherd run examples/quickstart/sweep.yaml --agents 4 "$@"
