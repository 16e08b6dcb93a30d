"""What one frame of ``sweepherd watch`` costs on a busy sweep (issue #7: do not load the FS).

A sweep with 1,000 ended runs and 64 runs in flight, each in-flight run with a 2,000-row
``metrics.jsonl``. Measures, per frame: wall time, ``stat`` calls, files opened and bytes
read (the collector's own counters; the journal, read by the store, is reported apart) for
the first frame, idle frames (nothing changed), frames where every running run logged one
row, and a frame after the journal grew; plus the time to render the model at 80 columns.

    .venv/bin/python bench/watch_frames.py
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from sweepherd.config import parse_config
from sweepherd.monitor import WatchCollector, render_watch
from sweepherd.store import create_sweep

N_ENDED, N_RUNNING, N_ROWS = 1000, 64, 2000


def _frame(collector: WatchCollector) -> tuple[float, int, int, int, int]:
    before, journal = collector.stats.copy(), collector.n_journal_reads
    t0 = time.perf_counter()
    collector.collect()
    dt = time.perf_counter() - t0
    s = collector.stats
    return (
        dt,
        s.n_stat - before.n_stat,
        s.n_open - before.n_open,
        s.n_bytes - before.n_bytes,
        collector.n_journal_reads - journal,
    )


def _report(label: str, frames: list[tuple[float, int, int, int, int]]) -> None:
    ms = statistics.median(f[0] for f in frames) * 1000
    stat, opened, read, journal = frames[-1][1:]
    print(
        f"{label:<28} {ms:8.2f} ms  {stat:4d} stat  {opened:3d} open  {read:8d} bytes"
        f"  journal read: {'yes' if journal else 'no'}"
    )


def main() -> None:
    raw = {
        "method": "random",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"lr": {"min": 0.0, "max": 1.0}, "bs": {"values": [16, 32, 64]}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = create_sweep(Path(tmp), parse_config(raw), sweep_id="bench")
        with store.transaction() as txn:
            for i in range(N_ENDED):
                run = txn.claim_new({"lr": i / N_ENDED, "bs": 32}, agent="a", node=f"n{i % 16}")
                txn.finish(run.id, 1, "finished", exit_code=0, metric=i / N_ENDED)
        running = []
        with store.transaction() as txn:
            for i in range(N_RUNNING):
                running.append(txn.claim_new({"lr": 0.5, "bs": 16}, agent="a", node=f"n{i % 16}"))
        for run in running:
            rows = "".join(
                json.dumps({"_step": s, "_timestamp": 0.0, "loss": 1.0 / (s + 1)}) + "\n"
                for s in range(N_ROWS)
            )
            (store.run_dir(run.id) / "metrics.jsonl").write_text(rows)
        collector = WatchCollector(store)
        print(f"{N_ENDED} ended runs, {N_RUNNING} running with {N_ROWS} rows each\n")
        _report("first frame", [_frame(collector)])
        _report("idle frame", [_frame(collector) for _ in range(20)])
        grown = []
        for k in range(5):
            for run in running:
                with (store.runs_dir / run.id / "metrics.jsonl").open("a") as f:
                    f.write(json.dumps({"_step": N_ROWS + k, "loss": 0.1}) + "\n")
            grown.append(_frame(collector))
        _report("every run logged a row", grown)
        with store.transaction() as txn:
            txn.finish(running[0].id, 1, "finished", exit_code=0, metric=0.01)
        _report("journal grew (a run ended)", [_frame(collector)])
        console = Console(file=open("/dev/null", "w"), width=80, force_terminal=True)  # noqa: PTH123, SIM115
        model = collector.collect()
        t0 = time.perf_counter()
        for _ in range(20):
            console.print(render_watch(model))
        print(f"\nrender at 80 columns       {(time.perf_counter() - t0) / 20 * 1000:8.2f} ms")


if __name__ == "__main__":
    main()
