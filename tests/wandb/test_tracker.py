"""MetricTracker's folding rules, on event sequences shaped like wandb 0.31's (see test_txlog)."""

from __future__ import annotations

import math

import pytest

from sweepherd.wandb import (
    ConfigUpdate,
    HistoryRow,
    MetricTracker,
    Preempting,
    RunExited,
    RunStarted,
    SummaryUpdate,
    is_finite_number,
)


def started(run_id: str = "r", **config: object) -> RunStarted:
    return RunStarted(run_id, "p", "", "", "", config, resumed=False, start_time=None)


def logged(step: int, **values: object) -> list[SummaryUpdate | HistoryRow]:
    """What wandb 0.31 writes for one wandb.log: the derived summary, then the row."""
    return [SummaryUpdate(dict(values)), HistoryRow(dict(values), step)]


def test_define_metric_summary_falls_back_to_the_last_logged_number() -> None:
    t = MetricTracker()
    t.update([started(), SummaryUpdate({"acc": {"max": 3}}), HistoryRow({"acc": 3}, 0)])
    t.update([SummaryUpdate({"acc": {"max": 3}}), HistoryRow({"acc": 1}, 1)])
    assert t.summary("acc") == {"max": 3}
    assert t.value("acc") == 1.0
    assert t.history("acc") == [3.0, 1.0]


def test_logging_again_after_a_summary_override_wins() -> None:
    t = MetricTracker()
    t.update([started(), *logged(0, loss=2.0), SummaryUpdate({"loss": -1.0})])
    assert t.value("loss") == -1.0
    t.update(logged(1, loss=0.5))
    assert t.value("loss") == 0.5


def test_removed_summary_key_and_sdk_without_summary_records() -> None:
    t = MetricTracker()
    t.update([started(), HistoryRow({"loss": 0.3}, 0)])  # older SDKs: no derived summary
    assert t.summary("loss") == 0.3
    t.update([SummaryUpdate({"loss": 0.1}), SummaryUpdate({}, removed=("loss",))])
    assert t.summary("loss") == 0.3  # back to the last logged value


def test_names_nested_dotted_and_literal() -> None:
    t = MetricTracker()
    t.update([started(), *logged(0, **{"val/loss": 1.0, "a.b": 7})])
    t.update([SummaryUpdate({"test": {"acc": 0.9}})])
    assert t.value("val.loss") == 1.0
    assert t.value("a.b") == 7.0  # a key literally containing a dot
    assert t.summary("test/acc") == 0.9 and t.summary("test.acc") == 0.9
    assert t.summary("missing") is None and t.value("missing") is None


def test_non_finite_and_non_numbers_are_not_history() -> None:
    t = MetricTracker()
    for i, v in enumerate([1, math.nan, True, "x", None, math.inf, 2.5]):
        t.update(logged(i, m=v))
    assert t.history("m") == [1.0, 2.5]
    assert t.value("m") == 2.5
    assert [is_finite_number(v) for v in (1, 1.5, True, math.nan, "1")] == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_attempts_config_exit_and_preempting() -> None:
    t = MetricTracker(track=["loss"])
    t.update([started(lr=0.1, opt={"a": 1}), *logged(0, loss=3.0), Preempting()])
    assert t.preempting and t.exit is None
    t.update([started(opt={"b": 2}), *logged(0, loss=2.0), ConfigUpdate({"extra": 1})])
    assert not t.preempting and t.n_attempts == 2
    assert t.config == {"lr": 0.1, "opt": {"a": 1, "b": 2}, "extra": 1}
    t.update([RunExited(exit_code=0, runtime_s=3.0)])
    assert t.exit_code == 0 and t.history("loss") == [3.0, 2.0] and t.n_rows == 2
    assert t.summary_values["loss"] == 2.0
    with pytest.raises(KeyError):
        t.history("acc")
