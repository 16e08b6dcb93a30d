"""The instance-type facts Slurm is told, checked against AWS's own data as moto ships it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import moto
import pytest

from sweepherd.cloud.aws import gpu_instance_types, instance_spec
from sweepherd.cloud.aws._instances import is_arm_instance_type, is_instance_type_name


@pytest.fixture(scope="module")
def aws_types() -> dict[str, Any]:
    """AWS's DescribeInstanceTypes data, as moto keeps a copy of it."""
    path = Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz"
    with gzip.open(path) as f:
        data: dict[str, Any] = json.load(f)
    return data


def test_every_gpu_type_matches_aws(aws_types: dict[str, Any]) -> None:
    for name, spec in gpu_instance_types().items():
        aws = aws_types[name]
        assert spec.vcpus == aws["VCpuInfo"]["DefaultVCpus"], name
        assert spec.memory_mib == aws["MemoryInfo"]["SizeInMiB"], name
        gpus = aws["GpuInfo"]["Gpus"][0]
        assert spec.n_gpus == gpus["Count"], name
        assert spec.gpu_type == gpus["Name"].lower(), name
        assert gpus["Manufacturer"] == "NVIDIA", name
        assert "x86_64" in aws["ProcessorInfo"]["SupportedArchitectures"], name


def test_every_known_cpu_type_matches_aws(aws_types: dict[str, Any]) -> None:
    checked = 0
    for name, aws in aws_types.items():
        spec = instance_spec(name)
        if spec is None or spec.n_gpus:
            continue
        assert spec.vcpus == aws["VCpuInfo"]["DefaultVCpus"], name
        assert spec.memory_mib == aws["MemoryInfo"]["SizeInMiB"], name
        checked += 1
    assert checked > 150  # c/m/r families 5th to 8th generation and t3


def test_unknown_and_metal_types_are_not_guessed() -> None:
    assert instance_spec("c6i.metal") is None
    assert instance_spec("x2idn.32xlarge") is None
    assert instance_spec("nosuch.type") is None


@pytest.mark.parametrize(
    ("name", "arm"),
    [
        ("c7g.large", True),
        ("m6gd.xlarge", True),
        ("g5g.xlarge", True),
        ("c6gn.2xlarge", True),
        ("g4dn.xlarge", False),
        ("c6i.large", False),
        ("m7i-flex.large", False),
        ("p4d.24xlarge", False),
    ],
)
def test_arm_types_are_recognised(name: str, arm: bool) -> None:
    assert is_arm_instance_type(name) is arm


def test_every_graviton_type_of_aws_is_recognised_as_arm(aws_types: dict[str, Any]) -> None:
    for name, aws in aws_types.items():
        archs = aws["ProcessorInfo"]["SupportedArchitectures"]
        if archs == ["arm64"] and not name.startswith(("a1.", "mac")):
            assert is_arm_instance_type(name), name
        elif "x86_64" in archs:
            assert not is_arm_instance_type(name), name


@pytest.mark.parametrize("name", ["c6i", "C6I.large", "c6i large", "", ".large"])
def test_malformed_type_names(name: str) -> None:
    assert not is_instance_type_name(name)
