"""The boot scripts of the head node and the compute nodes, and the munge key's way between them.

moto runs no UserData, so the scripts are checked here: bash parses them, the files they write
are exactly sweepherd's, and the compute node's munge-key fetch really reads what the head node's
``publish-munge-key`` stored (through moto).
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from sweepherd.cloud.aws import (
    MUNGE_FETCH_PY,
    AwsSession,
    ClusterConfig,
    compute_node_script,
    head_node_script,
    parse_cluster_config,
    publish_munge_key,
    render_slurm_conf,
)
from sweepherd.cloud.aws._userdata import (
    _SYNC_USERS_SH,
    IMDS_GUARD,
    SIGNAL_PY,
    imds_guard_script,
)
from sweepherd.errors import CloudError

from .conftest import raw_config


@pytest.fixture
def config() -> ClusterConfig:
    return parse_cluster_config(raw_config())


def joined(parts: list[Any]) -> str:
    fake = {"SharedVolume": "vol-0abc", "VpcCidr": "10.0.0.0/16", "AWS::Region": "us-east-1",
            "AWS::StackName": "sweepherd-demo"}  # fmt: skip
    return "".join(p if isinstance(p, str) else fake[p["Ref"]] for p in parts)


def heredocs(script: str) -> dict[str, str]:
    return dict(re.findall(r"cat > (\S+) <<'SWEEPHERD_EOF'\n(.*?)SWEEPHERD_EOF\n", script, re.S))


def bash_parses(script: str, tmp_path: Path) -> None:
    path = tmp_path / "script.sh"
    path.write_text(script)
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_head_node_script_parses_and_writes_sweepherds_files(
    config: ClusterConfig, tmp_path: Path
) -> None:
    script = joined(head_node_script(config))
    bash_parses(script, tmp_path)
    files = heredocs(script)
    assert yaml.safe_load(files["/etc/sweepherd/cluster.yaml"]) is not None
    assert parse_cluster_config(yaml.safe_load(files["/etc/sweepherd/cluster.yaml"])) == config
    assert files["/etc/slurm/slurm.conf"] == render_slurm_conf(config)
    assert "aws resume --config /etc/sweepherd/cluster.yaml" in files["/etc/sweepherd/resume"]
    assert "aws suspend --config /etc/sweepherd/cluster.yaml" in files["/etc/sweepherd/suspend"]
    assert "aws cleanup" in files["/etc/cron.d/sweepherd"]
    assert "pip install -q 'sweepherd[aws]==0.1.0'" in script
    assert "aws publish-munge-key" in script and "signal SUCCESS" in script


def test_the_compute_node_script_parses_and_joins_the_controller(
    config: ClusterConfig, tmp_path: Path
) -> None:
    script = compute_node_script(config, config.partitions[1], "gpu-1", "10.0.0.5")
    bash_parses(script, tmp_path)
    assert 'SLURMD_OPTIONS="-N gpu-1 --conf-server 10.0.0.5"' in script
    assert "10.0.0.5:/shared /shared nfs4" in script
    assert "install -y -q slurmd munge nfs-common" in script
    assert len(script) < 16 * 1024


def test_the_user_sync_script_creates_missing_users_only(tmp_path: Path) -> None:
    """Run on fake groupadd/useradd/getent (the real ones would change this host)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for tool in ("groupadd", "useradd"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n')
    (bin_dir / "getent").write_text('#!/bin/sh\n[ "$2" = alice ]\n')  # alice exists already
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    users = tmp_path / "users"
    users.write_text("alice:2000:2000\nbob:2001:2001\n\n")
    script = tmp_path / "sync.sh"
    script.write_text(_SYNC_USERS_SH.replace("/shared/sweepherd/users", str(users)))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(["sh", str(script)], env=env, check=True)
    assert calls.read_text().splitlines() == [
        "groupadd -g 2001 bob",
        "useradd -M -u 2001 -g 2001 -d /shared/home/bob -s /bin/bash bob",
    ]


@pytest.mark.aws
def test_the_compute_node_reads_the_key_the_head_node_published(
    config: ClusterConfig, session: AwsSession, moto: str, tmp_path: Path
) -> None:
    key = tmp_path / "munge.key"
    key.write_bytes(os.urandom(1024))
    name = publish_munge_key(config, session, key_path=key)
    assert name == "/sweepherd/demo/munge-key"
    ssm = session.client("ssm")
    stored = ssm.get_parameter(Name=name)["Parameter"]
    assert stored["Type"] == "SecureString"
    first = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
    assert {"Key": "sweepherd:cluster", "Value": "demo"} in tags

    # The compute node's own snippet, with the plain boto3 it has there. AWS_ENDPOINT_URL is
    # boto3's own override: it stands in for the node's instance role reaching SSM.
    out = tmp_path / "node-munge.key"
    env = {**os.environ, "AWS_ENDPOINT_URL": moto}
    done = subprocess.run(
        [sys.executable, "-c", MUNGE_FETCH_PY, "us-east-1", name, str(out)],
        env=env,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (b"", b"")  # the key is never printed
    assert out.read_bytes() == key.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o400

    # publishing again (a head node reboot) overwrites it
    key.write_bytes(os.urandom(1024))
    publish_munge_key(config, session, key_path=key)
    second = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    assert second != first and len(second) == len(first)


@pytest.mark.aws
def test_publishing_a_missing_or_short_key_fails_clearly(
    config: ClusterConfig, session: AwsSession, tmp_path: Path
) -> None:
    with pytest.raises(CloudError, match="cannot read the munge key"):
        publish_munge_key(config, session, key_path=tmp_path / "none")
    short = tmp_path / "short"
    short.write_bytes(b"abc")
    with pytest.raises(CloudError, match="too short"):
        publish_munge_key(config, session, key_path=short)


def test_the_boot_scripts_guard_the_metadata_service(config: ClusterConfig) -> None:
    head = heredocs(joined(head_node_script(config)))
    node = heredocs(compute_node_script(config, config.partitions[0], "cpu-1", "10.0.0.5"))
    assert head[IMDS_GUARD] == imds_guard_script(("root", "slurm"))
    assert node[IMDS_GUARD] == imds_guard_script(("root",))
    for files in (head, node):
        unit = files["/etc/systemd/system/sweepherd-imds-guard.service"]
        assert f"ExecStart={IMDS_GUARD}" in unit and "Before=slurmd.service" in unit
    script = compute_node_script(config, config.partitions[0], "cpu-1", "10.0.0.5")
    # in place before slurmd can start a job
    assert script.index("enable --now sweepherd-imds-guard") < script.index("restart slurmd")


_IMDS_PROBE = """\
set -eu
ip link set lo up
ip addr add 169.254.169.254/32 dev lo
"$PYTHON" -m http.server --bind 169.254.169.254 80 --directory "$WWW" >/dev/null 2>&1 &
for _ in $(seq 100); do curl -sf http://169.254.169.254/token >/dev/null && break; sleep 0.05; done
sh "$GUARD"
sh "$GUARD"  # at every boot: the rules are rebuilt, not added again
# curl's exit status as user $1: 0 answered, 7 refused. From 127.0.0.1: the metadata address is
# this namespace's own here, and the refusal's reset must not be addressed to it.
reach() {
    rc=0
    setpriv --reuid="$1" --regid="$(id -g "$1")" --clear-groups \\
        curl -s -m 3 -o /dev/null --interface 127.0.0.1 http://169.254.169.254/token || rc=$?
    echo "$1 $rc"
}
reach root; reach daemon; reach nobody
iptables -S | grep -c 169.254.169.254 | sed 's/^/jumps /'
kill $!
"""


def test_only_the_allowed_accounts_reach_the_metadata_service(tmp_path: Path) -> None:
    """The guard's real iptables rules, in a network namespace of the test's own, where a tiny
    web server stands at the metadata service's address: root and the allowed account get an
    answer, any other user's connection is refused."""
    missing = [t for t in ("iptables", "unshare", "setpriv", "curl", "ip") if not shutil.which(t)]
    if os.geteuid() != 0 or missing:
        reason = f"needs root and {', '.join(missing) or 'nothing else'}"
        if os.environ.get("CI"):
            pytest.fail(f"the metadata guard test cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    www = tmp_path / "www"
    www.mkdir()
    (www / "token").write_text("secret")
    guard = tmp_path / "guard.sh"
    guard.write_text(imds_guard_script(("root", "daemon")))
    tmp_path.chmod(0o755)
    env = {**os.environ, "PYTHON": sys.executable, "WWW": str(www), "GUARD": str(guard)}
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", _IMDS_PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["root 0", "daemon 0", "nobody 7", "jumps 1"]


def test_every_apt_get_waits_for_the_lock_ubuntus_first_boot_jobs_hold(
    config: ClusterConfig,
) -> None:
    head = joined(head_node_script(config))
    node = compute_node_script(config, config.partitions[0], "cpu-1", "10.0.0.5")
    for script in (head, node):
        calls = re.findall(r"^apt-get .*$", script, re.M)
        assert len(calls) == 2
        assert all("-o DPkg::Lock::Timeout=900" in c for c in calls), calls


def test_the_head_nodes_signal_is_signed_as_botocore_signs_it() -> None:
    """The boot script signs SignalResource itself (standard library only, so it works before
    apt has installed anything); botocore's SigV4 signer must give the same signature."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    snippet: dict[str, Any] = {}
    exec(compile(SIGNAL_PY, "signal.py", "exec"), snippet)  # as a module: main() is not run
    creds = {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
             "Token": "IQoJb3JpZ2luX2VjEXAMPLE=="}  # fmt: skip
    body = b"Action=SignalResource&Version=2010-05-15&StackName=sweepherd-demo&Status=FAILURE"
    host = "cloudformation.eu-west-3.amazonaws.com"
    ours = snippet["sign"](body, "eu-west-3", host, creds, "20261206T031500Z")

    request = AWSRequest(method="POST", url=f"https://{host}/", data=body,
                         headers={"Content-Type": ours["content-type"]})  # fmt: skip
    frozen = Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["Token"])
    when = datetime.datetime(2026, 12, 6, 3, 15, 0, tzinfo=datetime.timezone.utc)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(frozen, "cloudformation", "eu-west-3").add_auth(request)
    theirs = request.headers["Authorization"]
    assert ours["authorization"].split("Signature=")[1] == theirs.split("Signature=")[1]
    assert ours["authorization"] == theirs


def test_the_head_node_signals_failure_even_when_apt_never_ran(tmp_path: Path) -> None:
    """Run the head node's signal command as its boot script does, against a stand-in for the
    two AWS endpoints it calls (moto has neither the instance metadata credentials nor
    SignalResource): it takes the role's credentials from the metadata service with an IMDSv2
    token and posts a signed SignalResource."""
    seen: list[tuple[str, str, dict[str, str], bytes]] = []
    creds = {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "secret", "Token": "tok"}
    answers = {
        "/latest/api/token": b"imds-token",
        "/latest/meta-data/iam/security-credentials/": b"demo-head-role",
        "/latest/meta-data/iam/security-credentials/demo-head-role": json.dumps(creds).encode(),
        "/": b"<SignalResourceResponse/>",
    }

    class StandIn(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))
            self.send_response(200 if self.path in answers else 404)
            self.end_headers()
            self.wfile.write(answers.get(self.path, b""))

        do_GET = do_PUT = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {**os.environ, "SWEEPHERD_IMDS_URL": url, "AWS_ENDPOINT_URL_CLOUDFORMATION": url}
    try:
        done = subprocess.run(
            ["python3", "-c", SIGNAL_PY, "us-east-1", "sweepherd-demo", "i-0abc", "FAILURE"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    token_put, *_, (method, path, headers, body) = seen
    assert token_put[:2] == ("PUT", "/latest/api/token")
    assert (method, path) == ("POST", "/")
    assert headers["X-Amz-Security-Token"] == "tok"
    assert (
        headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/")
        and "/us-east-1/cloudformation/aws4_request" in headers["Authorization"]
    )
    form = dict(urllib.parse.parse_qsl(body.decode()))
    assert form == {"Action": "SignalResource", "Version": "2010-05-15",
                    "StackName": "sweepherd-demo", "LogicalResourceId": "HeadNode",
                    "UniqueId": "i-0abc", "Status": "FAILURE"}  # fmt: skip


def test_the_failure_signal_is_armed_before_anything_is_installed(config: ClusterConfig) -> None:
    script = joined(head_node_script(config))
    assert script.index("trap '[ $? -eq 0 ] || signal FAILURE' EXIT") < script.index("update -q")
