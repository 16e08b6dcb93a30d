"""A run's wandb log that its script wrote somewhere else, found and linked into its folder.

Every trial gets ``WANDB_DIR=<run folder>`` and ``WANDB_RUN_ID=<run id>``, and sweepherd reads
the run's transaction log back from ``<run folder>/wandb/offline-run-*-<run id>/``. A script
that passes ``dir=`` to ``wandb.init`` (an output or scratch folder: common) writes it under
that folder instead, and one that passes ``id=`` names it after its own id (``wandb agent``
ignores ``id=`` in a sweep; sweepherd cannot, as it sets no W&B sweep id). Either way the
metric would not be read back, and ``sweepherd sync`` would not find the run.

While such a trial runs, wandb's ``wandb-core`` process, a child of the script, holds the log
open. The agent looks there (Linux's ``/proc``, :func:`open_transaction_logs`) while a trial
has no log where one is looked for, and links the log's folder into the run's folder under the
name sweepherd looks for (:func:`adopt_logs`): the live metric, the attempt records and
``sync`` then find it as they find any other. ``sync`` sends it under the sweep's run id, as
W&B's own sweeps would. A log on a disk the syncing machine does not see (a compute node's
``/tmp``) stays out of reach of ``sync`` there; its metric is still read on the node.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from sweepherd.wandb._proctree import below, child_map, open_files
from sweepherd.wandb._txlog import RUN_FOLDER, attempt_index, find_run_logs


def adopt_logs(run_dir: Path, run_id: str, logs: Iterable[Path]) -> list[Path] | None:
    """Link into ``run_dir/wandb/`` the folder of the log among ``logs`` (transaction logs a
    trial of ``run_id`` holds open, :func:`open_transaction_logs`) that is the run's and not
    already where sweepherd finds it: one named after ``run_id`` (``wandb.init(dir=...)``),
    else the only one open (``id=...``). Returns the links made; None when several logs of
    other ids are open (a script with runs of its own beside the sweep's): which one is the
    run cannot be told, and none is linked."""
    known = {p.resolve() for p in find_run_logs(run_dir, run_id)}
    fresh = [log for log in logs if log.resolve() not in known]
    chosen = [log for log in fresh if log.name == f"run-{run_id}.wandb"]
    if not chosen and len(fresh) > 1:
        return None
    made = []
    for log in chosen or fresh:
        link = link_run_folder(run_dir, run_id, log.parent)
        if link is not None:
            made.append(link)
    return made


def open_transaction_logs(pids: Iterable[int]) -> dict[int, list[Path]]:
    """For each of ``pids``, the wandb transaction logs (``<run folder>/run-<id>.wandb``) that
    it or any process below it holds open, each once; one reading of ``/proc`` for all. Empty
    lists on systems without ``/proc``."""
    children = child_map()
    found: dict[int, list[Path]] = {}
    for pid in pids:
        logs: dict[Path, None] = {}
        for proc in (pid, *below(pid, children)):
            for target in open_files(proc):
                path = Path(target)
                if _is_transaction_log(path):
                    logs.setdefault(path, None)
        found[pid] = list(logs)
    return found


def link_run_folder(run_dir: Path, run_id: str, folder: Path) -> Path | None:
    """Link ``folder`` (a wandb run folder) into ``run_dir/wandb/`` as a folder of ``run_id``,
    unless it is one there already or is linked already; the link made, or None."""
    match = RUN_FOLDER.match(folder.name)
    if match is None:
        return None
    base = run_dir / "wandb"
    tail = match.group(2)
    if folder.parent == base and attempt_index(tail, run_id) is not None:
        return None  # where sweepherd looks anyway
    target = folder.resolve()
    if not target.is_dir():
        return None
    try:
        existing = list(base.iterdir())
    except FileNotFoundError:
        existing = []
    if any(_links_as_own(p, run_id) and p.resolve() == target for p in existing):
        return None
    names = {p.name for p in existing}
    stem = f"{folder.name.removesuffix(tail)}{run_id}"
    name = next(n for n in _candidates(stem) if n not in names)
    base.mkdir(parents=True, exist_ok=True)
    link = base / name
    inside = target.is_relative_to(run_dir.resolve())  # relative: the sweep folder may move
    link.symlink_to(os.path.relpath(target, base.resolve()) if inside else target)
    return link


def unreachable_links(run_dir: Path, run_id: str) -> list[str]:
    """Where the links to logs written elsewhere point that this machine cannot follow (the
    folder is on another machine's disk, or gone): those logs cannot be read from here."""
    dead = []
    for sub in ("wandb", ".wandb"):
        try:
            entries = list((run_dir / sub).iterdir())
        except OSError:
            continue
        for entry in entries:
            if _links_as_own(entry, run_id) and not entry.exists():
                dead.append(str(entry.readlink()))
    return dead


def _links_as_own(path: Path, run_id: str) -> bool:
    """``path`` is a link named as a folder of ``run_id`` (not wandb's own ``latest-run``)."""
    match = RUN_FOLDER.match(path.name)
    return (
        match is not None and attempt_index(match.group(2), run_id) is not None
    ) and path.is_symlink()


def _candidates(stem: str) -> Iterable[str]:
    """``stem``, then ``stem-1``, ``stem-2``...: wandb's own names for same-second attempts."""
    yield stem
    n = 1
    while True:
        yield f"{stem}-{n}"
        n += 1


def _is_transaction_log(path: Path) -> bool:
    return (
        path.name.startswith("run-")
        and path.suffix == ".wandb"
        and RUN_FOLDER.match(path.parent.name) is not None
    )
