"""Creating, opening and listing sweep directories, and their clear errors."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sweepherd.config import SweepConfig, parse_config
from sweepherd.errors import StoreError
from sweepherd.store import SweepStore, create_sweep, list_sweeps, new_sweep_id, open_sweep


def test_new_sweep_ids_look_like_wandbs() -> None:
    ids = {new_sweep_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[a-z0-9]{8}", i) for i in ids)


def test_create_sweep_lays_out_the_directory(tmp_path: Path, config: SweepConfig) -> None:
    store = create_sweep(tmp_path / "sweeps", config, backend="slurm", extra_meta={"workdir": "/w"})
    assert store.path == tmp_path / "sweeps" / store.sweep_id
    assert re.fullmatch(r"[a-z0-9]{8}", store.sweep_id)
    names = sorted(p.name for p in store.path.iterdir())
    assert names == [
        "agents",
        "journal.jsonl",
        "meta.json",
        "requests",
        "runs",
        "slurm",
        "sweep.yaml",
    ]
    meta = json.loads((store.path / "meta.json").read_bytes())
    assert meta["id"] == store.sweep_id and meta["backend"] == "slurm"
    assert meta["workdir"] == "/w" and meta["version"] == 1
    assert isinstance(meta["seed"], int) and isinstance(meta["created_at"], float)
    assert yaml.safe_load((store.path / "sweep.yaml").read_text()) == config.raw
    first = json.loads(store.journal_path.read_text().splitlines()[0])
    assert first["e"] == "created" and first["sweep"] == store.sweep_id
    assert store.snapshot().created_at == meta["created_at"]


def test_seeds_differ_between_sweeps(tmp_path: Path, config: SweepConfig) -> None:
    seeds = {create_sweep(tmp_path, config).seed for _ in range(5)}
    assert len(seeds) == 5


def test_config_round_trips_through_sweep_yaml(tmp_path: Path) -> None:
    raw = {
        "name": "demo",
        "method": "random",
        "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {
            "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
            "optimizer": {"parameters": {"name": {"values": ["adam", "sgd"]}}},
        },
        "program": "train.py",
    }
    config = parse_config(raw)
    store = create_sweep(tmp_path, config)
    reopened = open_sweep(store.sweep_id, tmp_path)
    assert reopened.config == config
    assert reopened.meta["name"] == "demo"


def test_an_existing_sweep_is_never_overwritten(tmp_path: Path, config: SweepConfig) -> None:
    create_sweep(tmp_path, config, sweep_id="mine")
    (tmp_path / "mine" / "runs" / "keep").mkdir()
    with pytest.raises(StoreError, match=r"already exists.*refusing to overwrite"):
        create_sweep(tmp_path, config, sweep_id="mine")
    assert (tmp_path / "mine" / "runs" / "keep").is_dir()


def test_invalid_sweep_id(tmp_path: Path, config: SweepConfig) -> None:
    with pytest.raises(StoreError, match="Invalid sweep id"):
        create_sweep(tmp_path, config, sweep_id="../escape")


def test_open_by_id_or_by_directory(tmp_path: Path, config: SweepConfig) -> None:
    store = create_sweep(tmp_path / "root", config)
    by_id = open_sweep(store.sweep_id, tmp_path / "root")
    by_path = open_sweep(store.path, tmp_path / "elsewhere")
    by_str = open_sweep(str(store.path), tmp_path / "elsewhere")
    assert by_id.path == by_path.path == by_str.path == store.path
    assert by_id.meta == store.meta


def test_a_missing_sweep_names_every_path_tried(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as by_id:
        open_sweep("nope", tmp_path / "root")
    assert by_id.value.message == (
        f"No sweep 'nope': neither {tmp_path / 'root' / 'nope'} nor nope exists."
    )
    with pytest.raises(StoreError) as by_path:
        open_sweep(tmp_path / "gone", tmp_path / "root")
    assert (
        by_path.value.message
        == f"No sweep '{tmp_path / 'gone'}': {tmp_path / 'gone'} does not exist."
    )


def test_open_relative_directory_from_the_working_directory(
    tmp_path: Path, config: SweepConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = create_sweep(tmp_path, config, sweep_id="here")
    monkeypatch.chdir(tmp_path)
    assert open_sweep("here", tmp_path / "other").path.resolve() == store.path.resolve()


def test_open_missing_names_the_paths_tried(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        open_sweep("abc12345", tmp_path / "root")
    message = str(info.value)
    assert str(tmp_path / "root" / "abc12345") in message
    assert "sweepherd ls" in message and "--dir" in message
    assert "\n" not in message


def test_open_a_folder_that_is_not_a_sweep(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match=r"not a sweep directory.*no meta\.json"):
        open_sweep(tmp_path / "plain", tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        open_sweep(tmp_path / "file", tmp_path)


def test_open_with_unreadable_meta(tmp_path: Path, config: SweepConfig) -> None:
    store = create_sweep(tmp_path, config)
    (store.path / "meta.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable"):
        open_sweep(store.path, tmp_path)
    (store.path / "meta.json").write_text("[]")
    with pytest.raises(StoreError, match="unreadable"):
        open_sweep(store.path, tmp_path)


def test_open_without_journal(tmp_path: Path, config: SweepConfig) -> None:
    store = create_sweep(tmp_path, config)
    store.journal_path.unlink()
    with pytest.raises(StoreError, match=r"no journal\.jsonl"):
        open_sweep(store.path, tmp_path)


def test_list_sweeps_oldest_first(tmp_path: Path, config: SweepConfig) -> None:
    assert list_sweeps(tmp_path / "missing") == []
    made = [create_sweep(tmp_path, config).sweep_id for _ in range(3)]
    (tmp_path / "not-a-sweep").mkdir()
    (tmp_path / "a-file").write_text("x")
    assert [s.sweep_id for s in list_sweeps(tmp_path)] == made


def test_run_dir(store: SweepStore) -> None:
    path = store.run_dir(f"{store.sweep_id}-0003")
    assert path == store.path / "runs" / f"{store.sweep_id}-0003" and path.is_dir()
    assert store.run_dir(f"{store.sweep_id}-0003") == path
    with pytest.raises(StoreError, match="Invalid run id"):
        store.run_dir("../x")


def test_create_on_a_read_only_filesystem(
    config: SweepConfig, mount_tmpfs: Callable[[int], Path]
) -> None:
    disk = mount_tmpfs(64)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    with pytest.raises(StoreError, match=r"read-only.*--dir"):
        create_sweep(disk, config)
    with pytest.raises(StoreError, match="read-only"):
        create_sweep(disk / "sub", config)


def test_create_on_a_full_disk_leaves_nothing_behind(
    config: SweepConfig,
    mount_tmpfs: Callable[[int], Path],
    fill_disk: Callable[[Path], list[Path]],
) -> None:
    disk = mount_tmpfs(64)
    (disk / "sweeps").mkdir()
    fill_disk(disk)
    with pytest.raises(StoreError, match="full"):
        create_sweep(disk / "sweeps", config)
    assert list((disk / "sweeps").iterdir()) == []
