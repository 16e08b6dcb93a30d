"""``sweepherd logs SWEEP RUN``: a run's output, optionally followed live."""

from __future__ import annotations

from pathlib import Path

import click

from sweepherd.cli._common import sweep_argument


@click.command()
@sweep_argument
@click.argument("run_ref", metavar="RUN")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the run ends.")
@click.option("--stderr", "stderr", is_flag=True, help="Show stderr.log instead of stdout.log.")
@click.option(
    "--attempt", type=click.IntRange(min=1), default=None, help="Only this attempt's output."
)
def logs(
    sweep: str, root: Path, run_ref: str, follow: bool, stderr: bool, attempt: int | None
) -> int:
    """Show RUN's output (stdout.log, or stderr.log with --stderr).

    RUN is a run id (abc123-0007) or its number (7). A run resumed after preemption has
    several attempts in the same log, each after a `--- sweepherd: attempt N ... ---` line;
    --attempt N shows only one. With -f, output is printed as the run writes it until the run
    stops running (Ctrl-C stops following; the run goes on).
    """
    import sys

    from sweepherd.monitor import follow_log, resolve_run
    from sweepherd.store import open_sweep

    store = open_sweep(sweep, root)
    run = resolve_run(store.snapshot(), store.sweep_id, run_ref)
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    try:
        last = follow_log(store, run, write, stderr=stderr, attempt=attempt, follow=follow)
    except KeyboardInterrupt:
        return 0
    if follow and last.state.value != "running":
        print(f"[run {last.id} is {last.state.value}]", file=sys.stderr)
    if not stderr and last.state.value == "failed":  # its traceback is in the other file
        print(
            f"[run {last.id} failed ({last.reason or 'no reason recorded'}); its errors: "
            f"sweepherd logs {sweep} {run_ref} --stderr]",
            file=sys.stderr,
        )
    return 0
