"""The CloudFormation template: cfn-lint finds no error in any template sweepherd can make, and
the security properties the seed's template lacked hold."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest

from sweepherd.cloud.aws import (
    ClusterConfig,
    build_template,
    lint_cluster,
    lint_template,
    parse_cluster_config,
    template_json,
)
from sweepherd.cloud.aws._stack import MAX_TEMPLATE_BYTES

from .conftest import raw_config

REGIONS = ["us-east-1", "eu-central-1", "ap-southeast-2", "us-west-2"]
PARTITION_SETS = {
    "cpu-on-demand": [{"name": "cpu", "instance_type": "c6i.2xlarge", "max_nodes": 8}],
    "cpu-spot": [{"name": "cpu", "instance_type": "m7i.xlarge", "max_nodes": 1, "spot": True}],
    "gpu-spot": [{"name": "gpu", "instance_type": "g5.xlarge", "max_nodes": 4, "spot": True}],
    "gpu-multi": [{"name": "a100", "instance_type": "p4d.24xlarge", "max_nodes": 2, "gpus": 8}],
    "mixed": [
        {"name": "cpu", "instance_type": "c6a.large", "max_nodes": 16, "spot": True},
        {"name": "t4", "instance_type": "g4dn.12xlarge", "max_nodes": 2},
        {"name": "h100", "instance_type": "p5.48xlarge", "max_nodes": 1, "spot": True},
        {"name": "big", "instance_type": "x2idn.16xlarge", "max_nodes": 1, "cpus": 64,
         "memory_mib": 1048576},
    ],
}  # fmt: skip
IMAGES = ["default", "ami-0123456789abcdef0"]


def make_config(region: str, partitions: list[dict[str, Any]], image: str, **more: Any) -> Any:
    raw = raw_config(region=region, partitions=[dict(p) for p in partitions], **more)
    if image == "default":
        del raw["head_image"]
    else:
        raw["head_image"] = image
        for p in raw["partitions"]:
            p["image"] = image
    return parse_cluster_config(raw)


MATRIX = [
    pytest.param(region, name, image, id=f"{region}-{name}-{image[:3]}")
    for (region, name), image in itertools.product(
        itertools.product(REGIONS, PARTITION_SETS), IMAGES
    )
    # every partition set and image in two regions, every region at least once
    if REGIONS.index(region) % 2 == list(PARTITION_SETS).index(name) % 2
]


@pytest.mark.parametrize(("region", "partitions", "image"), MATRIX)
def test_cfn_lint_finds_no_error(region: str, partitions: str, image: str) -> None:
    config = make_config(region, PARTITION_SETS[partitions], image)
    findings = lint_template(template_json(config), [region])
    assert [f for f in findings if f.is_error] == []


@pytest.mark.parametrize(
    "more",
    [
        {"ssh_cidr": "2001:db8::/64"},
        {"shared_fs_deletion": "Delete", "shared_fs_size_gb": 16384},
        {"shared_fs_deletion": "Retain", "tags": {"team": "ml", "project": "sweeps"}},
        {"head_instance_type": "m6i.large", "root_volume_gb": 200},
    ],
    ids=["ipv6-ssh", "delete-fs", "retain-fs-tags", "head-type"],
)
def test_cfn_lint_finds_no_error_for_other_options(more: dict[str, Any]) -> None:
    config = make_config("us-east-1", PARTITION_SETS["mixed"], "default", **more)
    assert [f for f in lint_template(template_json(config), ["us-east-1"]) if f.is_error] == []


def test_cfn_lint_knows_which_types_a_region_offers() -> None:
    config = make_config("ap-southeast-2", [{"name": "cpu", "instance_type": "c7a.large",
                                             "max_nodes": 1}], "default")  # fmt: skip
    errors = [f for f in lint_template(template_json(config), ["ap-southeast-2"]) if f.is_error]
    assert [(f.rule, "'c7a.large' is not one of" in f.message) for f in errors] == [("E3628", True)]


def test_a_type_the_region_lacks_is_blamed_on_the_config_in_a_few_words() -> None:
    """cfn-lint's own message lists every type of the region (22 KB in us-east-1)."""
    parts = [
        {"name": "cpu", "instance_type": "c7a.large", "max_nodes": 1},
        {"name": "more", "instance_type": "c7a.large", "max_nodes": 1},
    ]
    config = make_config("ap-southeast-2", parts, "default")
    [error] = [f for f in lint_cluster(config) if f.is_error]
    assert error.rule == "E3628" and error.is_config_choice
    head, _, near = error.message.partition("; of its kind it has ")
    assert head == (
        "partition cpu and partition more: instance type 'c7a.large' is not offered in "
        "ap-southeast-2"
    )
    assert near and all(t.startswith("c") for t in near.split(", "))  # c5.large, c6i...
    assert len(near.split(", ")) <= 6


def test_cfn_lint_does_report_errors() -> None:
    """The check above can fail: a broken template is caught."""
    template = build_template(make_config("us-east-1", PARTITION_SETS["cpu-spot"], "default"))
    template["Resources"]["HeadNode"]["Properties"]["InstanceType"] = 42
    del template["Resources"]["ClusterSecurityGroup"]["Properties"]["GroupDescription"]
    errors = [f for f in lint_template(json.dumps(template), ["us-east-1"]) if f.is_error]
    assert len(errors) >= 2


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    config = make_config("us-east-1", PARTITION_SETS["mixed"], "default")
    return build_template(config)


def resources_of(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_ssh_only_from_the_given_network_and_intra_cluster_traffic_only_within_the_group(
    template: dict[str, Any],
) -> None:
    (group,) = resources_of(template, "AWS::EC2::SecurityGroup").values()
    (ssh,) = group["Properties"]["SecurityGroupIngress"]
    assert (ssh["IpProtocol"], ssh["FromPort"], ssh["ToPort"]) == ("tcp", 22, 22)
    assert ssh["CidrIp"] == {"Ref": "SshCidr"}
    assert template["Parameters"]["SshCidr"]["Default"] == "203.0.113.7/32"
    (intra,) = resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
    own = {"Fn::GetAtt": ["ClusterSecurityGroup", "GroupId"]}
    assert intra["Properties"]["SourceSecurityGroupId"] == own
    assert intra["Properties"]["GroupId"] == own
    assert "0.0.0.0/0" not in json.dumps(template)


def test_no_munge_key_no_root_squash_exception_and_slurm_from_the_os(
    template: dict[str, Any],
) -> None:
    text = json.dumps(template)
    assert "no_root_squash" not in text
    assert "root_squash" in text
    assert "mungekey --create --force" in text
    assert "munge.key" in text and "welcometoslurm" not in text
    # no secret-looking blob anywhere (a munge key would be >= 32 random bytes)
    assert not re.search(r"[A-Za-z0-9+/]{40,}={0,2}", text)
    assert "-o Acquire::Retries=5 install -y -q slurmctld" in text  # from Ubuntu itself
    assert "download.schedmd.com" not in text and "tar.bz2" not in text


def test_nfs_is_exported_to_the_vpc_only(template: dict[str, Any]) -> None:
    parts = template["Resources"]["HeadNode"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"]
    text = "".join(p if isinstance(p, str) else json.dumps(p) for p in parts[1])
    assert '{"Ref": "VpcCidr"}' in text
    assert "/shared ${VPC_CIDR}(rw,sync,no_subtree_check,root_squash)" in text


def _statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    props = template["Resources"][role]["Properties"]
    return [s for policy in props["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def test_the_head_node_role_is_least_privilege(template: dict[str, Any]) -> None:
    statements = _statements(template, "HeadNodeRole")
    allowed = {}
    for s in statements:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        for action in actions:
            assert "*" not in action, action
            if s["Effect"] == "Allow":
                allowed[action] = s
    assert set(allowed) == {
        "ec2:RunInstances",
        "ec2:CreateTags",
        "ec2:TerminateInstances",
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceStatus",
        "iam:PassRole",
        "iam:CreateServiceLinkedRole",
        "cloudformation:DescribeStacks",
        "cloudformation:SignalResource",
        "ssm:PutParameter",
        "ssm:GetParameter",
        "ssm:AddTagsToResource",
    }
    run = allowed["ec2:RunInstances"]["Condition"]["ArnLike"]["ec2:LaunchTemplate"]
    assert len(run) == 4  # one launch template per partition, nothing else
    deny = next(s for s in statements if s["Effect"] == "Deny")
    assert deny["Condition"] == {"StringNotEquals": {"aws:RequestTag/sweepherd:cluster": "demo"}}
    terminate = allowed["ec2:TerminateInstances"]["Condition"]
    assert terminate == {"StringEquals": {"aws:ResourceTag/sweepherd:cluster": "demo"}}
    assert allowed["ec2:CreateTags"]["Condition"] == {
        "StringEquals": {"ec2:CreateAction": "RunInstances"}
    }
    assert allowed["iam:PassRole"]["Resource"] == {"Fn::GetAtt": ["ComputeRole", "Arn"]}
    assert allowed["cloudformation:DescribeStacks"]["Resource"] == {"Ref": "AWS::StackId"}
    assert "parameter/sweepherd/demo/munge-key" in json.dumps(allowed["ssm:PutParameter"])
    props = template["Resources"]["HeadNodeRole"]["Properties"]
    assert "ManagedPolicyArns" not in props


def test_compute_nodes_may_only_read_the_munge_key(template: dict[str, Any]) -> None:
    (statement,) = _statements(template, "ComputeRole")
    assert statement["Action"] == "ssm:GetParameter"
    assert "parameter/sweepherd/demo/munge-key" in statement["Resource"]["Fn::Sub"]
    assert "ManagedPolicyArns" not in template["Resources"]["ComputeRole"]["Properties"]


def test_the_head_node_gets_its_shared_volume_without_waiting_for_itself(
    template: dict[str, Any],
) -> None:
    """The head node signals only once its boot script found the shared volume: a resource
    that attaches it after the head node is CREATE_COMPLETE would never come (moto ignores
    CreationPolicy, so only the template can show this)."""
    head = template["Resources"]["HeadNode"]
    assert "ResourceSignal" in head["CreationPolicy"]
    assert head["Properties"]["Volumes"] == [
        {"Device": "/dev/sdf", "VolumeId": {"Ref": "SharedVolume"}}
    ]
    for name, resource in template["Resources"].items():
        text = json.dumps(resource)
        assert '{"Ref": "HeadNode"}' not in text and '["HeadNode",' not in text, name


def test_everything_taggable_is_tagged_with_the_cluster(template: dict[str, Any]) -> None:
    untaggable = {"AWS::IAM::InstanceProfile", "AWS::EC2::SecurityGroupIngress",
                  "AWS::EC2::VolumeAttachment"}  # fmt: skip
    for name, resource in template["Resources"].items():
        if resource["Type"] in untaggable:
            continue
        props = resource["Properties"]
        if resource["Type"] == "AWS::EC2::LaunchTemplate":
            specs = props["TagSpecifications"] + props["LaunchTemplateData"]["TagSpecifications"]
            assert {s["ResourceType"] for s in specs} == {"launch-template", "instance", "volume"}
            tag_lists = [s["Tags"] for s in specs]
        else:
            tag_lists = [props["Tags"]]
        for tags in tag_lists:
            assert {"Key": "sweepherd:cluster", "Value": "demo"} in tags, name


def test_gpus_are_declared_to_slurm_and_instances_use_imdsv2_and_encrypted_disks(
    template: dict[str, Any],
) -> None:
    text = json.dumps(template)
    assert "NodeName=t4-[1-2] CPUs=48 RealMemory=176947 Gres=gpu:t4:4" in text
    assert "NodeName=h100-1 CPUs=192 RealMemory=1887436 Gres=gpu:h100:8" in text
    assert "Name=gpu Type=h100 File=/dev/nvidia[0-7]" in text
    for lt in resources_of(template, "AWS::EC2::LaunchTemplate").values():
        data = lt["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    assert template["Resources"]["SharedVolume"]["Properties"]["Encrypted"] is True
    assert template["Resources"]["SharedVolume"]["DeletionPolicy"] == "Snapshot"


def test_the_template_is_json_without_yaml_short_forms(template: dict[str, Any]) -> None:
    config = make_config("us-east-1", PARTITION_SETS["mixed"], "default")
    text = template_json(config)
    assert json.loads(text) == template
    assert "!GetAtt" not in text and "!Ref" not in text and "!Sub" not in text


def test_size_limits_hold_for_a_large_config() -> None:
    partitions = [
        {"name": f"p{i}", "instance_type": "g5.xlarge", "max_nodes": 1000, "spot": True}
        for i in range(10)
    ]
    config: ClusterConfig = make_config("us-east-1", partitions, "default")
    template = build_template(config)
    assert len(template_json(config).encode()) < MAX_TEMPLATE_BYTES
    parts = template["Resources"]["HeadNode"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"]
    assert sum(len(p) for p in parts[1] if isinstance(p, str)) < 16 * 1024  # EC2's limit
