"""What a Slurm submission of a sweep asks for: :class:`SbatchOptions`, checked when built."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sweepherd.errors import ConfigError

#: The forms of ``--time`` Slurm accepts, as the error messages list them.
TIME_FORMATS = (
    "MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS, DAYS-HOURS:MINUTES, "
    "DAYS-HOURS:MINUTES:SECONDS, or UNLIMITED"
)

_TIME_RE = re.compile(
    r"^(?:(?P<days>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
    r"|(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)"
    r"|(?P<mm>\d+)(?::(?P<ss>\d+))?)$"
)
_MEM_RE = re.compile(r"^\d+(?:[KMGT]B?)?$", re.IGNORECASE)  # as sbatch reads it: 16G, 16gb
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LONG_OPTION_RE = re.compile(r"^--[A-Za-z][A-Za-z0-9-]*(=|$)")
#: sbatch options that must not come through ``--sbatch-arg``, and why.
_OWN_OPTIONS = {
    "--time": "use --time, which is checked against the warning signal's grace",
    "--time-min": "a shorter limit than --time could come before the warning signal; use --time",
    "--signal": "sweepherd sets the warning signal itself; use --signal-grace",
}
#: ``--signal=B:USR1@N`` takes at most this many seconds.
MAX_SIGNAL_GRACE_S = 65535


def parse_time_limit_s(text: str) -> int | None:
    """Seconds of a Slurm ``--time`` value; ``None`` for UNLIMITED/INFINITE, and for 0, which
    Slurm also takes as no limit (measured: ``--time=0`` shows as UNLIMITED).

    Raises :class:`ValueError` naming the accepted forms when ``text`` is none of them.
    """
    value = text.strip()
    if value.upper() in ("UNLIMITED", "INFINITE"):
        return None
    match = _TIME_RE.match(value)
    if match is None:
        raise ValueError(f"invalid time limit {text!r}: use {TIME_FORMATS}")
    g = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    if "days" in g:
        seconds = ((g["days"] * 24 + g["dh"]) * 60 + g.get("dm", 0)) * 60 + g.get("ds", 0)
    elif "h" in g:
        seconds = (g["h"] * 60 + g["m"]) * 60 + g["s"]
    else:
        seconds = g["mm"] * 60 + g.get("ss", 0)
    return seconds or None


@dataclass(frozen=True)
class SbatchOptions:
    """Everything an sbatch script for a sweep asks for; validated on construction.

    One agent runs per node; it runs ``gpus_per_node * trials_per_gpu`` trials at once, or
    ``slots`` trials when the nodes have no GPUs. ``None`` means "leave it to Slurm's default".
    Raises :class:`~sweepherd.errors.ConfigError` listing every invalid value.
    """

    sweep_dir: Path  # the sweep directory, on the shared filesystem
    nodes: int = 1  # nodes of the one allocation (``render_submit``)
    gpus_per_node: int = 0
    trials_per_gpu: int = 1
    slots: int | None = None  # trials at once per node when gpus_per_node is 0 (agent default 1)
    cpus_per_task: int | None = None  # CPUs of each node's agent (and its trials)
    mem: str | None = None  # per node, as Slurm writes it: 16000, 16G, 0 (all)
    partition: str | None = None
    time: str | None = None  # time limit, e.g. 4:00:00 or 1-12:00
    qos: str | None = None
    account: str | None = None
    job_name: str | None = None  # default "sweepherd-<sweep directory name>"
    output: str | None = None  # default <sweep_dir>/slurm/%j.out (arrays: %A_%a.out)
    setup: Sequence[str] = ()  # shell lines run before the agent (module load, venv activate)
    sbatch_args: Sequence[str] = ()  # more sbatch options, each one --name=value
    env: Mapping[str, str] = field(default_factory=dict)  # exported before the agent starts
    signal_grace_s: int = 120  # the warning signal (USR1) comes this long before the time limit
    requeue: bool = True  # requeue the job when its agents were stopped with work left
    array_max_parallel: int | None = None  # scale: at most this many array elements at once
    stagger_s: float = 10.0  # scale: spread array elements' agent starts over this many seconds
    python: str = field(default_factory=lambda: sys.executable)  # interpreter on the nodes
    agent_args: Sequence[str] = ()  # more arguments for ``sweepherd agent``

    def __post_init__(self) -> None:
        object.__setattr__(self, "sweep_dir", Path(self.sweep_dir))
        object.__setattr__(self, "setup", tuple(self.setup))
        object.__setattr__(self, "sbatch_args", tuple(self.sbatch_args))
        object.__setattr__(self, "agent_args", tuple(self.agent_args))
        object.__setattr__(self, "env", dict(self.env))
        problems = self.violations()
        if problems:
            raise ConfigError("invalid Slurm options:", violations=problems)

    def to_record(self) -> dict[str, Any]:
        """Every option but ``sweep_dir`` as plain JSON values, to keep in the sweep's journal."""
        record: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "sweep_dir":
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            record[f.name] = value
        return record

    @classmethod
    def from_record(
        cls, sweep_dir: Path, record: Mapping[str, Any], **overrides: Any
    ) -> SbatchOptions:
        """Options for ``sweep_dir`` from a :meth:`to_record` record, with ``overrides`` on top.

        Keys this version does not know are ignored (a record written by another version);
        an override of ``None`` keeps the recorded value. Validated as on construction.
        """
        names = {f.name for f in fields(cls)} - {"sweep_dir"}
        values = {k: v for k, v in record.items() if k in names}
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - names)
        if unknown:
            raise TypeError(f"unknown Slurm options: {', '.join(unknown)}")
        return cls(sweep_dir=sweep_dir, **values)

    @property
    def resolved_job_name(self) -> str:
        """The job name: ``job_name``, or ``sweepherd-<sweep directory name>``."""
        return self.job_name or f"sweepherd-{self.sweep_dir.name}"

    @property
    def trials_per_node(self) -> int:
        """How many trials each node's agent runs at once."""
        if self.gpus_per_node:
            return self.gpus_per_node * self.trials_per_gpu
        return self.slots or 1

    @property
    def cpus_per_node(self) -> int | None:
        """``cpus_per_task``, else one CPU per trial when a node runs several (Slurm would give
        the agent one CPU for all of them); None leaves it to Slurm."""
        if self.cpus_per_task is not None:
            return self.cpus_per_task
        if self._passes("--cpus-per-gpu"):  # sbatch refuses it beside --cpus-per-task
            return None
        return self.trials_per_node if self.trials_per_node > 1 else None

    def _passes(self, name: str) -> bool:
        """Whether ``--sbatch-arg`` gives the sbatch option ``name``."""
        return any(isinstance(a, str) and a.partition("=")[0] == name for a in self.sbatch_args)

    @property
    def time_limit_s(self) -> int | None:
        """The time limit in seconds; ``None`` when unset or unlimited."""
        return None if self.time is None else parse_time_limit_s(self.time)

    def violations(self) -> list[str]:
        """Every problem with these options, each naming the option and what is allowed."""
        problems: list[str] = []

        def positive(name: str, value: int | None, *, minimum: int = 1) -> None:
            if value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                problems.append(f"{name}: must be a whole number >= {minimum}, got {value!r}")

        positive("nodes", self.nodes)
        positive("gpus_per_node", self.gpus_per_node, minimum=0)
        positive("trials_per_gpu", self.trials_per_gpu)
        positive("slots", self.slots)
        positive("cpus_per_task", self.cpus_per_task)
        positive("array_max_parallel", self.array_max_parallel)
        positive("signal_grace_s", self.signal_grace_s)
        if isinstance(self.signal_grace_s, int) and self.signal_grace_s > MAX_SIGNAL_GRACE_S:
            problems.append(
                f"signal_grace_s: Slurm allows at most {MAX_SIGNAL_GRACE_S}, "
                f"got {self.signal_grace_s}"
            )
        if self.cpus_per_task is not None and self._passes("--cpus-per-gpu"):
            problems.append(
                "cpus_per_task: Slurm takes either --cpus-per-task or --cpus-per-gpu, not both; "
                "drop one of them"
            )
        if self.slots is not None and self.gpus_per_node:
            problems.append(
                "slots: give either slots (nodes without GPUs) or gpus_per_node with "
                "trials_per_gpu, not both"
            )
        if (
            isinstance(self.trials_per_gpu, int)
            and self.trials_per_gpu > 1
            and not (self.gpus_per_node)
        ):
            problems.append(
                f"trials_per_gpu: {self.trials_per_gpu} trials per GPU needs gpus_per_node "
                "(without GPUs, give the trials per node as slots)"
            )
        if not isinstance(self.stagger_s, (int, float)) or not 0 <= self.stagger_s <= 86400:
            problems.append(
                f"stagger_s: must be between 0 and 86400 seconds, got {self.stagger_s!r}"
            )
        if self.mem is not None and not _MEM_RE.match(self.mem):
            problems.append(
                f"mem: {self.mem!r} is not a Slurm memory size: use a whole number of MB, or "
                "one with a K, M, G or T suffix (16G, 16GB), or 0 for all of a node's memory"
            )
        if self.time is not None:
            try:
                limit_s = parse_time_limit_s(self.time)
            except ValueError:
                problems.append(
                    f"time: {self.time!r} is not a Slurm time limit: use {TIME_FORMATS}"
                )
            else:
                if limit_s is not None and limit_s <= self.signal_grace_s:
                    problems.append(
                        f"signal_grace_s: the warning signal must come before the time limit "
                        f"({limit_s} s), got {self.signal_grace_s} s; lower it or raise --time"
                    )
        for name in ("partition", "qos", "account", "job_name", "output", "python"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{name}: must be a non-empty string, got {value!r}")
            elif _has_line_break(value):
                problems.append(f"{name}: must be one line, got {value!r}")
        sweep_dir = str(self.sweep_dir)
        if not self.sweep_dir.is_absolute():
            problems.append(
                f"sweep_dir: must be an absolute path (the job may start in another "
                f"directory), got {sweep_dir!r}"
            )
        if _has_line_break(sweep_dir) or "\\" in sweep_dir:
            problems.append(
                f"sweep_dir: Slurm output paths cannot hold line breaks or backslashes: "
                f"{sweep_dir!r}; move the sweep to a plainer path"
            )
        for i, line in enumerate(self.setup):
            if not isinstance(line, str) or "\0" in line:
                problems.append(f"setup[{i}]: must be a shell line, got {line!r}")
        for i, arg in enumerate(self.sbatch_args):
            if not isinstance(arg, str) or not _LONG_OPTION_RE.match(arg):
                problems.append(
                    f"sbatch_args[{i}]: {arg!r} is not one long sbatch option: write it as "
                    "--name=value (e.g. --constraint=a100), one option per --sbatch-arg"
                )
            elif _has_line_break(arg):
                problems.append(f"sbatch_args[{i}]: must be one line, got {arg!r}")
            elif (name := arg.partition("=")[0]) in _OWN_OPTIONS:
                problems.append(f"sbatch_args[{i}]: {arg!r}: {_OWN_OPTIONS[name]}")
        for name, value in self.env.items():
            if not isinstance(name, str) or not _ENV_NAME_RE.match(name):
                problems.append(
                    f"env: {name!r} is not an environment variable name "
                    "(letters, digits and _, not starting with a digit)"
                )
            if not isinstance(value, str) or "\0" in value:
                problems.append(f"env[{name}]: must be a string without NUL, got {value!r}")
        for i, arg in enumerate(self.agent_args):
            if not isinstance(arg, str) or "\0" in arg:
                problems.append(f"agent_args[{i}]: must be a string without NUL, got {arg!r}")
        return problems


def _has_line_break(text: str) -> bool:
    return any(c in text for c in "\n\r\0")
