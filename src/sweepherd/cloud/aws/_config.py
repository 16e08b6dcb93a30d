"""The cluster config: what ``sweepherd aws init`` writes and every other ``aws`` command reads.

It is a small YAML file. :func:`parse_cluster_config` checks all of it and reports every problem
at once (``partitions[1].gpus: g5.xlarge has 1 GPU, not 2``) before anything touches AWS.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from sweepherd import __version__
from sweepherd.cloud.aws._errors import ClusterConfigError
from sweepherd.cloud.aws._instances import (
    InstanceSpec,
    instance_spec,
    is_arm_instance_type,
    is_instance_type_name,
)

#: Ubuntu 24.04 LTS (amd64), as Canonical publishes it in SSM: Slurm 23.11 from the OS packages.
UBUNTU_IMAGE = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
#: AWS's Deep Learning Base AMI with NVIDIA's driver, on the same Ubuntu 24.04.
GPU_IMAGE = (
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
)
#: The tag on everything a cluster owns; its value is the cluster name.
CLUSTER_TAG = "sweepherd:cluster"
#: The tag naming the Slurm node an instance was started for.
NODE_TAG = "sweepherd:node"
#: Where the config lives on the head node; the resume and suspend programs read it there.
HEAD_CONFIG_PATH = "/etc/sweepherd/cluster.yaml"
SHARED_MOUNT = "/shared"
SHARED_FS_DELETION_POLICIES = ("Delete", "Snapshot", "Retain")

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,22}[a-z0-9]$")
_PARTITION_RE = re.compile(r"^[a-z][a-z0-9]{0,14}$")
# us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, cn-north-1, il-central-1, ca-west-1
_REGION_RE = re.compile(
    r"^(us|eu|ap|sa|ca|me|af|il|mx|cn)(-gov|-iso|-isob)?"
    r"-(north|south|east|west|central|northeast|northwest|southeast|southwest)-\d{1,2}$"
)
_IMAGE_RE = re.compile(r"^(ami-[0-9a-f]{8,17}|/[A-Za-z0-9_.\-/]+)$")
_KEY_NAME_RE = re.compile(r"^[\x20-\x7e]{1,255}$")
_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_VPC_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_TAG_KEY_RE = re.compile(r"^[\w .:/=+\-@]{1,127}$")
_MAX_NODES_PER_PARTITION = 1000


@dataclass(frozen=True)
class PartitionConfig:
    """One Slurm partition of cloud nodes, all of one instance type.

    Its nodes are named ``<name>-1`` ... ``<name>-<max_nodes>`` and start as ``State=CLOUD``:
    no instance exists until Slurm resumes the node for a job. ``spot`` partitions ask for a
    Spot instance first and fall back to on-demand when Spot has no capacity.
    """

    name: str
    instance_type: str
    max_nodes: int
    spot: bool = False
    gpus: int = 0
    gpu_type: str | None = None
    cpus: int = 0
    memory_mib: int = 0
    image: str = UBUNTU_IMAGE
    default: bool = False

    @property
    def node_names(self) -> list[str]:
        """Every node name of the partition, in order."""
        return [f"{self.name}-{i}" for i in range(1, self.max_nodes + 1)]

    @property
    def nodelist(self) -> str:
        """The partition's nodes as a Slurm hostlist expression (``gpu-[1-4]``)."""
        if self.max_nodes == 1:
            return f"{self.name}-1"
        return f"{self.name}-[1-{self.max_nodes}]"


@dataclass(frozen=True)
class SlurmTimers:
    """Slurm's power-saving timers (seconds) for the cloud nodes."""

    #: How long a node may take from ResumeProgram to slurmd registering; AWS boots plus package
    #: installs take minutes, so the default is generous.
    resume_timeout_s: int = 900
    #: How long a node stays idle before Slurm suspends it and its instance is terminated.
    suspend_time_s: int = 300
    #: How long Slurm waits for the SuspendProgram before the node may be resumed again.
    suspend_timeout_s: int = 120


@dataclass(frozen=True)
class ClusterConfig:
    """A burstable Slurm cluster on AWS: a head node plus partitions of cloud nodes."""

    name: str
    region: str
    key_name: str
    ssh_cidr: str
    partitions: tuple[PartitionConfig, ...]
    head_instance_type: str = "t3.large"
    head_image: str = UBUNTU_IMAGE
    shared_fs_size_gb: int = 100
    shared_fs_deletion: str = "Snapshot"
    root_volume_gb: int = 60
    vpc_id: str = ""
    subnet_ids: tuple[str, ...] = ()
    slurm: SlurmTimers = field(default_factory=SlurmTimers)
    sweepherd_package: str = f"sweepherd[aws]=={__version__}"
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def stack_name(self) -> str:
        """The CloudFormation stack that holds the cluster."""
        return f"sweepherd-{self.name}"

    @property
    def munge_key_parameter(self) -> str:
        """The SSM SecureString the head node puts its munge key in, for compute nodes to read."""
        return f"/sweepherd/{self.name}/munge-key"

    @property
    def head_hostname(self) -> str:
        """The head node's host name, which is also Slurm's ``SlurmctldHost``."""
        return f"{self.name}-head"

    def partition(self, name: str) -> PartitionConfig:
        """The partition called ``name``."""
        for partition in self.partitions:
            if partition.name == name:
                return partition
        known = ", ".join(p.name for p in self.partitions)
        raise ClusterConfigError(f"no partition {name!r} in cluster {self.name!r} (has: {known})")

    def partition_of_node(self, node: str) -> PartitionConfig | None:
        """The partition a node name like ``gpu-3`` belongs to, or ``None`` if it is not ours."""
        prefix, _, index = node.rpartition("-")
        if not index.isdigit():
            return None
        for partition in self.partitions:
            if partition.name == prefix and 1 <= int(index) <= partition.max_nodes:
                return partition
        return None

    @property
    def default_partition(self) -> PartitionConfig:
        """The partition jobs go to when they name none."""
        return next((p for p in self.partitions if p.default), self.partitions[0])

    @property
    def all_tags(self) -> dict[str, str]:
        """The user's tags plus the cluster tag sweepherd uses to find what it owns."""
        return {**self.tags, CLUSTER_TAG: self.name}

    def with_network(self, vpc_id: str, subnet_ids: Sequence[str]) -> ClusterConfig:
        """The same config placed in a VPC and its subnets."""
        return replace(self, vpc_id=vpc_id, subnet_ids=tuple(subnet_ids))


def parse_cluster_config(raw: Mapping[str, Any]) -> ClusterConfig:
    """Check ``raw`` (the YAML mapping) completely and build the config.

    Raises :class:`ClusterConfigError` listing every violation.
    """
    problems: list[str] = []
    config = _build(raw, problems)
    if problems or config is None:
        raise ClusterConfigError(
            "the AWS cluster config is invalid:",
            violations=problems,
            hint=None,
        )
    return config


def cluster_config_violations(raw: Mapping[str, Any]) -> list[str]:
    """Every problem of ``raw`` as ``key: message`` strings, without raising."""
    problems: list[str] = []
    _build(raw, problems)
    return problems


def load_cluster_config(path: str | Path) -> ClusterConfig:
    """Read and check the cluster config YAML at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ClusterConfigError(
            f"no cluster config at {p}",
            hint="Create one with `sweepherd aws init`, or pass --config PATH.",
        ) from None
    except OSError as exc:
        raise ClusterConfigError(f"cannot read the cluster config {p}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ClusterConfigError(f"{p} is not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ClusterConfigError(f"{p} must hold a YAML mapping of cluster settings")
    try:
        return parse_cluster_config(raw)
    except ClusterConfigError as exc:
        raise ClusterConfigError(
            f"the AWS cluster config {p} is invalid:", violations=exc.violations
        ) from None


def dump_cluster_config(config: ClusterConfig) -> str:
    """The config as YAML, in the form :func:`load_cluster_config` reads back."""
    raw = asdict(config)
    raw["partitions"] = [asdict(p) for p in config.partitions]
    raw["subnet_ids"] = list(config.subnet_ids)
    raw["tags"] = dict(config.tags)
    header = "# sweepherd AWS cluster config; edit, then `sweepherd aws validate` and `deploy`.\n"
    return header + yaml.safe_dump(raw, sort_keys=False, default_flow_style=False)


def write_cluster_config(config: ClusterConfig, path: str | Path) -> Path:
    """Write the config YAML to ``path`` (via a temporary file, so readers never see half)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(dump_cluster_config(config), encoding="utf-8")
        tmp.replace(p)
    except OSError as exc:
        raise ClusterConfigError(f"cannot write the cluster config {p}: {exc.strerror}") from None
    return p


# --------------------------------------------------------------------------------------------
# checking


_TOP_KEYS = set(ClusterConfig.__dataclass_fields__)
_PARTITION_KEYS = set(PartitionConfig.__dataclass_fields__)
_SLURM_KEYS = set(SlurmTimers.__dataclass_fields__)
_REQUIRED = ("name", "region", "key_name", "ssh_cidr", "partitions")


def _build(raw: Mapping[str, Any], problems: list[str]) -> ClusterConfig | None:
    if not isinstance(raw, Mapping):
        problems.append("the cluster config must be a mapping")
        return None
    for key in sorted(set(raw) - _TOP_KEYS, key=str):
        problems.append(f"{key}: unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    for key in _REQUIRED:
        if raw.get(key) in (None, "", [], ()):
            problems.append(f"{key}: required")

    name = _str(raw, "name", problems)
    if name and not _NAME_RE.match(name):
        problems.append(
            f"name: {name!r} must be 2-24 lowercase letters, digits and dashes, "
            "starting with a letter (it names the stack, hosts and tags)"
        )
    region = _str(raw, "region", problems)
    if region and not _REGION_RE.match(region):
        problems.append(
            f"region: {region!r} is not an AWS region name like us-east-1 or eu-central-1"
        )
    key_name = _str(raw, "key_name", problems)
    if key_name and (not _KEY_NAME_RE.match(key_name) or key_name != key_name.strip()):
        problems.append(
            f"key_name: {key_name!r} is not an EC2 key pair name (1-255 printable ASCII "
            "characters, no leading or trailing space)"
        )
    ssh_cidr = _str(raw, "ssh_cidr", problems)
    if ssh_cidr:
        _check_ssh_cidr(ssh_cidr, problems)

    head_type = _str(raw, "head_instance_type", problems, default="t3.large")
    if not is_instance_type_name(head_type):
        problems.append(f"head_instance_type: {head_type!r} is not an EC2 instance type")
    elif is_arm_instance_type(head_type):
        problems.append(f"head_instance_type: {head_type} is an Arm (Graviton) type; use x86_64")
    head_image = _str(raw, "head_image", problems, default=UBUNTU_IMAGE)
    _check_image("head_image", head_image, problems)

    fs_size = _int(raw, "shared_fs_size_gb", problems, default=100)
    if fs_size is not None and not 1 <= fs_size <= 16384:
        problems.append(f"shared_fs_size_gb: {fs_size} must be between 1 and 16384 (GiB)")
    deletion = _str(raw, "shared_fs_deletion", problems, default="Snapshot")
    if deletion not in SHARED_FS_DELETION_POLICIES:
        problems.append(
            f"shared_fs_deletion: {deletion!r} must be one of "
            f"{', '.join(SHARED_FS_DELETION_POLICIES)}"
        )
    root_gb = _int(raw, "root_volume_gb", problems, default=60)
    if root_gb is not None and not 8 <= root_gb <= 16384:
        problems.append(f"root_volume_gb: {root_gb} must be between 8 and 16384 (GiB)")

    vpc_id = _str(raw, "vpc_id", problems, default="")
    if vpc_id and not _VPC_RE.match(vpc_id):
        problems.append(f"vpc_id: {vpc_id!r} is not a VPC id like vpc-0123456789abcdef0")
    subnet_ids = _str_list(raw, "subnet_ids", problems)
    for i, subnet in enumerate(subnet_ids):
        if not _SUBNET_RE.match(subnet):
            problems.append(f"subnet_ids[{i}]: {subnet!r} is not a subnet id like subnet-0123abcd")
    if len(set(subnet_ids)) != len(subnet_ids):
        problems.append("subnet_ids: the same subnet is listed twice")
    if bool(vpc_id) != bool(subnet_ids):
        problems.append(
            "vpc_id, subnet_ids: give both or neither (`sweepherd aws vpc` fills in both)"
        )

    slurm = _slurm_timers(raw.get("slurm"), problems)
    package = _str(raw, "sweepherd_package", problems, default=f"sweepherd[aws]=={__version__}")
    if not package or any(c in package for c in "'\"`$;&|\n\\"):
        problems.append(
            f"sweepherd_package: {package!r} must be a pip requirement such as "
            f"sweepherd[aws]=={__version__}, without quotes or shell characters"
        )
    tags = _tags(raw.get("tags"), problems)
    partitions = _partitions(raw.get("partitions"), problems)

    if problems:
        return None
    return ClusterConfig(
        name=name,
        region=region,
        key_name=key_name,
        ssh_cidr=ssh_cidr,
        partitions=tuple(partitions),
        head_instance_type=head_type,
        head_image=head_image,
        shared_fs_size_gb=fs_size or 100,
        shared_fs_deletion=deletion,
        root_volume_gb=root_gb or 60,
        vpc_id=vpc_id,
        subnet_ids=tuple(subnet_ids),
        slurm=slurm,
        sweepherd_package=package,
        tags=tags,
    )


def _check_ssh_cidr(cidr: str, problems: list[str]) -> None:
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        problems.append(
            f"ssh_cidr: {cidr!r} is not a valid CIDR ({exc}); give your address, e.g. "
            "203.0.113.7/32 (`curl https://checkip.amazonaws.com` shows it)"
        )
        return
    if network.prefixlen == 0:
        problems.append(
            f"ssh_cidr: {cidr} would open SSH to the whole internet; give your own address or "
            "network, e.g. 203.0.113.7/32"
        )


def _check_image(key: str, image: str, problems: list[str]) -> None:
    if not _IMAGE_RE.match(image):
        problems.append(
            f"{key}: {image!r} must be an AMI id (ami-0123456789abcdef0) or the path of a "
            f"public SSM parameter holding one (e.g. {UBUNTU_IMAGE})"
        )


def _partitions(raw: Any, problems: list[str]) -> list[PartitionConfig]:
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        problems.append("partitions: must be a list of partitions")
        return []
    partitions: list[PartitionConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        path = f"partitions[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{path}: must be a mapping with name, instance_type, max_nodes")
            continue
        partition = _partition(path, item, problems)
        if partition is None:
            continue
        if partition.name in seen:
            problems.append(f"{path}.name: partition {partition.name!r} is defined twice")
        seen.add(partition.name)
        partitions.append(partition)
    if sum(p.default for p in partitions) > 1:
        problems.append("partitions: only one partition may be the default")
    return partitions


def _partition(path: str, raw: Mapping[str, Any], problems: list[str]) -> PartitionConfig | None:
    before = len(problems)
    for key in sorted(set(raw) - _PARTITION_KEYS, key=str):
        problems.append(
            f"{path}.{key}: unknown key (allowed: {', '.join(sorted(_PARTITION_KEYS))})"
        )
    for key in ("name", "instance_type", "max_nodes"):
        if raw.get(key) in (None, ""):
            problems.append(f"{path}.{key}: required")
    name = _str(raw, "name", problems, path=path)
    if name and not _PARTITION_RE.match(name):
        problems.append(
            f"{path}.name: {name!r} must be 1-15 lowercase letters and digits, starting with a "
            "letter (its nodes are named <name>-1, <name>-2, ...)"
        )
    itype = _str(raw, "instance_type", problems, path=path)
    spec: InstanceSpec | None = None
    if itype:
        if not is_instance_type_name(itype):
            problems.append(f"{path}.instance_type: {itype!r} is not an EC2 instance type")
        elif is_arm_instance_type(itype):
            problems.append(
                f"{path}.instance_type: {itype} is an Arm (Graviton) type; sweepherd's compute "
                "images are x86_64"
            )
        else:
            spec = instance_spec(itype)
    max_nodes = _int(raw, "max_nodes", problems, path=path)
    if max_nodes is not None and not 1 <= max_nodes <= _MAX_NODES_PER_PARTITION:
        problems.append(
            f"{path}.max_nodes: {max_nodes} must be between 1 and {_MAX_NODES_PER_PARTITION}"
        )
    spot = _bool(raw, "spot", problems, path=path)
    default = _bool(raw, "default", problems, path=path)
    gpus = _int(raw, "gpus", problems, path=path)
    cpus = _int(raw, "cpus", problems, path=path)
    memory_mib = _int(raw, "memory_mib", problems, path=path)
    gpu_type_raw = raw.get("gpu_type")

    n_gpus = spec.n_gpus if spec else 0
    if gpus is not None and itype and spec is not None:
        if gpus != spec.n_gpus:
            have = f"{spec.n_gpus} GPU" + ("" if spec.n_gpus == 1 else "s")
            problems.append(
                f"{path}.gpus: {itype} has {have}, not {gpus}; drop `gpus` to use "
                f"{spec.n_gpus}, or pick another instance type"
            )
    elif gpus is not None and itype and spec is None and gpus != 0:
        problems.append(
            f"{path}.gpus: sweepherd does not know {itype}'s GPUs; use a known GPU type "
            "(`sweepherd aws init --list-gpu-types`) or drop `gpus`"
        )
    if gpu_type_raw is not None and spec is not None and gpu_type_raw != spec.gpu_type:
        problems.append(
            f"{path}.gpu_type: {itype}'s GPUs are {spec.gpu_type!r}, not {gpu_type_raw!r}"
        )
    for key, value in (("cpus", cpus), ("memory_mib", memory_mib)):
        if value is not None and value <= 0:
            problems.append(f"{path}.{key}: must be a positive integer")
    if spec is None and itype and is_instance_type_name(itype) and not (cpus and memory_mib):
        problems.append(
            f"{path}.instance_type: sweepherd does not know {itype}'s vCPUs and memory; set "
            f"`cpus` and `memory_mib` for it (from `aws ec2 describe-instance-types "
            f"--instance-types {itype}`)"
        )
    image_default = GPU_IMAGE if n_gpus else UBUNTU_IMAGE
    image = _str(raw, "image", problems, path=path, default=image_default)
    _check_image(f"{path}.image", image, problems)

    if len(problems) > before:
        return None
    return PartitionConfig(
        name=name,
        instance_type=itype,
        max_nodes=max_nodes or 0,
        spot=spot,
        gpus=n_gpus,
        gpu_type=spec.gpu_type if spec else None,
        cpus=cpus or (spec.vcpus if spec else 0),
        memory_mib=memory_mib or (spec.memory_mib if spec else 0),
        image=image,
        default=default,
    )


def _slurm_timers(raw: Any, problems: list[str]) -> SlurmTimers:
    if raw is None:
        return SlurmTimers()
    if not isinstance(raw, Mapping):
        problems.append("slurm: must be a mapping of timers")
        return SlurmTimers()
    for key in sorted(set(raw) - _SLURM_KEYS, key=str):
        problems.append(f"slurm.{key}: unknown key (allowed: {', '.join(sorted(_SLURM_KEYS))})")
    values: dict[str, int] = {}
    for key in _SLURM_KEYS:
        value = _int(raw, key, problems, path="slurm")
        if value is None:
            continue
        if value <= 0:
            problems.append(f"slurm.{key}: must be a positive number of seconds")
        values[key] = value
    return SlurmTimers(**values)


def _tags(raw: Any, problems: list[str]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append("tags: must be a mapping of tag keys to values")
        return {}
    tags: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not _TAG_KEY_RE.match(key) or key.startswith("aws:"):
            problems.append(f"tags.{key}: not a valid tag key (1-127 characters, not aws:...)")
        elif key in (CLUSTER_TAG, NODE_TAG):
            problems.append(f"tags.{key}: reserved for sweepherd")
        elif not isinstance(value, (str, int, float)) or len(str(value)) > 255:
            problems.append(f"tags.{key}: the value must be a string of at most 255 characters")
        else:
            tags[key] = str(value)
    return tags


def _where(path: str | None, key: str) -> str:
    return f"{path}.{key}" if path else key


def _str(
    raw: Mapping[str, Any],
    key: str,
    problems: list[str],
    *,
    path: str | None = None,
    default: str = "",
) -> str:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        problems.append(f"{_where(path, key)}: must be a string, not {type(value).__name__}")
        return default
    return value


def _int(
    raw: Mapping[str, Any],
    key: str,
    problems: list[str],
    *,
    path: str | None = None,
    default: int | None = None,
) -> int | None:
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{_where(path, key)}: must be an integer, not {value!r}")
        return default
    return value


def _bool(raw: Mapping[str, Any], key: str, problems: list[str], *, path: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        problems.append(f"{_where(path, key)}: must be true or false, not {value!r}")
        return False
    return value


def _str_list(raw: Mapping[str, Any], key: str, problems: list[str]) -> list[str]:
    value = raw.get(key)
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        problems.append(f"{key}: must be a list of strings")
        return []
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            problems.append(f"{key}[{i}]: must be a string")
        else:
            out.append(item)
    return out
