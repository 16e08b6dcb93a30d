"""A sweep's runs as one flat table, written as CSV, JSON or Parquet, with types that survive.

One row per run (every state; ``state`` tells them apart). Columns, in this order:

- ``run_id, seq, state, attempt, metric`` (the sweep metric's value), ``created_at,
  started_at, ended_at`` (unix seconds), ``duration_s`` (of the last attempt), ``node, gpus,
  job, agent, exit_code, reason``;
- ``param.<name>`` for each parameter of the config, nested names joined with dots
  (``param.opt.momentum``), in the config's order;
- ``summary.<key>`` for each summary value a run reported (wandb's internal ``_wandb`` keys
  left out), sorted.

Each column has one kind, decided from all its values: ``int``, ``float`` (ints mixed with
floats become floats; the strings ``"nan"``/``"inf"`` that ``sweepherd.log`` writes for
non-finite numbers become those floats), ``bool``, ``str`` (mixed scalars are written as
text), or ``json`` (lists and dicts, as JSON text in CSV and Parquet). A missing value is
empty in CSV, ``null`` in JSON and Parquet (NaN once pandas reads it into a number column).
JSON has no NaN or infinity, so non-finite floats are ``null`` there.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sweepherd._extras import install_extra_hint
from sweepherd.config import SweepConfig, flatten
from sweepherd.errors import SweepherdError
from sweepherd.runs import Run

#: The export formats, for the CLI's choices.
FORMATS = ("csv", "json", "parquet")

_BASE: tuple[tuple[str, str], ...] = (
    ("run_id", "str"),
    ("seq", "int"),
    ("state", "str"),
    ("attempt", "int"),
    ("metric", "float"),
    ("created_at", "float"),
    ("started_at", "float"),
    ("ended_at", "float"),
    ("duration_s", "float"),
    ("node", "str"),
    ("gpus", "str"),
    ("job", "str"),
    ("agent", "str"),
    ("exit_code", "int"),
    ("reason", "str"),
)
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "infinity": math.inf}


@dataclass(frozen=True)
class ExportTable:
    """The runs as rows of plain values under typed columns."""

    columns: tuple[str, ...]
    kinds: Mapping[str, str]  # column -> int | float | bool | str | json
    rows: tuple[Mapping[str, Any], ...]  # column -> value; a missing column is a missing value
    sweep_id: str = ""
    metric: str | None = None

    def values(self, row: Mapping[str, Any]) -> list[Any]:
        """The row's values in column order, converted to the column's kind (None if missing)."""
        return [convert(row.get(c), self.kinds[c]) for c in self.columns]


def export_table(config: SweepConfig, runs: Iterable[Run], sweep_id: str = "") -> ExportTable:
    """Flatten ``runs`` into an :class:`ExportTable` (see the module for the columns)."""
    rows: list[dict[str, Any]] = []
    summary_keys: set[str] = set()
    for run in runs:
        row: dict[str, Any] = {
            "run_id": run.id,
            "seq": run.seq,
            "state": run.state.value,
            "attempt": run.attempt,
            "metric": run.metric,
            "created_at": run.created_at,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
            "duration_s": run.duration_s,
            "node": run.node,
            "gpus": run.gpus,
            "job": run.job,
            "agent": run.agent,
            "exit_code": run.exit_code,
            "reason": run.reason,
        }
        for path, value in flatten(run.params, config.parameters).items():
            row["param." + ".".join(path)] = value
        for key, value in _flat_summary(run.summary).items():
            row["summary." + key] = value
            summary_keys.add(key)
        rows.append(row)
    param_columns = ["param." + p.name for p in config.parameters]
    columns = [c for c, _ in _BASE] + param_columns + [f"summary.{k}" for k in sorted(summary_keys)]
    kinds = dict(_BASE)
    for column in columns[len(_BASE) :]:
        kinds[column] = infer_kind(row.get(column) for row in rows)
    metric = config.metric.name if config.metric else None
    return ExportTable(tuple(columns), kinds, tuple(rows), sweep_id, metric)


def _flat_summary(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if not prefix and str(key).startswith("_wandb"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat_summary(value, name + "."))
        else:
            out[name] = value
    return out


def _nonfinite(value: Any) -> float | None:
    if isinstance(value, str):
        return _NONFINITE.get(value.strip().lower())
    return None


def infer_kind(values: Iterable[Any]) -> str:
    """The one kind that holds every value (None values are missing and do not count)."""
    kinds = set()
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int):
            kinds.add("int")
        elif isinstance(v, float) or _nonfinite(v) is not None:
            kinds.add("float")
        elif isinstance(v, str):
            kinds.add("str")
        else:
            kinds.add("json")
    if not kinds:
        return "float"  # an all-missing column: NaN in pandas
    if len(kinds) == 1:
        return kinds.pop()
    if kinds == {"int", "float"}:
        return "float"
    return "json" if "json" in kinds else "str"


def convert(value: Any, kind: str) -> Any:
    """``value`` as its column's ``kind`` wants it; None stays None."""
    if value is None:
        return None
    if kind == "float":
        nonfinite = _nonfinite(value)
        return nonfinite if nonfinite is not None else float(value)
    if kind == "str":
        return (
            value
            if isinstance(value, str)
            else json.dumps(value)
            if isinstance(value, bool)
            else str(value)
        )
    if kind == "json":
        return json.dumps(value, sort_keys=True)
    return value


# -- writers --------------------------------------------------------------------------------------


def write_csv(table: ExportTable, stream: TextIO) -> None:
    """CSV with a header row; floats keep a ``.`` or exponent so they read back as floats."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(_csv_cell(v) for v in table.values(row))


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # "1.0", "1e-05", "nan", "inf"
    return str(value)


def write_json(table: ExportTable, stream: TextIO) -> None:
    """A JSON array of records (``pandas.read_json(path)``); non-finite floats become null."""
    records = []
    for row in table.rows:
        record = {}
        for column, value in zip(table.columns, table.values(row), strict=True):
            out = value
            if table.kinds[column] == "json" and value is not None:
                out = _finite_only(row[column])  # JSON holds lists and dicts as they are
            elif isinstance(value, float) and not math.isfinite(value):
                out = None
            record[column] = out
        records.append(record)
    json.dump(records, stream, indent=1, allow_nan=False)
    stream.write("\n")


def _finite_only(value: Any) -> Any:
    """``value`` with non-finite floats at any depth made null (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_only(v) for v in value]
    return value


def write_parquet(table: ExportTable, path: Path) -> None:
    """A Parquet file typed column by column (json columns as strings); needs pyarrow."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise SweepherdError(
            "Writing Parquet needs the pyarrow package, which is not installed.",
            hint=f"{install_extra_hint('export')} (or use --format csv/json).",
        ) from exc
    types = {
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "str": pa.string(),
        "json": pa.string(),
    }
    columns = {c: [] for c in table.columns}  # type: dict[str, list[Any]]
    for row in table.rows:
        for column, value in zip(table.columns, table.values(row), strict=True):
            columns[column].append(value)
    schema = pa.schema(
        [pa.field(c, types[table.kinds[c]]) for c in table.columns],
        metadata={
            "sweepherd.sweep_id": table.sweep_id,
            "sweepherd.metric": table.metric or "",
            "sweepherd.kinds": json.dumps(dict(table.kinds)),
        },
    )
    arrow = pa.table(
        {c: pa.array(columns[c], type=schema.field(c).type) for c in table.columns}, schema=schema
    )
    try:
        pq.write_table(arrow, path)
    except OSError as exc:
        raise SweepherdError(f"Could not write {path}: {exc}.") from exc
