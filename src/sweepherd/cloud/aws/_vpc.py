"""A network for a cluster: a VPC, an internet gateway, a route table with a default route to it,
and two public subnets in different availability zones, both associated with that route table.

(The seed README's CLI steps created the subnets but never routed them to the internet, so the
nodes could not install anything.) Everything is tagged with the cluster, so it is found again
by :func:`find_network` and removed by :func:`delete_network`. A failure half-way removes what
was already created: nothing is left behind.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweepherd.cloud.aws._config import CLUSTER_TAG
from sweepherd.cloud.aws._session import AwsSession, aws_errors
from sweepherd.errors import CloudError

log = logging.getLogger(__name__)
N_SUBNETS = 2


@dataclass(frozen=True)
class Network:
    """The network of a cluster, as created (or found) by :func:`create_network`."""

    vpc_id: str
    cidr: str
    subnet_ids: tuple[str, ...]
    availability_zones: tuple[str, ...]
    internet_gateway_id: str
    route_table_id: str


def create_network(
    session: AwsSession,
    cluster: str,
    *,
    cidr: str = "10.0.0.0/16",
    on_step: Callable[[str], None] | None = None,
) -> Network:
    """Create the cluster's network, or return it if it already exists."""
    try:
        net = ipaddress.IPv4Network(cidr)
    except ValueError as exc:
        raise CloudError(f"the VPC CIDR {cidr!r} is invalid: {exc}") from None
    if not 16 <= net.prefixlen <= 24:
        raise CloudError(f"the VPC CIDR {cidr} must be between /16 and /24 (AWS's limits)")
    session.require_credentials()
    existing = find_network(session, cluster)
    if existing is not None:
        return existing
    ec2 = session.client("ec2")
    step = on_step or (lambda _msg: None)
    created: list[tuple[str, str]] = []  # (kind, id), undone in reverse on failure
    try:
        zones = _two_zones(ec2)
        subnet_cidrs = list(net.subnets(new_prefix=net.prefixlen + 2))[:N_SUBNETS]
        with aws_errors("creating the VPC"):
            vpc_id = ec2.create_vpc(
                CidrBlock=cidr, TagSpecifications=[_tag_spec("vpc", cluster, "vpc")]
            )["Vpc"]["VpcId"]
            created.append(("vpc", vpc_id))
            ec2.get_waiter("vpc_available").wait(
                VpcIds=[vpc_id], WaiterConfig={"Delay": 2, "MaxAttempts": 60}
            )
            ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
            ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
        step(f"VPC {vpc_id} ({cidr})")
        with aws_errors("creating the internet gateway"):
            igw_id = ec2.create_internet_gateway(
                TagSpecifications=[_tag_spec("internet-gateway", cluster, "igw")]
            )["InternetGateway"]["InternetGatewayId"]
            created.append(("igw", igw_id))
            ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
            created.append(("igw-attachment", f"{igw_id}:{vpc_id}"))
        step(f"internet gateway {igw_id}")
        with aws_errors("creating the route table"):
            rtb_id = ec2.create_route_table(
                VpcId=vpc_id, TagSpecifications=[_tag_spec("route-table", cluster, "public")]
            )["RouteTable"]["RouteTableId"]
            created.append(("rtb", rtb_id))
            ec2.create_route(
                RouteTableId=rtb_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id
            )
        step(f"route table {rtb_id} with a default route to {igw_id}")
        subnet_ids = []
        for i, (zone, subnet_cidr) in enumerate(zip(zones, subnet_cidrs, strict=True)):
            with aws_errors(f"creating the subnet in {zone}"):
                subnet_id = ec2.create_subnet(
                    VpcId=vpc_id,
                    CidrBlock=str(subnet_cidr),
                    AvailabilityZone=zone,
                    TagSpecifications=[_tag_spec("subnet", cluster, f"public-{i + 1}")],
                )["Subnet"]["SubnetId"]
                created.append(("subnet", subnet_id))
                ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
                ec2.associate_route_table(RouteTableId=rtb_id, SubnetId=subnet_id)
            subnet_ids.append(subnet_id)
            step(f"public subnet {subnet_id} ({subnet_cidr}, {zone}), routed by {rtb_id}")
    except BaseException:
        _undo(ec2, created)
        raise
    return Network(vpc_id, cidr, tuple(subnet_ids), tuple(zones), igw_id, rtb_id)


def find_network(session: AwsSession, cluster: str) -> Network | None:
    """The network created for ``cluster``, or ``None``."""
    ec2 = session.client("ec2")
    tag_filter = [{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]}]
    with aws_errors("looking up the cluster's VPC"):
        vpcs = ec2.describe_vpcs(Filters=tag_filter)["Vpcs"]
        if not vpcs:
            return None
        vpc = vpcs[0]
        vpc_filter = [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
        subnets = ec2.describe_subnets(Filters=vpc_filter + tag_filter)["Subnets"]
        igws = ec2.describe_internet_gateways(
            Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}]
        )["InternetGateways"]
        rtbs = ec2.describe_route_tables(Filters=vpc_filter + tag_filter)["RouteTables"]
    subnets.sort(key=lambda s: s["CidrBlock"])
    return Network(
        vpc_id=vpc["VpcId"],
        cidr=vpc["CidrBlock"],
        subnet_ids=tuple(s["SubnetId"] for s in subnets),
        availability_zones=tuple(s["AvailabilityZone"] for s in subnets),
        internet_gateway_id=igws[0]["InternetGatewayId"] if igws else "",
        route_table_id=rtbs[0]["RouteTableId"] if rtbs else "",
    )


def delete_network(session: AwsSession, cluster: str) -> Network | None:
    """Delete the cluster's network (refused while instances still run in it)."""
    network = find_network(session, cluster)
    if network is None:
        return None
    ec2 = session.client("ec2")
    with aws_errors("checking the VPC for instances"):
        reservations = ec2.describe_instances(
            Filters=[
                {"Name": "vpc-id", "Values": [network.vpc_id]},
                {
                    "Name": "instance-state-name",
                    "Values": ["pending", "running", "stopping", "stopped", "shutting-down"],
                },
            ]
        )["Reservations"]
    live = [i["InstanceId"] for r in reservations for i in r["Instances"]]
    if live:
        raise CloudError(
            f"the VPC {network.vpc_id} still has instances ({', '.join(live)}); nothing "
            "was deleted.",
            hint="Run `sweepherd aws destroy` first.",
        )
    created: list[tuple[str, str]] = [("vpc", network.vpc_id)]
    if network.internet_gateway_id:
        created += [
            ("igw", network.internet_gateway_id),
            ("igw-attachment", f"{network.internet_gateway_id}:{network.vpc_id}"),
        ]
    if network.route_table_id:
        created.append(("rtb", network.route_table_id))
    created += [("subnet", s) for s in network.subnet_ids]
    _undo(ec2, created, strict=True)
    return network


def _two_zones(ec2: Any) -> list[str]:
    with aws_errors("listing availability zones"):
        zones = ec2.describe_availability_zones(
            Filters=[
                {"Name": "state", "Values": ["available"]},
                {"Name": "zone-type", "Values": ["availability-zone"]},
            ]
        )["AvailabilityZones"]
    names = sorted(z["ZoneName"] for z in zones)
    if len(names) < N_SUBNETS:
        raise CloudError(f"the region has fewer than {N_SUBNETS} availability zones")
    return names[:N_SUBNETS]


def _tag_spec(resource_type: str, cluster: str, suffix: str) -> dict[str, Any]:
    return {
        "ResourceType": resource_type,
        "Tags": [
            {"Key": "Name", "Value": f"sweepherd-{cluster}-{suffix}"},
            {"Key": CLUSTER_TAG, "Value": cluster},
        ],
    }


def _undo(ec2: Any, created: list[tuple[str, str]], *, strict: bool = False) -> None:
    """Delete ``created`` in reverse order. Best effort unless ``strict``."""
    for kind, ident in reversed(created):
        try:
            with aws_errors(f"deleting {kind} {ident}"):
                if kind == "subnet":
                    ec2.delete_subnet(SubnetId=ident)
                elif kind == "rtb":
                    rtb = ec2.describe_route_tables(RouteTableIds=[ident])["RouteTables"][0]
                    for assoc in rtb.get("Associations", []):
                        if not assoc.get("Main"):
                            ec2.disassociate_route_table(
                                AssociationId=assoc["RouteTableAssociationId"]
                            )
                    ec2.delete_route_table(RouteTableId=ident)
                elif kind == "igw-attachment":
                    igw_id, vpc_id = ident.split(":")
                    ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
                elif kind == "igw":
                    ec2.delete_internet_gateway(InternetGatewayId=ident)
                elif kind == "vpc":
                    ec2.delete_vpc(VpcId=ident)
        except CloudError:
            if strict:
                raise
            log.warning("could not delete %s %s while undoing", kind, ident, exc_info=True)
