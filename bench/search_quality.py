"""Search quality: how close each Bayesian search gets to the optimum, with parallel agents.

Compares, in one run, sweepherd's ``bayes`` (through ``sweepherd.search.suggest``, runs passed
as sweepherd ``Run`` records, rebuilt on every call as the agent does), W&B's own bayes
(``sweeps.next_run``), Optuna's TPE (multivariate, constant liar), Optuna's GP sampler (needs
torch), and random search (sweepherd's, W&B's semantics), on three problems with a known
optimum:

- ``branin``: Branin-Hoo, 2-D, ``x1`` in [-5, 10], ``x2`` in [0, 15]; optimum 0.397887.
- ``hartmann6``: Hartmann 6-D on [0, 1]^6; optimum -3.32237.
- ``mixed5``: a 5-D space like a training run's: ``lr`` (log_uniform_values 1e-5..1),
  ``optimizer`` (categorical sgd/adam/rmsprop, each with its own best ``lr``), ``layers``
  (int_uniform 1..8), ``dropout`` (uniform 0..0.6) and ``warmup`` (uniform 0..1), where the
  best dropout depends on the warmup; optimum 0 at adam, lr 1e-3, 5 layers, warmup 0.6,
  dropout 0.28.

Parallel agents are simulated: 4 runs are always pending (suggested, result not yet back);
the oldest comes back first, and each new suggestion sees the other 3 as pending. Regret is
the best value found within the budget minus the optimum; the table shows its median over the
seeds. Latency is one suggestion for a sweep with N finished runs (random points of
``mixed5``) and 3 running, median of a few calls (the slow methods are timed once).

    .venv/bin/python bench/search_quality.py --jobs 2  # 10 seeds, budgets 50, 100: ~9 min
    .venv/bin/python bench/search_quality.py --quick   # smoke run: 2 seeds, budgets 20/30: ~1 min

(times on a quiet 2-vCPU machine; the 10-seed run is about an hour with ``--jobs 1`` on a busy
one).

``--jobs 2`` runs seeds in parallel processes; ``--methods``, ``--problems``, ``--seeds``
narrow the run. Methods that need a missing package (torch, sweeps) are skipped with a note.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported (Optuna's advice)

import numpy as np

from sweepherd.config import SweepConfig, parse_config
from sweepherd.runs import Run, RunState
from sweepherd.search import suggest

PARALLEL = 4  # runs pending at any time (parallel agents)
METRIC = "loss"


# -- problems ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    name: str
    parameters: Mapping[str, Any]  # W&B `parameters:`
    f: Callable[[Mapping[str, Any]], float]
    optimum: float


def _branin(p: Mapping[str, Any]) -> float:
    x1, x2 = float(p["x1"]), float(p["x2"])
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def _hartmann6(p: Mapping[str, Any]) -> float:
    x = np.array([float(p[f"x{i}"]) for i in range(1, 7)])
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


_BEST_LOG_LR = {"sgd": -1.0, "adam": -3.0, "rmsprop": -2.5}
_OPT_PENALTY = {"sgd": 0.3, "adam": 0.0, "rmsprop": 0.1}


def _mixed5(p: Mapping[str, Any]) -> float:
    opt = str(p["optimizer"])
    u = math.log10(float(p["lr"])) - _BEST_LOG_LR[opt]
    warmup = float(p["warmup"])
    return (
        0.25 * u**2
        + _OPT_PENALTY[opt]
        + 0.05 * (int(p["layers"]) - 5) ** 2
        + 5.0 * (float(p["dropout"]) - 0.1 - 0.3 * warmup) ** 2
        + 0.5 * (warmup - 0.6) ** 2
    )


PROBLEMS = {
    "branin": Problem(
        "branin",
        {"x1": {"min": -5.0, "max": 10.0}, "x2": {"min": 0.0, "max": 15.0}},
        _branin,
        0.397887357729738,
    ),
    "hartmann6": Problem(
        "hartmann6",
        {f"x{i}": {"min": 0.0, "max": 1.0} for i in range(1, 7)},
        _hartmann6,
        -3.322368011415515,
    ),
    "mixed5": Problem(
        "mixed5",
        {
            "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1.0},
            "optimizer": {"values": ["sgd", "adam", "rmsprop"]},
            "layers": {"min": 1, "max": 8},
            "dropout": {"min": 0.0, "max": 0.6},
            "warmup": {"min": 0.0, "max": 1.0},
        },
        _mixed5,
        0.0,
    ),
}


def wandb_config(problem: Problem, method: str) -> dict[str, Any]:
    return {
        "method": method,
        "metric": {"name": METRIC, "goal": "minimize"},
        "parameters": dict(problem.parameters),
    }


# -- methods: one session per (method, problem, seed) ----------------------------------------


class Session(Protocol):
    def ask(self) -> tuple[Any, dict[str, Any]]: ...

    def tell(self, key: Any, value: float) -> None: ...


class SweepherdSession:
    """sweepherd's search as the agent calls it: every run, rebuilt on every call."""

    def __init__(self, problem: Problem, seed: int, method: str = "bayes") -> None:
        self.config: SweepConfig = parse_config(wandb_config(problem, method))
        self.seed = seed
        self.runs: dict[str, Run] = {}

    def ask(self) -> tuple[Any, dict[str, Any]]:
        rng = np.random.default_rng([self.seed, len(self.runs)])  # as claim_next seeds it
        (params,) = suggest(self.config, list(self.runs.values()), 1, rng)
        key = f"r{len(self.runs)}"
        self.runs[key] = Run(id=key, params=params, state=RunState.RUNNING, seq=len(self.runs))
        return key, params

    def tell(self, key: Any, value: float) -> None:
        self.runs[key] = replace(self.runs[key], state=RunState.FINISHED, metric=value)


def _sweeps() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps
    return sweeps


class WandbSession:
    """W&B's engine: ``next_run`` over every run in W&B's wire format."""

    def __init__(self, problem: Problem, seed: int) -> None:
        self.sweeps = _sweeps()
        self.config = wandb_config(problem, "bayes")
        self.runs: list[Any] = []
        np.random.seed(seed)  # W&B's bayes draws from numpy's global generator

    def ask(self) -> tuple[Any, dict[str, Any]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = self.sweeps.next_run(self.config, self.runs)
        key = len(self.runs)
        self.runs.append(self.sweeps.SweepRun(name=f"r{key}", config=run.config, state="running"))
        return key, {k: _plain(v["value"]) for k, v in run.config.items()}

    def tell(self, key: Any, value: float) -> None:
        old = self.runs[key]
        self.runs[key] = self.sweeps.SweepRun(
            name=old.name,
            config=old.config,
            state="finished",
            summary_metrics={METRIC: value},
            history=[{METRIC: value}],
        )


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def optuna_space(problem: Problem) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    space: dict[str, Any] = {}
    for name, spec in problem.parameters.items():
        if "values" in spec:
            space[name] = CategoricalDistribution(spec["values"])
        elif isinstance(spec["min"], int):
            space[name] = IntDistribution(spec["min"], spec["max"])
        else:
            log = spec.get("distribution") == "log_uniform_values"
            space[name] = FloatDistribution(spec["min"], spec["max"], log=log)
    return space


class OptunaSession:
    """An Optuna study in one process, as Optuna users run it (ask/tell, trials kept)."""

    def __init__(self, problem: Problem, sampler: Any) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.study = optuna.create_study(sampler=sampler)
        self.space = optuna_space(problem)

    def ask(self) -> tuple[Any, dict[str, Any]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = self.study.ask(self.space)
        return trial, dict(trial.params)

    def tell(self, key: Any, value: float) -> None:
        self.study.tell(key, value)


def _tpe(seed: int) -> Any:
    from optuna.samplers import TPESampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TPESampler(seed=seed, multivariate=True, constant_liar=True)


def _gp(seed: int) -> Any:
    from optuna.samplers import GPSampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GPSampler(seed=seed)


#: name -> (session factory, packages it needs)
METHODS: dict[str, tuple[Callable[[Problem, int], Session], tuple[str, ...]]] = {
    "sweepherd": (lambda p, s: SweepherdSession(p, s, "bayes"), ()),
    "wandb": (WandbSession, ("sweeps",)),
    "optuna-tpe": (lambda p, s: OptunaSession(p, _tpe(s)), ()),
    "optuna-gp": (lambda p, s: OptunaSession(p, _gp(s)), ("torch",)),
    "random": (lambda p, s: SweepherdSession(p, s, "random"), ()),
}


# -- the experiment ---------------------------------------------------------------------------


def optimize(method: str, problem_name: str, seed: int, budget: int) -> tuple[list[float], float]:
    """Run one sweep of ``budget`` runs with 4 pending; the values in completion order, and
    the mean seconds per suggestion."""
    problem = PROBLEMS[problem_name]
    session = METHODS[method][0](problem, seed)
    pending: deque[tuple[Any, dict[str, Any]]] = deque()
    values: list[float] = []
    n_asked, ask_s = 0, 0.0
    while len(values) < budget:
        while len(pending) < PARALLEL and n_asked < budget:
            t0 = time.perf_counter()
            pending.append(session.ask())
            ask_s += time.perf_counter() - t0
            n_asked += 1
        key, params = pending.popleft()
        value = problem.f(params)
        session.tell(key, value)
        values.append(value)
    return values, ask_s / n_asked


def _task(args: tuple[str, str, int, int]) -> tuple[str, str, int, list[float], float]:
    method, problem, seed, budget = args
    values, ask_s = optimize(method, problem, seed, budget)
    return method, problem, seed, values, ask_s


def latency_s(method: str, n_finished: int, max_reps: int = 5) -> tuple[float, float]:
    """Median seconds of one suggestion with ``n_finished`` finished and 3 running runs: wall
    clock and this process's CPU time (less sensitive to other load on the machine)."""
    problem = PROBLEMS["mixed5"]
    random = parse_config(wandb_config(problem, "random"))
    points = suggest(random, [], n_finished + PARALLEL - 1, np.random.default_rng(n_finished))
    values = [problem.f(p) for p in points[:n_finished]]
    times: list[float] = []
    cpu: list[float] = []
    for rep in range(max_reps):
        call = _latency_call(method, problem, points, values, rep)
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if sum(times) > 5.0:  # slow methods: a few seconds of timing is enough
            break
    return statistics.median(times), statistics.median(cpu)


def _latency_call(
    method: str,
    problem: Problem,
    points: Sequence[dict[str, Any]],
    values: Sequence[float],
    rep: int,
) -> Callable[[], Any]:
    n = len(values)
    if method in ("sweepherd", "random"):
        config = parse_config(wandb_config(problem, "bayes" if method == "sweepherd" else method))
        runs = [
            Run(
                id=f"r{i}",
                params=p,
                seq=i,
                state=RunState.FINISHED if i < n else RunState.RUNNING,
                metric=values[i] if i < n else None,
            )
            for i, p in enumerate(points)
        ]
        rng = np.random.default_rng([rep, len(runs)])
        return lambda: suggest(config, runs, 1, rng)
    if method == "wandb":
        sweeps = _sweeps()
        config = wandb_config(problem, "bayes")
        wruns = [
            sweeps.SweepRun(
                name=f"r{i}",
                config={k: {"value": v} for k, v in p.items()},
                state="finished" if i < n else "running",
                summary_metrics={METRIC: values[i]} if i < n else {},
                history=[{METRIC: values[i]}] if i < n else [],
            )
            for i, p in enumerate(points)
        ]

        def call() -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return sweeps.next_run(config, wruns)

        return call
    import optuna
    from optuna.trial import TrialState, create_trial

    session = OptunaSession(problem, _tpe(rep) if method == "optuna-tpe" else _gp(rep))
    session.study.add_trials(
        create_trial(
            params=p,
            distributions=session.space,
            value=values[i] if i < n else None,
            state=TrialState.COMPLETE if i < n else TrialState.RUNNING,
        )
        for i, p in enumerate(points)
    )
    assert isinstance(session.study, optuna.Study)
    return session.ask


# -- report -----------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    ms = 1e3 * seconds
    return f"{ms:.0f}" if ms >= 10 else f"{ms:.1f}"


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    return f"{x:.4f}" if x >= 1e-4 else f"{x:.1e}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, budgets 20/30")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 10)")
    ap.add_argument(
        "--first-seed", type=int, default=0, help="seeds start here (held-out seeds: 30)"
    )
    ap.add_argument("--budgets", type=int, nargs="+", default=None, help="default 50 100")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument(
        "--latency",
        type=int,
        nargs="+",
        default=[10, 100, 1000],
        metavar="N",
        help="finished-run counts to time a suggestion at (default 10 100 1000)",
    )
    ap.add_argument("--no-latency", action="store_true", help="skip the latency table")
    ap.add_argument("--jobs", type=int, default=1, help="parallel processes for the sweeps")
    ap.add_argument("--no-quality", action="store_true", help="only the latency table")
    ap.add_argument("--save", help="write every sweep's values to this JSON file")
    ap.add_argument(
        "--reuse", nargs="+", default=[], help="take sweeps found in these --save files (dev)"
    )
    args = ap.parse_args(argv)
    n_seeds = args.seeds or (2 if args.quick else 10)
    budgets = sorted(args.budgets or ([20, 30] if args.quick else [50, 100]))
    latency_at = [] if args.no_latency else args.latency
    methods = [m for m in args.methods if _available(m)]

    t_start = time.perf_counter()
    problems = [] if args.no_quality else args.problems
    seeds = range(args.first_seed, args.first_seed + n_seeds)
    tasks = [(m, p, s, budgets[-1]) for p in problems for m in methods for s in seeds]
    done: list[tuple[str, str, int, list[float], float]] = []
    saved: dict[tuple[str, str, int], tuple[list[float], float]] = {}
    for path in args.reuse:
        with Path(path).open() as f:
            saved.update({(m, p, s): (v, a) for m, p, s, v, a in json.load(f)})
    if saved:
        for m, p, s, b in list(tasks):
            if (m, p, s) in saved and len(saved[(m, p, s)][0]) >= b:
                done.append((m, p, s, *saved[(m, p, s)]))
                tasks.remove((m, p, s, b))
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            done += list(pool.map(_task, tasks))
    else:
        done += [_task(t) for t in tasks]
    if args.save:
        with Path(args.save).open("w") as f:
            json.dump(done, f)
    results: dict[tuple[str, str], list[tuple[list[float], float]]] = {}
    for method, problem, _seed, values, ask_s in done:
        results.setdefault((problem, method), []).append((values, ask_s))
    t_quality = time.perf_counter() - t_start

    if problems:
        report_quality(results, problems, methods, budgets, seeds)

    if latency_at:
        t0 = time.perf_counter()
        print("\nSuggestion latency (mixed5, N finished + 3 running), ms wall (ms CPU):\n")
        print("| method | " + " | ".join(f"{n} finished" for n in latency_at) + " |")
        print("|" + "---|" * (len(latency_at) + 1))
        latency_s("sweepherd", 20)  # imports outside the timing
        for m in methods:
            cells = []
            for n in latency_at:
                wall, cpu = latency_s(m, n)
                cells.append(f"{_ms(wall)} ({_ms(cpu)})")
            print(f"| {m} | " + " | ".join(cells) + " |")
        t_latency = time.perf_counter() - t0
    else:
        t_latency = 0.0
    print(
        f"\n{n_seeds} seeds x {len(problems)} problems x {len(methods)} methods, budget "
        f"{budgets[-1]}: {t_quality:.0f} s; latency: {t_latency:.0f} s; jobs={args.jobs}"
    )
    return 0


def report_quality(
    results: Mapping[tuple[str, str], list[tuple[list[float], float]]],
    problems: Sequence[str],
    methods: Sequence[str],
    budgets: Sequence[int],
    seeds: range,
) -> None:
    """Print the regret table, the time per suggestion, and the target's verdict per cell."""
    print(
        f"\nMedian regret over {len(seeds)} seeds ({seeds.start}-{seeds.stop - 1}; "
        f"{PARALLEL} runs pending at a time), "
        f"best found minus optimum; lower is better\n"
    )
    header = "| problem | budget | " + " | ".join(methods) + " |"
    print(header)
    print("|" + "---|" * (len(methods) + 2))
    verdicts: list[str] = []
    for problem in problems:
        optimum = PROBLEMS[problem].optimum
        for budget in budgets:
            med = {}
            for m in methods:
                regrets = [min(v[:budget]) - optimum for v, _ in results[(problem, m)]]
                med[m] = statistics.median(regrets)
            print(f"| {problem} | {budget} | " + " | ".join(_fmt(med[m]) for m in methods) + " |")
            peers = {m: v for m, v in med.items() if m != "sweepherd"}
            if "sweepherd" in med and peers:
                best = min(peers, key=lambda m: peers[m])
                ok = med["sweepherd"] <= peers[best]
                verdicts.append(
                    f"{problem}@{budget}: sweepherd {_fmt(med['sweepherd'])} vs best peer "
                    f"{best} {_fmt(peers[best])} -> {'ok' if ok else 'WORSE'}"
                )
    print("\nMean seconds per suggestion during these sweeps:")
    for m in methods:
        per = [s for p in problems for _, s in results[(p, m)]]
        print(f"  {m:11s} {statistics.mean(per):.3f}")
    if verdicts:
        print("\nTarget (sweepherd at or below the best peer):")
        for v in verdicts:
            print("  " + v)


def _available(method: str) -> bool:
    missing = [m for m in METHODS[method][1] if importlib.util.find_spec(m) is None]
    if missing:
        print(f"skipping {method}: needs {', '.join(missing)}", file=sys.stderr)
    return not missing


if __name__ == "__main__":
    sys.exit(main())
