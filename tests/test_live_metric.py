"""The live file: what an agent publishes of a running run's metric, and how others read it."""

from __future__ import annotations

import json
from pathlib import Path

from sweepherd.live_metric import LIVE_FILE, LiveMetric, live_document, read_live, read_running
from sweepherd.runs import Run, RunState


def test_a_live_document_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "live.json"
    path.write_bytes(live_document("s-0001", 2, "loss", [0.5, 0.2, 0.4], 0.4))
    doc = json.loads(path.read_text())
    assert (doc["run"], doc["attempt"], doc["n"]) == ("s-0001", 2, 3)
    live = read_live(path, "loss")
    assert live == LiveMetric([0.5, 0.2, 0.4], 0.4)
    assert live.range == (0.2, 0.5)


def test_the_range_counts_the_summary_value_and_only_finite_numbers(tmp_path: Path) -> None:
    path = tmp_path / "live.json"
    doc = {"metric": "loss", "history": [1.0, "2", True, None, 1e999, 3], "last": -1}
    path.write_text(json.dumps(doc).replace("1e+999", "Infinity"))
    live = read_live(path, "loss")
    assert live == LiveMetric([1.0, 3.0], -1.0)
    assert live.range == (-1.0, 3.0)
    assert LiveMetric([]).range is None


def test_another_metric_or_a_malformed_file_is_nothing_logged(tmp_path: Path) -> None:
    path = tmp_path / "live.json"
    path.write_bytes(live_document("s-0001", 1, "acc", [0.5], 0.5))
    assert read_live(path, "loss") == LiveMetric([])
    path.write_text('["not", "a", "document"]')
    assert read_live(path, "loss") == LiveMetric([])
    path.write_text('{"metric": "loss", "history": 3}')
    assert read_live(path, "loss") == LiveMetric([])


def test_a_missing_or_half_written_file_cannot_be_read_yet(tmp_path: Path) -> None:
    path = tmp_path / "live.json"
    assert read_live(path, "loss") is None
    path.write_text('{"metric": "loss", "hist')
    assert read_live(path, "loss") is None


def test_only_running_runs_with_a_readable_file_are_read(tmp_path: Path) -> None:
    runs = [
        Run("a", {}, RunState.RUNNING),
        Run("b", {}, RunState.RUNNING),  # no file yet
        Run("c", {}, RunState.FINISHED),  # its file is left as it was: not read
    ]
    for run_id in ("a", "c"):
        (tmp_path / run_id).mkdir()
        doc = live_document(run_id, 1, "loss", [0.5, 0.3], 0.3)
        (tmp_path / run_id / LIVE_FILE).write_bytes(doc)
    assert read_running(runs, lambda run_id: tmp_path / run_id, "loss") == {
        "a": LiveMetric([0.5, 0.3], 0.3)
    }


def test_the_latest_value_is_the_last_logged_else_the_summary() -> None:
    assert LiveMetric([0.5, 0.3], 0.9).latest == 0.3
    assert LiveMetric([], 0.9).latest == 0.9
    assert LiveMetric([]).latest is None
