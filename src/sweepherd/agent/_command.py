"""The trial's command line: ``command:`` macros expanded exactly as ``wandb agent`` does.

W&B's agent (``wandb/wandb_agent.py`` and ``wandb/sdk/launch/sweeps/utils.py``, 0.31) turns the
sweep's ``command:`` list into an argv in two passes, and so does :func:`expand_command`:

1. ``${envvar:NAME}`` is replaced *inside* every element (``NAME`` matches ``[A-Z0-9_]*``); an
   unset variable leaves the bare ``NAME``.
2. An element that *is* a macro (starts with ``${`` and ends with ``}``) is replaced by its list
   of words; an unknown macro expands to nothing. Any other element is kept literally, so
   ``--cfg=${args_json_file}`` stays as written.

The one deliberate difference: ``${interpreter}`` is the agent's own Python (the caller passes
``sys.executable``) instead of W&B's bare ``python`` from ``PATH``, which on a compute node is
often the wrong environment (wandb issue 1190).

Parameter values are formatted with Python ``str()`` as W&B does: ``--use_bn=False``,
``--p=None``, and a nested parameter group as one Python repr, ``--opt={'name': 'adam'}``.
Arguments follow the order of the ``params`` mapping. The argv goes to the process directly,
never through a shell, so a value such as ``a b; rm -rf x`` is one argument, untouched.
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sweepherd.errors import AgentError

#: W&B's command when the sweep config has no ``command:`` key (or an empty one).
DEFAULT_COMMAND: tuple[str, ...] = ("${env}", "${interpreter}", "${program}", "${args}")

#: W&B's pattern for environment-variable macros (upper-case names only, as in W&B).
ENVVAR_PATTERN = re.compile(r"\$\{envvar\:([A-Z0-9_]*)\}")


def expand_command(
    command: Sequence[Any] | None,
    *,
    program: str | None,
    params: Mapping[str, Any],
    interpreter: str,
    json_file: Path,
    env: Mapping[str, str],
) -> list[str]:
    """The argv of one trial: ``command`` with its macros expanded as ``wandb agent`` does.

    Args:
        command: the sweep config's ``command:`` list; ``None`` or empty means
            :data:`DEFAULT_COMMAND` (``${env} ${interpreter} ${program} ${args}``).
        program: the sweep config's ``program:``; needed only when the command uses
            ``${program}``.
        params: the run's parameters, nested as ``wandb.config`` sees them (plain values;
            numpy scalars are converted).
        interpreter: what ``${interpreter}`` becomes (sweepherd passes ``sys.executable``).
        json_file: where ``${args_json_file}`` writes the parameters as JSON; the file is
            written only when the command uses that macro, and the macro becomes its path.
        env: the trial's environment, for ``${envvar:NAME}``.

    Raises:
        AgentError: the command uses ``${program}`` but the sweep has no ``program:``, the
            command expands to nothing, or the ``${args_json_file}`` file cannot be written.
    """
    elements = [_expand_envvars(str(c), env) for c in (command or DEFAULT_COMMAND)]
    values = {str(k): _plain(v) for k, v in params.items()}
    words = _macro_words(values)
    words["interpreter"] = [interpreter]
    if platform.system() != "Windows":
        words["env"] = ["/usr/bin/env"]
    if "${program}" in elements:
        if not program:
            raise AgentError(
                "The sweep's command uses ${program} but the sweep config has no 'program:'.",
                hint="Add 'program: your_script.py' to the sweep config, or write the script "
                "into 'command:' instead of ${program}.",
            )
        words["program"] = [program]
    if "${args_json_file}" in elements:
        _write_text_atomic(json_file, words["args_json"][0])
        words["args_json_file"] = [str(json_file)]
    argv: list[str] = []
    for element in elements:
        if element.startswith("${") and element.endswith("}"):
            argv.extend(words.get(element[2:-1], []))
        else:
            argv.append(element)
    if not argv:
        raise AgentError(
            f"The sweep's command {list(command or DEFAULT_COMMAND)} expands to nothing.",
            hint="Unknown ${...} macros expand to nothing, as in W&B; check their spelling.",
        )
    return argv


def _expand_envvars(element: str, env: Mapping[str, str]) -> str:
    return ENVVAR_PATTERN.sub(lambda m: env.get(m.group(1), m.group(1)), element)


def _macro_words(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every parameter macro's words, built the way W&B's ``create_sweep_command_args`` does."""
    flags = [f"{k}={v}" for k, v in values.items()]
    no_boolean_flags: list[str] = []
    no_equals: list[str] = []
    for key, value in values.items():
        no_equals += [f"--{key}", str(value)]
        if isinstance(value, bool):
            if value:
                no_boolean_flags.append(f"--{key}")
        else:
            no_boolean_flags.append(f"--{key}={value}")
    return {
        "args": [f"--{f}" for f in flags],
        "args_no_hyphens": flags,
        "args_no_boolean_flags": no_boolean_flags,
        "args_no_equals": no_equals,
        "args_json": [json.dumps(dict(values))],
        "args_append_hydra": [f"+{f}" for f in flags],
        "args_override_hydra": [f"++{f}" for f in flags],
        # Undocumented in W&B: a dict spliced into the argv, i.e. the parameter names.
        "args_dict": list(values),
    }


def _plain(value: Any) -> Any:
    """Plain Python values, as W&B's agent gets them from its server's JSON."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, bytes, bool, int, float)) or value is None:
        return value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise AgentError(
            f"Could not write the ${{args_json_file}} file {path}: {exc.strerror or exc}.",
            hint="Check that the run folder is writable and the filesystem is not full.",
        ) from exc
