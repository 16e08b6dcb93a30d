"""The agent: claim runs, run them, report them, until the sweep is done.

One agent runs on one node (or one machine) and fills its slots with trials. The loop is a
single thread that waits on the trials' pidfds and a signal wake-up pipe, so it reacts at once
to a trial ending or a signal and otherwise sleeps; a side thread writes the heartbeat.

Nothing the agent learns is kept only in memory for long: a finished run's result is recorded in
the journal as soon as the trial ends, and if the write fails (a full disk) the result is kept
and retried until it is written. An agent that dies loses at most the runs it was running, and
those are run again by others once its heartbeat goes stale.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from sweepherd.agent._claim import claim_next
from sweepherd.agent._command import expand_command
from sweepherd.agent._early import EarlyTermination
from sweepherd.agent._env import TrialContext, trial_environment
from sweepherd.agent._metrics import MetricSource, RunMetrics
from sweepherd.agent._rundir import (
    CHECKPOINT_DIR,
    attempt_log_filter,
    default_metric_sources,
    keeps_checkpoint,
    last_line,
    link_logs_written_elsewhere,
    record_attempt,
    wandb_logs,
    write_params,
    wrote_wandb_log,
)
from sweepherd.agent._slots import Slot
from sweepherd.agent._trial import StopCause, Trial, pidfd_for, spawn
from sweepherd.errors import AgentError, StoreError, SweepherdError
from sweepherd.live_metric import LIVE_FILE, live_document
from sweepherd.runs import MAX_TIMEOUTS, TIME_LIMIT_SIGNAL_ENV, Run, RunState
from sweepherd.store import RunResult, Snapshot, SweepStore, write_atomic

log = logging.getLogger("sweepherd.agent")

#: Why a run's metric is missing when the run logged nothing at all.
NOTHING_LOGGED = "no wandb log and no sweepherd.log values; WANDB_MODE=disabled writes none"

#: Exit status of an agent that stopped because it was signalled (preemption, time limit,
#: Ctrl-C) while the sweep still had work: "requeue me" (EX_TEMPFAIL).
EXIT_REQUEUE = 75

#: Signals that make the agent stop its trials gracefully and exit "requeue me". SIGURG is what
#: ``--all-nodes`` sends inside Slurm (``scancel --signal=URG``): unlike USR1 or TERM it does
#: not kill the trials it also reaches, since its default action is to be ignored.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGURG)


def _time_limit_signals() -> frozenset[int]:
    named = os.environ.get(TIME_LIMIT_SIGNAL_ENV, "")
    return frozenset({signal.SIGUSR1, *([int(named)] if named.isdigit() else [])})


#: Signals that may kill a trial directly when Slurm stops a job (scancel, time limit) just
#: before the agent hears of it. A trial that dies of one of these gets this long for the
#: agent's own signal to arrive, so it is recorded as preempted rather than failed.
_SLURM_KILL_SIGNALS = frozenset({signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGKILL})
_SIGNAL_DEATH_GRACE_S = 1.0


@dataclass(frozen=True)
class AgentOptions:
    """How an agent behaves. The defaults suit a cluster; tests shorten the times."""

    slots: Sequence[Slot] = (Slot(0),)
    count: int | None = None  # start at most this many runs, like `wandb agent --count`
    heartbeat_s: float = 5.0  # how often the heartbeat file is rewritten
    lost_after_s: float = 60.0  # a silent agent's runs are re-run after this long
    stop_grace_s: float = 30.0  # SIGTERM -> SIGKILL delay when the agent stops a trial
    poll_s: float = 1.0  # how often live metrics and the journal are looked at
    max_initial_failures: int = 5  # give up when this many first runs all failed
    wandb_mode: str = "offline"
    wandb_sweep_id: str | None = None  # set only with a real W&B sweep (--backend wandb)
    interpreter: str = sys.executable
    workdir: Path | None = None  # where trials run; default: the sweep's recorded workdir
    node: str | None = None  # default: $SLURMD_NODENAME or the host name
    job: str | None = None  # default: $SLURM_JOB_ID (array: "<array job>_<task>")
    agent_id: str | None = None


@dataclass
class AgentResult:
    """What an agent did, for the CLI to report."""

    agent_id: str
    n_started: int = 0
    states: dict[str, int] = field(default_factory=dict)  # run state -> count, for own runs
    preempted: bool = False  # stopped by a signal while the sweep still had work
    reason: str | None = None  # why it stopped claiming

    @property
    def exit_status(self) -> int:
        return EXIT_REQUEUE if self.preempted else 0


class Agent:
    """Runs trials of one sweep until there is nothing left to run. See :meth:`run`."""

    def __init__(
        self,
        store: SweepStore,
        options: AgentOptions | None = None,
        *,
        metric_sources: Callable[[Run, Path], list[MetricSource]] | None = None,
    ) -> None:
        self.store = store
        self.opts = options or AgentOptions()
        self.node = self.opts.node or os.environ.get("SLURMD_NODENAME") or socket.gethostname()
        self.job = self.opts.job or _slurm_job_id()
        self.id = self.opts.agent_id or f"{self.node}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.config = store.config
        self.workdir = self.opts.workdir or _recorded_workdir(store) or Path.cwd()
        self._metric_sources = metric_sources  # None: the run's metrics.jsonl and wandb logs
        self._trials: dict[int, Trial] = {}  # slot index -> trial
        self._pending: list[RunResult] = []
        self._result = AgentResult(self.id)
        self._stop_signal: int | None = None
        self._time_limit = False  # the first stop signal was the time limit's warning
        self._no_more = False  # claim said there is nothing to run right now
        self._n_failed = 0  # own runs that failed by themselves (not stopped by the agent)
        self._n_finished = 0
        self._fatal: SweepherdError | None = None  # set: stop gracefully, then raise it
        self._next_store_retry = 0.0
        self._store_retry_s = 0.5
        self._last_poll = 0.0
        self._hb_stop = threading.Event()
        self._early = EarlyTermination(store, LIVE_FILE) if self.config.early_terminate else None
        self._hb_failing = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # -- public -------------------------------------------------------------------------------

    def run(self) -> AgentResult:
        """Claim and run trials until the sweep is done, then return what happened.

        Stops early, marking its running runs preempted so another agent resumes them, when it
        receives SIGTERM, SIGINT or SIGUSR1 (Slurm's warning signal); then
        :attr:`AgentResult.exit_status` is :data:`EXIT_REQUEUE`.
        """
        with self._signals_handled():
            self._register("start")
            hb = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
            hb.start()
            try:
                self._loop()
            finally:
                for trial in self._trials.values():  # only on an unexpected error
                    trial.signal_group(signal.SIGKILL)
                    trial.close()
                self._hb_stop.set()
                hb.join(timeout=5)
                self._beat(state="exited")
                with contextlib.suppress(StoreError):
                    self._register("stop")
                os.close(self._wake_r)
                os.close(self._wake_w)
        if self._result.preempted and self._sweep_over():
            # The runs it stopped will not run again (a time limit's last strike) and nothing
            # else is left: a requeued job would only start, find nothing and end.
            log.info("stopped, but the sweep has nothing left to run: no requeue is asked for")
            self._result.preempted = False
        return self._result

    # -- the loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._reap()
            if self._stop_signal is not None or self._fatal is not None:
                for trial in self._trials.values():
                    trial.request_stop(StopCause.PREEMPT, self.opts.stop_grace_s)
            elif time.monotonic() >= self._next_store_retry:
                self._fill_slots()
            self._flush_results()
            now = time.monotonic()
            if now - self._last_poll >= self.opts.poll_s:
                self._last_poll = now
                self._poll()
            for trial in self._trials.values():
                trial.tick()
            if not self._trials and not self._pending:
                if self._fatal is not None:
                    raise self._fatal
                if self._stop_signal is not None or self._count_reached():
                    return
                if self._no_more:
                    if self._may_exit():
                        log.info(
                            "nothing left to run (%s): stopping after %d run(s) here",
                            self._result.reason or "the sweep is done",
                            self._result.n_started,
                        )
                        return
                    self._no_more = False  # something may come back: try claiming again later
                    self._wait(self.opts.poll_s)
                    continue
            self._wait(self._wait_timeout())

    def _fill_slots(self) -> None:
        """Claim a run for every free slot; the first claim also records pending results."""
        for slot in self.opts.slots:
            # A stop signal may come while a claim waits for the lock: claim no more after it.
            if not self._may_claim():
                return
            if slot.index in self._trials:
                continue
            results = tuple(self._pending)
            try:
                claim = claim_next(
                    self.store,
                    agent_id=self.id,
                    node=self.node,
                    gpus=slot.cuda_visible_devices,
                    job=self.job,
                    lost_grace_s=self.opts.lost_after_s,
                    results=results,
                )
            except StoreError as exc:
                self._store_failed(exc)
                return
            self._recorded(results)
            if claim.retry:
                return  # the holder ran out of time for us: ask again on the next turn
            if claim.run is None:
                self._no_more = True
                self._result.reason = claim.reason
                return
            self._start(claim.run, slot)

    def _start(self, run: Run, slot: Slot) -> None:
        try:
            # Absolute paths: the trial runs in the workdir, not where the agent was started.
            run_dir = self.store.run_dir(run.id).resolve()
            params_file = run_dir / "params.yaml"
            write_params(params_file, run.params)
            ckpt = run_dir / CHECKPOINT_DIR
            ckpt.mkdir(exist_ok=True)
            ctx = TrialContext(
                sweep_dir=self.store.path.resolve(),
                sweep_id=self.store.sweep_id,
                sweep_name=self.config.name or self.store.sweep_id,
                run_id=run.id,
                run_dir=run_dir,
                attempt=run.attempt,
                params_file=params_file,
                metrics_file=run_dir / "metrics.jsonl",
                checkpoint_dir=ckpt,
                node=self.node,
                cuda_visible_devices=slot.cuda_visible_devices,
                wandb_mode=self.opts.wandb_mode,
                wandb_project=self.store.wandb_project,
                wandb_entity=self.config.entity,
                wandb_sweep_id=self.opts.wandb_sweep_id,
            )
            env = trial_environment(os.environ, ctx)
            argv = expand_command(
                self.config.command,
                program=self.config.program,
                params=run.params,
                interpreter=self.opts.interpreter,
                json_file=run_dir / "params.json",
                env=env,
            )
            logs_at_start = frozenset(wandb_logs(run_dir, run.id))
            spawned_at = time.time()
            banner = f"attempt {run.attempt} on {self.node} at {_now_iso()}"
            process = spawn(
                argv, env=env, cwd=self.workdir, run_dir=run_dir, attempt=run.attempt, banner=banner
            )
        except (AgentError, StoreError, OSError) as exc:
            # The run never started: give it back for another agent, and stop this one, since
            # whatever broke (a missing program, an unwritable folder) breaks every run here.
            self._give_back(run, f"could not start on {self.node}: {exc}")
            self._fatal = exc if isinstance(exc, SweepherdError) else AgentError(f"{exc}")
            return
        self._result.n_started += 1
        attempt_logs = attempt_log_filter(process.pid, logs_at_start)
        if self._metric_sources is not None:
            sources = self._metric_sources(run, run_dir)
        else:
            sources = default_metric_sources(run, run_dir, attempt_logs)
        trial = Trial(
            run,
            slot,
            process,
            RunMetrics(sources),
            time.monotonic(),
            pidfd=pidfd_for(process.pid),
            logs_at_start=logs_at_start,
            spawned_at=spawned_at,
            run_dir=run_dir,
            attempt_logs=attempt_logs,
        )
        self._trials[slot.index] = trial
        gpu = f" gpu {slot.cuda_visible_devices}" if slot.cuda_visible_devices else ""
        log.info("run %s started (attempt %d)%s: %s", run.id, run.attempt, gpu, _short(run.params))

    def _give_back(self, run: Run, reason: str) -> None:
        with contextlib.suppress(StoreError), self.store.transaction(agent=self.id) as txn:
            txn.mark_lost(run.id, reason=reason)

    def _reap(self) -> None:
        now = time.monotonic()
        for index, trial in list(self._trials.items()):
            code = trial.poll()
            if code is None:
                continue
            if (
                self._stop_signal is not None
                and trial.stop_cause is None
                and not trial.ended_by_itself_first(code)
            ):
                # Ended after the signal without the agent's asking: Slurm signals every
                # process of the job, so the trial was most likely stopped by it too.
                trial.stop_cause = StopCause.PREEMPT
            if trial.stop_cause is None and code < 0 and -code in _SLURM_KILL_SIGNALS:
                if trial.died_at is None:
                    trial.died_at = now  # killed from outside: wait for our own signal
                if now - trial.died_at < _SIGNAL_DEATH_GRACE_S:
                    continue
            if self._group_lingers(trial, now):
                continue
            del self._trials[index]
            trial.close()
            self._look_for_later_attempts([trial])  # it may have been cut off meanwhile
            if trial.metrics.update():  # what was written up to the end
                self._publish_live(trial)
            result = self._judge(trial, code)
            if result is not None:
                self._pending.append(result)
                self._check_initial_failures()  # before the next claim, not after it

    def _group_lingers(self, trial: Trial, now: float) -> bool:
        """True while processes the ended trial left in its group are being stopped.

        The slot stays busy until they are gone: SIGTERM at once, SIGKILL after the stop
        grace (:meth:`Trial.tick`); past that, what survives SIGKILL is left with a warning.
        """
        if not trial.group_alive():
            return False
        if trial.stop_deadline is None:
            log.info("run %s ended but left processes in its group: stopping them", trial.run.id)
        trial.end_group(self.opts.stop_grace_s)
        assert trial.stop_deadline is not None
        if now < trial.stop_deadline + _SIGNAL_DEATH_GRACE_S:
            return True
        log.warning(
            "run %s: processes of its group %d survive SIGKILL; leaving them",
            trial.run.id,
            trial.pid,
        )
        return False

    def _judge(self, trial: Trial, code: int) -> RunResult | None:
        metric_name = self.config.metric.name if self.config.metric else None
        metric = trial.metrics.metric_value(metric_name) if metric_name else None
        summary = trial.metrics.plain_summary()
        cause = trial.stop_cause
        run_dir = trial.run_dir
        # Which wandb logs this attempt wrote: a sync leaves out attempts after a run's result.
        record_attempt(trial)
        if cause is StopCause.PREEMPT and self._sweep_cancelled():
            # `sweepherd cancel` marks the sweep cancelled, then scancels its Slurm jobs: their
            # SIGTERM usually comes before this agent's next look at the journal.
            cause = StopCause.CANCEL
        timeout = False
        if cause is StopCause.PREEMPT:
            state, reason = RunState.PREEMPTED, "stopped by a signal to the agent; will resume"
            if self._time_limit and not keeps_checkpoint(run_dir):
                timeout = True
                n = trial.run.timeouts + 1
                reason = (
                    f"stopped by the job's time limit ({n} of {MAX_TIMEOUTS} times with no "
                    "checkpoint in $SWEEPHERD_CHECKPOINT_DIR"
                    + ("; not resumed again)" if n >= MAX_TIMEOUTS else "; will resume)")
                )
        elif cause is StopCause.CANCEL:
            state, reason = RunState.KILLED, "the sweep was cancelled"
        elif cause is StopCause.EARLY and trial.metrics.wandb_exit_code == 0:
            # Its run had ended (wandb's exit record written) before the stop reached it: on
            # W&B it stays finished too.
            state, reason = RunState.FINISHED, None
        elif cause is StopCause.EARLY:
            state, reason = RunState.STOPPED, trial.stop_reason or "stopped early by hyperband"
        elif cause is StopCause.SUPERSEDED:
            log.info("run %s: this attempt was superseded; its result is dropped", trial.run.id)
            return None  # another attempt owns the run's result now
        elif code == 0:
            state, reason = RunState.FINISHED, None
            if metric_name and metric is None and trial.metrics.was_logged(metric_name):
                ended = "ended as" if trial.metrics.metric_history(metric_name) else "was only"
                reason = f"metric {metric_name!r} {ended} NaN, infinite or not a number"
            elif metric_name and metric is None:
                reason = f"metric {metric_name!r} was never logged"
                if not trial.metrics.history and not wrote_wandb_log(trial):
                    reason += f" ({NOTHING_LOGGED})"
        else:
            state, reason = RunState.FAILED, _describe_exit(code)
            tail = last_line(run_dir / "stderr.log")
            if tail:
                reason += f": {tail}"
        if state is RunState.FAILED:
            self._n_failed += 1
        elif state is RunState.FINISHED:
            self._n_finished += 1
        log.info("run %s %s%s", trial.run.id, state.value, f" ({reason})" if reason else "")
        return RunResult(
            trial.run.id,
            trial.run.attempt,
            state,
            code,
            metric,
            summary or None,
            reason,
            metric_range=trial.metrics.metric_range(metric_name) if metric_name else None,
            metric_last=_last(trial.metrics.metric_history(metric_name)) if metric_name else None,
            timeout=timeout,
        )

    def _sweep_cancelled(self) -> bool:
        try:
            return self.store.snapshot().cancelled
        except StoreError:
            return False

    def _flush_results(self) -> None:
        """Record pending results on their own, when no claim will carry them."""
        if not self._pending or time.monotonic() < self._next_store_retry:
            return
        if self._may_claim() and len(self._trials) < len(self.opts.slots):
            return  # the next claim records them in the same lock hold
        results = tuple(self._pending)
        try:
            with self.store.transaction(agent=self.id) as txn:
                for res in results:
                    txn.record(res)
        except StoreError as exc:
            self._store_failed(exc)
            return
        self._recorded(results)

    def _may_claim(self) -> bool:
        return (
            self._stop_signal is None
            and self._fatal is None
            and not self._no_more
            and not self._count_reached()
        )

    def _store_failed(self, exc: StoreError) -> None:
        """A journal write failed (full disk, lock timeout): keep everything, retry later."""
        self._next_store_retry = time.monotonic() + self._store_retry_s
        log.warning(
            "could not write to the sweep (%s); %d result(s) kept, retrying in %.1fs",
            exc,
            len(self._pending),
            self._store_retry_s,
        )
        self._store_retry_s = min(self._store_retry_s * 2, 30.0)

    def _recorded(self, results: Sequence[RunResult]) -> None:
        """``results`` are in the journal now (or were duplicates the store dropped)."""
        self._store_retry_s = 0.5
        self._next_store_retry = 0.0
        if not results:
            return
        for res in results:
            self._result.states[res.state.value] = self._result.states.get(res.state.value, 0) + 1
            if res.state is RunState.PREEMPTED:
                self._result.preempted = True
        del self._pending[: len(results)]

    def _check_initial_failures(self) -> None:
        limit = self.opts.max_initial_failures
        if limit and self._n_finished == 0 and self._n_failed >= limit and self._fatal is None:
            self._fatal = AgentError(
                f"the first {limit} runs of this agent all failed; stopping it so the sweep does "
                "not burn through its search space",
                hint="see `sweepherd status` and the runs' stderr.log, fix the script, and start "
                "a new sweep",
            )

    def _poll(self) -> None:
        """Periodic work: live metrics, and what other processes wrote to the journal."""
        trials = list(self._trials.values())
        link_logs_written_elsewhere(trials, time.monotonic())
        snap = self._look_for_later_attempts(trials)  # before reading logs another could write
        for trial in trials:
            if trial.metrics.update():
                self._publish_live(trial)
        if snap is None:
            return
        for trial in self._trials.values():
            current = snap.runs.get(trial.run.id)
            if snap.cancelled:
                trial.request_stop(StopCause.CANCEL, self.opts.stop_grace_s)
            elif current is not None and (
                current.attempt != trial.run.attempt or current.state.is_terminal
            ):
                log.warning("run %s was taken over by another attempt; stopping", trial.run.id)
                trial.request_stop(StopCause.SUPERSEDED, self.opts.stop_grace_s)
        if self._early is not None and not snap.cancelled:
            for trial, reason in self._early.to_stop(self._trials.values(), snap):
                trial.request_stop(StopCause.EARLY, self.opts.stop_grace_s, reason=reason)

    def _look_for_later_attempts(self, trials: Sequence[Trial]) -> Snapshot | None:
        """The journal as it is now, each of ``trials`` whose run a later attempt has taken
        over marked so (that attempt's wandb log, in the same run folder, is not this one's);
        None when there are no trials or the journal cannot be read."""
        if not trials:
            return None
        try:
            snap = self.store.snapshot()
        except StoreError as exc:
            log.warning("could not read the journal: %s", exc)
            return None
        for trial in trials:
            current = snap.runs.get(trial.run.id)
            if current is not None and current.attempt != trial.run.attempt:
                trial.note_later_attempt()
        return snap

    def _publish_live(self, trial: Trial) -> None:
        """Write ``runs/<id>/live.json``: the metric as this agent sees it while the run goes.

        Small and rewritten atomically, so ``watch`` and other agents read one tiny file instead
        of parsing the run's logs. Holds the metric's history in log order (what hyperband
        decides on), its latest value, and the number of values seen.
        """
        name = self.config.metric.name if self.config.metric else None
        history = trial.metrics.metric_history(name) if name else []
        last = trial.metrics.metric_value(name) if name else None
        try:
            data = live_document(trial.run.id, trial.run.attempt, name, history, last)
            write_atomic(self.store.run_dir(trial.run.id) / LIVE_FILE, data, durable=False)
        except StoreError as exc:
            log.warning("could not write live metrics of %s: %s", trial.run.id, exc)

    def _may_exit(self) -> bool:
        """True when nothing this agent could run may still appear.

        A run held by an agent whose heartbeat has gone quiet may yet be declared lost and need
        running again: stay for it (until it is lost, when :func:`claim_next` takes it).
        """
        try:
            snap = self.store.snapshot()
            beats = self.store.heartbeats()
        except StoreError:
            return False
        if snap.cancelled:
            return True
        now = time.time()
        quiet_s = 3 * self.opts.heartbeat_s
        for run in snap.runs.values():
            if run.will_run_again:
                return False
            if run.state is RunState.RUNNING and run.agent != self.id:
                beat = beats.get(run.agent or "")
                if beat is None or beat.state == "exited" or beat.age_s(now) > quiet_s:
                    return False
        return True

    def _sweep_over(self) -> bool:
        """True when the sweep has nothing left for any agent: done, or cancelled."""
        try:
            snap = self.store.snapshot()
        except StoreError:
            return False
        from sweepherd.monitor import sweep_state  # only on the way out after a stop signal

        runs = list(snap.runs.values())
        return sweep_state(self.config, runs, snap.cancelled) in ("done", "cancelled")

    def _count_reached(self) -> bool:
        return self.opts.count is not None and self._result.n_started >= self.opts.count

    # -- waiting, signals, heartbeats ---------------------------------------------------------

    def _wait_timeout(self) -> float:
        timeout = self.opts.poll_s
        if any(t.died_at is not None for t in self._trials.values()):
            timeout = min(timeout, 0.1)
        if self._pending:
            timeout = min(timeout, max(0.0, self._next_store_retry - time.monotonic()))
        deadlines = [t.stop_deadline for t in self._trials.values() if t.stop_deadline]
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - time.monotonic()))
        return max(timeout, 0.01)

    def _wait(self, timeout: float) -> None:
        fds = [self._wake_r]
        waiting = [t for t in self._trials.values() if t.process.returncode is None]
        fds += [t.pidfd for t in waiting if t.pidfd is not None and t.died_at is None]
        if len(waiting) < len(self._trials) or any(t.pidfd is None for t in waiting):
            # no pidfd, or a main process already ended (its pidfd stays readable) whose
            # group is being stopped: poll
            timeout = min(timeout, 0.1)
        with contextlib.suppress(InterruptedError):
            ready, _, _ = select.select(fds, [], [], timeout)
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)

    @contextlib.contextmanager
    def _signals_handled(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return
        time_limit_signals = _time_limit_signals()
        handled = {*_STOP_SIGNALS, *time_limit_signals}
        previous = {sig: signal.getsignal(sig) for sig in handled}
        old_fd = signal.set_wakeup_fd(self._wake_w)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._stop_signal is None:
                self._time_limit = signum in time_limit_signals
                for trial in self._trials.values():  # ended, not stopped: judge by exit status
                    trial.ended_before_stop = trial.exited_by_itself()
                name = signal.Signals(signum).name
                if self._time_limit:  # SIGUSR1 itself, or as --all-nodes passes it on
                    name = "the job's time-limit warning" + (
                        " (SIGUSR1)" if signum == signal.SIGUSR1 else f" (SIGUSR1, as {name})"
                    )
                log.warning("received %s: stopping trials; they will be resumed", name)
            elif signum == signal.SIGINT:
                for trial in self._trials.values():  # a second Ctrl-C: no more waiting
                    trial.signal_group(signal.SIGKILL)
            self._stop_signal = signum

        for sig in handled:
            signal.signal(sig, on_signal)
        try:
            yield
        finally:
            signal.set_wakeup_fd(old_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _heartbeat_loop(self) -> None:
        while not self._hb_stop.is_set():
            self._beat(state="running")
            self._hb_stop.wait(self.opts.heartbeat_s)

    def _beat(self, state: str) -> None:
        try:
            self.store.heartbeat(
                self.id,
                node=self.node,
                host=socket.gethostname(),
                pid=os.getpid(),
                job=self.job,
                state=state,
                runs=[t.run.id for t in list(self._trials.values())],
            )
        except StoreError as exc:
            if not self._hb_failing:  # once per outage, not every beat
                log.warning("could not write the heartbeat (will keep trying): %s", exc)
            self._hb_failing = True
        else:
            if self._hb_failing:
                log.warning("the heartbeat is written again")
            self._hb_failing = False

    def _register(self, event: str) -> None:
        with self.store.transaction(agent=self.id) as txn:
            txn.record_agent(
                self.id,
                event=event,
                node=self.node,
                host=socket.gethostname(),
                pid=os.getpid(),
                job=self.job,
                slots=len(self.opts.slots),
            )


# -- helpers ----------------------------------------------------------------------------------


def _last(values: Sequence[float]) -> float | None:
    return values[-1] if values else None


def _recorded_workdir(store: SweepStore) -> Path | None:
    raw = store.meta.get("workdir")
    if isinstance(raw, str) and Path(raw).is_dir():
        return Path(raw)
    return None


def _slurm_job_id() -> str | None:
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit status {code}"


def _short(params: Any, limit: int = 120) -> str:
    text = ", ".join(f"{k}={v}" for k, v in params.items()) if isinstance(params, dict) else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")
