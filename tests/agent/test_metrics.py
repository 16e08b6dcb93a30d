"""Reading metrics live from sweepherd.log's file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweepherd.agent._metrics import JsonlSource, RunMetrics


def test_jsonl_reads_only_new_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    src = JsonlSource(path)
    assert src.read_new() == []  # no file yet
    path.write_text('{"loss": 1.0}\n{"loss": 0.5')  # second line still being written
    assert [u.values for u in src.read_new()] == [{"loss": 1.0}]
    with path.open("a") as f:
        f.write(', "acc": 0.7}\nnot json\n[1, 2]\n')
    assert [u.values for u in src.read_new()] == [{"loss": 0.5, "acc": 0.7}]
    assert src.n_bad_lines == 2
    assert src.read_new() == []


def test_run_metrics_history_and_summary(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [{"loss": 3}, {"loss": "nan"}, {"loss": 1.5, "note": "x"}, {"acc": True}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = RunMetrics([JsonlSource(path)])
    assert metrics.update() is True
    assert metrics.update() is False
    assert metrics.metric_history("loss") == [3.0, 1.5]  # NaN is not a value
    assert metrics.metric_value("loss") == 1.5
    assert metrics.metric_value("acc") is None  # a boolean is not a metric value
    assert metrics.metric_value("missing") is None
    assert metrics.plain_summary() == {"loss": 1.5, "note": "x", "acc": True}


def _jsonl(path: Path, *rows: dict[str, object]) -> JsonlSource:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return JsonlSource(path)


def test_the_metric_range_spans_history_and_summary(tmp_path: Path) -> None:
    rows = [{"loss": 0.5}, {"loss": "nan"}, {"loss": 0.2}, {"loss": 0.4}, {"acc": 1}]
    metrics = RunMetrics([_jsonl(tmp_path / "m.jsonl", *rows)])
    metrics.update()
    assert metrics.metric_value("loss") == 0.4  # the summary: the last value
    assert metrics.metric_range("loss") == (0.2, 0.5)  # what W&B's bayes learns from: 0.2
    assert metrics.metric_range("missing") is None
    summary_only = RunMetrics([_jsonl(tmp_path / "s.jsonl", {"loss": "0.5"})])
    summary_only.update()  # a numeric string is no iteration, but it is the summary value
    assert summary_only.metric_range("loss") == (0.5, 0.5)


def test_a_numeric_string_is_not_an_iteration_as_in_wandbs_hyperband(tmp_path: Path) -> None:
    metrics = RunMetrics([_jsonl(tmp_path / "m.jsonl", {"loss": "1.0"}, {"loss": 0.9})])
    metrics.update()
    assert metrics.metric_history("loss") == [0.9]


def test_a_value_logged_again_at_the_same_step_replaces_the_first(tmp_path: Path) -> None:
    rows = [
        {"_step": 0, "loss": 1.0},
        {"_step": 0, "acc": 0.1},  # another key at the same step: loss keeps its value
        {"_step": 0, "loss": 2.0},  # wandb keeps one row per step: the last value
        {"_step": 1, "loss": 3.0},
        {"_step": 0, "loss": 0.5},  # a lower step: a resumed attempt starting again
    ]
    metrics = RunMetrics([_jsonl(tmp_path / "m.jsonl", *rows)])
    metrics.update()
    assert metrics.metric_history("loss") == [2.0, 3.0, 0.5]
    assert metrics.metric_history("acc") == [0.1]


def test_a_key_logged_through_both_channels_counts_once(tmp_path: Path) -> None:
    both = [{"_step": i, "loss": 1.0 / (i + 1)} for i in range(3)]
    wandb_like = _jsonl(tmp_path / "a.jsonl", *both[:2])  # lagging behind
    client = _jsonl(tmp_path / "b.jsonl", *both, {"_step": 3, "acc": 0.5})
    metrics = RunMetrics([client, wandb_like])
    metrics.update()
    assert metrics.metric_history("loss") == [1.0, 0.5, 1.0 / 3]
    assert metrics.metric_history("acc") == [0.5]


def test_an_int_too_large_for_a_float_is_not_a_value(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"loss": 10**400}) + "\n" + json.dumps({"loss": 2}) + "\n")
    metrics = RunMetrics([JsonlSource(path)])
    metrics.update()
    assert metrics.metric_history("loss") == [2.0]
    assert metrics.metric_value("loss") == 2.0
    path.write_text(json.dumps({"loss": -(10**400)}) + "\n")
    fresh = RunMetrics([JsonlSource(path)])
    fresh.update()
    assert fresh.metric_value("loss") is None


def test_a_source_that_cannot_be_read_is_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.mkdir()  # reading it fails with IsADirectoryError
    good = tmp_path / "metrics.jsonl"
    good.write_text(json.dumps({"loss": 1.0}) + "\n")
    metrics = RunMetrics([JsonlSource(broken), JsonlSource(good)])
    with caplog.at_level(logging.WARNING, logger="sweepherd.agent"):
        assert metrics.update() is True
        assert metrics.update() is False
    assert metrics.metric_value("loss") == 1.0
    warnings = [r for r in caplog.records if "could not read a run's metrics" in r.message]
    assert len(warnings) == 1 and "broken.jsonl" in warnings[0].getMessage()


def test_client_log_round_trip_through_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    script = (
        "import math, sweepherd\n"
        "for i in range(3): sweepherd.log({'val_loss': 1.0 / (i + 1)})\n"
        "sweepherd.log({'bad': math.inf}, step=10)\n"
    )
    env = {**os.environ, "SWEEPHERD_METRICS_FILE": str(path)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True)
    metrics = RunMetrics([JsonlSource(path)])
    metrics.update()
    assert metrics.metric_history("val_loss") == [1.0, 0.5, 1 / 3]
    assert metrics.history["_step"] == [0, 1, 2, 10]
    assert metrics.summary["bad"] == "inf"


def test_client_log_outside_a_sweep_is_a_no_op(tmp_path: Path) -> None:
    script = "import sweepherd; sweepherd.log({'x': 1}); print(sweepherd.params({'lr': 1}))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPHERD_")}
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == "{'lr': 1}"
    assert list(tmp_path.iterdir()) == []


def test_wandbs_exit_record_counts_for_the_newest_attempts_log_only() -> None:
    """An earlier attempt's run that ended (its exit record) says nothing of this attempt's."""
    from sweepherd.wandb import MetricRow

    class Rows:
        def __init__(self, *batches: list[MetricRow]) -> None:
            self.batches = list(batches)

        def read_new(self) -> list[MetricRow]:
            return self.batches.pop(0) if self.batches else []

    earlier = [MetricRow({}, "start"), MetricRow({"loss": 1.0}, "history")]
    source = Rows(
        [*earlier, MetricRow({"exit_code": 0}, "exit"), MetricRow({}, "start")],
        [MetricRow({"loss": 0.5}, "history"), MetricRow({"exit_code": 1}, "exit")],
    )
    metrics = RunMetrics([source])
    metrics.update()
    assert metrics.wandb_exit_code is None  # attempt 1 ended; this one has not yet
    assert metrics.metric_value("loss") == 1.0 and "exit_code" not in metrics.summary
    metrics.update()
    assert metrics.wandb_exit_code == 1
