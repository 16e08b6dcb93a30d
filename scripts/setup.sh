#!/usr/bin/env bash
# Create ./.venv and install sweepherd into it.
#   scripts/setup.sh          the tool itself (enough for `sweepherd run` on this machine)
#   scripts/setup.sh --dev    plus everything the tests, benchmarks and examples need
# Safe to run again: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: sweepherd needs Python 3.10 or newer; set PYTHON=/path/to/python3.x" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip 2>&1 | grep -v 'is ignored' || true

if [ "${1:-}" = "--dev" ]; then
    # The examples' PyTorch, pinned exactly: this version's CPU wheel installs offline here; a
    # looser spec may pull a multi-GB CUDA build.
    "${PIP[@]}" install "torch==2.13.0" 2>&1 | grep -v 'is ignored' || true
    "${PIP[@]}" install -e ".[dev,wandb,aws,plot,export,examples]" 2>&1 | grep -v 'is ignored' || true
    # W&B's own sweep engine, used only as a test oracle. 0.3.0 pins numpy<2 but passes its own
    # test suite on numpy 2, so it goes in without its pins, with its few other dependencies.
    "${PIP[@]}" install --no-deps "sweeps==0.3.0" "jsonref>=1.1" 2>&1 | grep -v 'is ignored' || true
else
    "${PIP[@]}" install -e . 2>&1 | grep -v 'is ignored' || true
fi
.venv/bin/sweepherd --version
