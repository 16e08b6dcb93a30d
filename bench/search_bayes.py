"""Latency of bayes suggestions as the sweep grows (issue #5 targets < 50 ms at 1,000 runs).

Five parameters of mixed kinds (log-uniform, uniform, int, categorical, q_normal via the
CDF space), N finished runs with a metric and 8 running runs; the study is rebuilt from the
runs on every call, as the agent does.

    .venv/bin/python bench/search_bayes.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from sweepherd.config._model import Metric, Param, SweepConfig
from sweepherd.runs import Run, RunState
from sweepherd.search import suggest

PARAMS = (
    Param(("lr",), "log_uniform_values", min=1e-5, max=1.0),
    Param(("dropout",), "uniform", min=0.0, max=0.5),
    Param(("layers",), "int_uniform", min=1, max=8),
    Param(("opt", "name"), "categorical", values=("sgd", "adam", "adamw")),
    Param(("opt", "wd"), "q_normal", mu=0.0, sigma=1.0, q=0.1),
)


def _runs(n_finished: int, rng: np.random.Generator) -> list[Run]:
    random = SweepConfig(raw={}, method="random", parameters=PARAMS)
    points = suggest(random, [], n=n_finished + 8, rng=rng)
    return [
        Run(
            id=f"r{i}",
            params=p,
            state=RunState.FINISHED if i < n_finished else RunState.RUNNING,
            metric=float(rng.normal()) if i < n_finished else None,
            seq=i,
        )
        for i, p in enumerate(points)
    ]


def main() -> None:
    config = SweepConfig(raw={}, method="bayes", parameters=PARAMS, metric=Metric("loss"))
    rng = np.random.default_rng(0)
    suggest(config, _runs(20, rng), n=1, rng=rng)  # import optuna and scipy outside the timing
    for n_finished in (10, 100, 1000, 3000):
        runs = _runs(n_finished, rng)
        for n in (1, 8):
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                suggest(config, runs, n=n, rng=rng)
                times.append(time.perf_counter() - t0)
            print(
                f"{n_finished:5d} finished + 8 running, n={n}:"
                f" median {1e3 * statistics.median(times):6.1f} ms, min {1e3 * min(times):6.1f} ms"
            )


if __name__ == "__main__":
    main()
