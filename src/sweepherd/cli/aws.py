"""``sweepherd aws``: stand up a burstable Slurm cluster on AWS, and the programs it runs.

On your machine: ``init`` -> ``vpc`` -> ``validate`` -> ``deploy`` -> ``status`` -> ``destroy``.
On the head node: ``add-user``, ``copy-wandb-key``; and, run by Slurm and cron, ``resume``,
``suspend`` and ``cleanup``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from sweepherd.errors import CloudError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CONFIG = "sweepherd-aws.yaml"
CONFIG_ENV = "SWEEPHERD_AWS_CONFIG"
_LOGGER = "sweepherd.cloud.aws"


def _config_option(default: str = DEFAULT_CONFIG) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        return click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=default,
            envvar=CONFIG_ENV,
            show_default=True,
            show_envvar=True,
            help="The cluster config file (written by `sweepherd aws init`).",
        )(func)

    return decorate


def _aws_options(func: F) -> F:
    func = click.option(
        "--profile",
        envvar="AWS_PROFILE",
        default=None,
        help="The AWS CLI profile to use (default: AWS's usual credential chain).",
    )(func)
    func = click.option(
        "--endpoint-url",
        envvar="SWEEPHERD_AWS_ENDPOINT_URL",
        default=None,
        hidden=True,
        help="Send every AWS call to this endpoint (tests: a moto server).",
    )(func)
    return func


def _log_option(func: F) -> F:
    return click.option(
        "--log-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Append the log here (default: standard error).",
    )(func)


def _session(region: str, profile: str | None, endpoint_url: str | None) -> Any:
    from sweepherd.cloud.aws import AwsSession

    return AwsSession(region, endpoint_url=endpoint_url, profile=profile)


def _template_path(config_path: Path) -> Path:
    return config_path.with_name(config_path.stem + ".template.json")


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@click.group("aws")
def aws() -> None:
    """A burstable Slurm cluster on AWS: nodes start for jobs and stop when idle.

    \b
    Needs the AWS extra (scripts/setup.sh --dev, or pip install -e '.[aws]'). From zero:
      sweepherd aws init --name demo --region us-east-1 --key-name mykey \\
          --ssh-cidr 203.0.113.7/32 --partition gpu:g5.xlarge:4:spot
      sweepherd aws vpc          # a VPC with two routed public subnets
      sweepherd aws validate     # cfn-lint the template
      sweepherd aws deploy       # create the stack, wait for the head node
      sweepherd aws status       # stack, head node address, running nodes
      sweepherd aws destroy      # terminate every node, delete the stack
    """


# ------------------------------------------------------------------------------------------
# on your machine


@aws.command()
@_config_option()
@click.option("--name", help="Cluster name: lowercase letters, digits, dashes.")
@click.option("--region", help="AWS region, e.g. us-east-1.")
@click.option("--key-name", help="Name of an EC2 key pair in the region, for SSH.")
@click.option(
    "--ssh-cidr",
    help="The only network SSH is allowed from, e.g. 203.0.113.7/32 (your address).",
)
@click.option(
    "--partition",
    "partitions",
    multiple=True,
    metavar="NAME:TYPE:MAX_NODES[:spot][:gpus=N][:default]",
    help="A partition of cloud nodes (repeatable), e.g. gpu:g5.xlarge:4:spot.",
)
@click.option("--head-instance-type", default="t3.large", show_default=True)
@click.option(
    "--image",
    default=None,
    help="AMI id (or SSM parameter path) for the head node and CPU partitions "
    "(default: Ubuntu 24.04).",
)
@click.option(
    "--gpu-image",
    default=None,
    help="AMI id (or SSM parameter path) for GPU partitions (default: AWS's NVIDIA base "
    "image on Ubuntu 24.04).",
)
@click.option(
    "--shared-fs-gb", type=int, default=100, show_default=True, help="Size of /shared (GiB)."
)
@click.option(
    "--shared-fs-deletion",
    type=click.Choice(["Delete", "Snapshot", "Retain"]),
    default="Snapshot",
    show_default=True,
    help="What happens to /shared when the cluster is destroyed.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@click.option("--list-gpu-types", is_flag=True, help="List the known GPU instance types; exit.")
def init(
    config_path: Path,
    name: str | None,
    region: str | None,
    key_name: str | None,
    ssh_cidr: str | None,
    partitions: tuple[str, ...],
    head_instance_type: str,
    image: str | None,
    gpu_image: str | None,
    shared_fs_gb: int,
    shared_fs_deletion: str,
    force: bool,
    list_gpu_types: bool,
) -> None:
    """Write a cluster config and its CloudFormation template (no AWS call)."""
    from sweepherd.cloud.aws import (
        ClusterConfigError,
        instance_spec,
        parse_cluster_config,
        template_json,
        write_cluster_config,
    )

    if list_gpu_types:
        _print_gpu_types()
        return
    if config_path.exists() and not force:
        raise CloudError(
            f"{config_path} already exists; nothing was written.",
            hint="Edit it, or pass --force to overwrite it.",
        )
    raw: dict[str, Any] = {
        "name": name,
        "region": region,
        "key_name": key_name,
        "ssh_cidr": ssh_cidr,
        "head_instance_type": head_instance_type,
        "shared_fs_size_gb": shared_fs_gb,
        "shared_fs_deletion": shared_fs_deletion,
        "partitions": [_parse_partition(p) for p in partitions],
    }
    if image:
        raw["head_image"] = image
    for partition in raw["partitions"]:
        spec = instance_spec(partition["instance_type"])
        chosen = gpu_image if spec is not None and spec.n_gpus else image
        if chosen:
            partition["image"] = chosen
    try:
        config = parse_cluster_config(raw)
    except ClusterConfigError as exc:  # name the flags, not the config keys they fill in
        raise ClusterConfigError(
            "the options do not make a valid cluster config:",
            violations=[_as_flag(v) for v in exc.violations],
            hint=exc.hint,
        ) from None
    write_cluster_config(config, config_path)
    template = _template_path(config_path)
    template.write_text(template_json(config), encoding="utf-8")
    click.echo(f"wrote {config_path} and {template}")
    click.echo("next: sweepherd aws vpc   (or set vpc_id and subnet_ids in the config)")


#: The init options that fill in each top-level key of the cluster config.
_INIT_FLAGS = {
    "name": "--name",
    "region": "--region",
    "key_name": "--key-name",
    "ssh_cidr": "--ssh-cidr",
    "partitions": "--partition",
    "head_instance_type": "--head-instance-type",
}


def _as_flag(violation: str) -> str:
    key, sep, rest = violation.partition(":")
    top = key.split(".")[0].split("[")[0]
    return f"{_INIT_FLAGS[top]} ({key}){sep}{rest}" if sep and top in _INIT_FLAGS else violation


def _parse_partition(spec: str) -> dict[str, Any]:
    fields = spec.split(":")
    if len(fields) < 3 or not fields[2].isdigit():
        raise CloudError(
            f"--partition {spec!r}: expected NAME:TYPE:MAX_NODES[:spot][:gpus=N][:default]",
            hint="For example --partition gpu:g5.xlarge:4:spot",
        )
    out: dict[str, Any] = {
        "name": fields[0],
        "instance_type": fields[1],
        "max_nodes": int(fields[2]),
    }
    for flag in fields[3:]:
        if flag == "spot":
            out["spot"] = True
        elif flag == "default":
            out["default"] = True
        elif flag.startswith("gpus=") and flag[5:].isdigit():
            out["gpus"] = int(flag[5:])
        else:
            raise CloudError(
                f"--partition {spec!r}: unknown flag {flag!r} (allowed: spot, default, gpus=N)"
            )
    return out


def _print_gpu_types() -> None:
    from rich.table import Table

    from sweepherd.cloud.aws import gpu_instance_types

    table = Table("instance type", "GPUs", "GPU", "vCPUs", "memory GiB")
    for spec in gpu_instance_types().values():
        table.add_row(
            spec.instance_type,
            str(spec.n_gpus),
            spec.gpu_type or "",
            str(spec.vcpus),
            str(spec.memory_mib // 1024),
        )
    _console().print(table)


@aws.command()
@_config_option()
@_aws_options
@click.option("--cidr", default="10.0.0.0/16", show_default=True, help="The VPC's CIDR.")
@click.option("--delete", is_flag=True, help="Delete the cluster's network instead.")
def vpc(
    config_path: Path, profile: str | None, endpoint_url: str | None, cidr: str, delete: bool
) -> None:
    """Create a VPC with an internet gateway and two routed public subnets; record them."""
    from sweepherd.cloud.aws import (
        create_network,
        delete_network,
        load_cluster_config,
        write_cluster_config,
    )

    config = load_cluster_config(config_path)
    session = _session(config.region, profile, endpoint_url)
    if delete:
        gone = delete_network(session, config.name)
        click.echo(f"deleted {gone.vpc_id}" if gone else "the cluster has no network")
        if gone is not None and config.vpc_id == gone.vpc_id:  # not a VPC of the user's own
            write_cluster_config(config.with_network("", ()), config_path)
            click.echo(f"removed it from {config_path}; `sweepherd aws vpc` makes a new one")
        return
    network = create_network(session, config.name, cidr=cidr, on_step=click.echo)
    write_cluster_config(config.with_network(network.vpc_id, network.subnet_ids), config_path)
    zones = ", ".join(network.availability_zones)
    click.echo(f"network {network.vpc_id}: subnets {', '.join(network.subnet_ids)} in {zones}")
    click.echo(f"recorded in {config_path}; next: sweepherd aws validate")


def _lint_hint(errors: Sequence[Any]) -> str:
    """What to do about cfn-lint's errors: change the config, or report sweepherd's bug."""
    if all(e.is_config_choice for e in errors):
        return (
            "Choose instance types the region offers (`sweepherd aws init --list-gpu-types` "
            "lists GPU types), or another region, in the config."
        )
    return "Please report this: the template is generated by sweepherd."


@aws.command()
@_config_option()
def validate(config_path: Path) -> None:
    """Check the config, and the template with cfn-lint; show every finding."""
    from sweepherd.cloud.aws import check_user_data_size, lint_cluster, load_cluster_config

    config = load_cluster_config(config_path)
    check_user_data_size(config)
    findings = lint_cluster(config)
    for f in findings:
        click.echo(f"{f.severity:<8} {f.rule:<6} line {f.line}: {f.message}")
    errors = [f for f in findings if f.is_error]
    if errors:
        raise CloudError(
            f"cfn-lint found {len(errors)} error(s) in the template of {config.name}",
            hint=_lint_hint(errors),
        )
    click.echo(f"{config_path}: config valid; template passes cfn-lint ({len(findings)} notes)")


@aws.command()
@_config_option()
@_aws_options
@click.option("--timeout", "timeout_s", type=float, default=2700.0, show_default=True)
def deploy(
    config_path: Path, profile: str | None, endpoint_url: str | None, timeout_s: float
) -> None:
    """Create the cluster's stack and wait until the head node is up (refuses a change to a
    deployed head node's setup, which AWS would not apply)."""
    from sweepherd.cloud.aws import deploy as deploy_stack
    from sweepherd.cloud.aws import lint_cluster, load_cluster_config

    config = load_cluster_config(config_path)
    errors = [f for f in lint_cluster(config) if f.is_error]
    if errors:
        raise CloudError(
            f"the template fails cfn-lint ({errors[0].rule}: {errors[0].message}); "
            "nothing was created.",
            hint=f"{_lint_hint(errors)} `sweepherd aws validate` shows every finding.",
        )
    session = _session(config.region, profile, endpoint_url)
    console = _console()
    with console.status(f"deploying {config.stack_name} in {config.region}...") as spinner:

        def on_event(event: Any) -> None:
            reason = f"  {event.reason}" if event.reason else ""
            console.print(f"{event.logical_id:<28} {event.status}{reason}")
            spinner.update(f"{config.stack_name}: {event.logical_id} {event.status}")

        outputs = deploy_stack(config, session, on_event=on_event, timeout_s=timeout_s)
    address = outputs.get("HeadNodePublicIp", "?")
    click.echo(f"cluster {config.name} is up. Head node: {address}")
    click.echo(f"  ssh -i ~/.ssh/{config.key_name}.pem ubuntu@{address}")


@aws.command()
@_config_option()
@_aws_options
def status(config_path: Path, profile: str | None, endpoint_url: str | None) -> None:
    """Show the stack, the head node's address and every running node."""
    from rich.table import Table

    from sweepherd.cloud.aws import load_cluster_config
    from sweepherd.cloud.aws import status as cluster_status

    config = load_cluster_config(config_path)
    session = _session(config.region, profile, endpoint_url)
    state = cluster_status(config, session)
    if state.stack_status is None:
        click.echo(f"stack {state.stack_name}: not deployed")
    else:
        reason = f" ({state.reason})" if state.reason else ""
        click.echo(f"stack {state.stack_name}: {state.stack_status}{reason}")
        if state.head_public_ip:
            click.echo(f"head node: ubuntu@{state.head_public_ip}")
    table = Table("node", "instance", "type", "market", "state", "address", "since")
    for i in state.instances:
        since = i.launch_time.strftime("%Y-%m-%d %H:%M") if i.launch_time else ""
        table.add_row(
            i.node or "(head)",
            i.instance_id,
            i.instance_type,
            i.lifecycle,
            i.state,
            i.private_ip,
            since,
        )
    n_nodes = sum(1 for i in state.instances if i.node)
    click.echo(f"{n_nodes} compute instance(s) live")
    if state.instances:
        _console().print(table)


@aws.command()
@_config_option()
@_aws_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--timeout", "timeout_s", type=float, default=2700.0, show_default=True)
def destroy(
    config_path: Path,
    profile: str | None,
    endpoint_url: str | None,
    yes: bool,
    timeout_s: float,
) -> None:
    """Terminate every instance of the cluster, then delete its stack."""
    from sweepherd.cloud.aws import destroy as destroy_stack
    from sweepherd.cloud.aws import load_cluster_config

    config = load_cluster_config(config_path)
    if not yes:
        click.confirm(
            f"Destroy cluster {config.name} in {config.region}: terminate all its instances and "
            f"delete the stack {config.stack_name} (/shared: {config.shared_fs_deletion})?",
            abort=True,
        )
    session = _session(config.region, profile, endpoint_url)
    console = _console()
    with console.status(f"destroying {config.name}...") as spinner:

        def on_event(event: Any) -> None:
            console.print(f"{event.logical_id:<28} {event.status}")
            spinner.update(f"{config.stack_name}: {event.logical_id} {event.status}")

        def on_step(message: str) -> None:
            console.print(message)

        report = destroy_stack(
            config, session, on_event=on_event, on_step=on_step, timeout_s=timeout_s
        )
    click.echo(
        f"destroyed {config.name}: {len(report.terminated)} instance(s) terminated, stack "
        + ("deleted" if report.stack_deleted else "was not there")
    )
    click.echo("no instance of the cluster is left running.")
    if config.vpc_id:  # a network `sweepherd aws vpc` made and not deleted yet
        click.echo("the network stays; remove it with: sweepherd aws vpc --delete")


# ------------------------------------------------------------------------------------------
# run by Slurm and cron on the head node


@contextmanager
def _power_logging(log_file: Path | None) -> Iterator[logging.Logger]:
    logger = logging.getLogger(_LOGGER)
    handler: logging.Handler
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield logger
    except Exception as exc:
        logger.error("failed: %s", exc)
        raise
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.close()


def _power_command(func: F) -> F:
    func = _log_option(func)
    func = _aws_options(func)
    func = click.option("--scontrol", default="scontrol", hidden=True)(func)
    return _config_option("/etc/sweepherd/cluster.yaml")(func)


@aws.command()
@_power_command
@click.argument("nodelist")
def resume(
    config_path: Path,
    scontrol: str,
    profile: str | None,
    endpoint_url: str | None,
    log_file: Path | None,
    nodelist: str,
) -> None:
    """Slurm's ResumeProgram: launch an instance for each node of NODELIST."""
    from sweepherd.cloud.aws import Scontrol, load_cluster_config, resume_nodes

    with _power_logging(log_file):
        config = load_cluster_config(config_path)
        session = _session(config.region, profile, endpoint_url)
        report = resume_nodes(config, nodelist, session=session, scontrol=Scontrol(scontrol))
        if report.failed:
            raise CloudError(
                f"could not resume {', '.join(sorted(report.failed))}; they were set DOWN",
                hint=f"See the log{f' {log_file}' if log_file else ''} for why.",
            )


@aws.command()
@_power_command
@click.argument("nodelist")
def suspend(
    config_path: Path,
    scontrol: str,
    profile: str | None,
    endpoint_url: str | None,
    log_file: Path | None,
    nodelist: str,
) -> None:
    """Slurm's SuspendProgram: terminate the instances of NODELIST."""
    from sweepherd.cloud.aws import Scontrol, load_cluster_config, suspend_nodes

    with _power_logging(log_file):
        config = load_cluster_config(config_path)
        session = _session(config.region, profile, endpoint_url)
        suspend_nodes(config, nodelist, session=session, scontrol=Scontrol(scontrol))


@aws.command()
@_power_command
def cleanup(
    config_path: Path,
    scontrol: str,
    profile: str | None,
    endpoint_url: str | None,
    log_file: Path | None,
) -> None:
    """Power down nodes stuck DOWN; terminate instances Slurm has powered down (cron)."""
    from sweepherd.cloud.aws import Scontrol, cleanup_nodes, load_cluster_config

    with _power_logging(log_file):
        config = load_cluster_config(config_path)
        session = _session(config.region, profile, endpoint_url)
        cleanup_nodes(config, session=session, scontrol=Scontrol(scontrol))


@aws.command("publish-munge-key", hidden=True)
@_config_option("/etc/sweepherd/cluster.yaml")
@_aws_options
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default="/etc/munge/munge.key",
    show_default=True,
)
def publish_munge_key(
    config_path: Path, profile: str | None, endpoint_url: str | None, key_file: Path
) -> None:
    """Store the head node's munge key for the compute nodes (run by the head node's boot)."""
    from sweepherd.cloud.aws import load_cluster_config
    from sweepherd.cloud.aws import publish_munge_key as publish

    config = load_cluster_config(config_path)
    session = _session(config.region, profile, endpoint_url)
    name = publish(config, session, key_path=key_file)
    click.echo(f"munge key stored in the SSM SecureString {name}")


# ------------------------------------------------------------------------------------------
# users, on the head node


def _root_options(func: F) -> F:
    func = click.option(
        "--shared",
        type=click.Path(file_okay=False, path_type=Path),
        default="/shared",
        show_default=True,
        help="The shared filesystem's mount point.",
    )(func)
    return click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default="/",
        hidden=True,
        help="Filesystem root holding /etc/passwd (tests).",
    )(func)


@aws.command("add-user")
@click.argument("name")
@click.option(
    "--ssh-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The user's SSH public key (.pub) to allow in.",
)
@_root_options
def add_user(name: str, ssh_key: Path | None, root: Path, shared: Path) -> None:
    """Create a user on the head node with a home on /shared; every node gets it (as root)."""
    from sweepherd.cloud.aws import add_user as create_user

    public_key = ssh_key.read_text(encoding="utf-8") if ssh_key else None
    user = create_user(name, ssh_public_key=public_key, root=root, shared=shared)
    click.echo(f"created {user.name} (uid {user.uid}, gid {user.gid}), home {user.home}")
    click.echo(f"next: sudo sweepherd aws copy-wandb-key {user.name}")


@aws.command("copy-wandb-key")
@click.argument("user")
@click.option("--host", default="api.wandb.ai", show_default=True, help="The W&B API host.")
@_root_options
def copy_wandb_key(user: str, host: str, root: Path, shared: Path) -> None:
    """Put a W&B API key in USER's ~/.netrc on /shared (mode 0600).

    The key is read from WANDB_API_KEY, else from standard input when it is not a terminal,
    else from a hidden prompt. It is never shown, logged or taken as an argument.
    """
    from sweepherd.cloud.aws import copy_wandb_key as write_key

    key = os.environ.get("WANDB_API_KEY", "")
    if not key:
        if sys.stdin.isatty():
            key = click.prompt("W&B API key", hide_input=True, err=True)
        else:
            key = sys.stdin.readline()
    path = write_key(user, key, host=host, root=root, shared=shared)
    click.echo(f"stored {user}'s W&B API key in {path} (mode 0600)")
