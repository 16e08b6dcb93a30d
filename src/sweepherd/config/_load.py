"""Reading a sweep config file: YAML or JSON, told apart by content.

YAML is read the way ``wandb sweep`` reads it (``yaml.safe_load``: YAML 1.1, so ``1e-5`` is text
and validation then says so), with one addition: a key written twice in the same mapping is an
error with its line, not a silent overwrite. A file whose first character is ``{`` is read as
JSON first (strict JSON numbers such as ``1e-5`` are numbers there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from sweepherd.config._model import SweepConfig
from sweepherd.config._sweep import build_config
from sweepherd.errors import ConfigError


class _DuplicateKeyError(yaml.MarkedYAMLError):
    """A key appears twice in one YAML mapping."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` overrides are how YAML merges are meant to work
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key; the base class reports it
                continue
            if duplicate:
                raise _DuplicateKeyError(
                    "while reading a mapping",
                    node.start_mark,
                    f"the key {key!r} appears twice",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _reject_duplicate_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice")
        out[key] = value
    return out


def read_text(path: Path) -> str:
    """The file's text; :class:`ConfigError` with a plain reason when it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file.",
            hint="Give the path of your sweep config (the YAML you would pass to `wandb sweep`).",
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path} is a directory, not a sweep config file.",
            hint="Give the path of the YAML file.",
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded).",
            hint="Save the sweep config as a UTF-8 YAML or JSON file.",
        ) from None


def parse_text(text: str, source: str) -> object:
    """The data in ``text``: JSON when it looks like a JSON object and parses as one, else YAML."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text, object_pairs_hook=_reject_duplicate_json_keys)
        except json.JSONDecodeError:
            pass  # YAML flow style also starts with "{"; let the YAML parser have its say
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}.", hint="Remove one of them.") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except RecursionError:
        raise ConfigError(
            f"{source}: nested too deeply to read.", hint="A sweep config is a few levels deep."
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        if isinstance(exc, _DuplicateKeyError):
            raise ConfigError(f"{source}: {where}{what}.", hint="Remove one of them.") from None
        raise ConfigError(f"{source}: {where}{what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    _check_acyclic(data, source)
    return data


def _check_acyclic(data: object, source: str) -> None:
    """Refuse a YAML alias used inside the node it names (``&v [1, *v]``): a structure that
    contains itself cannot be stored as JSON, nor checked to its end."""
    try:
        json.dumps(data, default=str)
    except ValueError as exc:  # json's "Circular reference detected"
        raise ConfigError(
            f"{source}: a YAML alias is used inside the node it names, so the data contains "
            f"itself ({exc}).",
            hint="Write the values out instead of *alias inside &alias.",
        ) from None
    except RecursionError:
        raise ConfigError(
            f"{source}: nested too deeply to read.", hint="A sweep config is a few levels deep."
        ) from None


def load_config(path: str | Path) -> SweepConfig:
    """Read a sweep config file (YAML or JSON) and check it completely.

    Raises :class:`~sweepherd.errors.ConfigError` when the file is missing, unreadable or not
    YAML/JSON (the message gives the line and column), when its top level is not a mapping, or
    when the config has problems: then ``violations`` lists every one of them.
    ``SweepConfig.raw`` is the data exactly as read and ``SweepConfig.text`` the file's text.
    """
    path = Path(path)
    text = read_text(path)
    raw = parse_text(text, str(path))
    return build_config(raw, str(path), text=text)
