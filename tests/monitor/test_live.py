"""``sweepherd run``'s progress line: plain lines off a terminal; the journal read on change."""

from __future__ import annotations

import io

from rich.console import Console

from monitor.helpers import Sweep, opened_files
from sweepherd.monitor import ProgressView


def test_plain_progress_lines_and_no_rereading(sweep: Sweep) -> None:
    out = io.StringIO()
    view = ProgressView(sweep.store, Console(file=out, width=80), plain_every_s=0.0)
    view.update()
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    view.update()
    with opened_files(sweep.path) as opened:
        for _ in range(5):
            view.update()  # nothing changed: one stat each, no read
    assert opened == []
    sweep.finish(run, metric=0.5)
    view.close()
    assert out.getvalue().splitlines() == [
        "0/6 runs",
        "0/6 runs  1 running",
        "1/6 runs  1 finished  best loss 0.5",
    ]
