"""W&B's own sweep controller as a backend (``--backend wandb``), for nodes that reach W&B.

This is how W&B users run sweeps today, done for them: the sweep is created on the W&B server
(``wandb.sweep``), and ``wandb agent --count N ENTITY/PROJECT/SWEEP_ID`` runs once per GPU slot,
each agent pinned to its GPU with ``CUDA_VISIBLE_DEVICES``. W&B's server hands out the runs and
its agents run them (online); sweepherd only starts and stops the agents. The sweep still gets
a sweepherd sweep directory (``backend: "wandb"``, and the W&B sweep under the ``wandb`` key of
``meta.json``), so that ``status`` can say where the sweep lives, ``cancel`` can stop its agents
and Slurm jobs, and the sbatch script and the agents' logs have a home.

:func:`create_wandb_sweep` is the one call that needs the W&B server. The agents are started
locally by :class:`LocalWandbAgents` and on Slurm by :mod:`sweepherd.wandb._backend_slurm`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweepherd._extras import install_extra_hint
from sweepherd.config import SweepConfig
from sweepherd.errors import LaunchError, StoreError, WandbError
from sweepherd.store import SweepStore

#: The ``backend`` recorded in ``meta.json`` for a sweep run by W&B's controller.
BACKEND = "wandb"
#: The ``meta.json`` key that holds the W&B sweep (:meth:`WandbSweep.to_meta`).
META_KEY = "wandb"
#: The agents' log files: ``<sweep>/logs/wandb-agent-<i>.log``.
AGENT_LOG = "wandb-agent-{index}.log"

_URL_RE = re.compile(r"^Sweep URL:\s*(\S+)\s*$", re.MULTILINE)
_SERVER_HINT = (
    "The W&B backend needs the W&B server: log in with `wandb login` (or set WANDB_API_KEY) "
    "on a machine that reaches it. Without a server, leave out --backend: sweepherd's own "
    "backend runs the sweep offline and `sweepherd sync` uploads it later."
)


@dataclass(frozen=True)
class WandbSweep:
    """A sweep on the W&B server: its id and where it lives."""

    sweep_id: str
    entity: str | None = None  # None: the W&B user's default entity
    project: str | None = None  # None: W&B's default project ("uncategorized")
    url: str | None = None  # the sweep's page, as wandb printed it

    @property
    def path(self) -> str:
        """What ``wandb agent`` takes: ``entity/project/id``, ``project/id`` or ``id``."""
        if self.project is None:
            return self.sweep_id
        if self.entity is None:
            return f"{self.project}/{self.sweep_id}"
        return f"{self.entity}/{self.project}/{self.sweep_id}"

    @property
    def agent_args(self) -> tuple[str, ...]:
        """What names the sweep on ``wandb agent``'s command line: :attr:`path`, with
        ``--entity`` before it when the entity is known but the project is not (a bare id would
        be looked up under the default entity, not the team's)."""
        if self.project is None and self.entity is not None:
            return ("--entity", self.entity, self.sweep_id)
        return (self.path,)

    @property
    def agent_command(self) -> str:
        """``wandb agent ...`` for this sweep, as a user would type it."""
        return shlex.join(["wandb", "agent", *self.agent_args])

    def to_meta(self) -> dict[str, str | None]:
        """The JSON object stored under ``meta.json``'s ``wandb`` key."""
        return {
            "sweep_id": self.sweep_id,
            "entity": self.entity,
            "project": self.project,
            "path": self.path,
            "url": self.url,
        }

    @classmethod
    def from_store(cls, store: SweepStore) -> WandbSweep:
        """The W&B sweep behind a sweep directory made with ``--backend wandb``.

        Raises :class:`~sweepherd.errors.WandbError` for any other sweep.
        """
        raw = store.meta.get(META_KEY)
        if store.meta.get("backend") != BACKEND or not isinstance(raw, Mapping):
            raise WandbError(f"sweep {store.sweep_id} does not run on W&B's controller")
        sweep_id = raw.get("sweep_id")
        if not isinstance(sweep_id, str) or not sweep_id:
            raise WandbError(f"sweep {store.sweep_id}: meta.json names no W&B sweep id")
        return cls(
            sweep_id, _text(raw.get("entity")), _text(raw.get("project")), _text(raw.get("url"))
        )


def is_wandb_backend(store: SweepStore) -> bool:
    """True for a sweep directory whose runs W&B's controller hands out."""
    return store.meta.get("backend") == BACKEND


def describe(store: SweepStore) -> str | None:
    """Where to look for a ``--backend wandb`` sweep's runs (``None`` for other sweeps)."""
    if not is_wandb_backend(store):
        return None
    try:
        sweep = WandbSweep.from_store(store)
    except WandbError as exc:
        return exc.message
    where = sweep.url or f"W&B sweep {sweep.path}"
    return (
        f"runs on W&B's sweep controller: its runs are at {where}; "
        f"more agents: {sweep.agent_command}"
    )


# -- creating the sweep on the W&B server --------------------------------------------------------


#: ``wandb.sweep``'s signature: ``(config, entity=, project=) -> sweep id``.
SweepCreator = Callable[..., str]


def wandb_sweep_config(config: SweepConfig) -> dict[str, Any]:
    """The config sent to W&B: the sweep config as the user wrote it, with sweepherd's command
    line overrides (``--run-cap``, ``--name``) already applied, as plain Python data."""
    plain: dict[str, Any] = _plain(config.raw)
    return plain


def wandb_place(
    config: SweepConfig, *, entity: str | None = None, project: str | None = None
) -> tuple[str | None, str | None]:
    """``(entity, project)`` of the W&B sweep: as given, else the config's, else
    ``WANDB_ENTITY``/``WANDB_PROJECT``, else ``None`` (W&B's defaults)."""
    entity = entity or config.entity or os.environ.get("WANDB_ENTITY") or None
    project = project or config.project or os.environ.get("WANDB_PROJECT") or None
    return entity, project


def create_wandb_sweep(
    config: SweepConfig,
    *,
    entity: str | None = None,
    project: str | None = None,
    creator: SweepCreator | None = None,
) -> WandbSweep:
    """Create the sweep on the W&B server with ``wandb.sweep`` (the only call that needs it).

    ``entity`` and ``project`` default to the config's, then to ``WANDB_ENTITY`` and
    ``WANDB_PROJECT``; left unset, W&B picks the user's default entity and project.
    ``creator`` replaces ``wandb.sweep`` (tests stand in for the server with it).
    Raises :class:`~sweepherd.errors.WandbError` with wandb's reason when it fails.
    """
    entity, project = wandb_place(config, entity=entity, project=project)
    create = creator or _wandb_sweep_function()
    printed = io.StringIO()
    saved = {name: os.environ.get(name) for name in ("WANDB_ENTITY", "WANDB_PROJECT")}
    try:
        # wandb.sweep prints the id and URL, and exports WANDB_ENTITY/PROJECT as a side effect.
        with contextlib.redirect_stdout(printed):
            sweep_id = create(wandb_sweep_config(config), entity=entity, project=project)
    except Exception as exc:  # wandb raises its own error types, and network errors
        raise WandbError(
            f"could not create the sweep on the W&B server: {exc}", hint=_SERVER_HINT
        ) from exc
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if not isinstance(sweep_id, str) or not sweep_id.strip():
        raise WandbError(f"the W&B server returned no sweep id (got {sweep_id!r})")
    match = _URL_RE.search(printed.getvalue())
    return WandbSweep(sweep_id.strip(), entity, project, match.group(1) if match else None)


def create_backend_sweep(
    config_path: Path,
    root: Path,
    *,
    run_cap: int | None = None,
    name: str | None = None,
    entity: str | None = None,
    project: str | None = None,
    creator: SweepCreator | None = None,
) -> tuple[SweepStore, WandbSweep]:
    """Check the config and its program, create the W&B sweep, then the sweep directory.

    The sweep directory (``backend: "wandb"``) records the W&B sweep and the working folder
    the agents start in. Nothing is created when the config is wrong or the server refuses.
    """
    from sweepherd.launch import load_with_overrides, prepare_sweep, resolve_workdir

    config = load_with_overrides(config_path, run_cap=run_cap, name=name)
    resolve_workdir(config, config_path)  # a missing program must not leave a W&B sweep
    sweep = create_wandb_sweep(config, entity=entity, project=project, creator=creator)
    store = prepare_sweep(
        config_path,
        root,
        run_cap=run_cap,
        name=name,
        backend=BACKEND,
        extra_meta={META_KEY: sweep.to_meta()},
    )
    return store, sweep


def _wandb_sweep_function() -> SweepCreator:
    try:
        import wandb
    except ImportError as exc:
        raise WandbError(
            "--backend wandb needs the wandb package, which is not installed here",
            hint=install_extra_hint("wandb"),
        ) from exc
    function: SweepCreator = wandb.sweep
    return function


# -- the agents ----------------------------------------------------------------------------------


def runs_per_agent(config: SweepConfig, n_agents: int) -> int | None:
    """``wandb agent --count`` for each of ``n_agents`` agents: the sweep's expected runs
    (``run_cap``, or the grid's size) shared out, rounded up; ``None`` when unbounded."""
    from sweepherd.monitor import expected_runs

    total = expected_runs(config)
    if total is None:
        return None
    return max(1, math.ceil(total / max(1, n_agents)))


def wandb_on_path() -> str | None:
    """The ``wandb`` command on ``PATH``, else the one beside this Python, else ``None``."""
    found = shutil.which("wandb")
    if found is not None:
        return found
    sibling = Path(sys.executable).parent / "wandb"
    return str(sibling) if os.access(sibling, os.X_OK) else None


def find_wandb_executable() -> str:
    """:func:`wandb_on_path`, or :class:`~sweepherd.errors.WandbError` when there is none."""
    found = wandb_on_path()
    if found is None:
        raise WandbError(
            "--backend wandb starts `wandb agent`, but there is no `wandb` command here",
            hint="pip install wandb in this environment, or put its bin folder on PATH",
        )
    return found


def wandb_agent_argv(sweep: WandbSweep, *, wandb: str, count: int | None) -> list[str]:
    """``wandb agent [--count N] --forward-signals SWEEP``: signals reach the agent's runs."""
    argv = [wandb, "agent"]
    if count is not None:
        argv += ["--count", str(count)]
    return [*argv, "--forward-signals", *sweep.agent_args]


def gpu_slots(
    gpus: Sequence[str], *, trials_per_gpu: int = 1, n_cpu_slots: int = 1
) -> list[str | None]:
    """One entry per ``wandb agent``: its ``CUDA_VISIBLE_DEVICES``, or ``None`` without GPUs.

    Each agent runs one run at a time, so a GPU shared by K trials gets K agents.
    """
    if trials_per_gpu < 1 or n_cpu_slots < 1:
        raise LaunchError("--trials-per-gpu and the number of agents must be at least 1")
    if not gpus:
        return [None] * n_cpu_slots
    return [gpu for gpu in gpus for _ in range(trials_per_gpu)]


@dataclass
class AgentsOutcome:
    """How the local ``wandb agent`` processes ended."""

    exit_codes: list[int] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C
    cancelled: bool = False  # `sweepherd cancel` stopped them

    @property
    def failed(self) -> list[int]:
        """The indexes of agents that failed (neither finished nor stopped by us)."""
        if self.interrupted or self.cancelled:
            return []
        return [i for i, code in enumerate(self.exit_codes) if code != 0]


class LocalWandbAgents:
    """``wandb agent`` processes on this machine, one per slot, for one ``--backend wandb`` sweep.

    Each runs in the sweep's working folder (where ``program`` is), in its own session, with
    its output in ``<sweep>/logs/wandb-agent-<i>.log`` and ``CUDA_VISIBLE_DEVICES`` set to its
    slot's GPU. Stopping sends SIGTERM, which the agents forward to their runs
    (``--forward-signals``); each further stop escalates as ``wandb agent`` does (wait, then
    terminate, then kill the runs).
    """

    def __init__(
        self,
        store: SweepStore,
        slots: Sequence[str | None],
        *,
        count: int | None,
        wandb: str,
        workdir: Path,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.sweep = WandbSweep.from_store(store)
        self.slots = list(slots)
        self.count = count
        self.wandb = wandb
        self.workdir = workdir
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.log_dir = store.path / "logs"
        from sweepherd.launch.local import ProcessGroup  # launchers' level: imported lazily

        self._group = ProcessGroup("`wandb agent`")

    def argv(self) -> list[str]:
        """The command every agent runs."""
        return wandb_agent_argv(self.sweep, wandb=self.wandb, count=self.count)

    def env(self, slot: str | None) -> dict[str, str]:
        """The environment of the agent of ``slot``."""
        env = dict(self.base_env)
        if slot is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot
        return env

    def start(self) -> None:
        """Start one agent per slot; if one cannot start, stop those already started."""
        try:
            self.log_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self.log_dir}: {exc.strerror or exc}") from exc
        from sweepherd.launch.local import ProcessSpec

        self._group.start(
            [
                ProcessSpec(
                    self.argv(),
                    self.log_dir / AGENT_LOG.format(index=index),
                    env=self.env(slot),
                    cwd=self.workdir,
                )
                for index, slot in enumerate(self.slots)
            ]
        )

    @property
    def n_alive(self) -> int:
        return self._group.n_alive

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal every agent still running."""
        self._group.stop(sig)

    def wait(self, tick_s: float = 0.5) -> AgentsOutcome:
        """Wait for every agent to end.

        A ``sweepherd cancel`` of the sweep stops them; so does Ctrl-C (KeyboardInterrupt),
        each further Ctrl-C escalating.
        """
        outcome = AgentsOutcome()
        while self.n_alive:
            try:
                if not outcome.cancelled and self._cancelled():
                    outcome.cancelled = True
                    self.stop()
                time.sleep(tick_s)
            except KeyboardInterrupt:
                outcome.interrupted = True
                self.stop()
        outcome.exit_codes = [proc.wait() for proc in self._group.procs]
        return outcome

    def _cancelled(self) -> bool:
        try:
            return self.store.snapshot().cancelled
        except StoreError:
            return False


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
