"""``sweepherd aws vpc``: a routed network, found again by its tags, removed without a trace."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from sweepherd.cloud.aws import AwsSession, create_network, delete_network, find_network
from sweepherd.errors import CloudError

from .conftest import aws_resources, nothing

pytestmark = pytest.mark.aws


def test_two_public_subnets_in_different_zones_both_routed_to_the_internet(
    session: AwsSession,
) -> None:
    steps: list[str] = []
    network = create_network(session, "demo", on_step=steps.append)
    ec2 = session.client("ec2")

    assert len(network.subnet_ids) == 2
    assert len(set(network.availability_zones)) == 2
    subnets = ec2.describe_subnets(SubnetIds=list(network.subnet_ids))["Subnets"]
    assert all(s["VpcId"] == network.vpc_id and s["MapPublicIpOnLaunch"] for s in subnets)
    assert sorted(s["CidrBlock"] for s in subnets) == ["10.0.0.0/18", "10.0.64.0/18"]

    # every subnet is associated with the route table whose default route is the gateway
    (table,) = ec2.describe_route_tables(RouteTableIds=[network.route_table_id])["RouteTables"]
    associated = {a["SubnetId"] for a in table["Associations"] if "SubnetId" in a}
    assert associated == set(network.subnet_ids)
    default = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert [r["GatewayId"] for r in default] == [network.internet_gateway_id]
    (igw,) = ec2.describe_internet_gateways(InternetGatewayIds=[network.internet_gateway_id])[
        "InternetGateways"
    ]
    assert igw["Attachments"] == [{"State": "available", "VpcId": network.vpc_id}]
    dns = ec2.describe_vpc_attribute(VpcId=network.vpc_id, Attribute="enableDnsHostnames")
    assert dns["EnableDnsHostnames"]["Value"] is True

    for kind, ids in (("vpc", [network.vpc_id]), ("subnet", network.subnet_ids)):
        for resource in ids:
            tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource]}])
            pairs = {(t["Key"], t["Value"]) for t in tags["Tags"]}
            assert ("sweepherd:cluster", "demo") in pairs, kind
    assert len(steps) == 5


def test_it_is_found_again_and_not_duplicated(session: AwsSession) -> None:
    first = create_network(session, "demo")
    assert find_network(session, "demo") == first
    assert create_network(session, "demo") == first
    assert len(aws_resources(session)["vpcs"]) == 1
    assert find_network(session, "other") is None


def test_delete_removes_everything(session: AwsSession) -> None:
    create_network(session, "demo")
    deleted = delete_network(session, "demo")
    assert deleted is not None
    assert nothing(aws_resources(session))
    assert delete_network(session, "demo") is None


def test_delete_is_refused_while_instances_run(session: AwsSession, image_id: str) -> None:
    network = create_network(session, "demo")
    ec2 = session.client("ec2")
    ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, SubnetId=network.subnet_ids[0])
    with pytest.raises(CloudError, match="still has instances"):
        delete_network(session, "demo")
    assert find_network(session, "demo") == network


def test_a_failure_half_way_leaves_nothing_behind(session: AwsSession) -> None:
    """The second subnet fails (a stand-in error at the AWS boundary: moto would not fail)."""
    calls = []

    def fail_second_subnet(params: dict[str, Any], **_: Any) -> Any:
        calls.append(params)
        if len(calls) == 2:
            from botocore.awsrequest import AWSResponse

            error = {"Error": {"Code": "InsufficientFreeAddressesInSubnet", "Message": "no"}}
            return AWSResponse(None, 400, {}, None), error
        return None

    session.client("ec2").meta.events.register("before-call.ec2.CreateSubnet", fail_second_subnet)
    with pytest.raises(CloudError, match="creating the subnet in us-east-1b failed"):
        create_network(session, "demo")
    assert nothing(aws_resources(session))


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "10.0.0.0/28", "not-a-cidr"])
def test_bad_cidrs_create_nothing(session: AwsSession, cidr: str) -> None:
    with pytest.raises(CloudError, match="CIDR"):
        create_network(session, "demo", cidr=cidr)
    assert nothing(aws_resources(session))


def test_missing_credentials_create_nothing(
    moto: str, no_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(CloudError, match="no AWS credentials found; nothing was created"):
        create_network(AwsSession("us-east-1"), "demo")
    for key, value in {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}.items():
        monkeypatch.setenv(key, value)
    assert nothing(aws_resources(AwsSession("us-east-1")))


# -- a known moto gap, written down ---------------------------------------------------------

_VPC_STACK = {
    "Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.1.0.0/16"}},
        "Igw": {"Type": "AWS::EC2::InternetGateway"},
        "Attach": {
            "Type": "AWS::EC2::VPCGatewayAttachment",
            "Properties": {"VpcId": {"Ref": "Vpc"}, "InternetGatewayId": {"Ref": "Igw"}},
        },
        "Routes": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
        "Default": {
            "Type": "AWS::EC2::Route",
            "DependsOn": "Attach",
            "Properties": {
                "RouteTableId": {"Ref": "Routes"},
                "DestinationCidrBlock": "0.0.0.0/0",
                "GatewayId": {"Ref": "Igw"},
            },
        },
        "Subnet": {
            "Type": "AWS::EC2::Subnet",
            "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.1.0.0/24"},
        },
        "Assoc": {
            "Type": "AWS::EC2::SubnetRouteTableAssociation",
            "Properties": {"SubnetId": {"Ref": "Subnet"}, "RouteTableId": {"Ref": "Routes"}},
        },
    }
}


@pytest.mark.xfail(
    strict=True,
    reason="moto gap: moto's DeleteStack of a stack holding its own route table with a subnet "
    "association fails with DependencyViolation (real CloudFormation orders the deletes). "
    "This is one reason `sweepherd aws vpc` makes the "
    "network with plain EC2 calls and deletes it itself (tested above), not as a stack.",
)
def test_moto_deletes_a_stack_that_holds_a_route_table(session: AwsSession) -> None:
    cfn = session.client("cloudformation")
    cfn.create_stack(StackName="net", TemplateBody=json.dumps(_VPC_STACK))
    cfn.delete_stack(StackName="net")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stacks = [s for s in cfn.describe_stacks()["Stacks"] if s["StackName"] == "net"]
        if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
            break
        time.sleep(0.2)
    left = aws_resources(session)
    assert left["vpcs"] == [] and left["subnets"] == [] and left["stacks"] == []
