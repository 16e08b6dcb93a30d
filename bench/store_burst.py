"""Burst benchmark of the sweep directory against Optuna's JournalFileBackend, in the same run.

K worker processes start at once on one sweep of N instant runs (each run spawns ``sleep 0``).
For each K this prints claims/s (runs completed per second of the burst), the p50/p95 claim
latency (from asking for a run to having one, parameters included), errors, and lost and
duplicated runs, counted afterwards from the sweep's own records, for:

- sweepherd (``--mode claim``, default): each worker loops ``claim_next`` (which also records
  the previous run's result in the same lock hold) -> ``sleep 0`` -> next claim, exactly the store
  path the agent uses; ``--mode agent`` instead starts K real ``sweepherd agent`` processes on a
  sweep whose command is ``sleep 0`` and reads the figures back from the journal.
- Optuna: ``JournalStorage(JournalFileBackend(path))``; each worker loops ``study.ask()`` +
  ``trial.suggest_int`` (latency) -> ``sleep 0`` -> ``study.tell``, N/K trials each.

Workers are forked after the imports and wait on one barrier, so the clock starts when all K are
ready; interpreter start-up is not measured for either side.

    .venv/bin/python bench/store_burst.py                  # K = 16, 64, 256
    .venv/bin/python bench/store_burst.py --k 64 --repeat 3
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: forked workers need no BLAS

import argparse
import contextlib
import json
import multiprocessing as mp
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from sweepherd.agent._claim import claim_next
from sweepherd.config import parse_config
from sweepherd.runs import RunState
from sweepherd.store import RunResult, SweepStore, create_sweep, open_sweep

SLEEP = shutil.which("sleep") or "/bin/sleep"


@dataclass
class Figures:
    """One side's figures for one K."""

    name: str
    k: int
    n: int
    wall_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    completed: int = 0  # runs recorded as finished/complete, counted from the storage
    lost: int = 0  # runs that should exist and are not recorded complete
    duplicated: int = 0  # runs claimed twice, or points/trials recorded twice
    cpu_s: float = 0.0  # CPU time of the workers (and their sleep 0) during the burst

    @property
    def per_s(self) -> float:
        return self.completed / self.wall_s if self.wall_s else 0.0

    def pct_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- sweepherd -------------------------------------------------------------------------------------


def _grid_config(n: int, command: list[str] | None = None) -> Any:
    raw: dict[str, Any] = {
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"values": list(range(n))}},
    }
    if command is None:
        raw["program"] = "unused.py"
    else:
        raw["command"] = command
    return parse_config(raw)


def _sweep_worker(path: str, idx: int, barrier: Any, out: Any) -> None:
    report: dict[str, Any] = {"claims": [], "lat": [], "errors": []}
    try:
        store = open_sweep(Path(path), Path(path).parent)
        agent = f"w{idx}"
        _ = store.config
        store.heartbeat(agent, pid=os.getpid())
        stop = threading.Event()
        beat = threading.Thread(target=_beat, args=(store, agent, stop), daemon=True)
        beat.start()
        barrier.wait()
        cpu0 = _cpu_s()
        results: list[RunResult] = []
        n_failures = 0
        while True:
            t0 = time.perf_counter()
            try:
                claim = claim_next(store, agent_id=agent, results=results)
            except Exception as exc:  # a benchmark counts errors instead of dying
                report["errors"].append(f"{type(exc).__name__}: {exc}")
                n_failures += 1
                if n_failures > 20:
                    break
                time.sleep(0.05)
                continue
            t1 = time.perf_counter()
            results = []
            if claim.run is None:
                break
            run = claim.run
            report["lat"].append(t1 - t0)
            report["claims"].append([run.id, run.attempt, run.params["x"]])
            code = subprocess.run([SLEEP, "0"], check=False).returncode
            state = RunState.FINISHED if code == 0 else RunState.FAILED
            results = [RunResult(run.id, run.attempt, state, exit_code=code)]
        stop.set()
        store.heartbeat(agent, state="exited")
        report["cpu_s"] = _cpu_s() - cpu0
    except Exception:
        report["errors"].append(traceback.format_exc(limit=3))
    report["t_end"] = time.time()
    out.put(report)


def _cpu_s() -> float:
    """CPU seconds used by this process and its reaped children (the ``sleep 0`` runs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _beat(store: SweepStore, agent: str, stop: threading.Event) -> None:
    while not stop.wait(5.0):
        with contextlib.suppress(Exception):
            store.heartbeat(agent, pid=os.getpid())


def _run_sweepherd(root: Path, k: int, n: int) -> Figures:
    store = create_sweep(root / "sweepherd", _grid_config(n))
    reports, t_go = _burst(_sweep_worker, str(store.path), k)
    fig = Figures("sweepherd", k, n)
    fig.wall_s = max(r["t_end"] for r in reports) - t_go
    claims = [tuple(c) for r in reports for c in r["claims"]]
    fig.latencies_s = [x for r in reports for x in r["lat"]]
    fig.errors = [e for r in reports for e in r["errors"]]
    fig.cpu_s = sum(r.get("cpu_s", 0.0) for r in reports)
    snap = SweepStore(store.path, store.meta).snapshot()
    finished = [r for r in snap.runs.values() if r.state is RunState.FINISHED]
    fig.completed = len(finished)
    fig.lost = n - len({r.params["x"] for r in finished})
    fig.duplicated = _duplicates([(c[0], c[1]) for c in claims]) + _duplicates(
        [r.params["x"] for r in snap.runs.values()]
    )
    return fig


def _duplicates(items: list[Any]) -> int:
    return sum(count - 1 for count in Counter(items).values() if count > 1)


# -- sweepherd, real agents ----------------------------------------------------------------------


def _run_agents(root: Path, k: int, n: int) -> Figures:
    """K real ``sweepherd agent`` processes; figures read back from the journal."""
    store = create_sweep(root / "agents", _grid_config(n, command=[SLEEP, "0"]))
    exe = str(Path(sys.executable).with_name("sweepherd"))
    argv = [exe, "agent", str(store.path), "--quiet", "--wandb-mode", "disabled"]
    cpu0 = _children_cpu_s()
    procs = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(k)
    ]
    errors = []
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            errors.append(f"exit {proc.returncode}: {err.strip()[-300:]}")
    events = [json.loads(line) for line in store.journal_path.read_text().splitlines()]
    fig = Figures("sweepherd agent", k, n)
    fig.errors = errors
    # Latency: from an agent's previous event (its start, or its previous run's end) to its
    # next claim, as recorded in the journal (the agent reports and claims in two transactions).
    last_t: dict[str, float] = {}
    holder: dict[str, str] = {}
    claims = []
    for ev in events:
        if ev["e"] == "agent" and ev["event"] == "start":
            last_t[ev["agent"]] = ev["t"]
        elif ev["e"] == "claim":
            claims.append((ev["run"], ev["attempt"]))
            holder[ev["run"]] = ev["agent"]
            if ev["agent"] in last_t:
                fig.latencies_s.append(ev["t"] - last_t.pop(ev["agent"]))
        elif ev["e"] == "end" and ev["run"] in holder:
            last_t[holder[ev["run"]]] = ev["t"]
    snap = SweepStore(store.path, store.meta).snapshot()
    finished = [r for r in snap.runs.values() if r.state is RunState.FINISHED]
    fig.completed = len(finished)
    fig.lost = n - len({r.params["x"] for r in finished})
    fig.duplicated = _duplicates(claims) + _duplicates([r.params["x"] for r in snap.runs.values()])
    # From the first agent's start (its interpreter is up) to the last event: interpreter
    # start-up is left out, as for the forked workers; CPU includes it (see the README).
    starts = [ev["t"] for ev in events if ev["e"] == "agent" and ev["event"] == "start"]
    fig.wall_s = max(ev["t"] for ev in events) - min(starts)
    fig.cpu_s = _children_cpu_s() - cpu0
    return fig


def _children_cpu_s() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


# -- optuna ----------------------------------------------------------------------------------------


def _optuna_worker(path: str, idx: int, barrier: Any, out: Any, n_each: int, n: int) -> None:
    report: dict[str, Any] = {"trials": [], "lat": [], "errors": []}
    try:
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # not its lock-wait warnings
        storage = JournalStorage(JournalFileBackend(path))
        study = optuna.load_study(
            study_name="burst", storage=storage, sampler=optuna.samplers.RandomSampler(seed=idx)
        )
        barrier.wait()
        cpu0 = _cpu_s()
        for _ in range(n_each):
            try:
                t0 = time.perf_counter()
                trial = study.ask()
                x = trial.suggest_int("x", 0, n - 1)
                t1 = time.perf_counter()
                code = subprocess.run([SLEEP, "0"], check=False).returncode
                study.tell(trial, float(x) if code == 0 else None)
            except Exception as exc:
                report["errors"].append(f"{type(exc).__name__}: {exc}")
                continue
            report["lat"].append(t1 - t0)
            report["trials"].append(trial.number)
        report["cpu_s"] = _cpu_s() - cpu0
    except Exception:
        report["errors"].append(traceback.format_exc(limit=3))
    report["t_end"] = time.time()
    out.put(report)


def _run_optuna(root: Path, k: int, n: int) -> Figures:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    path = root / "optuna.log"
    optuna.create_study(study_name="burst", storage=JournalStorage(JournalFileBackend(str(path))))
    n_each = n // k
    reports, t_go = _burst(_optuna_worker, str(path), k, n_each, n)
    fig = Figures("optuna journal", k, n_each * k)
    fig.wall_s = max(r["t_end"] for r in reports) - t_go
    fig.latencies_s = [x for r in reports for x in r["lat"]]
    fig.errors = [e for r in reports for e in r["errors"]]
    fig.cpu_s = sum(r.get("cpu_s", 0.0) for r in reports)
    trials = optuna.load_study(
        study_name="burst", storage=JournalStorage(JournalFileBackend(str(path)))
    ).trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    fig.completed = len(complete)
    fig.lost = fig.n - len({t.number for t in complete})
    fig.duplicated = _duplicates([t for r in reports for t in r["trials"]]) + _duplicates(
        [t.number for t in trials]
    )
    return fig


# -- the burst -----------------------------------------------------------------------------------


def _burst(target: Any, path: str, k: int, *extra: Any) -> tuple[list[dict[str, Any]], float]:
    """Fork K workers, release them together, return their reports and the start time."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(k + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(path, i, barrier, out, *extra)) for i in range(k)]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=600)
    t_go = time.time()
    reports = [out.get(timeout=1800) for _ in procs]
    for proc in procs:
        proc.join()
    return reports, t_go


def _row(fig: Figures, ref: Figures | None) -> str:
    ratio = f"{fig.per_s / ref.per_s:5.1f}x" if ref is not None and ref.per_s else "     "
    return (
        f"{fig.k:>4} {fig.name:<16} {fig.completed:>5}/{fig.n:<5} {fig.wall_s:7.2f} "
        f"{fig.per_s:9.1f} {ratio} {fig.pct_ms(0.5):9.1f} {fig.pct_ms(0.95):9.1f} "
        f"{len(fig.errors):>6} {fig.lost:>5} {fig.duplicated:>5} "
        f"{1000 * fig.cpu_s / max(fig.completed, 1):8.1f}"
    )


HEADER = (
    "   K side             done/N     wall_s  claims/s ratio   p50_ms    p95_ms errors  lost   dup"
    " cpu_ms/run"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[16, 64, 256], help="worker counts")
    parser.add_argument("--n", type=int, default=None, help="runs per burst (default max(256, 4K))")
    parser.add_argument("--mode", choices=["claim", "agent", "both"], default="claim")
    parser.add_argument("--no-optuna", action="store_true", help="skip the Optuna side")
    parser.add_argument("--repeat", type=int, default=1, help="bursts per K and side")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files (a tmp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs, {platform.platform()}, Python "
        f"{platform.python_version()}, optuna {optuna.__version__}"
    )
    print(HEADER)
    rows: list[dict[str, Any]] = []
    for k in args.k:
        n = args.n or max(256, 4 * k)
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(dir=args.dir, prefix="store_burst.") as tmp:
                root = Path(tmp)
                figs: list[Figures] = []
                ref = None
                if not args.no_optuna:
                    ref = _run_optuna(root, k, n)
                    figs.append(ref)
                if args.mode in ("claim", "both"):
                    figs.append(_run_sweepherd(root, k, n))
                if args.mode in ("agent", "both"):
                    figs.append(_run_agents(root, k, n))
                for fig in figs:
                    print(_row(fig, ref if fig is not ref else None), flush=True)
                    for err in fig.errors[:3]:
                        print(f"     error: {err.strip()}")
                    rows.append(
                        {
                            "k": k,
                            "side": fig.name,
                            "n": fig.n,
                            "completed": fig.completed,
                            "wall_s": fig.wall_s,
                            "per_s": fig.per_s,
                            "p50_ms": fig.pct_ms(0.5),
                            "p95_ms": fig.pct_ms(0.95),
                            "errors": len(fig.errors),
                            "lost": fig.lost,
                            "duplicated": fig.duplicated,
                            "cpu_ms_per_run": 1000 * fig.cpu_s / max(fig.completed, 1),
                            "ratio": fig.per_s / ref.per_s if ref and fig is not ref else None,
                        }
                    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
