"""The head node's munge key, shared with the compute nodes through an SSM SecureString.

The key is made on the head node at boot (``mungekey``), never in the template or on the
laptop. :func:`publish_munge_key` stores it, base64-encoded and encrypted by SSM, in the one
parameter the compute role may read. Nothing here prints or logs the key.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

from sweepherd.cloud.aws._config import ClusterConfig
from sweepherd.cloud.aws._session import AwsSession, aws_errors
from sweepherd.errors import CloudError

log = logging.getLogger(__name__)
MUNGE_KEY_PATH = Path("/etc/munge/munge.key")


def publish_munge_key(
    config: ClusterConfig, session: AwsSession, *, key_path: Path = MUNGE_KEY_PATH
) -> str:
    """Put the munge key at ``key_path`` into the cluster's SecureString; return its name."""
    try:
        key = key_path.read_bytes()
    except OSError as exc:
        raise CloudError(
            f"cannot read the munge key {key_path}: {exc.strerror}",
            hint="Run this as root on the head node, after munge is installed.",
        ) from None
    if len(key) < 32:
        raise CloudError(f"the munge key {key_path} is too short ({len(key)} bytes)")
    name = config.munge_key_parameter
    ssm = session.client("ssm")
    with aws_errors(f"storing the munge key in {name}"):
        ssm.put_parameter(
            Name=name,
            Description=f"munge key of sweepherd cluster {config.name} (made on its head node)",
            Value=base64.b64encode(key).decode("ascii"),
            Type="SecureString",
            Overwrite=True,
        )
        ssm.add_tags_to_resource(
            ResourceType="Parameter",
            ResourceId=name,
            Tags=[{"Key": k, "Value": v} for k, v in config.all_tags.items()],
        )
    log.info("munge key stored in %s (%d bytes, SecureString)", name, len(key))
    return name
