"""sweepherd's resume, suspend and cleanup programs against a REAL slurmctld with power saving.

The cluster's ``slurm.conf`` is sweepherd's own (nodes ``State=CLOUD``, GRES, the timers of the
cluster config), started with local paths and ports (see ``_slurm_cloud.py``); EC2 is the moto
server, whose VPC is 127.0.0.0/16 so that the node addresses sweepherd hands to Slurm are on
this host's loopback (see ``loopback_networked``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sweepherd.cloud.aws import (
    AwsSession,
    ClusterConfig,
    Scontrol,
    cleanup_nodes,
    cluster_instances,
    deploy,
    dump_cluster_config,
    node_flags,
    resume_nodes,
)

pytestmark = [pytest.mark.aws, pytest.mark.slurm]


def wait_until(
    what: str, check: Callable[[], Any], timeout_s: float, diag: Callable[[], str]
) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"{what} did not happen in {timeout_s} s\n{diag()}")


def job_state(cluster: Any, job_id: str) -> str:
    out = cluster.run("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T", check=False)
    return str(out.strip())


def diagnose(cluster: Any) -> Callable[[], str]:
    def diag() -> str:
        log = cluster.base / "power.log"
        return (
            f"--- power.log\n{log.read_text() if log.exists() else ''}"
            f"\n--- slurmctld.log (tail)\n{cluster.log('slurmctld.log')[-3000:]}"
            f"\n--- nodes\n{cluster.run('scontrol', 'show', 'node', '-o', check=False)}"
            f"\n--- jobs\n{cluster.run('scontrol', 'show', 'job', check=False)}"
        )

    return diag


@pytest.fixture
def cloud(
    loopback_networked: ClusterConfig, session: AwsSession, slurm_cloud: Any
) -> tuple[ClusterConfig, Any]:
    """The cluster deployed in moto, and a real slurmctld running its slurm.conf."""
    config = loopback_networked
    deploy(config, session, poll_s=0.2)
    cluster = slurm_cloud(config)
    (cluster.base / "cluster.yaml").write_text(dump_cluster_config(config))
    return config, cluster


@pytest.mark.slow
def test_jobs_on_cloud_nodes_launch_instances_that_are_terminated_when_idle(
    cloud: tuple[ClusterConfig, Any], session: AwsSession, tmp_path: Path
) -> None:
    config, cluster = cloud
    diag = diagnose(cluster)

    # Before any job: every CLOUD node is powered down and has no instance.
    for node in ("cpu-1", "cpu-2", "gpu-1"):
        assert "POWERED_DOWN" in node_flags(cluster.node_state(node))
    assert cluster_instances(session, config.name, nodes=["cpu-1", "cpu-2", "gpu-1"]) == []

    cpu_out, gpu_out = tmp_path / "cpu.out", tmp_path / "gpu.out"
    cpu_job = cluster.run(
        "sbatch", "--parsable", "-p", "cpu", "-o", str(cpu_out),
        "--wrap", "echo ran on $SLURMD_NODENAME",
    ).strip()  # fmt: skip
    gpu_job = cluster.run(
        "sbatch", "--parsable", "-p", "gpu", "--gres=gpu:1", "-o", str(gpu_out),
        "--wrap", "echo $SLURMD_NODENAME $CUDA_VISIBLE_DEVICES",
    ).strip()  # fmt: skip

    # slurmctld 22.05 starts a job whose node has powered up at its next 30-second check.
    for job in (cpu_job, gpu_job):
        done = lambda j=job: job_state(cluster, j) == "COMPLETED"  # noqa: E731
        done = lambda j=job: job_state(cluster, j) == "COMPLETED"  # noqa: E731
        wait_until("the job to complete", done, 75, diag)
    assert cpu_out.read_text().split() == ["ran", "on", "cpu-1"]
    # the GRES sweepherd declared for a g4dn.xlarge (one T4) gives the job its GPU
    assert gpu_out.read_text().split() == ["gpu-1", "0"]

    # The resume program launched one tagged instance per node, Spot for the spot partition,
    # and told Slurm each node's address before the node "booted".
    (cpu,) = cluster_instances(session, config.name, nodes=["cpu-1"])
    (gpu,) = cluster_instances(session, config.name, nodes=["gpu-1"])
    assert (cpu.instance_type, cpu.lifecycle) == ("c6i.large", "spot")
    assert (gpu.instance_type, gpu.lifecycle) == ("g4dn.xlarge", "on-demand")
    assert cluster_instances(session, config.name, nodes=["cpu-2"]) == []
    resumed = {str(r["node"]): r for r in cluster.records("resumed.jsonl")}
    assert sorted(resumed) == ["cpu-1", "gpu-1"]
    for instance in (cpu, gpu):
        record = resumed[str(instance.node)]
        assert record["rc"] == 0 and record["instances"] == [instance.instance_id]
        assert f"NodeAddr={instance.private_ip} " in str(record["scontrol"])
        assert f"NodeHostName={instance.hostname} " in str(record["scontrol"])
    ec2 = session.client("ec2")
    tags = {
        t["Key"]: t["Value"]
        for t in ec2.describe_instances(InstanceIds=[cpu.instance_id])["Reservations"][0][
            "Instances"
        ][0]["Tags"]
    }
    assert tags["sweepherd:cluster"] == "demo" and tags["sweepherd:node"] == "cpu-1"

    # Idle for SuspendTime: slurmctld runs the suspend program, which terminates them.
    wait_until(
        "the suspend program to run for both nodes",
        lambda: (
            sorted(str(r["node"]) for r in cluster.records("suspended.jsonl")) == ["cpu-1", "gpu-1"]
        ),
        40,
        diag,
    )
    assert all(r["rc"] == 0 for r in cluster.records("suspended.jsonl"))
    assert cluster_instances(session, config.name, nodes=["cpu-1", "gpu-1"]) == []
    assert [i.node for i in cluster_instances(session, config.name)] == [None]  # head node only
    wait_until(
        "the nodes to be powered down again",
        lambda: all(
            "POWERED_DOWN" in node_flags(cluster.node_state(n)) for n in ("cpu-1", "gpu-1")
        ),
        30,
        diag,
    )
    log = (cluster.base / "power.log").read_text()
    assert "launched cpu-1" in log and f"terminated {cpu.instance_id} of cpu-1" in log
    assert "testing" not in log  # not even the (fake) credentials


def test_resume_keeps_a_live_instance_and_cleanup_terminates_instances_slurm_lost(
    cloud: tuple[ClusterConfig, Any], session: AwsSession
) -> None:
    config, cluster = cloud
    scontrol = Scontrol(env=cluster.env)
    # Resumed outside Slurm's power saving (as after a crash between launch and Slurm's
    # bookkeeping): the instance exists, but Slurm still has the node powered down.
    first = resume_nodes(config, "cpu-2", session=session, scontrol=scontrol)
    assert list(first.launched) == ["cpu-2"] and not first.failed
    again = resume_nodes(config, "cpu-2", session=session, scontrol=scontrol)
    assert not again.launched and list(again.kept) == ["cpu-2"]  # no second instance
    assert len(cluster_instances(session, config.name, nodes=["cpu-2"])) == 1
    assert "POWERED_DOWN" in node_flags(cluster.node_state("cpu-2"))

    # A node an admin (or a failure) set DOWN while powered down.
    cluster.run("scontrol", "update", "NodeName=gpu-1", "State=DOWN", "Reason=test")
    assert {"DOWN", "POWERED_DOWN"} <= node_flags(cluster.node_state("gpu-1"))

    report = cleanup_nodes(config, session=session, scontrol=scontrol)

    assert list(report.terminated) == ["cpu-2"]  # billing unseen: terminated
    assert cluster_instances(session, config.name, nodes=["cpu-2"]) == []
    assert report.slurm_updates == ["gpu-1:RESUME"]
    flags = node_flags(cluster.node_state("gpu-1"))
    assert "DOWN" not in flags and {"IDLE", "POWERED_DOWN"} <= flags
    # nothing else to do on a second pass
    second = cleanup_nodes(config, session=session, scontrol=scontrol)
    assert not second.terminated and not second.slurm_updates


def _fail_run_instances(session: AwsSession, code: str, *, spot_only: bool) -> list[str]:
    """Make moto's RunInstances answer ``code`` (for Spot requests only, if ``spot_only``).

    A stand-in at the AWS boundary: moto never runs out of capacity. The hook answers before
    the request is sent; every other call goes to moto.
    """
    seen: list[str] = []

    def before_call(params: dict[str, Any], **_: Any) -> Any:
        body = params.get("body", {})
        is_spot = "InstanceMarketOptions.MarketType" in body
        seen.append("spot" if is_spot else "on-demand")
        if spot_only and not is_spot:
            return None
        error = {"Error": {"Code": code, "Message": f"injected {code}"}}
        from botocore.awsrequest import AWSResponse

        return AWSResponse(None, 500, {}, None), error

    session.client("ec2").meta.events.register("before-call.ec2.RunInstances", before_call)
    return seen


def test_a_spot_node_falls_back_to_on_demand_when_spot_has_no_capacity(
    cloud: tuple[ClusterConfig, Any], session: AwsSession
) -> None:
    config, cluster = cloud
    attempts = _fail_run_instances(session, "InsufficientInstanceCapacity", spot_only=True)
    report = resume_nodes(config, "cpu-1", session=session, scontrol=Scontrol(env=cluster.env))
    # Spot in each of the two subnets, then on-demand in the first
    assert attempts == ["spot", "spot", "on-demand"]
    assert report.launched["cpu-1"].lifecycle == "on-demand"
    (instance,) = cluster_instances(session, config.name, nodes=["cpu-1"])
    assert instance.lifecycle == "on-demand"


def test_a_node_that_cannot_be_launched_is_set_down_with_the_reason(
    cloud: tuple[ClusterConfig, Any], session: AwsSession
) -> None:
    config, cluster = cloud
    attempts = _fail_run_instances(session, "InsufficientInstanceCapacity", spot_only=False)
    report = resume_nodes(config, "cpu-1", session=session, scontrol=Scontrol(env=cluster.env))
    assert attempts == ["spot", "spot", "on-demand", "on-demand"]
    assert "InsufficientInstanceCapacity" in report.failed["cpu-1"]
    assert cluster_instances(session, config.name, nodes=["cpu-1"]) == []
    line = cluster.run("scontrol", "show", "node", "-o", "cpu-1")
    assert "DOWN" in node_flags(cluster.node_state("cpu-1"))
    assert "Reason=sweepherd: launch failed: could not launch cpu-1" in line


def test_cleanup_powers_down_a_running_node_stuck_down(
    cloud: tuple[ClusterConfig, Any], session: AwsSession
) -> None:
    config, cluster = cloud
    diag = diagnose(cluster)
    cluster.run("scontrol", "update", "NodeName=cpu-1", "State=POWER_UP")
    wait_until(
        "cpu-1 to power up and register",
        lambda: node_flags(cluster.node_state("cpu-1")) & {"POWERING_UP", "POWERED_DOWN"} == set(),
        30,
        diag,
    )
    assert len(cluster_instances(session, config.name, nodes=["cpu-1"])) == 1
    cluster.run("scontrol", "update", "NodeName=cpu-1", "State=DOWN", "Reason=stuck")
    flags = node_flags(cluster.node_state("cpu-1"))
    assert "DOWN" in flags and "POWERED_DOWN" not in flags

    report = cleanup_nodes(config, session=session, scontrol=Scontrol(env=cluster.env))
    assert report.slurm_updates == ["cpu-1:POWER_DOWN_FORCE"]
    # slurmctld then runs the suspend program, which terminates the instance
    wait_until(
        "the stuck node's instance to be terminated",
        lambda: (
            [str(r["node"]) for r in cluster.records("suspended.jsonl")] == ["cpu-1"]
            and not cluster_instances(session, config.name, nodes=["cpu-1"])
        ),
        30,
        diag,
    )
