"""What sweepherd knows about EC2 instance types: vCPUs, memory, and GPUs for Slurm's GRES.

Slurm must be told each node's CPUs, memory and GPUs before the node exists (a ``State=CLOUD``
node is declared in ``slurm.conf`` long before an instance is launched for it), so these facts
are kept here, offline. The figures are AWS's published ``DescribeInstanceTypes`` values; the
tests check every entry against the copy of that data shipped with moto. An instance type not
known here can still be used if the partition states ``cpus`` and ``memory_mib`` itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceSpec:
    """The resources of one instance type, as Slurm needs them."""

    instance_type: str
    vcpus: int
    memory_mib: int
    n_gpus: int = 0
    gpu_type: str | None = None  # Slurm GRES type, lowercase: "a10g", "h100"


# instance type -> (vCPUs, memory MiB, GPUs, GRES type). x86_64 NVIDIA instances only: the
# compute image installs NVIDIA's driver; AMD (g4ad) and Arm (g5g) GPUs are not supported.
_GPU_TYPES: dict[str, tuple[int, int, int, str]] = {
    "g4dn.xlarge": (4, 16384, 1, "t4"),
    "g4dn.2xlarge": (8, 32768, 1, "t4"),
    "g4dn.4xlarge": (16, 65536, 1, "t4"),
    "g4dn.8xlarge": (32, 131072, 1, "t4"),
    "g4dn.12xlarge": (48, 196608, 4, "t4"),
    "g4dn.16xlarge": (64, 262144, 1, "t4"),
    "g4dn.metal": (96, 393216, 8, "t4"),
    "g5.xlarge": (4, 16384, 1, "a10g"),
    "g5.2xlarge": (8, 32768, 1, "a10g"),
    "g5.4xlarge": (16, 65536, 1, "a10g"),
    "g5.8xlarge": (32, 131072, 1, "a10g"),
    "g5.12xlarge": (48, 196608, 4, "a10g"),
    "g5.16xlarge": (64, 262144, 1, "a10g"),
    "g5.24xlarge": (96, 393216, 4, "a10g"),
    "g5.48xlarge": (192, 786432, 8, "a10g"),
    "g6.xlarge": (4, 16384, 1, "l4"),
    "g6.2xlarge": (8, 32768, 1, "l4"),
    "g6.4xlarge": (16, 65536, 1, "l4"),
    "g6.8xlarge": (32, 131072, 1, "l4"),
    "g6.12xlarge": (48, 196608, 4, "l4"),
    "g6.16xlarge": (64, 262144, 1, "l4"),
    "g6.24xlarge": (96, 393216, 4, "l4"),
    "g6.48xlarge": (192, 786432, 8, "l4"),
    "gr6.4xlarge": (16, 131072, 1, "l4"),
    "gr6.8xlarge": (32, 262144, 1, "l4"),
    "g6e.xlarge": (4, 32768, 1, "l40s"),
    "g6e.2xlarge": (8, 65536, 1, "l40s"),
    "g6e.4xlarge": (16, 131072, 1, "l40s"),
    "g6e.8xlarge": (32, 262144, 1, "l40s"),
    "g6e.12xlarge": (48, 393216, 4, "l40s"),
    "g6e.16xlarge": (64, 524288, 1, "l40s"),
    "g6e.24xlarge": (96, 786432, 4, "l40s"),
    "g6e.48xlarge": (192, 1572864, 8, "l40s"),
    "p3dn.24xlarge": (96, 786432, 8, "v100"),
    "p4d.24xlarge": (96, 1179648, 8, "a100"),
    "p4de.24xlarge": (96, 1179648, 8, "a100"),
    "p5.4xlarge": (16, 262144, 1, "h100"),
    "p5.48xlarge": (192, 2097152, 8, "h100"),
    "p5e.48xlarge": (192, 2097152, 8, "h200"),
    "p5en.48xlarge": (192, 2097152, 8, "h200"),
    "p6-b200.48xlarge": (192, 2097152, 8, "b200"),
}

# General-purpose x86 families whose sizes follow AWS's regular pattern: vCPUs by size and a
# fixed memory per vCPU by class (compute 2 GiB, general 4 GiB, memory-optimised 8 GiB).
_REGULAR_FAMILIES = frozenset(
    f"{cls}{gen}" for cls in ("c", "m", "r") for gen in ("5", "5a", "6i", "6a", "7i", "7a", "8i")
)
_MIB_PER_VCPU = {"c": 2048, "m": 4096, "r": 8192}
_VCPUS_BY_SIZE = {
    "large": 2,
    "xlarge": 4,
    "2xlarge": 8,
    "4xlarge": 16,
    "8xlarge": 32,
    "9xlarge": 36,
    "12xlarge": 48,
    "16xlarge": 64,
    "18xlarge": 72,
    "24xlarge": 96,
    "32xlarge": 128,
    "48xlarge": 192,
    "96xlarge": 384,
}
_T3 = {
    "t3.micro": (2, 1024),
    "t3.small": (2, 2048),
    "t3.medium": (2, 4096),
    "t3.large": (2, 8192),
    "t3.xlarge": (4, 16384),
    "t3.2xlarge": (8, 32768),
}

_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
# Graviton (Arm) families carry a "g" among the attributes after the generation digit: c7g,
# m6gd, g5g, c6gn. The head node and compute images here are x86_64 only.
_ARM_RE = re.compile(r"^[a-z]+\d+[a-z-]*g[a-z-]*\.")


def is_instance_type_name(instance_type: str) -> bool:
    """Whether ``instance_type`` is shaped like an EC2 instance type (``c6i.2xlarge``)."""
    return bool(_TYPE_RE.match(instance_type))


def is_arm_instance_type(instance_type: str) -> bool:
    """Whether ``instance_type`` is a Graviton (Arm) type, which sweepherd does not support."""
    return bool(_ARM_RE.match(instance_type))


def gpu_instance_types() -> dict[str, InstanceSpec]:
    """Every GPU instance type sweepherd can declare to Slurm, by name."""
    return {name: _gpu_spec(name) for name in _GPU_TYPES}


def instance_spec(instance_type: str) -> InstanceSpec | None:
    """The known resources of ``instance_type``, or ``None`` when sweepherd does not know it."""
    if instance_type in _GPU_TYPES:
        return _gpu_spec(instance_type)
    if instance_type in _T3:
        vcpus, memory_mib = _T3[instance_type]
        return InstanceSpec(instance_type, vcpus, memory_mib)
    family, _, size = instance_type.partition(".")
    if family in _REGULAR_FAMILIES:
        vcpus = 1 if size == "medium" else _VCPUS_BY_SIZE.get(size, 0)
        if vcpus:
            return InstanceSpec(instance_type, vcpus, vcpus * _MIB_PER_VCPU[family[0]])
    return None


def _gpu_spec(instance_type: str) -> InstanceSpec:
    vcpus, memory_mib, n_gpus, gpu_type = _GPU_TYPES[instance_type]
    return InstanceSpec(instance_type, vcpus, memory_mib, n_gpus, gpu_type)
