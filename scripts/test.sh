#!/usr/bin/env bash
# Set up everything the tests need and run them: lint, types, and the whole pytest suite,
# including the Slurm tests against a real local Slurm cluster that this script starts
# (installing Slurm from Debian packages if it is missing) and stops again.
# Extra arguments go to pytest, e.g. scripts/test.sh -k journal
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --dev

scripts/slurm-local.sh start
trap 'scripts/slurm-local.sh stop' EXIT
eval "$(scripts/slurm-local.sh env)"
# The AWS nodes' metadata guard is tested with real iptables rules in a private namespace.
if ! command -v iptables >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends iptables >&2 ||
        echo "warning: could not install iptables; the metadata guard test will say so" >&2
fi

.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/pytest -n 2 "$@"
