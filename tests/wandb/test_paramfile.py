"""The parameter file: W&B's exact bytes, and a real offline ``wandb.init()`` reading it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from sweepherd.errors import StoreError
from sweepherd.wandb import param_file_text, write_param_file

WandbScript = Callable[..., subprocess.Popen[str]]  # the wandb_script fixture (conftest.py)

PARAMS: dict[str, Any] = {
    "lr": 0.05,
    "batch_size": 64,
    "optimizer": {"name": "adam", "beta1": 0.9, "deep": {"eps": 1e-8}},
    "use_bn": False,
    "note": "a b: c # not a comment",
    "none": None,
    "layers": [1, 2, 3],
    "unicode": "é ✓",
}


@pytest.mark.wandb
def test_bytes_equal_what_wandb_agent_writes(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    cases = [PARAMS, {}, {"x": 1}, {"zeta": 1, "alpha": {"b": 2, "a": 1}}]
    oracle = (
        "import json, sys\n"
        "from wandb.sdk.lib import config_util\n"
        "for i, p in enumerate(json.loads(sys.argv[1])):\n"
        "    config_util.save_config_file_from_dict(\n"
        "        f'{sys.argv[2]}/w{i}.yaml', {k: {'value': v} for k, v in p.items()})\n"
    )
    subprocess.run(
        [sys.executable, "-c", oracle, json.dumps(cases), str(tmp_path)], check=True, timeout=120
    )
    for i, params in enumerate(cases):
        ours = write_param_file(tmp_path / f"s{i}.yaml", params)
        assert ours.read_bytes() == (tmp_path / f"w{i}.yaml").read_bytes(), params


def test_numpy_and_tuples_become_plain_values(tmp_path: Path) -> None:
    params = {
        "lr": np.float64(0.25),
        "n": np.int64(3),
        "flag": np.bool_(True),
        "name": np.str_("x"),
        "pair": (np.float32(0.5), 2),
        "nested": {"v": np.array([1, 2])},
    }
    path = write_param_file(tmp_path / "deep" / "params.yaml", params)
    text = path.read_text()
    assert text.startswith("wandb_version: 1\n\n")
    loaded = yaml.safe_load(text)
    assert loaded == {
        "wandb_version": 1,
        "lr": {"value": 0.25},
        "n": {"value": 3},
        "flag": {"value": True},
        "name": {"value": "x"},
        "pair": {"value": [0.5, 2]},
        "nested": {"value": {"v": [1, 2]}},
    }
    assert param_file_text({}) == "wandb_version: 1"


def test_written_atomically_no_temp_left_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    write_param_file(path, {"a": 1})
    write_param_file(path, {"a": 2})
    assert yaml.safe_load(path.read_text())["a"] == {"value": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a full tmpfs needs root")
def test_full_filesystem_raises_store_error_and_keeps_old_file(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(mnt)], check=True)
    try:
        path = write_param_file(mnt / "params.yaml", {"a": 1})
        with pytest.raises(StoreError, match="parameter file") as info:
            write_param_file(path, {"big": "x" * 64_000})
        assert "not full" in str(info.value)
        assert yaml.safe_load(path.read_text())["a"] == {"value": 1}
        assert [p.name for p in mnt.iterdir()] == ["params.yaml"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.wandb
def test_offline_wandb_init_gets_the_params_over_script_defaults(
    tmp_path: Path, wandb_script: WandbScript
) -> None:
    params = {**PARAMS, "np_lr": np.float64(0.125)}
    path = write_param_file(tmp_path / "runs" / "r1" / "params.yaml", params)
    proc = wandb_script(
        """
        import json, wandb
        defaults = {"lr": 0.001, "batch_size": 16, "dropout": 0.5,
                    "optimizer": {"name": "sgd", "momentum": 0.9}}
        run = wandb.init(project="p", config=defaults)
        wandb.config.update({"lr": 123.0}, allow_val_change=True)  # sweep values are locked
        print("CONFIG=" + json.dumps(dict(wandb.config)))
        run.finish()
        """,
        WANDB_SWEEP_PARAM_PATH=str(path),
        WANDB_RUN_ID="r1",
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    line = next(x for x in out.splitlines() if x.startswith("CONFIG="))
    config = json.loads(line.removeprefix("CONFIG="))
    expected = {**PARAMS, "np_lr": 0.125, "dropout": 0.5}
    # Measured (wandb 0.31): nested groups are merged key by key, so the script's default
    # "momentum" survives beside the sweep's optimizer values.
    expected["optimizer"] = {**PARAMS["optimizer"], "momentum": 0.9}
    assert config == expected
