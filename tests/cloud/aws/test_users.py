"""add-user and copy-wandb-key, on a scratch filesystem root (``useradd --prefix``: the real
useradd, writing the scratch root's /etc/passwd, never this host's)."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from sweepherd.cli.main import main
from sweepherd.cloud.aws import add_user, copy_wandb_key
from sweepherd.errors import CloudError, ExitStatus

KEY = "0123456789abcdef0123456789abcdef01234567"  # shaped like a W&B key; not a real one
PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly alice@laptop"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A filesystem root with a minimal /etc and the shared filesystem mounted at /shared."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "shared").mkdir()
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nubuntu:x:1000:1000::/home/ubuntu:/bin/bash\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nubuntu:x:1000:\nspecial:x:2000:\n")
    for name in ("shadow", "gshadow"):
        (root / "etc" / name).write_text("")
        (root / "etc" / name).chmod(0o600)
    return root


def test_add_user_makes_one_account_for_every_node(root: Path) -> None:
    user = add_user("alice", ssh_public_key=PUB + "\n", root=root)
    assert (user.uid, user.home) == (2001, Path("/shared/home/alice"))  # gid 2000 was taken
    passwd = (root / "etc" / "passwd").read_text()
    assert f"alice:x:{user.uid}:{user.gid}::/shared/home/alice:/bin/bash" in passwd
    assert (root / "shared/sweepherd/users").read_text() == f"alice:{user.uid}:{user.gid}\n"
    home = root / "shared/home/alice"
    assert stat.S_IMODE(home.stat().st_mode) == 0o750 and home.stat().st_uid == user.uid
    keys = home / ".ssh" / "authorized_keys"
    assert keys.read_text() == PUB + "\n"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600 and keys.stat().st_uid == user.uid
    assert stat.S_IMODE((home / ".ssh").stat().st_mode) == 0o700

    bob = add_user("bob", root=root)
    assert bob.uid == user.uid + 1
    assert (root / "shared/sweepherd/users").read_text().splitlines()[1] == (
        f"bob:{bob.uid}:{bob.gid}"
    )


@pytest.mark.parametrize(
    ("name", "key", "message"),
    [
        ("Alice", None, "not a valid user name"),
        ("ubuntu", None, "already exists"),
        ("carol", "-----BEGIN OPENSSH PRIVATE KEY-----", "not one line like 'ssh-ed25519"),
    ],
)
def test_add_user_refuses_bad_input(root: Path, name: str, key: str | None, message: str) -> None:
    before = (root / "etc" / "passwd").read_text()
    with pytest.raises(CloudError, match=message):
        add_user(name, ssh_public_key=key, root=root)
    assert (root / "etc" / "passwd").read_text() == before


def test_the_wandb_key_is_stored_for_the_user_only(root: Path) -> None:
    user = add_user("alice", root=root)
    netrc = root / "shared/home/alice/.netrc"
    netrc.write_text("machine github.com\n  login a\n  password gh\nmachine api.wandb.ai\n"
                     "  login user\n  password OLDKEYOLDKEYOLDKEYOLDKEYOLDKEY00\n")  # fmt: skip
    path = copy_wandb_key("alice", KEY + "\n", root=root)
    assert path == netrc
    mode = netrc.stat()
    assert stat.S_IMODE(mode.st_mode) == 0o600 and (mode.st_uid, mode.st_gid) == (
        user.uid,
        user.gid,
    )
    text = netrc.read_text()
    assert text.count("api.wandb.ai") == 1 and "OLDKEY" not in text
    assert f"machine api.wandb.ai\n  login user\n  password {KEY}\n" in text
    assert "machine github.com" in text  # other machines kept
    assert not list(netrc.parent.glob(".*sweepherd-tmp"))


@pytest.mark.parametrize("key", ["short", "has space" * 8, "", "x" * 300])
def test_a_bad_key_writes_nothing(root: Path, key: str) -> None:
    add_user("alice", root=root)
    with pytest.raises(CloudError, match="does not look like a W&B API key") as info:
        copy_wandb_key("alice", key, root=root)
    assert key not in str(info.value) or not key
    assert not (root / "shared/home/alice/.netrc").exists()


def test_copy_wandb_key_needs_the_user(root: Path) -> None:
    with pytest.raises(CloudError, match="add-user"):
        copy_wandb_key("nobody", KEY, root=root)


def test_the_cli_never_shows_the_key(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pub = root.parent / "alice.pub"
    pub.write_text(PUB)
    assert main(["aws", "add-user", "alice", "--ssh-key", str(pub), "--root", str(root)]) == 0
    assert "next: sudo sweepherd aws copy-wandb-key alice" in capsys.readouterr().out

    # from standard input (a pipe), and from WANDB_API_KEY
    monkeypatch.setattr("sys.stdin", io.StringIO(KEY + "\n"))
    assert main(["aws", "copy-wandb-key", "alice", "--root", str(root)]) == 0
    out, err = capsys.readouterr()
    assert KEY not in out + err and "mode 0600" in out
    monkeypatch.setenv("WANDB_API_KEY", KEY[::-1])
    assert main(["aws", "copy-wandb-key", "alice", "--root", str(root)]) == 0
    out, err = capsys.readouterr()
    assert KEY[::-1] not in out + err
    assert KEY[::-1] in (root / "shared/home/alice/.netrc").read_text()

    monkeypatch.setenv("WANDB_API_KEY", "bad key")
    status = main(["aws", "copy-wandb-key", "alice", "--root", str(root)])
    assert status == ExitStatus.CLOUD
    assert "bad key" not in capsys.readouterr().err
    assert os.environ["WANDB_API_KEY"] == "bad key"
