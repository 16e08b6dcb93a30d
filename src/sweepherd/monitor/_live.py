"""The live progress line ``sweepherd run`` shows while its agents work.

On a terminal it is a Rich progress bar redrawn in place; when stdout is not a terminal (a log
file, CI) it prints a plain line when something changed, at most every ``plain_every_s``.
It reads the journal only when it changed (one ``stat`` per refresh otherwise), and then only
what was appended.
"""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from sweepherd.monitor._follow import ChangeWatcher
from sweepherd.monitor._render import progress_text
from sweepherd.monitor._summary import progress
from sweepherd.store import SweepStore


class ProgressView:
    """Shows the progress of a sweep; call :meth:`update` often and :meth:`close` at the end."""

    def __init__(self, store: SweepStore, console: Console, plain_every_s: float = 10.0) -> None:
        self.store = store
        self.console = console
        self.plain_every_s = plain_every_s
        self._last_plain = ""
        self._last_plain_t = 0.0
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._task = self._bar.add_task(store.sweep_id, total=None)
        self._live: Live | None = None
        self._journal = ChangeWatcher(store.journal_path)
        self._line: Text | None = None
        if console.is_terminal:
            self._live = Live(console=console, refresh_per_second=4, transient=False)
            self._live.start()

    def update(self) -> None:
        if self._journal.changed() or self._line is None:
            runs = list(self.store.snapshot().runs.values())
            prog = progress(self.store.config, runs)
            self._line = progress_text(self.store.config, prog, runs)
            self._bar.update(self._task, completed=prog.n_settled, total=prog.expected)
        line = self._line
        if self._live is not None:
            self._live.update(Group(self._bar, line))
            return
        now = time.monotonic()
        plain = line.plain
        if plain != self._last_plain and now - self._last_plain_t >= self.plain_every_s:
            self.console.print(plain, highlight=False)
            self._last_plain, self._last_plain_t = plain, now

    def close(self) -> None:
        if self._live is not None:
            self.update()
            self._live.stop()
            self._live = None
        else:
            self._last_plain_t = 0.0
            self.update()
