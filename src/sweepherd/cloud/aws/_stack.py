"""Deploy, inspect and destroy a cluster's CloudFormation stack.

``deploy`` checks everything it can before creating anything (credentials, network, key pair,
instance types, images), then creates or updates the stack and waits, reporting each stack event
to ``on_event``. ``destroy`` terminates every instance tagged with the cluster first (the head
node too, so nothing can start new nodes meanwhile), waits until they are gone, deletes the
stack and the munge-key parameter, and finally checks that no instance of the cluster is left.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sweepherd.cloud.aws._config import CLUSTER_TAG, ClusterConfig
from sweepherd.cloud.aws._fleet import (
    NodeInstance,
    cluster_instances,
    terminate_instances,
    wait_terminated,
)
from sweepherd.cloud.aws._session import AwsSession, aws_errors, error_code
from sweepherd.cloud.aws._template import template_json
from sweepherd.cloud.aws._userdata import check_user_data_size
from sweepherd.errors import CloudError

log = logging.getLogger(__name__)

#: CloudFormation's limit for a template passed inline (larger ones must go through S3).
MAX_TEMPLATE_BYTES = 51_200
_DONE_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE"}
_DONE_BAD = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "DELETE_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_FAILED",
}


@dataclass(frozen=True)
class StackEvent:
    """One CloudFormation stack event."""

    timestamp: datetime | None
    logical_id: str
    resource_type: str
    status: str
    reason: str = ""


@dataclass(frozen=True)
class ClusterStatus:
    """What ``sweepherd aws status`` shows."""

    stack_name: str
    stack_status: str | None  # None: no stack
    outputs: dict[str, str] = field(default_factory=dict)
    instances: tuple[NodeInstance, ...] = ()
    reason: str = ""

    @property
    def head_public_ip(self) -> str:
        """Where to SSH to."""
        return self.outputs.get("HeadNodePublicIp", "")


@dataclass(frozen=True)
class DestroyReport:
    """What ``destroy`` removed."""

    terminated: tuple[str, ...]
    stack_deleted: bool
    parameter_deleted: bool


EventCallback = Callable[[StackEvent], None]


def stack_outputs(session: AwsSession, stack_name: str) -> dict[str, str]:
    """The outputs of ``stack_name`` (:class:`CloudError` if there is no such stack)."""
    stack = _describe(session, stack_name)
    if stack is None:
        raise CloudError(
            f"no stack {stack_name} in {session.region}",
            hint="Deploy the cluster first: sweepherd aws deploy.",
        )
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def stack_parameters(config: ClusterConfig, session: AwsSession) -> list[dict[str, str]]:
    """The stack parameters for ``config``, resolved and checked against AWS.

    Raises :class:`CloudError`, having created nothing, when the network, key pair, instance
    types or images do not exist in the region.
    """
    if not config.vpc_id or not config.subnet_ids:
        raise CloudError(
            "the cluster config has no vpc_id/subnet_ids.",
            hint="Create a network with `sweepherd aws vpc`, or set vpc_id and subnet_ids.",
        )
    ec2 = session.client("ec2")
    with aws_errors("checking the VPC and subnets"):
        vpcs = ec2.describe_vpcs(VpcIds=[config.vpc_id])["Vpcs"]
        subnets = ec2.describe_subnets(SubnetIds=list(config.subnet_ids))["Subnets"]
    by_id = {s["SubnetId"]: s for s in subnets}
    wrong_vpc = [s for s in config.subnet_ids if by_id[s]["VpcId"] != config.vpc_id]
    if wrong_vpc:
        raise CloudError(f"subnets {', '.join(wrong_vpc)} are not in {config.vpc_id}")
    head_subnet = by_id[config.subnet_ids[0]]
    _check_routes(session, config, by_id)
    with aws_errors(f"checking the key pair {config.key_name!r}"):
        ec2.describe_key_pairs(KeyNames=[config.key_name])
    types = sorted({config.head_instance_type, *(p.instance_type for p in config.partitions)})
    with aws_errors(f"checking the instance types {', '.join(types)} in {session.region}"):
        ec2.describe_instance_types(InstanceTypes=types)
    images = {config.head_image, *(p.image for p in config.partitions)}
    ssm = session.client("ssm")
    for image in sorted(images):
        if image.startswith("/"):
            with aws_errors(f"looking up the image parameter {image}"):
                ssm.get_parameter(Name=image)
        else:
            with aws_errors(f"checking the image {image}"):
                ec2.describe_images(ImageIds=[image])
    return [
        {"ParameterKey": "VpcId", "ParameterValue": config.vpc_id},
        {"ParameterKey": "VpcCidr", "ParameterValue": vpcs[0]["CidrBlock"]},
        {"ParameterKey": "HeadSubnetId", "ParameterValue": config.subnet_ids[0]},
        {"ParameterKey": "ComputeSubnetIds", "ParameterValue": ",".join(config.subnet_ids)},
        {"ParameterKey": "HeadAvailabilityZone", "ParameterValue": head_subnet["AvailabilityZone"]},
    ]


def _check_routes(
    session: AwsSession, config: ClusterConfig, subnets: dict[str, dict[str, Any]]
) -> None:
    """Refuse subnets from which the nodes could not reach the internet.

    Both boot scripts install Slurm with apt at first boot, and the head node is reached by SSH
    at its public address. So the head node's subnet (the first) needs a default route to an
    internet gateway, and each compute subnet either that and public addresses for what starts
    in it (MapPublicIpOnLaunch), or a default route to a NAT gateway. A subnet without a route
    table of its own follows the VPC's main one.
    """
    with aws_errors("checking the subnets' routes"):
        tables = session.client("ec2").describe_route_tables(
            Filters=[{"Name": "vpc-id", "Values": [config.vpc_id]}]
        )["RouteTables"]
    explicit: dict[str, dict[str, Any]] = {}
    main: dict[str, Any] = {}
    for table in tables:
        for assoc in table.get("Associations", []):
            if assoc.get("Main"):
                main = table
            elif assoc.get("SubnetId"):
                explicit[assoc["SubnetId"]] = table

    def default_route(subnet_id: str) -> str:
        """``"igw"``, ``"nat"`` or ``""``: where the subnet's 0.0.0.0/0 traffic goes."""
        for route in explicit.get(subnet_id, main).get("Routes", []):
            if (
                route.get("DestinationCidrBlock") != "0.0.0.0/0"
                or route.get("State") == "blackhole"
            ):
                continue
            if str(route.get("GatewayId", "")).startswith("igw-"):
                return "igw"
            if route.get("NatGatewayId") or route.get("InstanceId"):
                return "nat"
        return ""

    problems = []
    head = config.subnet_ids[0]
    if default_route(head) != "igw":
        problems.append(
            f"{head} (the head node's) has no default route to an internet gateway, so the "
            "head node could not be reached by SSH nor install Slurm"
        )
    for subnet_id in config.subnet_ids:
        route = default_route(subnet_id)
        public = bool(subnets[subnet_id].get("MapPublicIpOnLaunch"))
        if route == "nat" or (route == "igw" and public):
            continue
        why = (
            "routes to an internet gateway but gives instances no public address"
            if route == "igw"
            else "has no default route to an internet gateway or a NAT gateway"
        )
        problems.append(f"{subnet_id} {why}, so compute nodes could not install Slurm")
    if problems:
        raise CloudError(
            "the cluster's subnets cannot reach the internet: " + "; ".join(problems) + ". "
            "Nothing was created.",
            hint="Let `sweepherd aws vpc` make a network (clear vpc_id and subnet_ids first), "
            "or give public subnets (a 0.0.0.0/0 route to an internet gateway, auto-assigned "
            "public IPv4) with the head node's first; compute subnets may be private behind a "
            "NAT gateway.",
        )


def deploy(
    config: ClusterConfig,
    session: AwsSession,
    *,
    on_event: EventCallback | None = None,
    timeout_s: float = 2700.0,
    poll_s: float = 5.0,
) -> dict[str, str]:
    """Create the cluster's stack, or update it if it is already this cluster's and the head
    node's setup is unchanged; return its outputs."""
    session.require_credentials()
    check_user_data_size(config)
    body = template_json(config, compact=True)
    if len(body.encode()) > MAX_TEMPLATE_BYTES:
        raise CloudError(
            f"the template is {len(body.encode())} bytes, over CloudFormation's inline limit "
            f"of {MAX_TEMPLATE_BYTES}",
            hint="Use fewer partitions.",
        )
    existing = _describe(session, config.stack_name)
    if existing is not None:
        _check_ours(existing, config)
        if existing["StackStatus"] in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"):
            raise CloudError(
                f"the stack {config.stack_name} is {existing['StackStatus']} (a failed deploy "
                "or destroy) and cannot be updated; nothing was changed.",
                hint="Run `sweepherd aws destroy`, then deploy again.",
            )
        _check_head_unchanged(session, config, body)
    parameters = stack_parameters(config, session)
    cfn = session.client("cloudformation")
    tags = [{"Key": k, "Value": v} for k, v in config.all_tags.items()]
    common: dict[str, Any] = {
        "StackName": config.stack_name,
        "TemplateBody": body,
        "Parameters": parameters,
        "Capabilities": ["CAPABILITY_IAM"],
        "Tags": tags,
    }
    seen = _event_ids(session, config.stack_name) if existing is not None else set()
    if existing is None:
        try:
            with aws_errors(f"creating the stack {config.stack_name}"):
                cfn.create_stack(**common, OnFailure="ROLLBACK")
        except CloudError as exc:
            if error_code(exc.__cause__) == "AlreadyExistsException":
                raise CloudError(
                    f"the stack name {config.stack_name} is already in use; nothing was created.",
                    hint="Choose another cluster name (`name:` in the config).",
                ) from None
            raise
        target = "CREATE_COMPLETE"
    else:
        try:
            with aws_errors(f"updating the stack {config.stack_name}"):
                cfn.update_stack(**common)
        except CloudError as exc:
            if "No updates are to be performed" in str(exc):
                log.info("stack %s is up to date", config.stack_name)
                return stack_outputs(session, config.stack_name)
            raise
        target = "UPDATE_COMPLETE"
    final = _wait(session, config.stack_name, set(seen), on_event, timeout_s, poll_s)
    if final.get("StackStatus") != target:
        reasons = _failure_reasons(session, config.stack_name, seen)
        raise CloudError(
            f"deploying {config.stack_name} ended in {final.get('StackStatus')}: "
            + ("; ".join(reasons) or final.get("StackStatusReason", "no reason given")),
            hint="Fix the cause, then `sweepherd aws destroy` and deploy again.",
        )
    return {o["OutputKey"]: o["OutputValue"] for o in final.get("Outputs", [])}


def status(config: ClusterConfig, session: AwsSession) -> ClusterStatus:
    """The stack's state, its outputs, and the cluster's live instances."""
    stack = _describe(session, config.stack_name)
    instances = tuple(cluster_instances(session, config.name))
    if stack is None:
        return ClusterStatus(config.stack_name, None, instances=instances)
    return ClusterStatus(
        stack_name=config.stack_name,
        stack_status=stack["StackStatus"],
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        instances=instances,
        reason=stack.get("StackStatusReason", ""),
    )


def destroy(
    config: ClusterConfig,
    session: AwsSession,
    *,
    on_event: EventCallback | None = None,
    on_step: Callable[[str], None] | None = None,
    timeout_s: float = 2700.0,
    poll_s: float = 5.0,
) -> DestroyReport:
    """Terminate every instance of the cluster, then delete its stack and munge-key parameter."""
    session.require_credentials()
    step = on_step or (lambda _msg: None)
    stack = _describe(session, config.stack_name)
    if stack is not None:
        _check_ours(stack, config)
    terminated: list[str] = []
    # The head node goes too: with it gone, nothing can start new compute nodes meanwhile.
    live = cluster_instances(session, config.name)
    if live:
        ids = [i.instance_id for i in live]
        step(f"terminating {len(ids)} instance(s): {', '.join(ids)}")
        terminate_instances(session, ids)
        wait_terminated(session, config.name, ids, timeout_s=timeout_s, poll_s=poll_s)
        terminated += ids
    stack_deleted = False
    if stack is not None:
        step(f"deleting the stack {config.stack_name}")
        seen = _event_ids(session, stack["StackId"])
        cfn = session.client("cloudformation")
        with aws_errors(f"deleting the stack {config.stack_name}"):
            cfn.delete_stack(StackName=stack["StackId"])
        final = _wait(session, stack["StackId"], set(seen), on_event, timeout_s, poll_s)
        if final.get("StackStatus") not in (None, "DELETE_COMPLETE"):
            reasons = _failure_reasons(session, stack["StackId"], seen)
            raise CloudError(
                f"deleting {config.stack_name} ended in {final.get('StackStatus')}: "
                + "; ".join(reasons),
                hint="Run `sweepherd aws destroy` again; if it fails again, delete the "
                "stack in the CloudFormation console.",
            )
        stack_deleted = True
    parameter_deleted = _delete_munge_parameter(session, config)
    # Whatever started meanwhile goes too; then nothing of the cluster may be left.
    stragglers = cluster_instances(session, config.name)
    if stragglers:
        ids = [i.instance_id for i in stragglers]
        step(f"terminating {len(ids)} late instance(s): {', '.join(ids)}")
        terminate_instances(session, ids)
        wait_terminated(session, config.name, ids, timeout_s=timeout_s, poll_s=poll_s)
        terminated += ids
    return DestroyReport(tuple(terminated), stack_deleted, parameter_deleted)


def _delete_munge_parameter(session: AwsSession, config: ClusterConfig) -> bool:
    ssm = session.client("ssm")
    try:
        with aws_errors("deleting the munge-key parameter"):
            ssm.delete_parameter(Name=config.munge_key_parameter)
    except CloudError as exc:
        if error_code(exc.__cause__) == "ParameterNotFound":
            return False
        raise
    return True


def _describe(session: AwsSession, stack: str) -> dict[str, Any] | None:
    cfn = session.client("cloudformation")
    try:
        with aws_errors(f"looking up the stack {stack}"):
            stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except CloudError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
        return None
    return dict(stacks[0])


def _check_ours(stack: dict[str, Any], config: ClusterConfig) -> None:
    tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
    if tags.get(CLUSTER_TAG) != config.name:
        raise CloudError(
            f"the stack name {config.stack_name} is already in use by a stack that is not "
            f"sweepherd cluster {config.name!r}; nothing was changed.",
            hint="Choose another cluster name (`name:` in the config).",
        )
    if stack["StackStatus"].endswith("_IN_PROGRESS") and not stack["StackStatus"].startswith(
        "DELETE"
    ):
        raise CloudError(
            f"the stack {config.stack_name} is busy ({stack['StackStatus']}).",
            hint="Wait for it (`sweepherd aws status`) and try again.",
        )


def _check_head_unchanged(session: AwsSession, config: ClusterConfig, body: str) -> None:
    """Refuse an update that changes the head node's boot script.

    The head node's setup (slurm.conf with the partitions, the cluster config, the power-saving
    programs) is its UserData, which the instance runs at its first boot only. CloudFormation
    applies a new UserData by stopping and starting the instance: the head node gets a new
    public address and runs nothing, yet the update reports success.
    """
    with aws_errors(f"reading the template of the stack {config.stack_name}"):
        deployed = session.client("cloudformation").get_template(
            StackName=config.stack_name, TemplateStage="Original"
        )["TemplateBody"]
    if isinstance(deployed, str):
        deployed = json.loads(deployed)

    def head_user_data(template: dict[str, Any]) -> Any:
        return (
            template.get("Resources", {}).get("HeadNode", {}).get("Properties", {}).get("UserData")
        )

    if head_user_data(deployed) != head_user_data(json.loads(body)):
        raise CloudError(
            f"the stack {config.stack_name} exists, and this config changes its head node's "
            "setup (its Slurm partitions, nodes or settings), which the head node runs at its "
            "first boot only: an update would restart it with a new address and apply nothing. "
            "Nothing was changed.",
            hint="To apply the change, copy your results off /shared, run `sweepherd aws "
            "destroy`, then deploy again. To keep the cluster, restore the config it was "
            "deployed with (the head node keeps it in /etc/sweepherd/cluster.yaml).",
        )


def _wait(
    session: AwsSession,
    stack: str,
    seen: set[str],
    on_event: EventCallback | None,
    timeout_s: float,
    poll_s: float,
) -> dict[str, Any]:
    cfn = session.client("cloudformation")
    deadline = time.monotonic() + timeout_s
    while True:
        current = _describe(session, stack)
        for event in _new_events(cfn, stack, seen):
            if on_event is not None:
                on_event(event)
        if current is None:
            return {}
        status = current["StackStatus"]
        if status in _DONE_OK or status in _DONE_BAD:
            return current
        if time.monotonic() > deadline:
            raise CloudError(
                f"the stack {stack} is still {status} after {timeout_s:.0f} s",
                hint="Follow it with `sweepherd aws status`.",
            )
        time.sleep(poll_s)


def _event_ids(session: AwsSession, stack: str) -> set[str]:
    """The ids of the events the stack already has: the ones an operation did not cause."""
    seen: set[str] = set()
    _new_events(session.client("cloudformation"), stack, seen)
    return seen


def _new_events(cfn: Any, stack: str, seen: set[str]) -> list[StackEvent]:
    """The stack's events not in ``seen``, oldest first; adds them to ``seen``."""
    try:
        with aws_errors("reading stack events"):
            raw = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    except CloudError:
        return []
    out = []
    for event in reversed(raw):  # oldest first
        if event["EventId"] in seen:
            continue
        seen.add(event["EventId"])
        out.append(
            StackEvent(
                timestamp=event.get("Timestamp"),
                logical_id=event.get("LogicalResourceId", ""),
                resource_type=event.get("ResourceType", ""),
                status=event.get("ResourceStatus", ""),
                reason=event.get("ResourceStatusReason", "") or "",
            )
        )
    return out


def _failure_reasons(session: AwsSession, stack: str, seen_before: set[str]) -> list[str]:
    events = _new_events(session.client("cloudformation"), stack, set(seen_before))
    return [
        f"{e.logical_id}: {e.reason}"
        for e in events
        if e.status.endswith("_FAILED") and e.reason and "cancelled" not in e.reason.lower()
    ]
