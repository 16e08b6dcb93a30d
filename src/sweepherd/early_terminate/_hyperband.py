"""W&B's hyperband stopping rule (``sweeps/hyperband_stopping.py``), written out.

- **Bands** are the iteration counts at which runs are compared. With ``min_iter``:
  ``min_iter, min_iter·eta, min_iter·eta², ...`` (100 of them, each truncated to an int, the
  running product kept in floating point as W&B does). With ``max_iter`` and ``s`` (W&B uses
  these whenever ``max_iter`` is given): ``max_iter/eta, max_iter/eta², ...`` for at most ``s``
  steps while at least 1, truncated to ints and sorted.
- **Thresholds**: for each band ``b``, the values the runs had at their ``b``-th logged value
  (every run of the sweep that got that far, finished or not), sorted in the goal's direction;
  the threshold is the one at index ``int(len * (1 / eta))``, so about the best ``1/eta`` of
  them are at or below it. No run that far: no threshold (infinite).
- **Decision**, for each running run: take the highest band its history has reached. Stop it
  when its value there (``strict: true``, the default) — or its best value so far
  (``strict: false``) — is worse than that band's threshold.

Values that are not finite numbers are skipped, as W&B skips them; for ``goal: maximize`` the
values are negated so that lower is always better.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from sweepherd.config._model import EarlyTerminate, SweepConfig
from sweepherd.errors import ConfigError

#: How many bands ``min_iter`` gives (W&B's count).
N_MIN_ITER_BANDS = 100
#: No run logs this many values: bands beyond it change no decision, so they are not made.
NEVER_REACHED = 2**62


@dataclass(frozen=True)
class Stop:
    """Why hyperband stops a run: its value at a band was worse than the band's threshold."""

    band: int  # the number of logged values it was compared at
    value: float  # its value there (``strict``) or its best so far, in the metric's own sign
    threshold: float  # the band's threshold, in the metric's own sign
    n_compared: int  # how many runs of the sweep had logged that many values
    strict: bool

    def describe(self, metric: str) -> str:
        """One sentence for the run's record: what was compared with what."""
        what = f"{metric} {self.value:g}" if self.strict else f"best {metric} {self.value:g}"
        return (
            f"stopped early by hyperband: {what} after {self.band} values was worse than "
            f"{self.threshold:g}, the cut-off among the {self.n_compared} runs that got as far"
        )


def to_stop(
    config: SweepConfig,
    histories: Mapping[str, Sequence[float]],
    running: Collection[str],
) -> set[str]:
    """The ids in ``running`` whose run hyperband says to stop now.

    ``histories`` maps every run of the sweep that logged the metric (any state) to its
    values of ``config.metric.name`` in log order; all of them set the thresholds. Only runs in
    ``running`` can be stopped. Without ``early_terminate`` nothing is stopped.
    """
    return set(stops(config, histories, running))


def stops(
    config: SweepConfig,
    histories: Mapping[str, Sequence[float]],
    running: Collection[str],
) -> dict[str, Stop]:
    """:func:`to_stop` with the comparison behind each decision."""
    et = config.early_terminate
    if et is None:
        return {}
    if config.metric is None:
        raise ConfigError(
            "early_terminate needs a metric to compare runs by",
            hint="Add `metric: {name: <logged key>, goal: minimize|maximize}` to the config.",
        )
    sign = -1.0 if config.metric.goal == "maximize" else 1.0
    clean = {run_id: _lower_is_better(h, sign) for run_id, h in histories.items()}
    band_list = bands(et)
    limits = thresholds(band_list, clean.values(), et.eta)
    out: dict[str, Stop] = {}
    for run_id in running:
        history = clean.get(run_id)
        if not history:
            continue
        reached = [i for i, band in enumerate(band_list) if band <= len(history)]
        if not reached:
            continue
        i = reached[-1]
        band = band_list[i]
        value = history[band - 1] if et.strict else min(history)
        if value > limits[i]:
            n_compared = sum(len(h) >= band for h in clean.values())
            out[run_id] = Stop(band, sign * value, sign * limits[i], n_compared, et.strict)
    return out


def bands(et: EarlyTerminate) -> list[int]:
    """The iteration counts at which runs are compared, in increasing order."""
    out: list[int] = []
    if et.max_iter is not None:
        band = float(et.max_iter)
        for _ in range(et.s or 0):
            band /= et.eta
            if band < 1:
                break
            out.append(int(band))
        out.sort()
    elif et.min_iter is not None:
        grown: float = et.min_iter  # an int: W&B's product stays exact until eta makes it float
        for _ in range(N_MIN_ITER_BANDS):
            out.append(int(grown))
            if grown > NEVER_REACHED:  # later bands cannot be reached, and may overflow a float
                break
            grown *= et.eta
    if not out:
        raise ConfigError(
            "early_terminate gives no band to compare runs at",
            hint="Give min_iter >= 1, or max_iter and s with max_iter >= eta.",
        )
    return out


def thresholds(
    band_list: Sequence[int], histories: Collection[Sequence[float]], eta: float
) -> list[float]:
    """For each band, the value a run must not be worse than (lower is better; see module)."""
    ratio = 1.0 / eta  # W&B's r: index int(r * n), computed as W&B computes it
    longest = max((len(h) for h in histories), default=0)
    out: list[float] = []
    for band in band_list:
        if band > longest:  # no run got that far
            out.append(math.inf)
            continue
        values = sorted(h[band - 1] for h in histories if len(h) >= band)
        out.append(values[int(ratio * len(values))])
    return out


def _lower_is_better(history: Sequence[float], sign: float) -> list[float]:
    return [
        sign * float(v)
        for v in history
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
