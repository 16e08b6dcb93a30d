"""The cluster config: every violation reported at once with its key, and a YAML round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sweepherd.cloud.aws import (
    GPU_IMAGE,
    UBUNTU_IMAGE,
    ClusterConfigError,
    cluster_config_violations,
    dump_cluster_config,
    load_cluster_config,
    parse_cluster_config,
    write_cluster_config,
)
from sweepherd.errors import CloudError, ExitStatus

from .conftest import raw_config


def test_a_valid_config_gets_its_instance_facts_filled_in() -> None:
    config = parse_cluster_config(raw_config())
    cpu, gpu = config.partitions
    assert (cpu.cpus, cpu.memory_mib, cpu.gpus, cpu.spot) == (2, 4096, 0, True)
    assert (gpu.cpus, gpu.memory_mib, gpu.gpus, gpu.gpu_type) == (4, 16384, 1, "t4")
    assert config.default_partition is cpu
    assert cpu.node_names == ["cpu-1", "cpu-2"] and cpu.nodelist == "cpu-[1-2]"
    assert gpu.nodelist == "gpu-1"
    assert config.stack_name == "sweepherd-demo"
    assert config.partition_of_node("cpu-2") is cpu
    assert config.partition_of_node("cpu-3") is None
    assert config.partition_of_node("other-1") is None


def test_default_images_are_ubuntu_and_the_nvidia_image_for_gpus() -> None:
    raw = raw_config()
    for p in raw["partitions"]:
        del p["image"]
    del raw["head_image"]
    config = parse_cluster_config(raw)
    assert config.head_image == UBUNTU_IMAGE
    assert [p.image for p in config.partitions] == [UBUNTU_IMAGE, GPU_IMAGE]


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = parse_cluster_config(
        raw_config(
            vpc_id="vpc-0123456789abcdef0",
            subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
            tags={"team": "ml", "cost-center": 42},
        )
    )
    path = write_cluster_config(config, tmp_path / "c.yaml")
    assert load_cluster_config(path) == config
    assert dump_cluster_config(load_cluster_config(path)) == path.read_text()
    assert config.tags == {"team": "ml", "cost-center": "42"}
    assert config.all_tags["sweepherd:cluster"] == "demo"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"region": "us-east"}, "region: 'us-east' is not an AWS region name"),
        ({"region": "US-EAST-1"}, "region: 'US-EAST-1' is not an AWS region name"),
        ({"region": "mars-north-1"}, "region: 'mars-north-1' is not an AWS region name"),
        ({"name": "Demo"}, "name: 'Demo' must be 2-24 lowercase"),
        ({"ssh_cidr": "0.0.0.0/0"}, "ssh_cidr: 0.0.0.0/0 would open SSH to the whole internet"),
        ({"ssh_cidr": "::/0"}, "ssh_cidr: ::/0 would open SSH to the whole internet"),
        ({"ssh_cidr": "203.0.113.7/24"}, "ssh_cidr: '203.0.113.7/24' is not a valid CIDR"),
        ({"ssh_cidr": "my laptop"}, "ssh_cidr: 'my laptop' is not a valid CIDR"),
        ({"key_name": " key"}, "key_name: ' key' is not an EC2 key pair name"),
        ({"head_instance_type": "c7g.large"}, "head_instance_type: c7g.large is an Arm"),
        ({"shared_fs_size_gb": 0}, "shared_fs_size_gb: 0 must be between 1 and 16384"),
        ({"shared_fs_deletion": "Keep"}, "shared_fs_deletion: 'Keep' must be one of"),
        ({"head_image": "ubuntu"}, "head_image: 'ubuntu' must be an AMI id"),
        ({"vpc_id": "vpc-0123456789abcdef0"}, "vpc_id, subnet_ids: give both or neither"),
        ({"subnet_ids": ["sub-1"]}, "subnet_ids[0]: 'sub-1' is not a subnet id"),
        ({"colour": "blue"}, "colour: unknown key"),
        ({"slurm": {"suspend_time_s": 0}}, "slurm.suspend_time_s: must be a positive"),
        ({"slurm": {"idle": 5}}, "slurm.idle: unknown key"),
        ({"tags": {"sweepherd:cluster": "x"}}, "tags.sweepherd:cluster: reserved"),
        ({"tags": {"aws:foo": "x"}}, "tags.aws:foo: not a valid tag key"),
        ({"sweepherd_package": "sweepherd; rm -rf /"}, "sweepherd_package: "),
        ({"partitions": []}, "partitions: required"),
    ],
)
def test_each_bad_setting_is_named(change: dict[str, Any], expected: str) -> None:
    problems = cluster_config_violations(raw_config(**change))
    assert any(p.startswith(expected) for p in problems), problems


def _with_partition(**fields: Any) -> dict[str, Any]:
    partition = {"name": "gpu", "instance_type": "g5.xlarge", "max_nodes": 2, **fields}
    return raw_config(partitions=[partition])


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"gpus": 2},
            "partitions[0].gpus: g5.xlarge has 1 GPU, not 2; drop `gpus` to use 1",
        ),
        (
            {"instance_type": "g5.12xlarge", "gpus": 8},
            "partitions[0].gpus: g5.12xlarge has 4 GPUs, not 8",
        ),
        ({"instance_type": "c6i.large", "gpus": 1}, "partitions[0].gpus: c6i.large has 0 GPUs"),
        ({"gpu_type": "a100"}, "partitions[0].gpu_type: g5.xlarge's GPUs are 'a10g'"),
        ({"max_nodes": 0}, "partitions[0].max_nodes: 0 must be between 1 and 1000"),
        ({"max_nodes": -3}, "partitions[0].max_nodes: -3 must be between 1 and 1000"),
        ({"max_nodes": "4"}, "partitions[0].max_nodes: must be an integer"),
        ({"instance_type": "g5g.xlarge"}, "partitions[0].instance_type: g5g.xlarge is an Arm"),
        ({"instance_type": "gpu"}, "partitions[0].instance_type: 'gpu' is not an EC2"),
        (
            {"instance_type": "x2idn.32xlarge"},
            "partitions[0].instance_type: sweepherd does not know x2idn.32xlarge's vCPUs",
        ),
        ({"name": "GPU-a"}, "partitions[0].name: 'GPU-a' must be 1-15 lowercase"),
        ({"spot": "yes"}, "partitions[0].spot: must be true or false"),
        ({"cores": 4}, "partitions[0].cores: unknown key"),
    ],
)
def test_each_bad_partition_setting_is_named(fields: dict[str, Any], expected: str) -> None:
    problems = cluster_config_violations(_with_partition(**fields))
    assert any(p.startswith(expected) for p in problems), problems


def test_an_unknown_type_is_fine_with_its_cpus_and_memory() -> None:
    config = parse_cluster_config(
        _with_partition(instance_type="x2idn.32xlarge", cpus=128, memory_mib=2097152)
    )
    assert (config.partitions[0].cpus, config.partitions[0].gpus) == (128, 0)


def test_every_violation_is_reported_together() -> None:
    raw = raw_config(region="nowhere", ssh_cidr="0.0.0.0/0")
    raw["partitions"][1]["gpus"] = 4
    raw["partitions"][0]["max_nodes"] = 0
    with pytest.raises(ClusterConfigError) as info:
        parse_cluster_config(raw)
    keys = sorted(v.split(":")[0] for v in info.value.violations)
    assert keys == ["partitions[0].max_nodes", "partitions[1].gpus", "region", "ssh_cidr"]
    assert isinstance(info.value, CloudError)
    assert info.value.exit_status is ExitStatus.CLOUD
    assert str(info.value).count("\n  - ") == 4


def test_duplicate_partitions_and_two_defaults() -> None:
    raw = raw_config()
    raw["partitions"][1]["name"] = "cpu"
    raw["partitions"][1]["default"] = True
    problems = cluster_config_violations(raw)
    assert "partitions[1].name: partition 'cpu' is defined twice" in problems
    assert "partitions: only one partition may be the default" in problems


def test_missing_required_keys() -> None:
    problems = cluster_config_violations({"partitions": None})
    for key in ("name", "region", "key_name", "ssh_cidr", "partitions"):
        assert f"{key}: required" in problems


def test_load_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match="sweepherd aws init"):
        load_cluster_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ClusterConfigError, match="not valid YAML"):
        load_cluster_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ClusterConfigError, match="must hold a YAML mapping"):
        load_cluster_config(bad)
    bad.write_text("name: demo\n")
    with pytest.raises(ClusterConfigError) as info:
        load_cluster_config(bad)
    assert str(bad) in str(info.value) and "region: required" in info.value.violations
