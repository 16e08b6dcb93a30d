"""Fixtures of the AWS tests: a moto server on 127.0.0.1, fake credentials, cluster configs,
and a private Slurm cluster with power saving.

Nothing here can reach real AWS: every client sweepherd makes goes to the moto server through
``SWEEPHERD_AWS_ENDPOINT_URL``; the credentials are fake; instance metadata (169.254.169.254)
is disabled so botocore never looks for an instance role.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sweepherd.cloud.aws import (
    AwsSession,
    ClusterConfig,
    create_network,
    parse_cluster_config,
)

from ._moto import FAKE_CREDENTIALS, MotoServer
from ._slurm_cloud import CloudSlurm, which_slurm

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test: fake credentials, no profile or config files, no instance metadata."""
    for key in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "SWEEPHERD_AWS_ENDPOINT_URL",
        "SWEEPHERD_AWS_CONFIG",
        "WANDB_API_KEY",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS credentials anywhere."""
    for key in FAKE_CREDENTIALS:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer.start(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The moto server's URL, empty, and set as sweepherd's endpoint for this test."""
    moto_server.reset()
    monkeypatch.setenv("SWEEPHERD_AWS_ENDPOINT_URL", moto_server.url)
    yield moto_server.url


@pytest.fixture
def session(moto: str) -> AwsSession:
    return AwsSession(REGION)


@pytest.fixture
def image_id(session: AwsSession) -> str:
    """An AMI that exists in moto. (moto has none of the public SSM image parameters that
    sweepherd's default images name, so moto tests give AMI ids; see test_stack.py.)"""
    images = session.client("ec2").describe_images(Owners=["amazon"])["Images"]
    return str(sorted(i["ImageId"] for i in images)[0])


def raw_config(image: str = "ami-0123456789abcdef0", **overrides: Any) -> dict[str, Any]:
    """A valid cluster config mapping: a spot CPU partition and a GPU partition."""
    raw: dict[str, Any] = {
        "name": "demo",
        "region": REGION,
        "key_name": "demo-key",
        "ssh_cidr": "203.0.113.7/32",
        "head_image": image,
        "partitions": [
            {
                "name": "cpu",
                "instance_type": "c6i.large",
                "max_nodes": 2,
                "spot": True,
                "image": image,
                "default": True,
            },
            {"name": "gpu", "instance_type": "g4dn.xlarge", "max_nodes": 1, "image": image},
        ],
        "slurm": {"resume_timeout_s": 60, "suspend_time_s": 5, "suspend_timeout_s": 5},
    }
    raw.update(overrides)
    return raw


@pytest.fixture
def config(image_id: str) -> ClusterConfig:
    return parse_cluster_config(raw_config(image_id))


@pytest.fixture
def networked(config: ClusterConfig, session: AwsSession) -> ClusterConfig:
    """``config`` with a network and key pair made in moto."""
    network = create_network(session, config.name)
    session.client("ec2").create_key_pair(KeyName=config.key_name)
    return config.with_network(network.vpc_id, network.subnet_ids)


@pytest.fixture
def loopback_networked(config: ClusterConfig, session: AwsSession) -> ClusterConfig:
    """``config`` in a moto VPC of 127.0.0.0/16, for the tests that run a real Slurm.

    moto gives instances addresses from their subnet, and sweepherd hands that address to
    Slurm as the node's NodeAddr. AWS would refuse this CIDR, moto takes it: so the address
    routes to this host's loopback, where the test starts the node's slurmd, and slurmctld
    never sends a packet outside 127.0.0.0/8.
    """
    network = create_network(session, config.name, cidr="127.0.0.0/16")
    session.client("ec2").create_key_pair(KeyName=config.key_name)
    return config.with_network(network.vpc_id, network.subnet_ids)


def aws_resources(session: AwsSession) -> dict[str, list[str]]:
    """Everything a test could have created in moto, by kind (defaults excluded)."""
    ec2 = session.client("ec2")
    default_vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")}
    live = ["pending", "running", "stopping", "stopped", "shutting-down"]
    return {
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")],
        "subnets": [
            s["SubnetId"]
            for s in ec2.describe_subnets()["Subnets"]
            if s["VpcId"] not in default_vpcs
        ],
        "internet_gateways": [
            g["InternetGatewayId"]
            for g in ec2.describe_internet_gateways()["InternetGateways"]
            if not any(a["VpcId"] in default_vpcs for a in g.get("Attachments", []))
        ],
        "instances": [
            i["InstanceId"]
            for r in ec2.describe_instances(
                Filters=[{"Name": "instance-state-name", "Values": live}]
            )["Reservations"]
            for i in r["Instances"]
        ],
        "stacks": [
            s["StackName"]
            for s in session.client("cloudformation").describe_stacks()["Stacks"]
            if s["StackStatus"] != "DELETE_COMPLETE"
        ],
        "security_groups": [
            g["GroupId"]
            for g in ec2.describe_security_groups()["SecurityGroups"]
            if g["GroupName"] != "default"
        ],
        "parameters": [
            p["Name"]
            for p in session.client("ssm").describe_parameters()["Parameters"]
            if p["Name"].startswith("/sweepherd/")
        ],
    }


def nothing(resources: dict[str, list[str]]) -> bool:
    return not any(resources.values())


@pytest.fixture
def slurm_cloud(moto: str) -> Iterator[Any]:
    """A factory: ``slurm_cloud(config)`` starts a private Slurm cluster for ``config``."""
    if not which_slurm():
        pytest.fail("the Slurm daemons are not installed (scripts/test.sh installs them)")
    started: list[CloudSlurm] = []

    def start(config: ClusterConfig) -> CloudSlurm:
        # munged wants every directory above its socket to be world-searchable, which
        # pytest's temporary directories are not: a directory of our own under /tmp.
        base = Path(tempfile.mkdtemp(prefix="sweepherd-aws-slurm-"))
        program_env = {
            **FAKE_CREDENTIALS,
            "SWEEPHERD_AWS_ENDPOINT_URL": moto,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": str(base / "no-aws-credentials"),
            "AWS_CONFIG_FILE": str(base / "no-aws-config"),
        }
        cluster = CloudSlurm(base, config, program_env)
        started.append(cluster)
        cluster.start()
        return cluster

    yield start
    for cluster in started:
        cluster.stop()
        if not os.environ.get("SWEEPHERD_AWS_TEST_KEEP"):  # keep the logs for debugging
            shutil.rmtree(cluster.base, ignore_errors=True)
