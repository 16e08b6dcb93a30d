"""Slurm power saving on EC2: the resume, suspend and cleanup programs of the head node.

Slurm runs ``ResumeProgram NODELIST`` when jobs need ``State=CLOUD`` nodes that are powered
down, and ``SuspendProgram NODELIST`` when nodes have been idle for ``SuspendTime``:

- :func:`resume_nodes` launches one tagged instance per node (a node that already has a live
  instance keeps it), then tells Slurm the node's address with ``scontrol update``. A node whose
  launch fails is set DOWN with the reason, so Slurm requeues its job at once instead of waiting
  for ``ResumeTimeout``.
- :func:`suspend_nodes` terminates the nodes' instances.
- :func:`cleanup_nodes` (cron, every minute) powers down nodes stuck DOWN or not responding,
  returns powered-down DOWN nodes to service, and terminates instances whose node Slurm
  considers powered down (or that belong to no node of the config): nothing bills unseen.

All of them log to the power-saving log; none logs a secret (there is none in their inputs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sweepherd.cloud.aws._config import ClusterConfig, PartitionConfig
from sweepherd.cloud.aws._fleet import (
    LIVE_STATES,
    UP_STATES,
    NodeInstance,
    cluster_instances,
    launch_node,
    terminate_instances,
)
from sweepherd.cloud.aws._scontrol import Scontrol
from sweepherd.cloud.aws._session import AwsSession
from sweepherd.cloud.aws._stack import stack_outputs
from sweepherd.cloud.aws._template import launch_template_output
from sweepherd.cloud.aws._userdata import compute_node_script
from sweepherd.errors import CloudError

log = logging.getLogger(__name__)


@dataclass
class PowerReport:
    """What a power-saving program did, node by node."""

    launched: dict[str, NodeInstance] = field(default_factory=dict)
    kept: dict[str, NodeInstance] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    terminated: dict[str, list[str]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    slurm_updates: list[str] = field(default_factory=list)


def resume_nodes(
    config: ClusterConfig, hostlist: str, *, session: AwsSession, scontrol: Scontrol
) -> PowerReport:
    """Start an instance for every node of ``hostlist`` that has none; tell Slurm its address."""
    report = PowerReport()
    nodes = scontrol.hostnames(hostlist)
    log.info("resume %s (%d nodes)", hostlist, len(nodes))
    ours: dict[str, PartitionConfig] = {}
    for node in nodes:
        partition = config.partition_of_node(node)
        if partition is None:
            log.warning("resume: %s is not a node of cluster %s; ignored", node, config.name)
            report.ignored.append(node)
        else:
            ours[node] = partition
    if not ours:
        return report
    try:
        outputs = stack_outputs(session, config.stack_name)
        head_addr = outputs["HeadNodePrivateIp"]
        subnet_ids = [s for s in outputs["ComputeSubnetIds"].split(",") if s]
        existing = {
            i.node: i
            for i in cluster_instances(session, config.name, nodes=ours, states=UP_STATES)
            if i.node
        }
    except (CloudError, KeyError) as exc:
        reason = f"cannot read the cluster's stack: {exc}"
        for node in ours:
            _fail(scontrol, report, node, reason)
        return report
    for node, partition in ours.items():
        instance = existing.get(node)
        if instance is not None:
            log.info("resume: %s already has %s (%s)", node, instance.instance_id, instance.state)
            report.kept[node] = instance
        else:
            try:
                instance = launch_node(
                    session,
                    config,
                    partition,
                    node,
                    launch_template_id=outputs[launch_template_output(partition)],
                    subnet_ids=subnet_ids,
                    user_data=compute_node_script(config, partition, node, head_addr),
                )
            except (CloudError, KeyError) as exc:
                _fail(scontrol, report, node, f"launch failed: {exc}")
                continue
            report.launched[node] = instance
        _set_address(scontrol, report, node, instance)
    return report


def suspend_nodes(
    config: ClusterConfig, hostlist: str, *, session: AwsSession, scontrol: Scontrol
) -> PowerReport:
    """Terminate the instances of every node of ``hostlist``."""
    report = PowerReport()
    nodes = scontrol.hostnames(hostlist)
    log.info("suspend %s (%d nodes)", hostlist, len(nodes))
    ours = [n for n in nodes if config.partition_of_node(n) is not None]
    report.ignored = [n for n in nodes if n not in ours]
    for node in report.ignored:
        log.warning("suspend: %s is not a node of cluster %s; ignored", node, config.name)
    instances = cluster_instances(session, config.name, nodes=ours, states=LIVE_STATES)
    _terminate(session, report, instances, why="suspended by Slurm")
    for node in ours:
        if node not in report.terminated:
            log.info("suspend: %s has no instance", node)
    return report


def cleanup_nodes(config: ClusterConfig, *, session: AwsSession, scontrol: Scontrol) -> PowerReport:
    """Repair what power saving left inconsistent; see the module docstring."""
    report = PowerReport()
    hostlist = ",".join(p.nodelist for p in config.partitions)
    shown = scontrol.show_nodes(hostlist)
    states = {n["NodeName"]: node_flags(n.get("State", "")) for n in shown}
    reasons = {n["NodeName"]: n.get("Reason", "") for n in shown}
    for node, flags in sorted(states.items()):
        change = _state_change(flags, reasons.get(node, ""))
        if change is None:
            continue
        new_state, reason = change
        params = {"State": new_state}
        if reason:
            params["Reason"] = reason
        try:
            scontrol.update_node(node, **params)
        except CloudError as exc:
            log.error("cleanup: could not set %s to %s: %s", node, new_state, exc)
            continue
        log.info("cleanup: %s was %s; set to %s", node, "+".join(sorted(flags)), new_state)
        report.slurm_updates.append(f"{node}:{new_state}")
    orphans = []
    for instance in cluster_instances(session, config.name, states=LIVE_STATES):
        if instance.node is None:
            continue  # the head node
        node_state = states.get(instance.node)
        if node_state is None:
            orphans.append((instance, "not a node of the cluster config"))
        elif "POWERED_DOWN" in node_state and "POWERING_UP" not in node_state:
            orphans.append((instance, "Slurm has the node powered down"))
    for instance, why in orphans:
        _terminate(session, report, [instance], why=why)
    return report


def node_flags(state: str) -> set[str]:
    """The flags of a ``scontrol show node`` state (``IDLE+CLOUD+POWERED_DOWN``).

    A trailing ``*`` (not responding) becomes the flag ``NOT_RESPONDING``; ``~ # % !`` (the
    short forms of powered down, powering up, powering down, power down pending) become theirs.
    """
    flags: set[str] = set()
    for part in state.split("+"):
        if not part:
            continue
        base = part.rstrip("*~#%!$@^-")
        suffixes = part[len(base) :]
        flags.add(base)
        for char, name in (
            ("*", "NOT_RESPONDING"),
            ("~", "POWERED_DOWN"),
            ("#", "POWERING_UP"),
            ("%", "POWERING_DOWN"),
            ("!", "POWER_DOWN"),
        ):
            if char in suffixes:
                flags.add(name)
    return flags


def _state_change(flags: set[str], reason: str = "") -> tuple[str, str] | None:
    """What a node in ``flags`` should be set to, or ``None`` to leave it.

    A DOWN node that is powered down (a failed resume, a ResumeTimeout) goes back in service;
    a DOWN one that is not is powered down (its instance terminated). A drained powered-down
    node is undrained only if sweepherd drained it: an admin's DRAIN stays.
    """
    powered_down = "POWERED_DOWN" in flags
    busy = flags & {"POWERING_UP", "POWERING_DOWN", "POWER_DOWN"}
    if busy:
        return None
    if "DOWN" in flags and powered_down:
        return ("RESUME", "")
    if "DOWN" in flags:
        return ("POWER_DOWN_FORCE", "sweepherd: node was DOWN")
    if "NOT_RESPONDING" in flags and not powered_down and "IDLE" in flags:
        return ("POWER_DOWN_FORCE", "sweepherd: node not responding")
    if "DRAIN" in flags and powered_down and reason.startswith("sweepherd:"):
        return ("UNDRAIN", "")
    return None


def _set_address(
    scontrol: Scontrol, report: PowerReport, node: str, instance: NodeInstance
) -> None:
    if not instance.private_ip:
        log.warning("resume: %s (%s) has no address yet", node, instance.instance_id)
        return
    try:
        scontrol.update_node(
            node, NodeAddr=instance.private_ip, NodeHostname=instance.hostname or node
        )
    except CloudError as exc:
        log.error("resume: could not give Slurm %s's address: %s", node, exc)
        return
    report.slurm_updates.append(f"{node}:{instance.private_ip}")
    log.info("resume: %s is %s (%s)", node, instance.private_ip, instance.hostname)


def _fail(scontrol: Scontrol, report: PowerReport, node: str, reason: str) -> None:
    report.failed[node] = reason
    log.error("resume: %s: %s", node, reason)
    try:
        scontrol.update_node(node, State="DOWN", Reason=_slurm_reason(reason))
    except CloudError as exc:
        log.error("resume: could not set %s DOWN: %s", node, exc)


def _slurm_reason(reason: str) -> str:
    """A one-line reason Slurm accepts (no quotes, bounded length)."""
    clean = " ".join(reason.replace('"', "'").split())
    return ("sweepherd: " + clean)[:120]


def _terminate(
    session: AwsSession, report: PowerReport, instances: Sequence[NodeInstance], *, why: str
) -> None:
    if not instances:
        return
    terminate_instances(session, [i.instance_id for i in instances])
    for instance in instances:
        node = instance.node or "?"
        report.terminated.setdefault(node, []).append(instance.instance_id)
        log.info("terminated %s of %s (%s)", instance.instance_id, node, why)
