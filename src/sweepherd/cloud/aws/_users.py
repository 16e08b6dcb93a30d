"""Cluster users, made on the head node: ``add-user`` and ``copy-wandb-key``.

A user gets the same uid and gid on every node: the head node creates the account with its home
on the shared filesystem and appends ``name:uid:gid`` to the users file there, from which each
compute node creates the same account (its boot script and a cron job run the sync script).

The W&B API key goes into the user's ``~/.netrc`` on the shared filesystem, where ``wandb``
looks for it: written through a new file created with mode 0600 and owned by the user, then
renamed into place, so it is never readable by anyone else, not even for an instant. The key is
never printed, logged or passed on a command line.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sweepherd.errors import CloudError

FIRST_UID = 2000
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{32,256}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]{1,253}(:\d{1,5})?$")


@dataclass(frozen=True)
class ClusterUser:
    """An account of the cluster."""

    name: str
    uid: int
    gid: int
    home: Path  # as seen on the nodes (/shared/home/NAME)


def add_user(
    name: str,
    *,
    ssh_public_key: str | None = None,
    root: Path = Path("/"),
    shared: Path = Path("/shared"),
) -> ClusterUser:
    """Create ``name`` on the head node and register it for every compute node.

    ``root`` is the filesystem root holding ``/etc/passwd`` (``/`` on the head node; the tests
    use a scratch root); ``shared`` is the shared filesystem's mount point under it.
    """
    if not _USER_RE.match(name):
        raise CloudError(
            f"{name!r} is not a valid user name",
            hint="Use up to 32 lowercase letters, digits, '_' or '-', starting with a letter.",
        )
    if ssh_public_key is not None:
        ssh_public_key = ssh_public_key.strip()
        if not re.match(r"^(ssh-|ecdsa-|sk-)\S+ \S+", ssh_public_key) or "\n" in ssh_public_key:
            raise CloudError(
                "the SSH public key is not one line like 'ssh-ed25519 AAAA... comment'",
                hint="Pass the .pub file (e.g. ~/.ssh/id_ed25519.pub), not the private key.",
            )
    passwd = _read_passwd(root)
    users_file = root / shared.relative_to("/") / "sweepherd" / "users"
    registered = _read_users(users_file)
    if name in passwd or name in registered:
        raise CloudError(f"the user {name} already exists", hint="Pick another name.")
    used = {uid for uid, _ in passwd.values()} | {u.uid for u in registered.values()}
    used |= _read_gids(root)
    uid = FIRST_UID
    while uid in used:
        uid += 1
    home = shared / "home" / name
    argv = ["useradd", "-u", str(uid), "-U", "-m", "-d", str(home), "-s", "/bin/bash", name]
    if root != Path("/"):
        argv[1:1] = ["--prefix", str(root)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CloudError(
            f"useradd {name} failed: {done.stderr.strip()}",
            hint="Run add-user as root on the head node (sudo).",
        )
    gid = _read_passwd(root)[name][1]
    host_home = root / home.relative_to("/")
    host_home.chmod(0o750)
    if ssh_public_key:
        ssh_dir = host_home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        _write_private(ssh_dir / "authorized_keys", ssh_public_key + "\n", uid, gid)
        os.chown(ssh_dir, uid, gid)
    users_file.parent.mkdir(parents=True, exist_ok=True)
    with users_file.open("a", encoding="utf-8") as f:
        f.write(f"{name}:{uid}:{gid}\n")
    users_file.chmod(0o644)
    return ClusterUser(name, uid, gid, home)


def copy_wandb_key(
    user: str,
    api_key: str,
    *,
    host: str = "api.wandb.ai",
    root: Path = Path("/"),
    shared: Path = Path("/shared"),
) -> Path:
    """Put ``api_key`` into ``user``'s ``~/.netrc`` on the shared filesystem (mode 0600).

    Other machines of an existing ``.netrc`` are kept; an older entry for ``host`` is replaced.
    Returns the file's path. The key is checked for shape only, and never echoed.
    """
    key = api_key.strip()
    if not _KEY_RE.match(key):
        raise CloudError(
            "that does not look like a W&B API key (expected 32-256 letters, digits, '_' "
            "or '-'); nothing was written.",
            hint="Copy it from https://wandb.ai/authorize and paste it when asked.",
        )
    if not _HOST_RE.match(host):
        raise CloudError(f"{host!r} is not a host name")
    passwd = _read_passwd(root)
    if user not in passwd:
        raise CloudError(
            f"there is no user {user} on this node",
            hint="Create it first: sweepherd aws add-user NAME.",
        )
    uid, gid = passwd[user]
    home = root / shared.relative_to("/") / "home" / user
    if not home.is_dir():
        raise CloudError(f"{user}'s home {home} does not exist on the shared filesystem")
    netrc = home / ".netrc"
    kept: list[str] = []
    if netrc.exists():
        kept = _netrc_without(netrc.read_text(encoding="utf-8"), host)
    entry = f"machine {host}\n  login user\n  password {key}\n"
    _write_private(netrc, "".join(kept) + entry, uid, gid)
    return netrc


def _write_private(path: Path, text: str, uid: int, gid: int) -> None:
    """Write ``text`` to ``path`` as a 0600 file owned by uid:gid from its first byte."""
    tmp = path.with_name(f".{path.name}.sweepherd-tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask cannot widen it, but be explicit
        os.fchown(fd, uid, gid)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def _netrc_without(text: str, host: str) -> list[str]:
    """The lines of a ``.netrc`` without the entry for ``host`` (entries start at 'machine')."""
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        words = line.split()
        if words[:1] in (["machine"], ["default"]):
            skipping = words[:2] == ["machine", host]
        if not skipping:
            kept.append(line if line.endswith("\n") else line + "\n")
    return kept


def _read_passwd(root: Path) -> dict[str, tuple[int, int]]:
    path = root / "etc" / "passwd"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CloudError(f"cannot read {path}: {exc.strerror}") from None
    out = {}
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit() and fields[3].isdigit():
            out[fields[0]] = (int(fields[2]), int(fields[3]))
    return out


def _read_gids(root: Path) -> set[int]:
    path = root / "etc" / "group"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return set()
    return {
        int(f[2]) for f in (line.split(":") for line in lines) if len(f) >= 3 and f[2].isdigit()
    }


def _read_users(path: Path) -> dict[str, ClusterUser]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    out = {}
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            name = fields[0]
            out[name] = ClusterUser(
                name, int(fields[1]), int(fields[2]), Path("/shared/home", name)
            )
    return out
