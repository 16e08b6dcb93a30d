"""``sweepherd aws ...`` end to end against moto: init -> vpc -> validate -> deploy -> status ->
resume -> suspend -> destroy -> vpc --delete, with nothing left at the end; and bad input."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sweepherd.cli.main import main
from sweepherd.cloud.aws import AwsSession, cluster_instances, load_cluster_config
from sweepherd.errors import ExitStatus

from .conftest import aws_resources, nothing


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["aws", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def init_args(config: Path, image: str, *more: str) -> list[str]:
    return [
        "init", "--config", str(config), "--name", "demo", "--region", "us-east-1",
        "--key-name", "demo-key", "--ssh-cidr", "203.0.113.7/32",
        "--partition", "cpu:c6i.large:2:spot:default", "--partition", "gpu:g4dn.xlarge:1:gpus=1",
        "--image", image, "--gpu-image", image, *more,
    ]  # fmt: skip


@pytest.mark.aws
@pytest.mark.slurm
def test_from_zero_to_a_cluster_and_back_to_nothing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    session: AwsSession,
    image_id: str,
    slurm_cloud: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_path = tmp_path / "cluster.yaml"
    status, out, _ = run(capsys, *init_args(config_path, image_id))
    assert status == 0, out
    assert (tmp_path / "cluster.template.json").exists()
    session.client("ec2").create_key_pair(KeyName="demo-key")  # the user's key pair

    # 127.0.0.0/16: node addresses stay on loopback for the real Slurm below (see conftest)
    status, out, err = run(capsys, "vpc", "--config", str(config_path), "--cidr", "127.0.0.0/16")
    assert status == 0, err
    config = load_cluster_config(config_path)
    assert config.vpc_id.startswith("vpc-") and len(config.subnet_ids) == 2

    status, out, err = run(capsys, "validate", "--config", str(config_path))
    assert status == 0, err
    assert "template passes cfn-lint" in out

    status, out, err = run(capsys, "deploy", "--config", str(config_path))
    assert status == 0, err
    assert "cluster demo is up" in out and "ssh -i" in out
    assert "CREATE_COMPLETE" in err  # the stack events, shown while waiting

    status, out, _ = run(capsys, "status", "--config", str(config_path))
    assert "stack sweepherd-demo: CREATE_COMPLETE" in out and "0 compute instance(s)" in out

    # Slurm would run these two on the head node; here a real slurmctld answers scontrol.
    cluster = slurm_cloud(config)
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    log = tmp_path / "power.log"
    status, _, err = run(
        capsys, "resume", "--config", str(config_path), "--log-file", str(log), "cpu-[1-2]"
    )
    assert status == 0, err
    assert [i.node for i in cluster_instances(session, "demo")] == [None, "cpu-1", "cpu-2"]
    status, out, _ = run(capsys, "status", "--config", str(config_path))
    assert "2 compute instance(s) live" in out

    status, _, err = run(
        capsys, "suspend", "--config", str(config_path), "--log-file", str(log), "cpu-1"
    )
    assert status == 0, err
    assert [i.node for i in cluster_instances(session, "demo", states=["pending", "running"])] == [
        None,
        "cpu-2",
    ]
    text = log.read_text()
    assert "launched cpu-1" in text and "launched cpu-2" in text and "terminated" in text

    # destroy asks first; no answer, nothing happens
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    status, _, err = run(capsys, "destroy", "--config", str(config_path))
    assert status == ExitStatus.INTERRUPTED
    assert len(cluster_instances(session, "demo")) == 2

    status, out, err = run(capsys, "destroy", "--config", str(config_path), "--yes")
    assert status == 0, err
    assert "no instance of the cluster is left running" in out
    assert "the network stays; remove it with: sweepherd aws vpc --delete" in out
    assert cluster_instances(session, "demo") == []

    status, out, err = run(capsys, "vpc", "--config", str(config_path), "--delete")
    assert status == 0, err
    assert nothing(aws_resources(session))
    # the deleted network is no longer in the config, so deploy cannot aim at it
    gone = load_cluster_config(config_path)
    assert (gone.vpc_id, gone.subnet_ids) == ("", ())
    status, out, err = run(capsys, "destroy", "--config", str(config_path), "--yes")
    assert status == 0, err
    assert "the network stays" not in out  # there is none left to remove


@pytest.mark.parametrize(
    ("more", "expected"),
    [
        (["--region", "useast1"], "--region (region): 'useast1' is not an AWS region name"),
        (["--partition", "x:g5.12xlarge:2:gpus=2"], "g5.12xlarge has 4 GPUs, not 2"),
        (
            ["--partition", "z:c6i.large:0"],
            "--partition (partitions[2].max_nodes): 0 must be between 1 and",
        ),
        (["--ssh-cidr", "0.0.0.0/0"], "would open SSH to the whole internet"),
        (["--partition", "bad"], "--partition 'bad': expected NAME:TYPE:MAX_NODES"),
    ],
)
def test_init_refuses_bad_input_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, more: list[str], expected: str
) -> None:
    config_path = tmp_path / "cluster.yaml"
    status, _, err = run(capsys, *init_args(config_path, "ami-0123456789abcdef0", *more))
    assert status == ExitStatus.CLOUD
    assert expected in err
    assert not config_path.exists() and not (tmp_path / "cluster.template.json").exists()


def test_init_without_a_region_names_the_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config_path = tmp_path / "cluster.yaml"
    args = init_args(config_path, "ami-0123456789abcdef0")
    i = args.index("--region")
    status, _, err = run(capsys, *args[:i], *args[i + 2 :])
    assert status == ExitStatus.CLOUD
    assert "--region (region): required" in err and not config_path.exists()


def test_init_does_not_overwrite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config_path = tmp_path / "cluster.yaml"
    assert run(capsys, *init_args(config_path, "ami-0123456789abcdef0"))[0] == 0
    before = config_path.read_text()
    status, _, err = run(capsys, *init_args(config_path, "ami-0123456789abcdef0"))
    assert status == ExitStatus.CLOUD and "pass --force" in err
    assert config_path.read_text() == before


def test_validate_blames_a_type_the_region_lacks_on_the_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config_path = tmp_path / "cluster.yaml"
    args = init_args(config_path, "ami-0123456789abcdef0")
    args[args.index("--region") + 1] = "ap-southeast-2"
    run(capsys, *args, "--partition", "new:c7a.large:1")
    status, out, err = run(capsys, "validate", "--config", str(config_path))
    assert status == ExitStatus.CLOUD
    assert "partition new: instance type 'c7a.large' is not offered in ap-southeast-2" in out
    assert len(out) < 2000  # not cfn-lint's list of every type in the region
    assert "Choose instance types the region offers" in err and "report" not in err


def test_list_gpu_types(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "init", "--list-gpu-types")
    assert status == 0 and "p5.48xlarge" in err and "h100" in err


@pytest.mark.aws
def test_deploy_without_credentials_creates_nothing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    image_id: str,
    session: AwsSession,
    no_credentials: None,
) -> None:
    config_path = tmp_path / "cluster.yaml"
    run(capsys, *init_args(config_path, image_id))
    config = load_cluster_config(config_path)
    config_path.write_text(
        config_path.read_text()
        .replace("vpc_id: ''", "vpc_id: vpc-0123456789abcdef0")
        .replace("subnet_ids: []", "subnet_ids: [subnet-0123456789abcdef0]")
    )
    for command in ("vpc", "deploy"):
        status, _, err = run(capsys, command, "--config", str(config_path))
        assert status == ExitStatus.CLOUD, err
        assert "no AWS credentials found; nothing was created" in err
        assert "aws configure" in err
    assert config.name == "demo"


@pytest.mark.parametrize("broken", ["partial keys", "failing credential_process"])
def test_unreadable_credentials_are_one_line_saying_what_to_check(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_credentials: None,
    broken: str,
) -> None:
    """botocore raises these while looking for credentials, before any request is sent."""
    config_path = tmp_path / "cluster.yaml"
    run(capsys, *init_args(config_path, "ami-0123456789abcdef0"))
    if broken == "partial keys":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        reason = "missing: AWS_SECRET_ACCESS_KEY"
    else:
        aws_config = tmp_path / "aws-config"
        aws_config.write_text("[default]\ncredential_process = /bin/false\n")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))
        reason = "Error when retrieving credentials from custom-process"
    for command in ("vpc", "deploy", "status"):
        status, _, err = run(capsys, command, "--config", str(config_path))
        assert status == ExitStatus.CLOUD, err
        [line] = [x for x in err.splitlines() if x.strip()]
        assert line.startswith("error: ") and reason in line, line
        assert "aws sts get-caller-identity" in line and "Traceback" not in err


def test_without_boto3_the_error_says_how_to_install_it(tmp_path: Path) -> None:
    """In a fresh interpreter where boto3 cannot be imported (as without the aws extra)."""
    config_path = tmp_path / "cluster.yaml"
    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "from sweepherd.cli.main import main\n"
        f"main(['aws', *{init_args(config_path, 'ami-0123456789abcdef0')!r}])\n"
        f"sys.exit(main(['aws', 'status', '--config', {str(config_path)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == ExitStatus.CLOUD, done.stderr
    checkout = Path(__file__).resolve().parents[3]
    assert "boto3 is not installed. Install the aws extra: " in done.stderr
    assert f"-m pip install -e '{checkout}[aws]'" in done.stderr


def test_the_aws_group_is_listed_without_importing_boto3() -> None:
    code = (
        "import sys\nfrom sweepherd.cli.main import main\nmain(['--help'])\n"
        "assert 'boto3' not in sys.modules and 'sweepherd.cli.aws' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "aws" in done.stdout and "burstable Slurm cluster" in done.stdout
