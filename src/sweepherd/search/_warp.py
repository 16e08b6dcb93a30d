"""The metric as the model sees it: the worse half of the runs compressed, the better half kept.

A Gaussian process standardises the values it is given. One diverged run (a loss of 1e4 among
losses near 0.3), or a long tail of poor settings, stretches that scale until every difference
among the good runs looks like noise, and the model stops resolving the region that matters.
So before the sampler sees them, values worse than the median ``m`` are put on a logarithmic
scale, ``v -> m + s * log1p((v - m) / s)``, and values at or better than the median are left as
they are. The scale ``s`` is twice the distance from the better quartile to the median: the
interquartile range the better half implies, so it stays the scale of the good runs even when
up to half of them diverged (the plain interquartile range would be set by the diverged ones).

The warp is monotone (the order of the runs, hence the best run and TPE's split of good and bad
trials, does not change), continuous with slope 1 at the median, and needs no parameter. What
it buys is measured by ``bench/search_quality.py`` (bench/README.md: with and without it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sweepherd.config._model import Goal


def compress_worse_half(values: Sequence[float], goal: Goal) -> list[float]:
    """``values`` with those worse than their median moved onto a log scale (see the module doc).

    Values must be finite. Fewer than three values, or values whose spread is zero, come back
    unchanged.
    """
    y = np.asarray(values, dtype=float)
    if y.size < 3:
        return [float(v) for v in y]
    sign = -1.0 if goal == "maximize" else 1.0  # worse = larger, in the minimising frame
    y = sign * y
    better_quartile, median = np.quantile(y, [0.25, 0.5])
    scale = 2.0 * float(median - better_quartile) or float(np.ptp(y))
    if scale <= 0.0:
        return [float(v) for v in sign * y]
    worse = y > median
    excess = y[worse] - median
    with np.errstate(over="ignore"):  # a scale so small that the ratio overflows a float
        ratio = excess / scale
    # log1p(d / s) = log(d) - log(s) once d / s is that large (and log1p(inf) is never used)
    big = np.isinf(ratio)
    compressed = median + scale * np.where(
        big, np.log(np.where(big, excess, 1.0)) - np.log(scale), np.log1p(ratio)
    )
    y[worse] = np.minimum(compressed, y[worse])  # log1p(x) <= x; keeps rounding from adding
    return [float(v) for v in sign * y]
