"""The cluster's EC2 instances: find them by tag, launch one for a Slurm node, terminate them.

Every instance a cluster starts carries the cluster tag and the tag of the Slurm node it is
for, so the cluster's instances are always found again, whoever started them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sweepherd.cloud.aws._config import CLUSTER_TAG, NODE_TAG, ClusterConfig, PartitionConfig
from sweepherd.cloud.aws._session import CAPACITY_ERRORS, AwsSession, aws_errors, error_code
from sweepherd.errors import CloudError

log = logging.getLogger(__name__)

#: States in which an instance bills (or still may: a stopped one keeps its disks).
LIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
#: States in which an instance is, or is about to be, a working node.
UP_STATES = ("pending", "running")
PARTITION_TAG = "sweepherd:partition"


@dataclass(frozen=True)
class NodeInstance:
    """One EC2 instance of the cluster."""

    instance_id: str
    state: str
    instance_type: str
    node: str | None = None  # the Slurm node it was started for; None for the head node
    lifecycle: str = "on-demand"  # or "spot"
    private_ip: str = ""
    private_dns: str = ""
    public_ip: str = ""
    launch_time: datetime | None = None

    @property
    def hostname(self) -> str:
        """The short host name AWS gives the instance (``ip-10-0-1-5``)."""
        if self.private_dns:
            return self.private_dns.split(".")[0]
        return "ip-" + self.private_ip.replace(".", "-") if self.private_ip else ""


def cluster_instances(
    session: AwsSession,
    cluster: str,
    *,
    nodes: Iterable[str] | None = None,
    states: Sequence[str] = LIVE_STATES,
) -> list[NodeInstance]:
    """The cluster's instances in ``states``, optionally only those started for ``nodes``."""
    filters: list[dict[str, Any]] = [
        {"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]},
        {"Name": "instance-state-name", "Values": list(states)},
    ]
    wanted = sorted(set(nodes)) if nodes is not None else None
    if wanted is not None:
        if not wanted:
            return []
        filters.append({"Name": f"tag:{NODE_TAG}", "Values": wanted})
    ec2 = session.client("ec2")
    out: list[NodeInstance] = []
    with aws_errors("listing the cluster's instances"):
        for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page["Reservations"]:
                out.extend(_node_instance(i) for i in reservation["Instances"])
    return sorted(out, key=lambda i: (i.node or "", i.instance_id))


def launch_node(
    session: AwsSession,
    config: ClusterConfig,
    partition: PartitionConfig,
    node: str,
    *,
    launch_template_id: str,
    subnet_ids: Sequence[str],
    user_data: str,
) -> NodeInstance:
    """Launch the instance for Slurm node ``node``.

    Spot partitions try Spot in every subnet first, then on-demand; each subnet (availability
    zone) is tried in turn when AWS has no capacity. Raises :class:`CloudError` naming every
    attempt when all fail.
    """
    if not subnet_ids:
        raise CloudError(f"no subnets to launch {node} in; redeploy the cluster")
    index = int(node.rpartition("-")[2]) if node.rpartition("-")[2].isdigit() else 0
    rotated = [subnet_ids[(index + k) % len(subnet_ids)] for k in range(len(subnet_ids))]
    markets = ["spot", "on-demand"] if partition.spot else ["on-demand"]
    tags = [
        {"Key": k, "Value": v}
        for k, v in {
            **config.all_tags,
            "Name": f"{config.name}-{node}",
            NODE_TAG: node,
            PARTITION_TAG: partition.name,
        }.items()
    ]
    ec2 = session.client("ec2")
    failures: list[str] = []
    for market in markets:
        for subnet in rotated:
            request: dict[str, Any] = {
                "MinCount": 1,
                "MaxCount": 1,
                "LaunchTemplate": {"LaunchTemplateId": launch_template_id, "Version": "$Latest"},
                "SubnetId": subnet,
                "UserData": user_data,
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags": tags},
                    {"ResourceType": "volume", "Tags": tags},
                ],
            }
            if market == "spot":
                request["InstanceMarketOptions"] = {
                    "MarketType": "spot",
                    "SpotOptions": {
                        "SpotInstanceType": "one-time",
                        "InstanceInterruptionBehavior": "terminate",
                    },
                }
            try:
                response = ec2.run_instances(**request)
            except Exception as exc:
                code = error_code(exc)
                if code in CAPACITY_ERRORS:
                    failures.append(f"{market} in {subnet}: {code}")
                    log.warning("no %s capacity for %s in %s: %s", market, node, subnet, code)
                    continue
                with aws_errors(f"launching {node}"):
                    raise
            instance = _node_instance(response["Instances"][0])
            log.info(
                "launched %s: %s %s %s in %s, address %s",
                node,
                instance.instance_id,
                partition.instance_type,
                market,
                subnet,
                instance.private_ip,
            )
            return instance
    raise CloudError(
        f"could not launch {node} ({partition.instance_type}): " + "; ".join(failures),
        hint="AWS has no capacity for this type now; try again later, add subnets in other "
        "zones, or pick another instance type.",
    )


def terminate_instances(session: AwsSession, instance_ids: Sequence[str]) -> None:
    """Ask AWS to terminate ``instance_ids`` (returns at once)."""
    ids = list(instance_ids)
    if not ids:
        return
    ec2 = session.client("ec2")
    with aws_errors("terminating instances"):
        for start in range(0, len(ids), 500):
            ec2.terminate_instances(InstanceIds=ids[start : start + 500])
    log.info("terminating %s", ", ".join(ids))


def wait_terminated(
    session: AwsSession,
    cluster: str,
    instance_ids: Sequence[str],
    *,
    timeout_s: float = 900.0,
    poll_s: float = 5.0,
) -> None:
    """Wait until none of ``instance_ids`` is live any more."""
    deadline = time.monotonic() + timeout_s
    pending = set(instance_ids)
    while pending:
        live = {i.instance_id for i in cluster_instances(session, cluster)}
        pending &= live
        if not pending:
            return
        if time.monotonic() > deadline:
            raise CloudError(
                f"instances still not terminated after {timeout_s:.0f} s: "
                + ", ".join(sorted(pending)),
                hint="Check them in the EC2 console and terminate them there.",
            )
        time.sleep(poll_s)


def _node_instance(raw: dict[str, Any]) -> NodeInstance:
    tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
    return NodeInstance(
        instance_id=raw["InstanceId"],
        state=raw.get("State", {}).get("Name", "unknown"),
        instance_type=raw.get("InstanceType", ""),
        node=tags.get(NODE_TAG),
        lifecycle="spot" if raw.get("InstanceLifecycle") == "spot" else "on-demand",
        private_ip=raw.get("PrivateIpAddress", "") or "",
        private_dns=raw.get("PrivateDnsName", "") or "",
        public_ip=raw.get("PublicIpAddress", "") or "",
        launch_time=raw.get("LaunchTime"),
    )
