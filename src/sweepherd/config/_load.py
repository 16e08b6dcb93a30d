"""Reading a sweep config file: YAML or JSON, told apart by content.

YAML is read the way ``wandb sweep`` reads it (``yaml.safe_load``: YAML 1.1, so ``1e-5`` is text
and validation then says so), with one addition: a key written twice in the same mapping is a
problem, reported with its key path and lines beside every other problem of the config, not
a silent overwrite. A file whose first character is ``{`` is read as
JSON first (strict JSON numbers such as ``1e-5`` are numbers there).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from sweepherd.config._model import SweepConfig
from sweepherd.config._problems import Problem, child, item
from sweepherd.config._sweep import build_config
from sweepherd.errors import ConfigError


def _duplicate_keys(loader: yaml.SafeLoader, root: yaml.Node | None) -> list[Problem]:
    """Every key written twice in one mapping of the composed document, with its key path and
    the lines it is on. YAML merge keys (``<<: *base``) are how overrides are meant to be
    written, so they are not counted."""
    problems: list[Problem] = []
    seen_nodes: set[int] = set()
    todo: list[tuple[yaml.Node, str]] = [] if root is None else [(root, "")]
    while todo:
        node, path = todo.pop()
        if id(node) in seen_nodes:  # an alias: the node it names is checked once
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            todo += reversed([(sub, item(path, i)) for i, sub in enumerate(node.value)])
        elif isinstance(node, yaml.MappingNode):
            marks: dict[Any, list[yaml.Mark]] = {}
            values: list[tuple[yaml.Node, str]] = []
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = loader.construct_object(key_node, deep=True)
                try:
                    marks.setdefault(key, []).append(key_node.start_mark)
                except TypeError:  # an unhashable key; validation reports it
                    continue
                values.append((value_node, child(path, key)))
            todo += reversed(values)  # visited in the document's order: an alias after its anchor
            problems += [_twice(child(path, key), at) for key, at in marks.items() if len(at) > 1]
    return sorted(problems, key=lambda p: p.path)


def _twice(path: str, marks: list[yaml.Mark] | None) -> Problem:
    """The problem of a key written more than once; ``marks`` are where (None for JSON)."""
    n = len(marks) if marks else 2
    times = "twice" if n == 2 else f"{n} times"
    where = ""
    if marks:
        lines = [m.line + 1 for m in marks]
        if len(set(lines)) == len(lines):
            where = f" (lines {_and(str(line) for line in lines)})"
        else:
            where = f" ({_and(f'line {m.line + 1} column {m.column + 1}' for m in marks)})"
    return Problem(
        path,
        f"the key is written {times} in one mapping{where}",
        "keep one: the last silently wins",
    )


def _and(items: Iterable[str]) -> str:
    *rest, last = items
    return f"{', '.join(rest)} and {last}" if rest else last


class _PairsDict(dict[str, Any]):
    """A JSON object that remembers the keys it was given more than once."""

    repeated: list[str]


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A plain dict, or a :class:`_PairsDict` when a key came more than once (a config that is
    refused, so a valid one holds plain dicts only)."""
    repeated = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    if not repeated:
        return dict(pairs)
    out = _PairsDict(pairs)
    out.repeated = repeated
    return out


def _duplicate_json_keys(data: object, path: str = "") -> list[Problem]:
    """Every key given twice in one object of parsed JSON (see :func:`_json_object`)."""
    problems: list[Problem] = []
    if isinstance(data, _PairsDict):
        problems += [_twice(child(path, k), None) for k in data.repeated]
    if isinstance(data, dict):
        for key, value in data.items():
            problems += _duplicate_json_keys(value, child(path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            problems += _duplicate_json_keys(value, item(path, i))
    return problems


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


def parse_text(text: str, source: str) -> tuple[object, list[Problem]]:
    """The data in ``text`` (JSON when it looks like a JSON object and parses as one, else YAML)
    and a problem for every key written twice in one mapping (the data holds the last one)."""
    if text.lstrip().startswith("{"):
        try:
            data: object = json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError:
            pass  # YAML flow style also starts with "{"; let the YAML parser have its say
        else:
            return data, _duplicate_json_keys(data)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()  # what yaml.safe_load does, in two steps
        duplicates = _duplicate_keys(loader, node)
        data = None if node is None else loader.construct_document(node)
    except RecursionError:
        raise ConfigError(
            f"{source}: nested too deeply to read.", hint="A sweep config is a few levels deep."
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{source}: {where}{what}", hint=_macro_hint(text, mark, what)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    _check_acyclic(data, source)
    return data, duplicates


def _macro_hint(text: str, mark: yaml.Mark | None, problem: str) -> str | None:
    """Advice when the YAML error is a command macro (``${program}``) in a flow sequence,
    where ``{`` opens a mapping: W&B's own docs write ``command`` one item per line."""
    if mark is None or "{" not in problem:
        return None
    lines = text.splitlines()
    if mark.line >= len(lines) or "${" not in lines[mark.line]:
        return None
    return (
        'quote a macro inside [...] ("${program}"), or write the list one item per line '
        "(- ${program})"
    )


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
    when the config has problems (keys written twice included): then ``violations`` lists every
    one of them.
    ``SweepConfig.raw`` is the data exactly as read and ``SweepConfig.text`` the file's text.
    """
    path = Path(path)
    text = read_text(path)
    raw, duplicates = parse_text(text, str(path))
    return build_config(raw, str(path), text=text, problems=duplicates)
