"""A private, real Slurm cluster with power saving over ``State=CLOUD`` nodes, for the AWS tests.

Its ``slurm.conf`` is sweepherd's own (:func:`render_slurm_conf`), with only what a single test
host needs swapped in: local paths, free ports, ``root`` as SlurmUser, no cgroups. It has its
own ``munged`` and never touches the Slurm engineer's cluster (6817, 17001-17004).

``ResumeProgram``/``SuspendProgram`` are small wrappers standing in for the head node's
``/etc/sweepherd/resume`` and ``/etc/sweepherd/suspend``: they run sweepherd's real programs
(``sweepherd aws resume|suspend``) against the moto server. Since moto's instances never boot,
the boot is emulated: for each node that sweepherd gave a live instance, the resume wrapper
asks the test process to start that node's ``slurmd`` (``-b``: "report a fresh boot", slurmd's
option for testing), and the suspend wrapper asks it to stop it. The test process does the
starting because a slurmd started from inside slurmctld's script runner inherits its blocked
signal mask and cannot launch jobs (measured: "launch failed requeued held").
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from sweepherd.cloud.aws import ClusterConfig, render_gres_conf, render_slurm_conf

from ._moto import free_port

MARKER_ENV = "SWEEPHERD_AWS_TEST_CLUSTER"

_RESUME = """#!{python}
# Stands in for the head node's /etc/sweepherd/resume: sweepherd's real resume program, then
# the instance "boots" (moto's never do): its slurmd is started here.
import json, os, subprocess, sys
base = {base!r}
with open(os.path.join(base, "program_env.json")) as f:
    os.environ.update(json.load(f))
nodelist = sys.argv[1]
rc = subprocess.call([sys.executable, "-m", "sweepherd.cli.main", "aws", "resume",
                      "--config", os.path.join(base, "cluster.yaml"),
                      "--log-file", os.path.join(base, "power.log"), nodelist])
import boto3
ec2 = boto3.client("ec2", endpoint_url=os.environ["SWEEPHERD_AWS_ENDPOINT_URL"],
                   region_name=os.environ["AWS_DEFAULT_REGION"])
nodes = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                       text=True, check=True).stdout.split()
for node in nodes:
    shown = subprocess.run(["scontrol", "show", "node", "-o", node], capture_output=True,
                           text=True).stdout.strip()
    reservations = ec2.describe_instances(Filters=[
        {{"Name": "tag:sweepherd:node", "Values": [node]}},
        {{"Name": "instance-state-name", "Values": ["pending", "running"]}}])["Reservations"]
    live = [i for r in reservations for i in r["Instances"]]
    with open(os.path.join(base, "resumed.jsonl"), "a") as f:
        f.write(json.dumps({{"node": node, "rc": rc, "scontrol": shown,
                            "instances": [i["InstanceId"] for i in live]}}) + "\\n")
    if live:  # ask the test to "boot" it (start its slurmd), see CloudSlurm._boot_loop
        open(os.path.join(base, "boot", node), "w").close()
sys.exit(rc)
"""

_SUSPEND = """#!{python}
# Stands in for the head node's /etc/sweepherd/suspend: sweepherd's real suspend program, then
# the node's slurmd (its "instance") stops.
import json, os, subprocess, sys
base = {base!r}
with open(os.path.join(base, "program_env.json")) as f:
    os.environ.update(json.load(f))
nodelist = sys.argv[1]
rc = subprocess.call([sys.executable, "-m", "sweepherd.cli.main", "aws", "suspend",
                      "--config", os.path.join(base, "cluster.yaml"),
                      "--log-file", os.path.join(base, "power.log"), nodelist])
nodes = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                       text=True, check=True).stdout.split()
for node in nodes:
    with open(os.path.join(base, "suspended.jsonl"), "a") as f:
        f.write(json.dumps({{"node": node, "rc": rc}}) + "\\n")
    open(os.path.join(base, "halt", node), "w").close()  # the test stops its slurmd
sys.exit(rc)
"""


class CloudSlurm:
    """A slurmctld with power saving over ``config``'s CLOUD nodes, in ``base``."""

    def __init__(self, base: Path, config: ClusterConfig, program_env: Mapping[str, str]):
        self.base = base
        self.config = config
        self.program_env = dict(program_env)
        self.conf = base / "etc" / "slurm.conf"
        self.ctld_port = free_port()
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), MARKER_ENV: str(base)}
        self._stopping = threading.Event()
        self._booter = threading.Thread(target=self._boot_loop, daemon=True)
        self.booted: list[str] = []
        self.reserved: list[Path] = []
        self.halted: list[str] = []

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        b = self.base
        for sub in ("etc", "state", "spool", "log", "run", "dev", "munge", "boot", "halt"):
            (b / sub).mkdir(parents=True, exist_ok=True)
        b.chmod(0o755)
        (b / "munge").chmod(0o755)
        key = b / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for i in range(max((p.gpus for p in self.config.partitions), default=0)):
            dev = b / "dev" / f"gpu{i}"
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))
        for partition in self.config.partitions:
            for node in partition.node_names:
                (b / "spool" / f"slurmd-{node}").mkdir(exist_ok=True)
        self._write_conf()
        self._write_programs()
        m = b / "munge"
        subprocess.run(
            [
                "munged",
                f"--key-file={key}",
                f"--socket={m / 'munge.socket'}",
                f"--pid-file={m / 'munged.pid'}",
                f"--log-file={m / 'munged.log'}",
                f"--seed-file={m / 'munged.seed'}",
            ],
            check=True,
            env=self.env,
        )
        subprocess.run(["slurmctld", "-f", str(self.conf)], check=True, env=self.env)
        self._booter.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done = subprocess.run(["sinfo", "-h"], capture_output=True, env=self.env, check=False)
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"slurmctld did not start: {self.log('slurmctld.log')}")

    def stop(self) -> None:
        """Stop every daemon of this cluster: slurmds, slurmctld, munged (by pid files)."""
        self._stopping.set()
        if self._booter.is_alive():
            self._booter.join(timeout=5)
        subprocess.run(["scancel", "--quiet", "--full", "-u", "root"], env=self.env, check=False)
        pids = []
        for pidfile in [*(self.base / "run").glob("*.pid"), self.base / "munge" / "munged.pid"]:
            try:
                pids.append(int(pidfile.read_text().strip()))
            except (OSError, ValueError):
                continue
        for pid in pids:
            if _is_ours(pid, self.base):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        for pid in pids:
            if _alive(pid) and _is_ours(pid, self.base):
                os.kill(pid, signal.SIGKILL)
        # slurmstepd and anything else started under our slurmds carry the marker
        for pid in _marked(self.base):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for marker in self.reserved:
            marker.unlink(missing_ok=True)

    def _boot_loop(self) -> None:
        """Start (stop) the slurmd of each node the resume (suspend) wrapper asks for."""
        boot, halt = self.base / "boot", self.base / "halt"
        while not self._stopping.wait(0.1):
            for request in sorted(boot.iterdir()):
                node = request.name
                request.unlink()
                subprocess.run(
                    ["slurmd", "-b", "-f", str(self.conf), "-N", node],
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                )
                self.booted.append(node)
            for request in sorted(halt.iterdir()):
                node = request.name
                request.unlink()
                pidfile = self.base / "run" / f"slurmd-{node}.pid"
                try:
                    pid = int(pidfile.read_text().strip())
                except (OSError, ValueError):
                    continue
                if _is_ours(pid, self.base):
                    os.kill(pid, signal.SIGTERM)
                self.halted.append(node)

    # -- helpers --------------------------------------------------------------------------

    def run(self, *argv: str, check: bool = True) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{argv} failed: {done.stderr}")
        return done.stdout

    def node_state(self, node: str) -> str:
        line = self.run("scontrol", "show", "node", "-o", node)
        for token in line.split():
            if token.startswith("State="):
                return token[len("State=") :]
        return ""

    def log(self, name: str) -> str:
        path = self.base / "log" / name
        return path.read_text(errors="replace") if path.exists() else ""

    def records(self, name: str) -> list[dict[str, object]]:
        path = self.base / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def _write_conf(self) -> None:
        b = self.base
        overrides = {
            "SlurmctldHost": "localhost(127.0.0.1)",
            "SlurmctldPort": str(self.ctld_port),
            "SlurmUser": "root",
            "AuthInfo": f"socket={b / 'munge' / 'munge.socket'},cred_expire=10",
            # slurmctld listens on 127.0.0.1 only; each slurmd on its own port of every local
            # address, so it answers at the 127.x address moto gave its "instance".
            "CommunicationParameters": "NoCtldInAddrAny",
            "StateSaveLocation": str(b / "state"),
            "SlurmdSpoolDir": str(b / "spool" / "slurmd-%n"),
            "SlurmctldPidFile": str(b / "run" / "slurmctld.pid"),
            "SlurmdPidFile": str(b / "run" / "slurmd-%n.pid"),
            "SlurmctldLogFile": str(b / "log" / "slurmctld.log"),
            "SlurmdLogFile": str(b / "log" / "slurmd-%n.log"),
            "SlurmctldDebug": "debug",
            "SlurmdDebug": "debug",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "SlurmdParameters": "config_overrides",
            "SchedulerParameters": "bf_interval=1,sched_interval=1",
            # sweepherd's own parameters, plus a fast power-saving loop for the test
            "SlurmctldParameters": "enable_configless,idle_on_node_suspend,cloud_reg_addrs,"
            "power_save_interval=1,power_save_min_interval=0",
            "AccountingStorageType": "accounting_storage/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "MinJobAge": "600",
            "KillWait": "5",
            "InactiveLimit": "0",
        }
        node_params = {}
        for partition in self.config.partitions:
            # one slurmd per node on this host, each on its own port of a consecutive block,
            # reserved until stop() (other test processes may start clusters meanwhile)
            base_port = _reserve_ports(partition.max_nodes, self.reserved)
            node_params[partition.name] = {
                "NodeHostname": "localhost",
                "NodeAddr": "127.0.0.1",
                "Port": (
                    str(base_port)
                    if partition.max_nodes == 1
                    else f"[{base_port}-{base_port + partition.max_nodes - 1}]"
                ),
            }
        self.conf.write_text(
            render_slurm_conf(
                self.config,
                resume_program=str(b / "resume"),
                suspend_program=str(b / "suspend"),
                overrides=overrides,
                node_params=node_params,
            )
        )
        (b / "etc" / "gres.conf").write_text(
            render_gres_conf(self.config, device_prefix=str(b / "dev" / "gpu"))
        )

    def _write_programs(self) -> None:
        b = self.base
        env = {
            **self.program_env,
            "SLURM_CONF": str(self.conf),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            MARKER_ENV: str(b),
        }
        (b / "program_env.json").write_text(json.dumps(env))
        for name, text in (("resume", _RESUME), ("suspend", _SUSPEND)):
            path = b / name
            path.write_text(text.format(python=sys.executable, base=str(b)))
            path.chmod(0o755)


_PORT_DIR = Path("/tmp/sweepherd-aws-test-ports")


def _reserve_ports(n: int, reserved: list[Path]) -> int:
    """Reserve ``n`` consecutive free ports on 127.0.0.1 (17200 up); return the first.

    A port is reserved by a marker file holding our pid (created exclusively); markers of dead
    processes are taken over. The markers go to ``reserved``, for stop() to remove.
    """
    _PORT_DIR.mkdir(exist_ok=True)
    for start in range(17200, 30000, 8):
        block = range(start, start + n)
        if not all(_port_free(port) for port in block):
            continue
        taken: list[Path] = []
        for port in block:
            marker = _PORT_DIR / str(port)
            try:
                fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    owner = int(marker.read_text() or "0")
                except (OSError, ValueError):
                    owner = 0
                if owner and _alive(owner):
                    break
                marker.unlink(missing_ok=True)
                try:
                    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    break
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            taken.append(marker)
        if len(taken) == n:
            reserved.extend(taken)
            return start
        for marker in taken:
            marker.unlink(missing_ok=True)
    raise RuntimeError("no free port block")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_ours(pid: int, base: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return str(base) in cmdline or f"{MARKER_ENV}={base}" in environ.split("\0")


def _marked(base: Path) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                environ = (proc / "environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if f"{MARKER_ENV}={base}" in environ.split("\0") and _alive(int(proc.name)):
                out.append(int(proc.name))
    return out


def which_slurm() -> bool:
    """Whether the Slurm daemons are installed here."""
    return all(shutil.which(x) for x in ("slurmctld", "slurmd", "munged", "scontrol"))
