"""One problem found in a sweep config, and the small helpers that word problems the same way.

Every problem is rendered as ``<key path>: <what is wrong>; <what is allowed>``, where the key
path is the path of YAML keys to the offending value (``parameters.opt.parameters.lr.min``,
``command[2]``). A problem is either *invalid* (W&B's own engine would reject it, or it cannot
run) or *unsupported* (W&B accepts it, but sweepherd cannot run it: ``method: custom``,
multi-objective ``metrics``, external schedulers); the two are worded and counted apart.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

#: Wording that marks a problem as a W&B feature sweepherd does not run (not a mistake).
UNSUPPORTED = "not supported by sweepherd"


@dataclass(frozen=True)
class Problem:
    """One violation: where it is, what is wrong, what would be right."""

    path: str
    what: str
    allowed: str = ""
    unsupported: bool = False

    def __str__(self) -> str:
        where = self.path or "(top level)"
        text = f"{where}: {self.what}"
        return f"{text}; {self.allowed}" if self.allowed else text


def child(path: str, key: object) -> str:
    """The key path of ``key`` under ``path``: ``child("metric", "goal") == "metric.goal"``."""
    return f"{path}.{key}" if path else str(key)


def item(path: str, index: int) -> str:
    """The key path of list element ``index`` under ``path``: ``command[2]``."""
    return f"{path}[{index}]"


def kind(value: object) -> str:
    """A user-facing name for the type of ``value``, in YAML's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (datetime.date, datetime.time)):
        return "a date"
    return f"a {type(value).__name__}"


def described(value: object) -> str:
    """``'abc' is a string``, ``5 is an integer``, ``is empty (null)``: the start of a message."""
    if value is None:
        return "is empty (null)"
    return f"{show(value)} is {kind(value)}"


def show(value: object, limit: int = 60) -> str:
    """``value`` as the user would write it in YAML, shortened to ``limit`` characters."""
    if isinstance(value, str):
        text = repr(value)
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        try:
            text = json.dumps(value, default=str)
        except ValueError:  # a circular structure from a Python caller
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_number(value: object) -> TypeGuard[int | float]:
    """A JSON number: an int or float, never a boolean (YAML's ``true`` is not 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """A JSON number that is neither NaN nor infinite (nor an int too large for a float)."""
    if not is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # JSON and YAML allow ints of any size
        return False


def is_whole(value: object) -> TypeGuard[int | float]:
    """JSON Schema's ``integer``: an int, or a float with no fractional part (``3.0``)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer()


def yaml_number_hint(value: object) -> str:
    """A hint for a number that YAML read as text (``1e-5``), or ``""``."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    if "e" not in value.lower() or value.strip().lower() in ("inf", "-inf", "+inf", "nan"):
        return " (remove the quotes)"
    return (
        f" (YAML reads {value} as text: write exponents with a dot and a sign, "
        "1.0e-5, or write 0.00001)"
    )


def suggest(word: object, choices: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    """`` (did you mean X?)`` for the closest of ``choices``, or ``""`` when nothing is close."""
    if not isinstance(word, str):
        return ""
    lowered = word.strip().lower()
    if aliases and lowered in aliases:
        return f" (did you mean {aliases[lowered]}?)"
    options = list(choices)
    exact = [c for c in options if c.lower() == lowered and c != word]
    if exact:
        return f" (did you mean {exact[0]}?)"
    close = difflib.get_close_matches(lowered, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def one_of(choices: Iterable[str]) -> str:
    """``a, b or c``."""
    names = list(choices)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " or " + names[-1]


def json_problems(value: Any, path: str) -> list[Problem]:
    """Every part of ``value`` that cannot be stored as JSON (the journal and W&B need that)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return []
    if isinstance(value, (datetime.date, datetime.time)):
        return [
            Problem(
                path,
                f"{value} is a date (YAML reads unquoted dates as dates)",
                f"quote it: '{value}'",
            )
        ]
    if isinstance(value, list):
        return [p for i, element in enumerate(value) for p in json_problems(element, item(path, i))]
    if isinstance(value, Mapping):
        found: list[Problem] = []
        for key, element in value.items():
            if not isinstance(key, str):
                found.append(
                    Problem(child(path, key), f"key {described(key)}", "keys must be strings")
                )
            else:
                found += json_problems(element, child(path, key))
        return found
    return [
        Problem(
            path,
            f"{kind(value)} cannot be a parameter value",
            "use null, booleans, numbers, strings, lists and mappings",
        )
    ]
