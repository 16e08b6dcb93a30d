"""load_config: real files, YAML or JSON by content, and every way reading one can fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sweepherd.config import load_config
from sweepherd.errors import ConfigError

SWEEP_YAML = """\
# a comment that must survive in SweepConfig.text
program: train.py
method: bayes
metric:
  name: val_loss
  goal: minimize
parameters:
  lr:
    distribution: log_uniform_values
    min: 0.00001
    max: 0.1
  optimizer:
    parameters:
      name: {values: [adam, sgd]}
"""


def _write(tmp_path: Path, text: str | bytes, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_a_yaml_file_loads_with_raw_and_text_verbatim(tmp_path: Path) -> None:
    path = _write(tmp_path, SWEEP_YAML)
    config = load_config(path)
    assert config.raw == yaml.safe_load(SWEEP_YAML)
    assert config.text == SWEEP_YAML
    assert config.method == "bayes"
    assert [p.name for p in config.parameters] == ["lr", "optimizer.name"]
    assert load_config(str(path)) == config  # a str path works too


def test_a_json_file_loads_and_its_exponent_numbers_are_numbers(tmp_path: Path) -> None:
    raw = {"method": "random", "parameters": {"lr": {"min": 1e-5, "max": 1e-1}}}
    path = _write(tmp_path, json.dumps(raw, indent=2), "sweep.json")
    config = load_config(path)
    assert config.raw == raw
    assert config.param("lr").min == 1e-5


def test_yaml_flow_style_that_is_not_json_is_read_as_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "{method: grid, parameters: {x: {values: [1, 2]}}}\n")
    assert load_config(path).param("x").values == (1, 2)


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "\ufeff" + SWEEP_YAML)
    assert load_config(path).method == "bayes"


def test_a_missing_file_is_one_clear_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'nope.yaml'}: no such file.")
    assert "\n" not in str(caught.value)
    assert caught.value.violations == []


def test_a_directory_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_a_path_through_a_file_cannot_be_read(tmp_path: Path) -> None:
    parent = _write(tmp_path, "x")
    with pytest.raises(ConfigError, match="cannot read it: Not a directory"):
        load_config(parent / "sweep.yaml")


def test_a_binary_file_is_not_utf8(tmp_path: Path) -> None:
    path = _write(tmp_path, b"method: grid\n\xff\xfe\x00")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(path)


def test_a_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "method: grid\nparameters:\n  x: {values: [1, 2]\n  y: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line 4, column ")
    assert caught.value.violations == []


def test_a_macro_in_a_flow_style_command_says_to_quote_it(tmp_path: Path) -> None:
    text = "program: t.py\nmethod: grid\ncommand: [python, ${program}]\nparameters: {x: {value: 1}}"
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    assert str(caught.value).startswith(f"{tmp_path / 'sweep.yaml'}: line 3, column 20: ")
    assert caught.value.hint is not None and '("${program}")' in caught.value.hint
    quoted = text.replace("${program}", '"${program}"')
    assert load_config(_write(tmp_path, quoted)).command == ("python", "${program}")


def test_other_yaml_errors_get_no_macro_hint(tmp_path: Path) -> None:
    path = _write(tmp_path, "method: grid\nparameters:\n  x: {values: [1, 2]\n  y: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.hint is None


def test_a_tab_indent_is_a_yaml_error_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "method: grid\nparameters:\n\tx: {value: 1}\n")
    with pytest.raises(ConfigError, match=r": line 3, column 1: found character '\\t'"):
        load_config(path)


def test_every_key_written_twice_in_yaml_is_listed_with_its_path_beside_other_problems(
    tmp_path: Path,
) -> None:
    text = """\
method: grdi
parameters:
  lr: {values: [1]}
  bs: {values: [2]}
  opt:
    parameters:
      m: {value: 1}
      m: {value: 2}
      m: {value: 3}
  lr: {value: 3}
metric: {name: a, goal: minimize, goal: maximize}
"""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message == f"{path} is not a valid sweep config (4 problems):"
    assert caught.value.violations == [
        "metric.goal: the key is written twice in one mapping (line 11 column 19 and line 11 "
        "column 35); keep one: the last silently wins",
        "parameters.lr: the key is written twice in one mapping (lines 3 and 10); "
        "keep one: the last silently wins",
        "parameters.opt.parameters.m: the key is written 3 times in one mapping (lines 7, 8 "
        "and 9); keep one: the last silently wins",
        "method: 'grdi' is not a search method; use grid, random or bayes (did you mean grid?)",
    ]


def test_a_mapping_used_twice_through_an_alias_is_reported_once(tmp_path: Path) -> None:
    text = "method: grid\nparameters:\n  a: &p {values: [1], values: [2]}\n  b: *p\n"
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    assert [v.split(":")[0] for v in caught.value.violations] == ["parameters.a.values"]


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    text = "method: random\nparameters:\n  a: &b {min: 0.0, max: 1.0}\n"
    text += "  c:\n    <<: *b\n    max: 2.0\n"
    config = load_config(_write(tmp_path, text))
    assert config.param("c").max == 2.0


def test_every_key_written_twice_in_json_is_listed_with_its_path(tmp_path: Path) -> None:
    text = (
        '{"method": "grid", "method": "grid", "parameters": {"a": {"values": [1], "values": [2]}}}'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text, "s.json"))
    assert caught.value.violations == [
        "method: the key is written twice in one mapping; keep one: the last silently wins",
        "parameters.a.values: the key is written twice in one mapping; keep one: the last "
        "silently wins",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "(top level): the sweep config is empty"),
        ("# only a comment\n", "(top level): the sweep config is empty"),
        ("- method: grid\n", "(top level): the sweep config is a list, not a mapping"),
        ("grid\n", "(top level): the sweep config is a string, not a mapping"),
    ],
)
def test_a_top_level_that_is_not_a_mapping_is_a_violation(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).splitlines()[0] == f"{path} is not a valid sweep config (1 problem):"
    (violation,) = caught.value.violations
    assert violation.startswith(expected)


def test_yaml_exponents_without_a_dot_are_text_as_in_wandb(tmp_path: Path) -> None:
    text = "method: random\nparameters:\n  lr: {min: 1e-5, max: 1.0e-1}\n"
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    (violation,) = caught.value.violations
    assert violation.startswith("parameters.lr.min: '1e-5' is a string, not a number")


def test_an_unquoted_yaml_date_is_caught(tmp_path: Path) -> None:
    text = "method: random\nparameters:\n  day: {values: [2024-01-31, 2024-02-29]}\n"
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    assert caught.value.violations[0] == (
        "parameters.day.values[0]: 2024-01-31 is a date (YAML reads unquoted dates as dates);"
        " quote it: '2024-01-31'"
    )


def test_every_violation_of_a_file_is_listed(tmp_path: Path) -> None:
    text = "method: grid\nmetric: loss\nparameters:\n  x: {min: 0, max: 1.0}\nrun_cap: 0\n"
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).splitlines()[0] == f"{path} is not a valid sweep config (3 problems):"
    assert [v.split(":")[0] for v in caught.value.violations] == [
        "metric",
        "run_cap",
        "parameters.x",
    ]


def test_an_alias_used_inside_itself_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("method: random\nparameters:\n  x:\n    values: &v [1, *v]\n")
    with pytest.raises(ConfigError, match="alias is used inside the node it names"):
        load_config(path)


def test_data_nested_too_deeply_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("[" * 100_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)


def test_an_int_too_large_for_a_float_is_reported_where_it_is(tmp_path: Path) -> None:
    big = 10**400
    path = tmp_path / "sweep.yaml"
    path.write_text(
        f"method: random\nprogram: t.py\nmetric: {{name: loss, target: {big}}}\n"
        f"parameters:\n  x: {{min: 0, max: {big}}}\n  y: {{distribution: normal, mu: {big}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [v.split(":")[0] for v in caught.value.violations] == [
        "metric.target",
        "parameters.x.max",
        "parameters.y.mu",
    ]
    assert all("too large for a float" in v for v in caught.value.violations)
