"""expand_command against the oracle: the real ``wandb agent`` macro code, run offline.

The oracle (``wandb_agent_oracle.py``) drives ``wandb.wandb_agent.Agent._command_run`` in a child
process; W&B's agent really spawns each command, whose program (``argv_recorder.py``) records
the argv it received. sweepherd's argv is run the same way, so both sides are compared as a real
child process sees them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sweepherd.agent._command import DEFAULT_COMMAND, expand_command
from sweepherd.errors import AgentError

HERE = Path(__file__).parent
RECORDER = str(HERE / "argv_recorder.py")
ORACLE = HERE / "wandb_agent_oracle.py"
PY = sys.executable
#: Every command of the corpus starts with the recorder, so the child sees the expanded rest.
REC = [PY, RECORDER]

ALL_MACROS = [
    "${env}",
    "${interpreter}",
    "${program}",
    "${args}",
    "${args_no_hyphens}",
    "${args_no_boolean_flags}",
    "${args_no_equals}",
    "${args_json}",
    "${args_json_file}",
    "${args_append_hydra}",
    "${args_override_hydra}",
    "${args_dict}",
]

PARAMS: list[dict[str, Any]] = [
    {
        "lr": 0.01,
        "use_bn": False,
        "amp": True,
        "opt": {"name": "adam", "b1": 0.9},
        "name": "a b",
    },
    {},
    {
        "x": None,
        "n": 3,
        "big": 1e20,
        "small": 1e-7,
        "neg": -2,
        "empty": "",
        "lst": [1, "a", 2.5, None, True],
        "uni": "é",
        "sum": 0.1 + 0.2,
        "huge_int": 10**20,
    },
    {"a": {"b": {"c": 1, "d": [1, 2]}, "e": False}, "z": True, "m": {"q": None}},
    {"evil": "a b; rm -rf x", "quote": 'it\'s "q"', "dollar": "$HOME", "macro": "${args}"},
    {"zeta": 1, "alpha": 2, "mid.dot": 3, "with-hyphen": "v"},
]

ENV = {
    "SWEEPHERD_T1": "one two",
    "SWEEPHERD_MACRO": "${args}",
    "SWEEPHERD_EMPTY": "",
}

COMMANDS: list[list[Any] | None] = [
    *([*REC, m] for m in ALL_MACROS),
    [*REC, *ALL_MACROS],
    [
        *REC,
        "--flag",
        "${unknown}",
        "${}",
        "x${args}",
        "${args}y",
        "--cfg=${args_json_file}",
        "${ args }",
        "${ARGS}",
        5,
        1.5,
    ],
    [
        *REC,
        "${envvar:HOME}",
        "pre-${envvar:SWEEPHERD_T1}-${envvar:SWEEPHERD_UNSET_XYZ}-post",
        "${envvar:lower_case}",
        "${envvar:SWEEPHERD_MACRO}",
        "${envvar:SWEEPHERD_EMPTY}",
        "${envvar:}",
        "--out=${envvar:SWEEPHERD_T1}",
    ],
]


def _cases() -> list[dict[str, Any]]:
    cases = [
        {"command": cmd, "program": RECORDER, "params": params, "env": ENV}
        for params in PARAMS
        for cmd in COMMANDS
    ]
    # W&B's default command (None, and an empty list, mean the default): /usr/bin/env python
    # PROGRAM ARGS. `python` must resolve to an interpreter, so the venv's bin goes on PATH.
    path_env = {**ENV, "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}"}
    for params in PARAMS[:2]:
        cases.append({"command": None, "program": RECORDER, "params": params, "env": path_env})
        cases.append({"command": [], "program": RECORDER, "params": params, "env": path_env})
    return cases


def _run_recorder(argv: list[str], env: dict[str, str], out: Path) -> list[str]:
    subprocess.run(
        argv,
        env={**env, "ARGV_RECORDER_OUT": str(out)},
        cwd=out.parent,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return list(json.loads(out.read_text()))


@pytest.mark.wandb
def test_argv_matches_the_real_wandb_agent(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    cases = _cases()
    oracle_dir = tmp_path / "oracle"
    oracle_dir.mkdir()
    (oracle_dir / "cases.json").write_text(json.dumps(cases))
    subprocess.run(
        [PY, str(ORACLE), str(oracle_dir / "cases.json"), str(oracle_dir / "out.json")],
        check=True,
        cwd=oracle_dir,
        timeout=300,
    )
    expected = json.loads((oracle_dir / "out.json").read_text())
    assert len(expected) == len(cases)

    for i, (case, want) in enumerate(zip(cases, expected, strict=True)):
        json_file = tmp_path / "ours" / f"config-{i}.json"
        child_env = {**os.environ, **case["env"]}
        argv = expand_command(
            case["command"],
            program=case["program"],
            params=case["params"],
            interpreter="python",  # what W&B's agent uses; sweepherd passes sys.executable
            json_file=json_file,
            env=child_env,
        )
        seen = _run_recorder(argv, child_env, tmp_path / f"ours-{i}.json")
        # The only expected difference is where the ${args_json_file} file lives.
        seen = [want["json_file"] if a == str(json_file) else a for a in seen]
        assert seen == want["argv"], f"case {i}: {case}"
        if want["json_text"] is not None:
            assert json_file.read_text() == want["json_text"], f"case {i}"
        else:
            assert not json_file.exists(), f"case {i}: wrote a json file W&B would not"


def test_default_command_and_interpreter(tmp_path: Path) -> None:
    params = {"lr": 0.5, "opt": {"name": "sgd"}}
    for command in (None, [], list(DEFAULT_COMMAND)):
        argv = expand_command(
            command,
            program="train.py",
            params=params,
            interpreter=PY,
            json_file=tmp_path / "p.json",
            env={},
        )
        assert argv == ["/usr/bin/env", PY, "train.py", "--lr=0.5", "--opt={'name': 'sgd'}"]
    assert not (tmp_path / "p.json").exists()


def test_numpy_values_are_formatted_as_plain_python(tmp_path: Path) -> None:
    params = {"lr": np.float64(0.25), "n": np.int64(3), "b": np.bool_(False), "v": [np.int32(1)]}
    argv = expand_command(
        ["${args}", "${args_json}", "${args_no_boolean_flags}"],
        program=None,
        params=params,
        interpreter=PY,
        json_file=tmp_path / "p.json",
        env={},
    )
    assert argv == [
        "--lr=0.25",
        "--n=3",
        "--b=False",
        "--v=[1]",
        '{"lr": 0.25, "n": 3, "b": false, "v": [1]}',
        "--lr=0.25",
        "--n=3",
        "--v=[1]",
    ]


def test_args_json_file_is_written_and_named(tmp_path: Path) -> None:
    json_file = tmp_path / "deep" / "dir" / "params.json"
    argv = expand_command(
        ["prog", "--config", "${args_json_file}"],
        program=None,
        params={"a": {"b": 1}},
        interpreter=PY,
        json_file=json_file,
        env={},
    )
    assert argv == ["prog", "--config", str(json_file)]
    assert json.loads(json_file.read_text()) == {"a": {"b": 1}}
    assert [p.name for p in json_file.parent.iterdir()] == ["params.json"]  # no temp file left


def test_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"\$\{program\}.*no 'program:'") as info:
        expand_command(
            None, program=None, params={}, interpreter=PY, json_file=tmp_path / "j", env={}
        )
    assert "program: your_script.py" in str(info.value)
    # A command that does not use ${program} needs none.
    assert expand_command(
        ["run.sh", "${args}"],
        program=None,
        params={"a": 1},
        interpreter=PY,
        json_file=tmp_path / "j",
        env={},
    ) == ["run.sh", "--a=1"]


def test_command_expanding_to_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="expands to nothing"):
        expand_command(
            ["${typo}", "${args}"],
            program=None,
            params={},
            interpreter=PY,
            json_file=tmp_path / "j",
            env={},
        )


def test_hostile_value_arrives_as_one_untouched_argument(tmp_path: Path) -> None:
    victim = tmp_path / "x"
    victim.write_text("still here")
    value = "a b; rm -rf x"
    argv = expand_command(
        [*REC, "${args}", "${args_no_equals}", "${args_no_hyphens}"],
        program=None,
        params={"name": value, "sub": "$(touch pwned) `touch pwned2`"},
        interpreter=PY,
        json_file=tmp_path / "j.json",
        env={},
    )
    seen = _run_recorder(argv, dict(os.environ), tmp_path / "seen.json")
    sub = "$(touch pwned) `touch pwned2`"
    assert seen == [
        f"--name={value}",
        f"--sub={sub}",
        "--name",
        value,
        "--sub",
        sub,
        f"name={value}",
        f"sub={sub}",
    ]
    assert victim.read_text() == "still here"
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "pwned2").exists()
