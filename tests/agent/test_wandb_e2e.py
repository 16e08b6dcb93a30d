"""Unchanged wandb scripts under real `sweepherd agent` processes, with the real wandb offline.

The script (``wandb_trial.py``) calls ``wandb.init(config=defaults)``, reads ``wandb.config``
and calls ``wandb.log`` like W&B's own examples; it knows nothing of sweepherd. Nothing is
stood in for: wandb writes its offline runs, and the agent reads their transaction logs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.agents import agent_argv, proc_state, wait_for
from sweepherd.agent._agent import NOTHING_LOGGED
from sweepherd.config import parse_config
from sweepherd.runs import Run, RunState
from sweepherd.store import SweepStore, create_sweep, open_sweep
from sweepherd.wandb import (
    MetricTracker,
    RunLogReader,
    TransactionLogReader,
    find_run_logs,
    plan_sync,
)

pytest.importorskip("wandb")
pytestmark = pytest.mark.wandb

TRIAL = Path(__file__).with_name("wandb_trial.py")
FAST = ("-q", "--heartbeat", "0.3", "--lost-after", "5", "--stop-grace", "5")
#: What the script's wandb.init(config=...) gets when the sweep gives nothing.
DEFAULTS = {
    "lr": 0.001,
    "epochs": 3,
    "mode": "ok",
    "optimizer": {"name": "sgd", "momentum": 0.0, "nesterov": False},
    "untouched": "default",
}
SWEPT = {
    "lr": {"values": [0.1]},
    "optimizer": {"parameters": {"name": {"value": "adam"}, "momentum": {"values": [0.9]}}},
}
#: The val_loss values the script logs with lr=0.1 and 3 epochs.
LOSSES = [0.1 * 3, 0.1 * 2, 0.1 * 1]


def wandb_offline_env(folder: Path) -> dict[str, str]:
    """The agent's environment: no W&B settings of the user's, wandb's own files in ``folder``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SWEEPHERD_"))}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "WANDB_CONFIG_DIR": str(folder / ".wandb-config"),
            "WANDB_CACHE_DIR": str(folder / ".wandb-cache"),
            "WANDB_DATA_DIR": str(folder / ".wandb-data"),
            # Offline runs never talk to a server; should one try, it gets a refused port.
            "WANDB_BASE_URL": "http://127.0.0.1:9",
        }
    )
    return env


class Agents:
    """Starts real `sweepherd agent` processes for sweeps of ``wandb_trial.py``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []
        shutil.copy(TRIAL, folder / "train.py")

    def sweep(
        self, parameters: Mapping[str, Any], metric: str = "val_loss", **raw: Any
    ) -> SweepStore:
        config = {
            "program": "train.py",
            "method": "grid",
            "name": "wandb-e2e",
            "project": "sweepherd-tests",
            "metric": {"name": metric, "goal": "minimize"},
            "parameters": {**SWEPT, **parameters},
            **raw,
        }
        return create_sweep(
            self.folder / "sweeps",
            parse_config(config),
            extra_meta={"workdir": str(self.folder)},
        )

    def start(self, store: SweepStore, *args: str) -> subprocess.Popen[bytes]:
        log = (self.folder / f"agent-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            agent_argv(store, *FAST, *args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=wandb_offline_env(self.folder),
        )
        log.close()
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    started = Agents(tmp_path)
    yield started
    started.close()


def runs_of(store: SweepStore) -> list[Run]:
    return list(open_sweep(store.path, store.path.parent).snapshot().runs.values())


def printed_config(store: SweepStore, run: Run) -> dict[str, Any]:
    """The ``wandb.config`` the script printed (its first ``CONFIG`` line)."""
    for line in (store.run_dir(run.id) / "stdout.log").read_text().splitlines():
        if line.startswith("CONFIG "):
            return dict(json.loads(line[len("CONFIG ") :]))
    raise AssertionError(f"run {run.id} printed no CONFIG line")


def tracked(store: SweepStore, run: Run) -> MetricTracker:
    """The run's transaction logs (every attempt), read after the fact."""
    tracker = MetricTracker()
    tracker.update(RunLogReader(store.run_dir(run.id), run.id).read_new())
    return tracker


def live(store: SweepStore) -> dict[str, Any] | None:
    paths = list((store.path / "runs").glob("*/live.json"))
    return json.loads(paths[0].read_text()) if paths else None


def expected_config(mode: str) -> dict[str, Any]:
    # wandb 0.31 lays the sweep's values over the defaults, nested dicts key by key.
    return {
        **DEFAULTS,
        "lr": 0.1,
        "mode": mode,
        "optimizer": {"name": "adam", "momentum": 0.9, "nesterov": False},
    }


# -- one sweep, one run per behaviour ---------------------------------------------------------


@dataclass
class Behaviours:
    store: SweepStore
    runs: dict[str, Run]  # mode -> run


@pytest.fixture(scope="module")
def behaviours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Behaviours]:
    """A sweep with one run per script behaviour, run to its end by one real agent."""
    started = Agents(tmp_path_factory.mktemp("behaviours"))
    try:
        modes = ["ok", "summary", "crash", "silent", "selfkill", "overfit", "dir", "id"]
        store = started.sweep({"mode": {"values": modes}})
        assert started.start(store, "--slots", "3").wait(timeout=240) == 0
        runs = {r.params["mode"]: r for r in runs_of(store)}
        assert sorted(runs) == sorted(modes)
        yield Behaviours(store, runs)
    finally:
        started.close()


def test_wandb_config_holds_the_sweeps_params_over_the_scripts_defaults(
    behaviours: Behaviours,
) -> None:
    for mode, run in behaviours.runs.items():
        assert printed_config(behaviours.store, run) == expected_config(mode), mode
    # wandb recorded the same config in the run, with the run id, project and group we set
    run = behaviours.runs["ok"]
    tracker = tracked(behaviours.store, run)
    assert {k: v for k, v in tracker.config.items() if k != "_wandb"} == expected_config("ok")
    assert tracker.run is not None
    assert (tracker.run.run_id, tracker.run.project) == (run.id, "sweepherd-tests")
    assert tracker.run.group == "wandb-e2e"
    assert tracker.run.sweep_id == ""  # no W&B sweep exists: a later wandb sync must not 404


def test_the_result_is_the_last_logged_value(behaviours: Behaviours) -> None:
    run = behaviours.runs["ok"]
    assert run.state is RunState.FINISHED and run.exit_code == 0 and run.reason is None
    assert run.metric == pytest.approx(LOSSES[-1])
    assert tracked(behaviours.store, run).history("val_loss") == pytest.approx(LOSSES)


def test_a_summary_the_script_sets_is_the_result(behaviours: Behaviours) -> None:
    run = behaviours.runs["summary"]
    assert run.state is RunState.FINISHED
    assert run.metric == -1.0
    assert run.summary is not None and run.summary["val_loss"] == -1.0
    assert tracked(behaviours.store, run).summary("val_loss") == -1.0  # what W&B would show


def test_the_run_keeps_the_range_of_its_metric_for_the_search(behaviours: Behaviours) -> None:
    """W&B's bayes learns from a run's best value (``metric_extremum``), not its last."""
    run = behaviours.runs["ok"]
    assert run.metric_range == pytest.approx((min(LOSSES), max(LOSSES)))
    assert run.metric_last == pytest.approx(LOSSES[-1])  # impute: latest
    crashed = behaviours.runs["crash"]  # logged one epoch, then raised
    assert crashed.state is RunState.FAILED and crashed.metric_last == pytest.approx(LOSSES[0])
    # define_metric(summary="min") makes wandb write {"min": x} summaries beside the history
    run = behaviours.runs["overfit"]
    logged = [LOSSES[0], LOSSES[-1], LOSSES[1]]
    assert tracked(behaviours.store, run).history("val_loss") == pytest.approx(logged)
    assert run.state is RunState.FINISHED and run.metric == pytest.approx(logged[-1])
    assert run.metric_range == pytest.approx((min(logged), max(logged)))


def _assert_output_kept(store: SweepStore, run: Run) -> list[Path]:
    run_dir = store.run_dir(run.id)
    assert "CONFIG " in (run_dir / "stdout.log").read_text()
    assert (run_dir / "stderr.log").is_file()
    logs = find_run_logs(run_dir, run.id)
    assert len(logs) == 1
    assert logs[0].parent.name.startswith("offline-run-")
    assert logs[0].parent.parent == run_dir / "wandb"
    return logs


def test_a_crashing_script_fails_with_its_error_and_keeps_its_output(
    behaviours: Behaviours,
) -> None:
    store, run = behaviours.store, behaviours.runs["crash"]
    assert run.state is RunState.FAILED and run.exit_code == 1
    assert run.reason == "exit status 1: RuntimeError: boom in epoch 0"
    assert "Traceback" in (store.run_dir(run.id) / "stderr.log").read_text()
    assert run.metric == pytest.approx(LOSSES[0])  # what it logged before crashing
    _assert_output_kept(store, run)
    assert tracked(store, run).exit_code == 1  # wandb wrote its exit record


def test_a_script_that_never_logs_the_metric_finishes_with_the_reason(
    behaviours: Behaviours,
) -> None:
    store, run = behaviours.store, behaviours.runs["silent"]
    assert run.state is RunState.FINISHED and run.exit_code == 0
    assert run.metric is None
    assert run.reason == "metric 'val_loss' was never logged"
    assert run.summary is not None and run.summary["train_loss"] == pytest.approx(LOSSES[-1])
    _assert_output_kept(store, run)


def test_a_script_killed_by_sigkill_fails_with_the_signal_and_keeps_its_output(
    behaviours: Behaviours,
) -> None:
    store, run = behaviours.store, behaviours.runs["selfkill"]
    assert run.state is RunState.FAILED and run.exit_code == -signal.SIGKILL
    assert run.reason is not None and run.reason.startswith("killed by SIGKILL")
    assert "killing myself" in (store.run_dir(run.id) / "stdout.log").read_text()
    _assert_output_kept(store, run)
    tracker = tracked(store, run)
    assert tracker.exit is None  # killed: wandb never wrote an exit record
    assert tracker.history("val_loss") == pytest.approx(LOSSES)  # flushed before the kill
    assert run.metric == pytest.approx(LOSSES[-1])


def test_a_log_the_script_writes_elsewhere_is_found_and_linked_in(
    behaviours: Behaviours,
) -> None:
    """``wandb.init(dir=...)`` puts the log in another folder, ``wandb.init(id=...)`` names it
    after another id: read where sweepherd looks, the metric would be lost and the run never
    synced. The agent finds the log its trial holds open and links its folder in."""
    store = behaviours.store
    for mode in ("dir", "id"):
        run = behaviours.runs[mode]
        assert run.state is RunState.FINISHED and run.reason is None, mode
        assert run.metric == pytest.approx(LOSSES[-1]), mode
        run_dir = store.run_dir(run.id)
        (log,) = find_run_logs(run_dir, run.id)
        assert log.parent.is_symlink() and log.parent.name.endswith(f"-{run.id}")
        real = log.resolve()
        if mode == "dir":  # in the script's own folder, not the run's
            assert real.parent.parent == (store.path.parent.parent / "elsewhere" / "wandb")
        else:  # in the run's folder, named after the script's id
            assert real.parent.parent == run_dir.resolve() / "wandb"
            assert real.name != f"run-{run.id}.wandb"
        assert tracked(store, run).history("val_loss") == pytest.approx(LOSSES)
        # The attempt's record names it, and a sync sends it (under the sweep's run id).
        record = json.loads((run_dir / ".attempts" / "1.json").read_text())
        assert record["logs"] == [str(log.relative_to(run_dir))]
        (item,) = [i for i in plan_sync(store, settle_s=0).items if i.run_id == run.id]
        assert item.files == (log,)


# -- a run looked at while it goes ------------------------------------------------------------


def _wait_live(store: SweepStore, n: int) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def has_n() -> bool:
        doc = live(store)
        if doc is not None and doc["n"] >= n:
            seen.update(doc)
            return True
        return False

    wait_for(has_n, timeout_s=90, what=f"{n} metric values in live.json")
    return seen


def test_the_agent_sees_the_logged_values_while_the_run_goes(agents: Agents) -> None:
    store = agents.sweep({"mode": {"value": "wait"}})
    agent = agents.start(store)
    doc = _wait_live(store, len(LOSSES))
    (run,) = runs_of(store)
    assert run.state is RunState.RUNNING  # the script is still waiting: the run has not ended
    assert doc["run"] == run.id and doc["metric"] == "val_loss"
    assert doc["history"] == pytest.approx(LOSSES)
    assert doc["last"] == pytest.approx(LOSSES[-1])

    (agents.folder / f"release-{run.id}").touch()
    assert agent.wait(timeout=60) == 0
    (run,) = runs_of(store)
    assert run.state is RunState.FINISHED
    assert run.metric == pytest.approx(doc["last"])  # what was seen live is the result


def test_a_run_killed_from_outside_fails_with_the_signal_and_keeps_what_it_logged(
    agents: Agents,
) -> None:
    store = agents.sweep({"mode": {"value": "wait"}})
    agent = agents.start(store)
    _wait_live(store, len(LOSSES))
    (run,) = runs_of(store)
    pid = int((agents.folder / f"pid-{run.id}").read_text())
    os.kill(pid, signal.SIGKILL)  # e.g. the out-of-memory killer
    assert agent.wait(timeout=60) == 0
    (run,) = runs_of(store)
    assert run.state is RunState.FAILED and run.exit_code == -signal.SIGKILL
    assert run.reason is not None and run.reason.startswith("killed by SIGKILL")
    assert run.metric == pytest.approx(LOSSES[-1])
    _assert_output_kept(store, run)
    assert tracked(store, run).exit is None


def test_a_metric_logged_as_a_nested_dict_is_found_by_its_dotted_name(agents: Agents) -> None:
    store = agents.sweep({"mode": {"value": "nested"}}, metric="val.loss")
    assert agents.start(store).wait(timeout=120) == 0
    (run,) = runs_of(store)
    assert run.state is RunState.FINISHED and run.reason is None
    assert run.metric == pytest.approx(LOSSES[-1])


def test_with_wandb_disabled_the_missing_metric_says_why(agents: Agents) -> None:
    """`--wandb-mode disabled`: wandb.log writes nothing, so nothing can be read back."""
    store = agents.sweep({"mode": {"value": "ok"}})
    assert agents.start(store, "--wandb-mode", "disabled").wait(timeout=120) == 0
    (run,) = runs_of(store)
    assert run.state is RunState.FINISHED and run.metric is None
    assert run.reason == f"metric 'val_loss' was never logged ({NOTHING_LOGGED})"


def test_hyperband_stops_a_poor_run_from_what_wandb_logged(agents: Agents) -> None:
    store = agents.sweep(
        {"mode": {"values": ["ok", "bad", "bad-finished"]}},
        early_terminate={"type": "hyperband", "min_iter": 1},
    )
    assert agents.start(store).wait(timeout=120) == 0  # "bad" would run forever otherwise
    runs = {r.params["mode"]: r for r in runs_of(store)}
    assert runs["ok"].state is RunState.FINISHED
    bad = runs["bad"]
    assert bad.state is RunState.STOPPED
    assert (bad.reason or "").startswith("stopped early by hyperband: val_loss ")
    assert bad.metric is not None and bad.metric >= 10 * LOSSES[-1]
    assert tracked(store, bad).history("val_loss")[0] == pytest.approx(10 * LOSSES[0])
    _assert_output_kept(store, bad)
    # A run that had ended (wandb's exit record) when the stop came stays finished, as on W&B.
    done = runs["bad-finished"]
    assert (done.state, done.reason) == (RunState.FINISHED, None)
    assert done.exit_code == -signal.SIGTERM and tracked(store, done).exit_code == 0


def test_a_preempted_wandb_run_resumes_under_the_same_id(agents: Agents) -> None:
    store = agents.sweep({"mode": {"value": "wait"}})
    first = agents.start(store)
    _wait_live(store, len(LOSSES))
    first.send_signal(signal.SIGTERM)  # Slurm's preemption / time limit
    assert first.wait(timeout=60) == 75
    (run,) = runs_of(store)
    assert run.state is RunState.PREEMPTED

    (agents.folder / f"release-{run.id}").touch()
    assert agents.start(store).wait(timeout=120) == 0
    (run,) = runs_of(store)
    assert run.state is RunState.FINISHED and run.attempt == 2
    assert run.metric == pytest.approx(LOSSES[-1])
    logs = find_run_logs(store.run_dir(run.id), run.id)
    assert len(logs) == 2  # both attempts' offline runs are kept, for one `wandb sync --id`
    tracker = tracked(store, run)
    assert tracker.n_attempts == 2
    assert tracker.exit_code == 0
    assert printed_config(store, run) == expected_config("wait")


def test_an_attempt_stopped_because_an_earlier_one_finished_is_not_synced(
    agents: Agents,
) -> None:
    """An agent cut off for a while (here: stopped) is declared lost and its run started again
    elsewhere; then its own attempt finishes after all. That result stands, the second agent
    stops its attempt, and marks its wandb files so `sweepherd sync` leaves them out: sent
    after the first attempt's, their partial history and summary would become the W&B run's.
    Nor does the first agent read the second attempt's log as its own."""
    store = agents.sweep({"mode": {"value": "wait"}})
    first = agents.start(store)
    _wait_live(store, len(LOSSES))
    (run,) = runs_of(store)
    pid_file = agents.folder / f"pid-{run.id}"
    first_pid = int(pid_file.read_text())
    first.send_signal(signal.SIGSTOP)  # its heartbeat goes quiet; its trial goes on
    try:
        # An agent that finds nothing to claim waits only for runs of quiet agents.
        wait_for(lambda: _quiet_for(store, 1.0), what="the first agent's heartbeat to age")
        second = agents.start(store)
        wait_for(lambda: runs_of(store)[0].attempt == 2, timeout_s=60, what="attempt 2")
        wait_for(lambda: int(pid_file.read_text() or 0) != first_pid, what="attempt 2's script")
        wait_for(lambda: len(_logged(store, run.id, -1)) == len(LOSSES), what="attempt 2's losses")
        (agents.folder / f"release-{first_pid}").touch()  # attempt 1 ends, unseen as yet
        wait_for(lambda: proc_state(first_pid) in ("Z", None), what="attempt 1 to end")
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=60) == 0
    assert second.wait(timeout=60) == 0
    (run,) = runs_of(store)
    assert (run.state, run.attempt, run.result_attempt) == (RunState.FINISHED, 2, 1)
    assert run.metric == pytest.approx(LOSSES[-1])
    # The result is attempt 1's own, not read from attempt 2's log in the same folder.
    assert run.summary["script_pid"] == first_pid

    logs = find_run_logs(store.run_dir(run.id), run.id)
    assert len(logs) == 2
    (item,) = plan_sync(store, settle_s=0).items
    assert (item.files, item.later) == ((logs[0],), (logs[1],))


def _quiet_for(store: SweepStore, seconds: float) -> bool:
    """Every agent's heartbeat is older than ``seconds``."""
    now = time.time()
    return all(beat.age_s(now) > seconds for beat in store.heartbeats().values())


def _logged(store: SweepStore, run_id: str, attempt_index: int) -> list[float]:
    """The val_loss values one attempt's transaction log holds so far (by start order)."""
    logs = find_run_logs(store.run_dir(run_id), run_id)
    if len(logs) < 2:
        return []
    tracker = MetricTracker()
    tracker.update(TransactionLogReader(logs[attempt_index]).read_new())
    return tracker.history("val_loss")


def test_the_trial_imports_no_sweepherd() -> None:
    # The point of these tests: the script is what a W&B user already has.
    assert "sweepherd" not in TRIAL.read_text().split('"""', 2)[2]
