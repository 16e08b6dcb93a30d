"""``export`` round-trips: every run and its parameters come back from CSV, JSON and Parquet,
with their types, as pandas, pyarrow and the csv module read them."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.helpers import Sweep, make_sweep
from sweepherd.monitor import export_table, write_csv, write_json, write_parquet
from sweepherd.monitor._export import infer_kind
from sweepherd.runs import RunState

RAW = {
    "method": "random",
    "metric": {"name": "acc", "goal": "maximize"},
    "run_cap": 10,
    "parameters": {
        "bs": {"values": [16, 32]},
        "lr": {"min": 0.001, "max": 0.1},
        "mixed": {"values": [1, 0.5]},
        "opt": {
            "parameters": {
                "name": {"values": ["adam", "sgd"]},
                "nesterov": {"values": [True, False]},
            }
        },
        "layers": {"values": [[64, 64], [128]]},
    },
}


def _params(bs: int, lr: float, mixed: float, name: str, nesterov: bool, layers: list) -> dict:
    return {
        "bs": bs,
        "lr": lr,
        "mixed": mixed,
        "opt": {"name": name, "nesterov": nesterov},
        "layers": layers,
    }


PARAMS = [
    _params(16, 0.01, 1, "adam", True, [64, 64]),
    _params(32, 0.05, 0.5, "sgd", False, [128]),
    _params(16, 0.002, 1, "sgd", True, [128]),
    _params(32, 0.09, 0.5, "adam", False, [64, 64]),
    _params(16, 0.03, 1, "adam", True, [128]),
]
PARAM_COLUMNS = [
    "param.bs",
    "param.lr",
    "param.mixed",
    "param.opt.name",
    "param.opt.nesterov",
    "param.layers",
]


@pytest.fixture
def sweep(root: Path) -> Sweep:
    sweep = make_sweep(root, RAW)
    for i, params in enumerate(PARAMS[:4]):
        run = sweep.claim(params, node=f"node{i}", gpus=str(i % 2), job="77")
        summary: dict[str, Any] = {
            "acc": 0.5 + i / 10,
            "epoch": i + 1,
            "val": {"loss": 1.0 / (i + 1)},
        }
        if i == 3:
            summary["loss"] = "nan"  # sweepherd.log keeps NaN as a string
        sweep.finish(run, metric=0.5 + i / 10, summary=summary)
    failed = sweep.claim(PARAMS[4], node="node9")
    sweep.finish(failed, "failed", exit_code=2, reason="exited with status 2")
    sweep.claim(PARAMS[0], node="node8")  # still running
    return sweep


def _finished(sweep: Sweep) -> list:
    return [r for r in sweep.store.snapshot().runs.values() if r.state is RunState.FINISHED]


def _table(sweep: Sweep):
    return export_table(sweep.store.config, sweep.store.snapshot().runs.values(), sweep.id)


def test_columns_and_kinds(sweep: Sweep) -> None:
    table = _table(sweep)
    assert table.columns[:5] == ("run_id", "seq", "state", "attempt", "metric")
    assert list(table.columns[15:21]) == PARAM_COLUMNS
    assert table.columns[21:] == (
        "summary.acc",
        "summary.epoch",
        "summary.loss",
        "summary.val.loss",
    )
    kinds = [table.kinds[c] for c in PARAM_COLUMNS]
    assert kinds == ["int", "float", "float", "str", "bool", "json"]
    assert table.kinds["summary.epoch"] == "int"
    assert table.kinds["summary.loss"] == "float"  # "nan" is a float, not text
    assert len(table.rows) == 6


def test_csv_round_trip(sweep: Sweep) -> None:
    buf = io.StringIO()
    write_csv(_table(sweep), buf)
    text = buf.getvalue()
    frame = pd.read_csv(io.StringIO(text))
    assert len(frame) == 6
    assert str(frame["seq"].dtype) == "int64"
    assert str(frame["param.bs"].dtype) == "int64"
    assert str(frame["param.lr"].dtype) == "float64"
    assert str(frame["param.mixed"].dtype) == "float64"
    assert str(frame["param.opt.nesterov"].dtype) == "bool"
    assert frame["param.opt.name"].tolist() == ["adam", "sgd", "sgd", "adam", "adam", "adam"]
    by_id = frame.set_index("run_id")
    for run in _finished(sweep):
        row = by_id.loc[run.id]
        assert row["state"] == "finished"
        assert row["metric"] == pytest.approx(run.metric)
        assert row["param.bs"] == run.params["bs"]
        assert row["param.lr"] == run.params["lr"]
        assert row["param.opt.nesterov"] == run.params["opt"]["nesterov"]
        assert json.loads(row["param.layers"]) == run.params["layers"]
        assert row["node"] == run.node
    assert math.isnan(by_id.loc["sw1-0004", "metric"])  # the failed run has no metric
    assert math.isnan(by_id.loc["sw1-0003", "summary.loss"])
    # The csv module sees ints written as ints and missing values as empty.
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["summary.epoch"] for r in rows] == ["1", "2", "3", "4", "", ""]
    assert [r["param.mixed"] for r in rows][:2] == ["1.0", "0.5"]
    assert rows[4]["exit_code"] == "2" and rows[5]["exit_code"] == ""


def test_json_round_trip(sweep: Sweep) -> None:
    buf = io.StringIO()
    write_json(_table(sweep), buf)
    records = json.loads(buf.getvalue())
    assert [r["run_id"] for r in records] == [f"sw1-{i:04d}" for i in range(6)]
    by_id = {r["run_id"]: r for r in records}
    for run in _finished(sweep):
        record = by_id[run.id]
        for column, value in (
            ("param.bs", run.params["bs"]),
            ("param.lr", run.params["lr"]),
            ("param.opt.name", run.params["opt"]["name"]),
            ("param.opt.nesterov", run.params["opt"]["nesterov"]),
            ("param.layers", run.params["layers"]),
            ("metric", run.metric),
            ("attempt", 1),
            ("gpus", run.gpus),
        ):
            assert record[column] == value
            assert type(record[column]) is type(value)
        assert isinstance(record["param.mixed"], float)  # 1 and 0.5 share a float column
        assert isinstance(record["summary.epoch"], int)
    assert by_id["sw1-0003"]["summary.loss"] is None  # JSON has no NaN
    assert by_id["sw1-0005"]["ended_at"] is None and by_id["sw1-0005"]["state"] == "running"
    frame = pd.read_json(io.StringIO(buf.getvalue()))
    assert str(frame["param.bs"].dtype) == "int64"


def test_json_writes_a_nan_inside_a_list_parameter_as_null(root: Path) -> None:
    raw = {"method": "grid", "parameters": {"w": {"values": [[0.1, math.nan]]}}}
    sweep = make_sweep(root, raw, sweep_id="nan")
    sweep.finish(sweep.claim({"w": [0.1, math.nan]}))
    buf = io.StringIO()
    write_json(export_table(sweep.store.config, sweep.store.snapshot().runs.values(), "nan"), buf)
    assert json.loads(buf.getvalue())[0]["param.w"] == [0.1, None]


def test_parquet_round_trip(sweep: Sweep, tmp_path: Path) -> None:
    path = tmp_path / "runs.parquet"
    write_parquet(_table(sweep), path)
    table = pq.read_table(path)
    schema = {f.name: f.type for f in table.schema}
    assert schema["param.bs"] == pa.int64()
    assert schema["param.lr"] == pa.float64()
    assert schema["param.opt.nesterov"] == pa.bool_()
    assert schema["param.opt.name"] == pa.string()
    assert schema["summary.epoch"] == pa.int64()
    assert schema["exit_code"] == pa.int64()
    assert table.schema.metadata[b"sweepherd.metric"] == b"acc"
    rows = {r["run_id"]: r for r in table.to_pylist()}
    for run in _finished(sweep):
        assert rows[run.id]["param.bs"] == run.params["bs"]
        assert rows[run.id]["param.lr"] == run.params["lr"]
        assert json.loads(rows[run.id]["param.layers"]) == run.params["layers"]
        assert rows[run.id]["metric"] == run.metric
    assert rows["sw1-0004"]["summary.epoch"] is None  # null, not 0
    assert rows["sw1-0004"]["exit_code"] == 2
    frame = pd.read_parquet(path, dtype_backend="numpy_nullable")
    assert str(frame["summary.epoch"].dtype) == "Int64"  # ints with missing values stay ints
    assert frame["summary.epoch"].isna().tolist() == [False] * 4 + [True] * 2


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, 2, None], "int"),
        ([1, 2.5], "float"),
        ([True, None], "bool"),
        (["a", "b"], "str"),
        (["a", 1], "str"),
        ([[1], 2], "json"),
        ([None, None], "float"),
        ([0.5, "inf", "-inf", "nan"], "float"),
        ([True, 1], "str"),  # a bool is not a number here
    ],
)
def test_infer_kind(values: list[Any], kind: str) -> None:
    assert infer_kind(values) == kind
