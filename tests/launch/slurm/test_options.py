"""SbatchOptions: every invalid value is reported, with what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweepherd.errors import ConfigError
from sweepherd.launch.slurm import SbatchOptions, parse_time_limit_s

SWEEP = Path("/sweeps/abc")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 1800),
        ("30:15", 1815),
        ("4:00:00", 14400),
        ("1-0", 86400),
        ("2-12", 216000),
        ("1-2:30", 95400),
        ("1-2:30:05", 95405),
        ("UNLIMITED", None),
        ("infinite", None),
        ("0", None),  # Slurm takes --time=0 as no limit
        ("0:00:00", None),
    ],
)
def test_time_limits_in_every_slurm_form(text: str, seconds: int | None) -> None:
    assert parse_time_limit_s(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "1-", "-5", "1.5", "4h", "1-2-3"])
def test_bad_time_limits_name_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="HOURS:MINUTES:SECONDS"):
        parse_time_limit_s(text)


def test_defaults_are_valid() -> None:
    options = SbatchOptions(sweep_dir=SWEEP)
    assert options.nodes == 1
    assert options.requeue
    assert options.signal_grace_s == 120
    assert options.resolved_job_name == "sweepherd-abc"
    assert options.time_limit_s is None


def test_every_violation_is_listed_together() -> None:
    with pytest.raises(ConfigError) as info:
        SbatchOptions(
            sweep_dir=Path("relative/dir"),
            nodes=0,
            gpus_per_node=-1,
            trials_per_gpu=0,
            cpus_per_task=0,
            mem="16 GB",
            time="4h",
            partition="",
            sbatch_args=["-C gpu", "--ok=1", "constraint=x"],
            env={"1BAD": "x", "GOOD": "y"},
            signal_grace_s=70000,
            array_max_parallel=0,
            stagger_s=-1,
        )
    text = str(info.value)
    problems = info.value.violations
    for expected in (
        "nodes: must be a whole number >= 1, got 0",
        "gpus_per_node: must be a whole number >= 0, got -1",
        "trials_per_gpu:",
        "cpus_per_task:",
        "array_max_parallel:",
        "mem: '16 GB' is not a Slurm memory size",
        "time: '4h' is not a Slurm time limit: use MINUTES, MINUTES:SECONDS",
        "partition: must be a non-empty string",
        "sbatch_args[0]: '-C gpu' is not one long sbatch option: write it as --name=value",
        "sbatch_args[2]:",
        "env: '1BAD' is not an environment variable name",
        "signal_grace_s: Slurm allows at most 65535",
        "stagger_s:",
        "sweep_dir: must be an absolute path",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert not any("sbatch_args[1]" in p for p in problems)
    assert not any("GOOD" in p for p in problems)
    assert text.startswith("invalid Slurm options:\n  - ")


def test_grace_must_come_before_the_time_limit() -> None:
    with pytest.raises(ConfigError, match=r"before the time limit \(120 s\), got 120 s"):
        SbatchOptions(sweep_dir=SWEEP, time="2", signal_grace_s=120)
    assert SbatchOptions(sweep_dir=SWEEP, time="3", signal_grace_s=120).time_limit_s == 180
    assert SbatchOptions(sweep_dir=SWEEP, time="0", signal_grace_s=120).time_limit_s is None


@pytest.mark.parametrize(
    ("arg", "says"),
    [
        ("--time=1", "use --time, which is checked against the warning"),
        ("--time-min=1", "a shorter limit than --time"),
        ("--signal=B:USR1@60", "use --signal-grace"),
    ],
)
def test_options_sweepherd_checks_itself_cannot_come_as_sbatch_args(arg: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        SbatchOptions(sweep_dir=SWEEP, sbatch_args=[arg])
    [problem] = info.value.violations
    assert problem.startswith(f"sbatch_args[0]: {arg!r}: ") and says in problem


@pytest.mark.parametrize("mem", ["16384", "16G", "16g", "16GB", "16gb", "1024MB", "0", "512k"])
def test_memory_sizes_sbatch_takes_are_taken(mem: str) -> None:
    assert SbatchOptions(sweep_dir=SWEEP, mem=mem).mem == mem


def test_slots_and_gpus_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match="either slots"):
        SbatchOptions(sweep_dir=SWEEP, gpus_per_node=2, slots=4)


@pytest.mark.parametrize("field", ["job_name", "partition", "output", "account", "qos"])
def test_line_breaks_are_refused(field: str) -> None:
    with pytest.raises(ConfigError, match=f"{field}: must be one line"):
        SbatchOptions(sweep_dir=SWEEP, **{field: "a\nb"})


def test_paths_slurm_cannot_write_are_refused() -> None:
    with pytest.raises(ConfigError, match="backslashes"):
        SbatchOptions(sweep_dir=Path("/sweeps/a\\b"))


def test_booleans_are_not_counts() -> None:
    with pytest.raises(ConfigError, match="nodes: must be a whole number"):
        SbatchOptions(sweep_dir=SWEEP, nodes=True)
