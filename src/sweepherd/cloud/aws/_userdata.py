"""The boot scripts (EC2 UserData) of the head node and of each compute node.

Both run once, as root, on Ubuntu 24.04, and log to a file under ``/var/log``; neither holds
a secret. The head node makes a fresh munge key and puts it in an SSM SecureString parameter;
a compute node reads that parameter with its instance role, and nothing else.

The head node's script is returned as parts for ``Fn::Join`` (plain strings, and the template's
``Ref``/``GetAtt`` dicts where stack values go), never ``Fn::Sub``: the shell's own ``${VAR}``
would clash with it.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from sweepherd.cloud.aws._config import (
    HEAD_CONFIG_PATH,
    SHARED_MOUNT,
    ClusterConfig,
    PartitionConfig,
    dump_cluster_config,
)
from sweepherd.cloud.aws._slurm_conf import (
    HEAD_ADDR_PLACEHOLDER,
    render_cgroup_conf,
    render_gres_conf,
    render_slurm_conf,
)
from sweepherd.errors import CloudError

#: The file on the shared filesystem listing the cluster's users as ``name:uid:gid`` lines.
USERS_FILE = f"{SHARED_MOUNT}/sweepherd/users"
HOMES_DIR = f"{SHARED_MOUNT}/home"
POWER_LOG = "/var/log/sweepherd/power.log"
_SWEEPHERD = "/opt/sweepherd/bin/sweepherd"
#: apt-get as the boot scripts run it. At first boot Ubuntu's own apt jobs (unattended
#: upgrades) often hold dpkg's lock, and a plain apt-get fails at once: before the head node's
#: failure signal is set up, so deploy would wait its whole timeout. This one waits for the
#: lock, and retries downloads.
_APT = "apt-get -o DPkg::Lock::Timeout=900 -o Acquire::Retries=5"

#: Python run on a compute node to write the munge key from the SSM SecureString parameter.
#: Arguments: region, parameter name, output file. Prints nothing (the key is a secret).
MUNGE_FETCH_PY = """\
import base64, os, sys
import boto3
region, name, path = sys.argv[1:4]
value = boto3.client("ssm", region_name=region).get_parameter(
    Name=name, WithDecryption=True)["Parameter"]["Value"]
fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
with os.fdopen(fd, "wb") as f:
    f.write(base64.b64decode(value))
os.replace(path + ".tmp", path)
"""

#: Python run on the head node to send CloudFormation its creation signal (SignalResource),
#: signed with the instance role's credentials (AWS Signature Version 4). Standard library
#: only, so the head node can report a failure that comes before apt installs anything:
#: otherwise deploy would wait out the 40-minute CreationPolicy for a signal that never came.
#: Arguments: region, stack, instance id, SUCCESS or FAILURE. The two environment variables
#: point it elsewhere than the metadata service and CloudFormation (tests only).
SIGNAL_PY = """\
import datetime, hashlib, hmac, json, os, sys, urllib.parse, urllib.request

def sign(body, region, host, creds, amz_date):
    headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8",
               "host": host, "x-amz-date": amz_date, "x-amz-security-token": creds["Token"]}
    names = ";".join(sorted(headers))
    canonical = "\\n".join(["POST", "/", "", *(k + ":" + headers[k] for k in sorted(headers)),
                           "", names, hashlib.sha256(body).hexdigest()])
    scope = amz_date[:8] + "/" + region + "/cloudformation/aws4_request"
    text = "\\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                      hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + creds["SecretAccessKey"]).encode()
    for part in (amz_date[:8], region, "cloudformation", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = ("AWS4-HMAC-SHA256 Credential=" + creds["AccessKeyId"] + "/"
                                + scope + ", SignedHeaders=" + names + ", Signature=" + signature)
    return headers

def main(region, stack, instance_id, status):
    imds = os.environ.get("SWEEPHERD_IMDS_URL", "http://169.254.169.254") + "/latest"
    def get(path, token):
        req = urllib.request.Request(imds + path, headers={"X-aws-ec2-metadata-token": token})
        return urllib.request.urlopen(req, timeout=10).read().decode()
    req = urllib.request.Request(imds + "/api/token", method="PUT",
                                 headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"})
    token = urllib.request.urlopen(req, timeout=10).read().decode()
    role = get("/meta-data/iam/security-credentials/", token).split()[0]
    creds = json.loads(get("/meta-data/iam/security-credentials/" + role, token))
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    url = os.environ.get("AWS_ENDPOINT_URL_CLOUDFORMATION",
                         "https://cloudformation." + region + suffix) + "/"
    body = urllib.parse.urlencode({
        "Action": "SignalResource", "Version": "2010-05-15", "StackName": stack,
        "LogicalResourceId": "HeadNode", "UniqueId": instance_id, "Status": status}).encode()
    amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = sign(body, region, urllib.parse.urlsplit(url).netloc, creds, amz_date)
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    urllib.request.urlopen(req, timeout=30).read()

if __name__ == "__main__":
    main(*sys.argv[1:5])
"""

_SYNC_USERS_SH = f"""\
#!/bin/sh
# Create the cluster's users (name:uid:gid lines kept by the head node) this node lacks.
[ -r {USERS_FILE} ] || exit 0
while IFS=: read -r name uid gid; do
  [ -n "$name" ] || continue
  getent group "$name" >/dev/null || groupadd -g "$gid" "$name"
  getent passwd "$name" >/dev/null || \\
    useradd -M -u "$uid" -g "$gid" -d "{HOMES_DIR}/$name" -s /bin/bash "$name"
done < {USERS_FILE}
"""


#: The instance metadata service. It hands the instance role's credentials to any process that
#: asks, so a user's job could read the munge key with the compute role (and forge root on every
#: node), or start instances with the head node's role. Only the accounts that need it may reach
#: it: root (boot, cloud-init, the SSM agent) and, on the head node, the Slurm user that runs
#: the power-saving programs. (Its IPv6 address is off unless the launch template enables it.)
IMDS_ADDR = "169.254.169.254"
IMDS_GUARD = "/usr/local/sbin/sweepherd-imds-guard"
_IMDS_CHAIN = "SWEEPHERD-IMDS"
_IMDS_UNIT = "sweepherd-imds-guard.service"


def imds_guard_script(users: Sequence[str]) -> str:
    """A shell script letting only ``users`` reach the metadata service (iptables' owner match
    on locally made packets); run again, it rebuilds its rules rather than adding more."""
    chain, dest = _IMDS_CHAIN, f"-d {IMDS_ADDR}/32"
    return "\n".join(
        [
            "#!/bin/sh",
            f"# Only {', '.join(users)} may reach the instance metadata service (sweepherd).",
            "set -e",
            f"iptables -w -N {chain} 2>/dev/null || iptables -w -F {chain}",
            f"iptables -w -C OUTPUT {dest} -j {chain} 2>/dev/null || "
            f"iptables -w -I OUTPUT 1 {dest} -j {chain}",
            *(f"iptables -w -A {chain} -m owner --uid-owner {u} -j RETURN" for u in users),
            f"iptables -w -A {chain} -p tcp -j REJECT --reject-with tcp-reset",
            f"iptables -w -A {chain} -j REJECT",
            "",
        ]
    )


def _imds_guard_lines(users: Sequence[str]) -> list[str]:
    """Boot-script lines installing the guard as a unit that runs at every boot, then now."""
    unit = (
        "[Unit]\nDescription=Keep the instance role's credentials from users' jobs (sweepherd)\n"
        "Before=slurmd.service slurmctld.service\n\n"
        f"[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart={IMDS_GUARD}\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )
    return [
        *_heredoc(IMDS_GUARD, imds_guard_script(users)),
        f"chmod 0755 {IMDS_GUARD}\n",
        *_heredoc(f"/etc/systemd/system/{_IMDS_UNIT}", unit),
        "systemctl daemon-reload\n",
        f"systemctl enable --now {_IMDS_UNIT}\n",
    ]


def head_node_script(config: ClusterConfig) -> list[str | dict[str, Any]]:
    """The head node's UserData, as ``Fn::Join`` parts."""
    slurm_conf = render_slurm_conf(config)
    resume = (
        f"#!/bin/sh\nexec {_SWEEPHERD} aws resume --config {HEAD_CONFIG_PATH} "
        f'--log-file {POWER_LOG} "$@"\n'
    )
    suspend = (
        f"#!/bin/sh\nexec {_SWEEPHERD} aws suspend --config {HEAD_CONFIG_PATH} "
        f'--log-file {POWER_LOG} "$@"\n'
    )
    cron = (
        f"* * * * * root {_SWEEPHERD} aws cleanup --config {HEAD_CONFIG_PATH} "
        f"--log-file {POWER_LOG} >/dev/null 2>&1\n"
    )
    head = config.head_hostname
    parts: list[str | dict[str, Any]] = [
        "#!/bin/bash\n",
        f"# sweepherd head node of cluster {config.name}: Slurm controller, NFS server.\n",
        "# Runs once at first boot; its log is /var/log/sweepherd-setup.log.\n",
        "set -euo pipefail\n",
        "exec >>/var/log/sweepherd-setup.log 2>&1\n",
        "export DEBIAN_FRONTEND=noninteractive\n",
        "REGION=",
        {"Ref": "AWS::Region"},
        "\nSTACK=",
        {"Ref": "AWS::StackName"},
        "\nVOLUME_ID=",
        {"Ref": "SharedVolume"},
        "\nVPC_CIDR=",
        {"Ref": "VpcCidr"},
        "\n",
        f"hostnamectl set-hostname {head}\n",
        "printf 'preserve_hostname: true\\n' > /etc/cloud/cloud.cfg.d/99-sweepherd.cfg\n",
        f"TOKEN=$(curl -sf -X PUT http://{IMDS_ADDR}/latest/api/token "
        "-H 'X-aws-ec2-metadata-token-ttl-seconds: 300')\n",
        'HEAD_ADDR=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" '
        f"http://{IMDS_ADDR}/latest/meta-data/local-ipv4)\n",
        'INSTANCE_ID=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" '
        f"http://{IMDS_ADDR}/latest/meta-data/instance-id)\n",
        f'echo "$HEAD_ADDR {head}" >> /etc/hosts\n',
        "# Tell CloudFormation whether the setup worked: `deploy` waits for this signal.\n",
        "signal() { python3 -c "
        + shlex.quote(SIGNAL_PY)
        + ' "$REGION" "$STACK" "$INSTANCE_ID" "$1" || true; }\n',
        "trap '[ $? -eq 0 ] || signal FAILURE' EXIT\n",
        f"{_APT} update -q\n",
        f"{_APT} install -y -q slurmctld slurm-client munge nfs-kernel-server python3-venv "
        "python3-boto3 iptables\n",
        "\n# The instance role's credentials: root and Slurm's power saving only, never users.\n",
        *_imds_guard_lines(("root", "slurm")),
        "\n# The shared filesystem: the EBS volume, formatted on first use, exported to the VPC\n",
        "# only, with root squashed (root on a compute node is nobody here).\n",
        'DEV=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_"${VOLUME_ID/-/}"\n',
        "for _ in $(seq 1 120); do\n",
        '  [ -e "$DEV" ] && break\n',
        "  [ -e /dev/xvdf ] && DEV=/dev/xvdf && break\n",
        "  sleep 5\n",
        "done\n",
        'blkid "$DEV" >/dev/null || mkfs.ext4 -q -L sweepherd "$DEV"\n',
        f"mkdir -p {SHARED_MOUNT}\n",
        f'echo "UUID=$(blkid -s UUID -o value "$DEV") {SHARED_MOUNT} ext4 defaults,nofail 0 2"'
        " >> /etc/fstab\n",
        f"mount {SHARED_MOUNT}\n",
        f"install -d -m 0755 {HOMES_DIR} {SHARED_MOUNT}/sweepherd\n",
        f"touch {USERS_FILE} && chmod 0644 {USERS_FILE}\n",
        "mkdir -p /etc/exports.d\n",
        f'echo "{SHARED_MOUNT} ${{VPC_CIDR}}(rw,sync,no_subtree_check,root_squash)" '
        "> /etc/exports.d/sweepherd.exports\n",
        "systemctl enable --now nfs-kernel-server\n",
        "exportfs -ra\n",
        "\n# munge: a fresh key made here, at boot. Compute nodes read it from an SSM\n",
        "# SecureString parameter; it is never in the template or in any log.\n",
        "mungekey --create --force --keyfile /etc/munge/munge.key\n",
        "chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key\n",
        "systemctl restart munge\n",
        "\n# sweepherd: the resume/suspend programs Slurm runs, and their config.\n",
        "python3 -m venv /opt/sweepherd\n",
        f"/opt/sweepherd/bin/pip install -q {shlex.quote(config.sweepherd_package)}\n",
        f"ln -sf {_SWEEPHERD} /usr/local/bin/sweepherd\n",
        "install -d -m 0755 /etc/sweepherd\n",
        *_heredoc(HEAD_CONFIG_PATH, dump_cluster_config(config)),
        f"{_SWEEPHERD} aws publish-munge-key --config {HEAD_CONFIG_PATH}\n",
        "install -d -o slurm -g slurm -m 0750 /var/log/sweepherd\n",
        f"install -o slurm -g slurm -m 0640 /dev/null {POWER_LOG}\n",
        *_heredoc("/etc/sweepherd/resume", resume),
        *_heredoc("/etc/sweepherd/suspend", suspend),
        "chmod 0755 /etc/sweepherd/resume /etc/sweepherd/suspend\n",
        *_heredoc(f"{USERS_FILE}.sync", _SYNC_USERS_SH),
        "\n# Slurm: the controller, with power saving over the CLOUD nodes.\n",
        *_heredoc("/etc/slurm/slurm.conf", slurm_conf),
        f'sed -i "s/{HEAD_ADDR_PLACEHOLDER}/$HEAD_ADDR/" /etc/slurm/slurm.conf\n',
        *_heredoc("/etc/slurm/gres.conf", render_gres_conf(config)),
        *_heredoc("/etc/slurm/cgroup.conf", render_cgroup_conf()),
        "install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm\n",
        "systemctl enable slurmctld\n",
        "systemctl restart slurmctld\n",
        "\n# Every minute: power down nodes stuck DOWN, terminate instances Slurm lost.\n",
        *_heredoc("/etc/cron.d/sweepherd", cron),
        "signal SUCCESS\n",
        "echo sweepherd head node ready\n",
    ]
    return parts


#: EC2 takes at most this many bytes of UserData (before its base64 encoding).
MAX_USER_DATA_BYTES = 16_384


def check_user_data_size(config: ClusterConfig) -> None:
    """Raise :class:`CloudError` when the head node's boot script is over EC2's UserData limit.

    The script holds the cluster config and slurm.conf, which grow with every partition. The
    two stack values not known before the stack exists (the volume id and the VPC's CIDR) are
    counted at their longest.
    """
    values = {"AWS::Region": config.region, "AWS::StackName": config.stack_name,
              "SharedVolume": "vol-" + "0" * 17, "VpcCidr": "255.255.255.255/32"}  # fmt: skip
    parts = head_node_script(config)
    text = "".join(p if isinstance(p, str) else values[str(p["Ref"])] for p in parts)
    size = len(text.encode())
    if size > MAX_USER_DATA_BYTES:
        raise CloudError(
            f"the head node's boot script would be {size} bytes, over EC2's UserData limit of "
            f"{MAX_USER_DATA_BYTES} (it holds the cluster config and slurm.conf, which grow "
            f"with each of the {len(config.partitions)} partitions); nothing was created.",
            hint="Use fewer partitions.",
        )


def compute_node_script(
    config: ClusterConfig, partition: PartitionConfig, node: str, head_addr: str
) -> str:
    """The UserData of the instance started for Slurm node ``node``."""
    q_node = shlex.quote(node)
    q_head = shlex.quote(head_addr)
    fetch = shlex.quote(MUNGE_FETCH_PY)
    lines = [
        "#!/bin/bash",
        f"# sweepherd compute node {node} ({partition.instance_type}) of cluster {config.name}.",
        "# Runs once at first boot; its log is /var/log/sweepherd-node.log.",
        "set -euo pipefail",
        "exec >>/var/log/sweepherd-node.log 2>&1",
        "export DEBIAN_FRONTEND=noninteractive",
        f"hostnamectl set-hostname {q_node}",
        f'echo "{head_addr} {config.head_hostname}" >> /etc/hosts',
        f"{_APT} update -q",
        f"{_APT} install -y -q slurmd munge nfs-common python3-boto3 iptables",
        "# The instance role's credentials (it reads the munge key): root only, never jobs.",
        *(line.rstrip("\n") for line in _imds_guard_lines(("root",))),
        f"mkdir -p {SHARED_MOUNT}",
        f'echo "{head_addr}:{SHARED_MOUNT} {SHARED_MOUNT} nfs4 defaults,_netdev,nofail 0 0"'
        " >> /etc/fstab",
        f"for _ in $(seq 1 60); do mountpoint -q {SHARED_MOUNT} && break; "
        f"mount {SHARED_MOUNT} || sleep 5; done",
        f"install -m 0755 {USERS_FILE}.sync /usr/local/sbin/sweepherd-sync-users",
        "/usr/local/sbin/sweepherd-sync-users",
        "echo '* * * * * root /usr/local/sbin/sweepherd-sync-users' > /etc/cron.d/sweepherd",
        "# munge: the head node's key, from the SSM SecureString (never printed).",
        f"python3 -c {fetch} {shlex.quote(config.region)} "
        f"{shlex.quote(config.munge_key_parameter)} /etc/munge/munge.key",
        "chown munge:munge /etc/munge/munge.key",
        "systemctl restart munge",
        "# slurmd: configless, its config comes from slurmctld on the head node.",
        "mkdir -p /etc/systemd/system/slurmd.service.d",
        "printf '[Unit]\\nConditionPathExists=\\n' "
        "> /etc/systemd/system/slurmd.service.d/sweepherd.conf",
        f"echo 'SLURMD_OPTIONS=\"-N {node} --conf-server {head_addr}\"' > /etc/default/slurmd",
        "install -d /var/spool/slurmd /var/log/slurm",
        "systemctl daemon-reload",
        "systemctl enable slurmd",
        "systemctl restart slurmd",
        f"echo sweepherd node {q_node} ready, controller {q_head}",
    ]
    return "\n".join(lines) + "\n"


def _heredoc(path: str, text: str) -> list[str]:
    """Shell lines writing ``text`` to ``path`` verbatim (a quoted heredoc: no expansion)."""
    marker = "SWEEPHERD_EOF"
    if marker in text:  # pragma: no cover - our own texts never hold it
        raise ValueError(f"{marker} inside a heredoc body")
    body = text if text.endswith("\n") else text + "\n"
    return [f"cat > {path} <<'{marker}'\n", body, f"{marker}\n"]
