"""A burstable Slurm cluster on AWS: config, CloudFormation template, network, deploy and
destroy, and the power-saving programs Slurm runs to start and stop cloud nodes.

Needs the ``aws`` extra (``pip install -e '.[aws]'`` in the checkout) for everything that
talks to AWS; the config, the template and the Slurm configuration are pure and need nothing.

Typical use (what the ``sweepherd aws`` commands do)::

    config = load_cluster_config("cluster.yaml")
    session = AwsSession(config.region)
    network = create_network(session, config.name)
    config = config.with_network(network.vpc_id, network.subnet_ids)
    lint_cluster(config)              # cfn-lint findings
    outputs = deploy(config, session) # waits for the stack
    destroy(config, session)          # instances first, then the stack
"""

from sweepherd.cloud.aws._config import (
    CLUSTER_TAG,
    GPU_IMAGE,
    HEAD_CONFIG_PATH,
    NODE_TAG,
    UBUNTU_IMAGE,
    ClusterConfig,
    PartitionConfig,
    SlurmTimers,
    cluster_config_violations,
    dump_cluster_config,
    load_cluster_config,
    parse_cluster_config,
    write_cluster_config,
)
from sweepherd.cloud.aws._errors import ClusterConfigError
from sweepherd.cloud.aws._fleet import NodeInstance, cluster_instances
from sweepherd.cloud.aws._instances import InstanceSpec, gpu_instance_types, instance_spec
from sweepherd.cloud.aws._lint import LintFinding, lint_cluster, lint_template
from sweepherd.cloud.aws._munge import publish_munge_key
from sweepherd.cloud.aws._power import (
    PowerReport,
    cleanup_nodes,
    node_flags,
    resume_nodes,
    suspend_nodes,
)
from sweepherd.cloud.aws._scontrol import Scontrol, parse_node_line
from sweepherd.cloud.aws._session import ENDPOINT_ENV, AwsSession
from sweepherd.cloud.aws._slurm_conf import render_gres_conf, render_slurm_conf
from sweepherd.cloud.aws._stack import (
    ClusterStatus,
    DestroyReport,
    StackEvent,
    deploy,
    destroy,
    stack_outputs,
    status,
)
from sweepherd.cloud.aws._template import build_template, template_json
from sweepherd.cloud.aws._userdata import (
    MUNGE_FETCH_PY,
    check_user_data_size,
    compute_node_script,
    head_node_script,
)
from sweepherd.cloud.aws._users import ClusterUser, add_user, copy_wandb_key
from sweepherd.cloud.aws._vpc import Network, create_network, delete_network, find_network

__all__ = [
    "CLUSTER_TAG",
    "ENDPOINT_ENV",
    "GPU_IMAGE",
    "HEAD_CONFIG_PATH",
    "MUNGE_FETCH_PY",
    "NODE_TAG",
    "UBUNTU_IMAGE",
    "AwsSession",
    "ClusterConfig",
    "ClusterConfigError",
    "ClusterStatus",
    "ClusterUser",
    "DestroyReport",
    "InstanceSpec",
    "LintFinding",
    "Network",
    "NodeInstance",
    "PartitionConfig",
    "PowerReport",
    "Scontrol",
    "SlurmTimers",
    "StackEvent",
    "add_user",
    "build_template",
    "check_user_data_size",
    "cleanup_nodes",
    "cluster_config_violations",
    "cluster_instances",
    "compute_node_script",
    "copy_wandb_key",
    "create_network",
    "delete_network",
    "deploy",
    "destroy",
    "dump_cluster_config",
    "find_network",
    "gpu_instance_types",
    "head_node_script",
    "instance_spec",
    "lint_cluster",
    "lint_template",
    "load_cluster_config",
    "node_flags",
    "parse_cluster_config",
    "parse_node_line",
    "publish_munge_key",
    "render_gres_conf",
    "render_slurm_conf",
    "resume_nodes",
    "stack_outputs",
    "status",
    "suspend_nodes",
    "template_json",
    "write_cluster_config",
]
