"""``sweepherd validate``: run in-process through the real CLI boundary, and once as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from sweepherd.cli.main import main
from sweepherd.errors import ConfigError, ExitStatus

VALID = """\
program: train.py
method: bayes
metric: {name: val_loss, goal: minimize}
parameters:
  lr: {distribution: log_uniform_values, min: 0.00001, max: 0.1}
  batch_size: {values: [16, 32, 64]}
  optimizer:
    parameters:
      momentum: {min: 0.8, max: 0.99}
early_terminate: {type: hyperband, min_iter: 3}
run_cap: 50
"""

INVALID = """\
program: train.py
method: grid
metric: val_loss
parameters:
  lr: {distribution: loguniform, min: 0.00001, max: 0.1}
  opt:
    parameters:
      momentum: {min: 5, max: 1}
  dropout: {min: 0.0, max: 0.5}
count: 10
"""


def _write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_valid_config_exits_0_with_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, VALID)
    assert main(["validate", "sweep.yaml"]) == ExitStatus.OK
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == (
        "sweep.yaml is valid: bayes search over 3 parameters (lr, batch_size, optimizer.momentum)"
    )
    assert lines[1].split() == ["lr", "log_uniform_values", "1e-05", "..", "0.1"]
    assert lines[2].split() == ["batch_size", "categorical", "[16,", "32,", "64]"]
    assert lines[3].split() == ["optimizer.momentum", "uniform", "0.8", "..", "0.99"]
    assert "  metric: minimize val_loss" in lines
    assert "  run_cap: 50" in lines
    assert not any("note:" in line for line in lines)
    assert err == ""
    # min_iter beside max_iter and s is valid, and ignored (as W&B ignores it): said so.
    both = VALID.replace("min_iter: 3}", "min_iter: 100, max_iter: 9, s: 2}")
    _write(tmp_path, both)
    assert main(["validate", "sweep.yaml"]) == ExitStatus.OK
    assert "  note: early_terminate.min_iter is ignored: max_iter and s set the bands" in (
        capsys.readouterr().out
    )


def test_an_invalid_config_prints_every_problem_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, INVALID)
    assert main(["validate", str(path)]) == ExitStatus.CONFIG
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"error: {path} is not a valid sweep config (5 problems):"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "  - metric",
        "  - parameters.lr.distribution",
        "  - parameters.opt.parameters.momentum.min",
        "  - count",
        "  - parameters.dropout",
    ]
    assert "Traceback" not in err


def test_a_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["validate", str(missing)]) == ExitStatus.CONFIG
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"error: {missing}: no such file.")


def test_a_yaml_syntax_error_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "method: grid\nparameters: [\n")
    assert main(["validate", str(path)]) == ExitStatus.CONFIG
    assert capsys.readouterr().err.startswith(f"error: {path}: line 3, column 1: ")


def test_unsupported_features_are_reported_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "program: t.py\nmethod: custom\nparameters: {x: {value: 1}}\n")
    assert main(["validate", str(path)]) == ExitStatus.CONFIG
    err = capsys.readouterr().err
    assert (
        err.splitlines()[0] == f"error: {path} uses W&B features that sweepherd does not support:"
    )
    assert "not supported by sweepherd" in err.splitlines()[1]


def test_a_config_wandb_accepts_but_sweepherd_cannot_run_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "method: random\nparameters: {x: {value: 1}}\n")
    assert main(["validate", str(path)]) == ExitStatus.CONFIG
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"error: {path} is valid for W&B, but sweepherd cannot run it:"
    assert err.splitlines()[1].startswith("  - program: missing")


def test_json_output_of_a_valid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, VALID)
    assert main(["validate", str(path), "--json"]) == ExitStatus.OK
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is True and result["file"] == str(path)
    assert result["method"] == "bayes" and result["n_parameters"] == 3
    assert result["parameters"][0] == {
        "name": "lr",
        "path": ["lr"],
        "distribution": "log_uniform_values",
        "min": 1e-05,
        "max": 0.1,
        "grid": False,
    }
    assert result["parameters"][2]["path"] == ["optimizer", "momentum"]
    assert result["metric"] == {"name": "val_loss", "goal": "minimize", "target": None}
    assert result["early_terminate"]["min_iter"] == 3
    assert result["n_grid_points"] is None


def test_json_output_of_an_invalid_config_lists_every_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, INVALID)
    assert main(["validate", "--json", str(path)]) == ExitStatus.CONFIG
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["valid"] is False
    assert len(result["error"]["violations"]) == 5
    assert result["error"]["violations"][0].startswith("metric: ")
    assert err.startswith("error: ")


def test_grid_summary_counts_the_runs_wandbs_engine_would_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = {
        "program": "t.py",
        "method": "grid",
        "parameters": {
            "a": {"values": [1, 2, 3, 3.0]},  # 3 and 3.0 are one point
            "b": {"min": 1, "max": 4},
            "c": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.3},
            "d": {"value": "x"},
            "o": {"parameters": {"e": {"values": [True, False]}}},
        },
    }
    path = _write(tmp_path, json.dumps(raw), "grid.json")
    assert main(["validate", str(path), "--json"]) == ExitStatus.OK
    n_ours = json.loads(capsys.readouterr().out)["n_grid_points"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps

        suggestions = sweeps.next_runs(raw, [], n=n_ours + 5)
    assert n_ours == 3 * 4 * 4 * 2
    assert len([s for s in suggestions if s is not None]) == n_ours


def test_json_output_is_strict_json_with_nan_and_infinity_as_yaml_wrote_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "method: random\nprogram: t.py\nparameters:\n"
        "  a: {values: [.nan, .inf, 1, {x: -.inf}, 1, 1.0]}\n",
    )
    assert main(["validate", "--json", str(path)]) == ExitStatus.OK

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    result = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert result["parameters"][0]["values"] == [".nan", ".inf", 1, {"x": "-.inf"}, 1, 1.0]


def test_debug_reraises_for_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        main(["--debug", "validate", str(tmp_path / "nope.yaml")])


def test_debug_shows_a_traceback_in_a_real_process(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    env = {k: v for k, v in os.environ.items() if k != "SWEEPHERD_DEBUG"}
    quiet = subprocess.run(
        [sys.executable, "-m", "sweepherd", "validate", missing],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert quiet.returncode == ExitStatus.CONFIG
    assert (
        quiet.stderr == f"error: {missing}: no such file. Give the path of your sweep config"
        " (the YAML you would pass to `wandb sweep`).\n"
    )
    loud = subprocess.run(
        [sys.executable, "-m", "sweepherd", "validate", missing, "--debug"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert loud.returncode != 0
    assert "Traceback (most recent call last)" in loud.stderr
    assert "sweepherd.errors.ConfigError" in loud.stderr


def test_help_lists_the_json_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--help"]) == ExitStatus.OK
    out = capsys.readouterr().out
    assert "SWEEP_YAML" in out and "--json" in out
