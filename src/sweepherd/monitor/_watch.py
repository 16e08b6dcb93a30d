"""``sweepherd watch``'s loop: collect a frame, draw it, sleep; until Ctrl-C or the sweep ends.

On a terminal the Rich view is redrawn in place (``rich.live.Live`` without its own refresh
thread: one redraw per collected frame). Elsewhere (a log file, a pipe, CI) it prints plain
lines: one line per run that ended, and the status line when it changed (or every
``plain_every_s``). Frames are at least ``MIN_INTERVAL_S`` apart, whatever is asked, so a
watcher left open on a login node costs a few ``stat`` calls a second at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live

from sweepherd.monitor._collect import WatchCollector
from sweepherd.monitor._model import WatchModel
from sweepherd.monitor._watch_view import (
    counts_text,
    done_text,
    ended_lines,
    plain_report,
    render_watch,
    status_line,
)

#: The shortest time between two frames.
MIN_INTERVAL_S = 0.5


@dataclass(frozen=True)
class ViewLimits:
    """How many rows of each section fit: the view must not scroll out of the terminal."""

    max_running: int = 8
    max_jobs: int = 6
    show_params: bool = True

    @classmethod
    def for_height(cls, height: int) -> ViewLimits:
        """Limits for a terminal ``height`` lines tall (the other sections take ~24 lines)."""
        return cls(max_running=max(3, min(30, height - 24)), max_jobs=max(2, min(10, height // 8)))


@dataclass(frozen=True)
class WatchResult:
    """How a watch ended."""

    model: WatchModel  # the last frame
    n_frames: int
    interrupted: bool  # stopped by Ctrl-C


def watch(
    collector: WatchCollector,
    console: Console,
    *,
    interval_s: float = 2.0,
    once: bool = False,
    plain_every_s: float = 60.0,
    max_frames: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> WatchResult:
    """Show the sweep until Ctrl-C, or until it is done or cancelled with nothing running.

    ``once`` draws one frame and returns. ``max_frames`` bounds the frames (tests); ``sleep``
    is the pause between frames.
    """
    interval_s = max(interval_s, MIN_INTERVAL_S)
    model = collector.collect()
    if once:
        if console.is_terminal:
            console.print(render_watch(model, **_limits(console).__dict__))
        else:
            for line in plain_report(model):
                console.print(line, highlight=False, markup=False, soft_wrap=True)
        return WatchResult(model, 1, False)
    if console.is_terminal:
        return _watch_live(collector, console, model, interval_s, max_frames, sleep)
    return _watch_plain(collector, console, model, interval_s, plain_every_s, max_frames, sleep)


def _limits(console: Console) -> ViewLimits:
    return ViewLimits.for_height(console.size.height)


def _done(model: WatchModel, n_frames: int, max_frames: int | None) -> bool:
    return model.finished or (max_frames is not None and n_frames >= max_frames)


def _watch_live(
    collector: WatchCollector,
    console: Console,
    model: WatchModel,
    interval_s: float,
    max_frames: int | None,
    sleep: Callable[[float], None],
) -> WatchResult:
    n_frames, interrupted = 1, False
    live = Live(
        render_watch(model, **_limits(console).__dict__),
        console=console,
        auto_refresh=False,
        transient=False,
        vertical_overflow="ellipsis",
    )
    live.start(refresh=True)
    try:
        while not _done(model, n_frames, max_frames):
            sleep(interval_s)
            model = collector.collect()
            n_frames += 1
            live.update(render_watch(model, **_limits(console).__dict__), refresh=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        live.stop()
    return WatchResult(model, n_frames, interrupted)


def _watch_plain(
    collector: WatchCollector,
    console: Console,
    model: WatchModel,
    interval_s: float,
    plain_every_s: float,
    max_frames: int | None,
    sleep: Callable[[float], None],
) -> WatchResult:
    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    n_frames, interrupted = 1, False
    say(status_line(model))
    last_key, last_t = _status_key(model), time.monotonic()
    try:
        while not _done(model, n_frames, max_frames):
            sleep(interval_s)
            model = collector.collect()
            n_frames += 1
            for line in ended_lines(model):
                say(line)
            key, now = _status_key(model), time.monotonic()
            if key != last_key or now - last_t >= plain_every_s:
                say(status_line(model))
                last_key, last_t = key, now
    except KeyboardInterrupt:
        interrupted = True
    return WatchResult(model, n_frames, interrupted)


def _status_key(model: WatchModel) -> tuple[object, ...]:
    """What makes the plain status line worth printing again (not the clock-driven parts)."""
    best = model.best[0].id if model.best else None
    return (model.state, done_text(model), counts_text(model), best)
