"""The run record's value helpers: what counts as a logged number, and a metric's range."""

from __future__ import annotations

import math

from sweepherd.runs import finite_number, logged_range, metric_number


def test_a_finite_number_is_a_number_as_wandbs_engine_counts_one() -> None:
    assert [finite_number(v) for v in (1, 0.5, -2)] == [1.0, 0.5, -2.0]
    for not_one in (True, None, "0.5", math.nan, math.inf, 10**400, [1]):
        assert finite_number(not_one) is None, not_one
    assert metric_number("0.5") == 0.5  # the summary value may be text (sweepherd.log's NaN)


def test_the_logged_range_takes_the_summary_value_too() -> None:
    assert logged_range([0.5, 0.2, 0.4], 0.4) == (0.2, 0.5)
    assert logged_range([], 0.7) == (0.7, 0.7)
    assert logged_range([0.3], None) == (0.3, 0.3)
    assert logged_range([], None) is None
