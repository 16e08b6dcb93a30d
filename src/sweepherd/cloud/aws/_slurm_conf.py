"""The head node's Slurm configuration: power saving over ``State=CLOUD`` nodes, and GPU GRES.

Pure functions of the cluster config. The head node's boot script writes their output to
``/etc/slurm``; the compute nodes fetch it from slurmctld (configless Slurm), so the files exist
once. The tests start a real ``slurmctld`` on the same text, with local paths and ports swapped
in through ``overrides`` and ``node_params``.
"""

from __future__ import annotations

from collections.abc import Mapping

from sweepherd.cloud.aws._config import ClusterConfig, PartitionConfig

#: The fraction of an instance's nominal memory declared to Slurm as ``RealMemory``: the kernel
#: and the OS keep some, and a node reporting less than declared is refused by slurmctld.
MEMORY_FRACTION = 0.9
#: The placeholder the head node's boot script replaces with its private address.
HEAD_ADDR_PLACEHOLDER = "@HEAD_ADDR@"


def render_slurm_conf(
    config: ClusterConfig,
    *,
    head_addr: str = HEAD_ADDR_PLACEHOLDER,
    resume_program: str = "/etc/sweepherd/resume",
    suspend_program: str = "/etc/sweepherd/suspend",
    overrides: Mapping[str, str] | None = None,
    node_params: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """``slurm.conf`` for the cluster.

    ``overrides`` replaces or adds global ``Key=Value`` lines (a key mapped to ``""`` is
    dropped); ``node_params`` adds parameters to one partition's ``NodeName`` line.
    """
    timers = config.slurm
    settings: dict[str, str] = {
        "ClusterName": config.name.replace("-", "_"),
        "SlurmctldHost": f"{config.head_hostname}({head_addr})",
        "SlurmUser": "slurm",
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "StateSaveLocation": "/var/spool/slurmctld",
        "SlurmdSpoolDir": "/var/spool/slurmd",
        "SlurmctldPidFile": "/run/slurmctld.pid",
        "SlurmdPidFile": "/run/slurmd.pid",
        "SlurmctldLogFile": "/var/log/slurm/slurmctld.log",
        "SlurmdLogFile": "/var/log/slurm/slurmd.log",
        "ProctrackType": "proctrack/cgroup",
        "TaskPlugin": "task/cgroup,task/affinity",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_CPU_Memory",
        "SchedulerType": "sched/backfill",
        "MpiDefault": "none",
        "ReturnToService": "2",
        "GresTypes": "gpu",
        # Compute nodes fetch slurm.conf and gres.conf from slurmctld (configless); a node that
        # is suspended goes back to IDLE; a registering node's address is taken as its NodeAddr.
        "SlurmctldParameters": "enable_configless,idle_on_node_suspend,cloud_reg_addrs",
        # Cloud nodes cannot resolve each other's names: no tree fan-out.
        "TreeWidth": "65533",
        # Show powered-down cloud nodes in sinfo/scontrol (Slurm < 23.02 hides them).
        "PrivateData": "cloud",
        "ResumeProgram": resume_program,
        "SuspendProgram": suspend_program,
        "ResumeTimeout": str(timers.resume_timeout_s),
        "SuspendTime": str(timers.suspend_time_s),
        "SuspendTimeout": str(timers.suspend_timeout_s),
        "ResumeRate": "0",
        "SuspendRate": "0",
        "MailProg": "/bin/true",
    }
    for key, value in (overrides or {}).items():
        if value == "":
            settings.pop(key, None)
        else:
            settings[key] = value
    lines = [
        f"# slurm.conf for the sweepherd cluster {config.name!r}; written by sweepherd.",
        "# Compute nodes are State=CLOUD: Slurm runs ResumeProgram to launch an EC2 instance",
        "# for a node when a job needs it, and SuspendProgram to terminate it after SuspendTime",
        "# idle seconds.",
        *(f"{key}={value}" for key, value in settings.items()),
        "",
    ]
    for partition in config.partitions:
        extra = dict((node_params or {}).get(partition.name, {}))
        lines.append(_node_line(partition, extra))
    for partition in config.partitions:
        default = "YES" if partition is config.default_partition else "NO"
        lines.append(
            f"PartitionName={partition.name} Nodes={partition.nodelist} Default={default} "
            "MaxTime=INFINITE State=UP OverSubscribe=NO"
        )
    return "\n".join(lines) + "\n"


def real_memory_mib(partition: PartitionConfig) -> int:
    """The ``RealMemory`` declared for the partition's nodes."""
    return max(1, int(partition.memory_mib * MEMORY_FRACTION))


def _node_line(partition: PartitionConfig, extra: dict[str, str]) -> str:
    params = {
        "NodeName": partition.nodelist,
        "CPUs": str(partition.cpus),
        "RealMemory": str(real_memory_mib(partition)),
    }
    if partition.gpus:
        params["Gres"] = f"gpu:{partition.gpu_type}:{partition.gpus}"
    params["Features"] = ",".join([partition.name, "spot" if partition.spot else "ondemand"])
    params.update(extra)
    params["State"] = "CLOUD"
    return " ".join(f"{key}={value}" for key, value in params.items())


def render_gres_conf(config: ClusterConfig, *, device_prefix: str = "/dev/nvidia") -> str:
    """``gres.conf``: each GPU partition's devices, ``<device_prefix>0`` upwards."""
    lines = ["# gres.conf for the sweepherd cluster; written by sweepherd."]
    for partition in config.partitions:
        if not partition.gpus:
            continue
        files = (
            f"{device_prefix}0"
            if partition.gpus == 1
            else f"{device_prefix}[0-{partition.gpus - 1}]"
        )
        lines.append(
            f"NodeName={partition.nodelist} Name=gpu Type={partition.gpu_type} File={files}"
        )
    return "\n".join(lines) + "\n"


def render_cgroup_conf() -> str:
    """``cgroup.conf``: jobs see only the cores, memory and GPUs Slurm gave them."""
    return (
        "# cgroup.conf for the sweepherd cluster; written by sweepherd.\n"
        "ConstrainCores=yes\n"
        "ConstrainRAMSpace=yes\n"
        "ConstrainDevices=yes\n"
    )
