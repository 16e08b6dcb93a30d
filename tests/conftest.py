"""Fixtures shared by the whole suite.

``slurm_cluster``: a real Slurm cluster on this machine for the tests marked ``slurm``. It uses
the cluster that ``SLURM_CONF`` points at when that one answers (scripts/test.sh starts one and
exports it), or starts ``scripts/slurm-local.sh`` itself and stops it when the last pytest
process using it is done. pytest-xdist workers share one cluster: a lock file serialises
start and stop, and a holders file records which live pytest processes use it.

When Slurm cannot be started, the tests fail if the environment variable ``CI`` is set (CI
must never skip them) and are skipped with the reason otherwise.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SLURM_SCRIPT = REPO / "scripts" / "slurm-local.sh"


def pytest_configure(config: pytest.Config) -> None:
    """Started in the background (``cmd &`` in a script, or ``nohup``), the suite inherits
    SIGINT (or SIGHUP) ignored, and so would every sweepherd process it starts, since an ignored
    signal stays ignored across exec: the tests that press Ctrl-C or hang up on one would time
    out. Give them the default dispositions back."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


@dataclass(frozen=True)
class SlurmCluster:
    """The cluster the Slurm tests run against."""

    conf: Path  # its slurm.conf (exported as SLURM_CONF for the whole session)
    n_nodes: int  # node names are node1..nodeN on the local cluster
    gpus_per_node: int
    started_here: bool  # this pytest run (one of its workers) started it


def _sinfo_nodes(conf: str) -> list[tuple[str, str]] | None:
    """(node, gres) of every responding node, or None when the cluster does not answer."""
    if not Path(conf).is_file():
        return None  # Slurm would retry reading it for 60 s
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-r", "-o", "%N %G"],
            env={**os.environ, "SLURM_CONF": conf},
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    rows = sorted({tuple(line.split()[:2]) for line in proc.stdout.splitlines() if line.strip()})
    return [(r[0], r[1] if len(r) > 1 else "(null)") for r in rows] or None


def _gpus(gres: str) -> int:
    # "gpu:2", "gpu:a100:2(S:0)" or "(null)"
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and parts[-1].isdigit():
            return int(parts[-1])
    return 0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Slurm tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"no local Slurm cluster: {reason}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Holders:
    """The pytest processes using the cluster that pytest started, under an exclusive lock."""

    def __init__(self, cluster_dir: Path) -> None:
        self.lock_path = cluster_dir.with_name(cluster_dir.name + ".pytest.lock")
        self.state_path = cluster_dir.with_name(cluster_dir.name + ".pytest.json")

    def __enter__(self) -> dict[str, object]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            state = {}
        pids = [p for p in state.get("pids", []) if isinstance(p, int) and _alive(p)]
        self.state: dict[str, object] = {"owned": bool(state.get("owned")), "pids": pids}
        return self.state

    def __exit__(self, *exc: object) -> None:
        try:
            self.state_path.write_text(json.dumps(self.state))
        finally:
            os.close(self._fd)  # releases the lock


def _script(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SLURM_SCRIPT), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # a first start may install Slurm from Debian packages
        check=False,
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running Slurm cluster; ``SLURM_CONF`` points at it for the whole session."""
    conf = os.environ.get("SLURM_CONF")
    if conf:
        nodes = _sinfo_nodes(conf)
        if nodes:
            yield SlurmCluster(Path(conf), len(nodes), _gpus(nodes[0][1]), started_here=False)
            return

    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
    cluster_dir = Path(env.get("SLURM_LOCAL_DIR", "/tmp/sweepherd-slurm"))
    env["SLURM_LOCAL_DIR"] = str(cluster_dir)
    own_conf = str(cluster_dir / "etc" / "slurm.conf")
    if conf and conf != own_conf:
        _unavailable(f"SLURM_CONF={conf} is set but that cluster does not answer `sinfo`")

    holders = _Holders(cluster_dir)
    with holders as state:
        running = _sinfo_nodes(own_conf) is not None
        if not running or not state["pids"]:
            started = _script("start", env)
            if started.returncode != 0:
                _unavailable(
                    f"`scripts/slurm-local.sh start` failed (exit {started.returncode}):\n"
                    f"{started.stderr[-3000:]}"
                )
            if not running:
                state["owned"] = True
        pids = state["pids"]
        assert isinstance(pids, list)
        pids.append(os.getpid())
    nodes = _sinfo_nodes(own_conf)
    if not nodes:
        _unavailable(f"the cluster in {cluster_dir} was started but does not answer `sinfo`")
    assert nodes is not None
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = own_conf
    try:
        yield SlurmCluster(
            Path(own_conf), len(nodes), _gpus(nodes[0][1]), started_here=bool(state["owned"])
        )
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        with holders as state:
            pids = state["pids"]
            assert isinstance(pids, list)
            if os.getpid() in pids:
                pids.remove(os.getpid())
            if not pids and state["owned"]:
                _script("stop", env)
                state["owned"] = False
