"""The warp of the metric the sampler sees: worse half compressed, order and better half kept."""

from __future__ import annotations

import statistics

import hypothesis.strategies as st
import pytest
from hypothesis import example, given

from sweepherd.search._warp import compress_worse_half

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@given(st.lists(finite, min_size=1, max_size=60), st.sampled_from(["minimize", "maximize"]))
def test_the_order_of_the_runs_is_kept(values, goal):
    warped = compress_worse_half(values, goal)
    assert len(warped) == len(values)
    for a, wa in zip(values, warped, strict=True):
        for b, wb in zip(values, warped, strict=True):
            if a < b:
                assert wa <= wb
            if a == b:
                assert wa == wb


@given(st.lists(finite, min_size=3, max_size=60))
def test_values_at_or_better_than_the_median_are_untouched(values):
    median = statistics.median(values)
    warped = compress_worse_half(values, "minimize")
    for v, w in zip(values, warped, strict=True):
        if v <= median:
            assert w == v
        else:
            assert median <= w <= v


@given(st.lists(finite, min_size=1, max_size=40))
@example([0.0, 0.0, -1.0, -5e-324])  # a subnormal scale: the ratio overflows a float
def test_maximize_mirrors_minimize(values):
    up = compress_worse_half(values, "maximize")
    down = compress_worse_half([-v for v in values], "minimize")
    assert up == [-v for v in down]


def test_a_diverged_run_no_longer_dwarfs_the_good_ones():
    good = [0.30, 0.31, 0.33, 0.36, 0.40, 0.45, 0.52, 0.60, 0.71]
    warped = compress_worse_half([*good, 1e4], "minimize")
    spread = max(good) - min(good)
    assert warped[:5] == good[:5]  # the better half as it was
    assert warped[-1] - min(good) < 10 * spread  # was 25,000 spreads away
    assert warped[-1] > max(warped[:-1])  # still the worst


def test_the_warp_is_smooth_at_the_median():
    values = [float(v) for v in range(11)]  # median 5, better quartile 2.5: scale 5
    warped = compress_worse_half(values, "minimize")
    assert warped[6] == pytest.approx(6.0, abs=0.1)  # slope ~1 next to the median
    assert warped[10] == pytest.approx(5 + 5 * 0.6931, abs=1e-3)  # 5 + 5·ln 2


def test_the_scale_is_the_good_runs_even_when_many_diverged():
    good = [0.30, 0.32, 0.34, 0.36, 0.38, 0.40]
    warped = compress_worse_half([*good, *[1e6] * 4], "minimize")  # 40% diverged
    assert warped[:5] == good[:5]  # at or better than the median (0.39)
    assert 0.4 < warped[-1] < 3.0  # 0.39 + 0.09·ln(1e7): the good runs' scale, not 1e6's


@pytest.mark.parametrize("values", [[], [3.0], [1.0, 9.0], [2.0] * 7])
def test_too_few_or_equal_values_come_back_unchanged(values):
    assert compress_worse_half(values, "minimize") == values
