"""How long grid search takes to find the next point of a big grid that is mostly taken.

A 10,000-point grid (4 parameters) with 9,000 runs already claimed, in mixed states; the free
points are the last 1,000 in W&B's order, so each call walks almost the whole grid.

    .venv/bin/python bench/search_grid.py
"""

from __future__ import annotations

import statistics
import time

from sweepherd.config._model import Param, SweepConfig
from sweepherd.runs import Run, RunState
from sweepherd.search import suggest


def main() -> None:
    params = (
        Param(("a",), "int_uniform", min=0, max=9),
        Param(("b",), "categorical", values=tuple(f"v{i}" for i in range(10))),
        Param(("c",), "q_uniform", min=0, max=1, q=0.1),
        Param(("opt", "d"), "categorical", values=tuple(range(10))),
        Param(("seed",), "constant", value=1),
    )
    config = SweepConfig(raw={}, method="grid", parameters=params)
    points = suggest(config, [], n=20_000)
    states = list(RunState)
    runs = [
        Run(id=f"r{i}", params=p, state=states[i % len(states)], seq=i)
        for i, p in enumerate(points[:9000])
    ]
    print(f"grid of {len(points)} points, {len(runs)} runs claimed")
    for n in (1, 8):
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            out = suggest(config, runs, n=n)
            times.append(time.perf_counter() - t0)
        assert out == points[9000 : 9000 + n]
        print(
            f"suggest(n={n}): median {1e3 * statistics.median(times):.1f} ms,"
            f" min {1e3 * min(times):.1f} ms"
        )


if __name__ == "__main__":
    main()
