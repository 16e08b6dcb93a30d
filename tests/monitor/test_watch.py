"""The watch loop: bounded frame rate, terminal vs plain output, exit when done, Ctrl-C."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from monitor.helpers import Sweep
from sweepherd.monitor import MIN_INTERVAL_S, ViewLimits, WatchCollector, watch


def _terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=80, height=40, record=True)


def _pipe() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80), out


def test_frames_are_never_closer_than_the_minimum(sweep: Sweep) -> None:
    sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    slept: list[float] = []
    result = watch(
        WatchCollector(sweep.store),
        _terminal(),
        interval_s=0.001,
        max_frames=4,
        sleep=slept.append,
    )
    assert result.n_frames == 4
    assert slept == [MIN_INTERVAL_S] * 3  # one pause between frames, clamped


def test_terminal_frames_redraw_the_view(sweep: Sweep) -> None:
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    console = _terminal()

    def between_frames(_: float) -> None:  # the sweep moves on while the view sleeps
        sweep.finish(run, metric=0.5)

    result = watch(
        WatchCollector(sweep.store), console, interval_s=2, max_frames=2, sleep=between_frames
    )
    text = console.export_text()
    assert "running (1)" in text  # the first frame
    assert "best by loss (minimize)" in text  # the second
    assert "\x1b[" in console.file.getvalue()  # drawn in place with escape codes
    assert not result.interrupted


def test_plain_output_prints_ended_runs_and_changed_status(sweep: Sweep) -> None:
    a = sweep.claim({"x": 1, "opt": {"lr": 0.1}}, node="n1")
    b = sweep.claim({"x": 2, "opt": {"lr": 0.1}}, node="n2")
    console, out = _pipe()
    steps = iter([lambda: None, lambda: sweep.finish(a, metric=0.25), lambda: None])

    def between_frames(_: float) -> None:
        next(steps)()

    watch(
        WatchCollector(sweep.store),
        console,
        interval_s=1,
        max_frames=4,
        sleep=between_frames,
        plain_every_s=1e9,
    )
    printed = out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue()
    assert printed[0].startswith("sweep sw1 (demo): grid, minimize loss [running] · 0/6 runs")
    assert printed[1].startswith(f"{a.id} finished loss=0.25 in ")
    assert printed[1].endswith(" on n1")
    assert printed[2].startswith("sweep sw1 (demo): grid, minimize loss [running] · 1/6 runs")
    assert f"best loss 0.25 ({a.id})" in printed[2]
    assert len(printed) == 3  # unchanged frames print nothing
    sweep.finish(b, metric=1.0)


def test_the_watch_ends_by_itself_when_the_sweep_is_done(sweep: Sweep) -> None:
    for i, x in enumerate((1, 2, 3)):
        for lr in (0.1, 0.01):
            sweep.finish(sweep.claim({"x": x, "opt": {"lr": lr}}), metric=float(i))
    slept: list[float] = []
    console, out = _pipe()
    result = watch(WatchCollector(sweep.store), console, sleep=slept.append)
    assert result.n_frames == 1 and slept == []
    assert "[done] · 6/6 runs done (100%)" in out.getvalue()


def test_ctrl_c_stops_the_live_view_cleanly(sweep: Sweep) -> None:
    sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    console = _terminal()

    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    result = watch(WatchCollector(sweep.store), console, sleep=interrupt)
    assert result.interrupted
    assert result.n_frames == 1
    assert console.file.getvalue().endswith("\x1b[?25h")  # Live stopped: cursor shown again


def test_once_prints_one_frame(sweep: Sweep) -> None:
    console, out = _pipe()
    result = watch(WatchCollector(sweep.store), console, once=True, sleep=pytest.fail)
    assert result.n_frames == 1
    assert out.getvalue().splitlines()[0] == "sweep sw1 (demo): grid, minimize loss [empty]"


@pytest.mark.parametrize(("height", "running"), [(24, 3), (40, 16), (200, 30)])
def test_view_limits_follow_the_terminal_height(height: int, running: int) -> None:
    assert ViewLimits.for_height(height).max_running == running
