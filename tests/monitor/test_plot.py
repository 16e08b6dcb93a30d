"""The pictures: non-empty images whose content follows the data, read back from the figures."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from monitor.helpers import Sweep, make_sweep
from sweepherd.monitor import (
    best_runs,
    best_so_far,
    best_so_far_figure,
    curves_figure,
    load_history,
    parallel_axes,
    param_importance,
    write_plots,
)
from sweepherd.monitor._importance import METHOD_FOREST, METHOD_VARIANCE

RAW = {
    "method": "random",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "x": {"min": 0.0, "max": 1.0},
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "opt": {"parameters": {"name": {"values": ["adam", "sgd"]}}},
    },
}


def build(root: Path, sweep_id: str, seed: int, goal: str = "minimize", n: int = 14) -> Sweep:
    """Runs whose loss depends on x alone (lr and opt are noise), each with a logged history."""
    raw = {**RAW, "metric": {"name": "loss", "goal": goal}}
    sweep = make_sweep(root, raw, sweep_id=sweep_id)
    rng = np.random.default_rng(seed)
    for i in range(n):
        x = float(rng.uniform(0, 1))
        params = {
            "x": x,
            "lr": float(10 ** rng.uniform(-4, -1)),
            "opt": {"name": str(rng.choice(["adam", "sgd"]))},
        }
        run = sweep.claim(params)
        loss = 3.0 * x + 0.5
        for step in range(6):
            sweep.log(run, step, loss=loss + 2.0 / (step + 1))
        if i == 5:
            sweep.finish(run, "failed", exit_code=1, reason="boom")
        else:
            sweep.finish(run, metric=loss + 2.0 / 6)
    return sweep


def _runs(sweep: Sweep) -> list:
    return list(sweep.store.snapshot().runs.values())


def test_best_so_far_ends_at_the_best_run(root: Path) -> None:
    for goal in ("minimize", "maximize"):
        sweep = build(root, f"s-{goal}", seed=1, goal=goal)
        config, runs = sweep.store.config, _runs(sweep)
        best = best_runs(config, runs, 1)[0]
        fig = best_so_far_figure(config, runs)
        ax = fig.axes[0]
        (step_line,) = ax.lines  # the best-so-far line; the dots are a collection
        ys = list(step_line.get_ydata())
        assert ys[-1] == best.metric
        assert len(ys) == 13  # every run that ended with a metric (the failed one has none)
        steps = np.diff(ys)
        assert (steps <= 0).all() if goal == "minimize" else (steps >= 0).all()
        dots = ax.collections[0].get_offsets()
        assert sorted(dots[:, 1]) == sorted(r.metric for r in runs if r.metric is not None)
        assert any(best.id in t.get_text() for t in ax.texts)
        assert [p.best for p in best_so_far(config, runs)] == ys


def test_parallel_coordinates_place_the_best_run_at_the_good_end(root: Path) -> None:
    sweep = build(root, "pc", seed=2)
    config, runs = sweep.store.config, _runs(sweep)
    scored, axes = parallel_axes(config, runs)
    assert [a.name for a in axes] == ["x", "lr", "opt.name", "loss"]
    best = best_runs(config, runs, 1)[0]
    i = [r.id for r in scored].index(best.id)
    assert axes[-1].positions[i] == 0.0  # minimize: the lowest loss is at the bottom
    assert axes[0].positions[i] == 0.0  # and loss grows with x, so its x is the smallest
    assert {label for _, label in axes[2].ticks} == {"adam", "sgd"}
    lr_ticks = [float(label) for _, label in axes[1].ticks]
    assert (
        lr_ticks[0] < lr_ticks[1] < lr_ticks[2]
    )  # a log axis: its middle tick is a geometric mean
    assert lr_ticks[1] == pytest.approx((lr_ticks[0] * lr_ticks[2]) ** 0.5, rel=0.01)


def test_curves_are_the_logged_histories(root: Path) -> None:
    sweep = build(root, "cv", seed=3)
    config, runs = sweep.store.config, _runs(sweep)
    hist = {r.id: load_history(sweep.store.runs_dir / r.id, r.id, "loss") for r in runs}
    fig = curves_figure(config, runs, hist)
    lines = fig.axes[0].lines
    assert len(lines) == 14  # the failed run logged a history too
    best = best_runs(config, runs, 1)[0]
    bold = [line for line in lines if line.get_label() == best.id]
    assert len(bold) == 1
    assert list(bold[0].get_ydata()) == [p.value for p in hist[best.id]]


@pytest.mark.parametrize("method", ["forest", "variance"])
def test_importance_finds_the_parameter_that_matters(root: Path, method: str) -> None:
    sweep = build(root, f"imp-{method}", seed=4, n=30)
    result = param_importance(sweep.store.config, _runs(sweep), method=method)
    assert result.method == (METHOD_FOREST if method == "forest" else METHOD_VARIANCE)
    assert result.n_runs == 29
    assert result.params[0].name == "x"
    assert result.params[0].importance > 2 * result.params[1].importance
    assert result.params[0].correlation == pytest.approx(1.0)  # loss rises with x
    by_name = {p.name: p for p in result.params}
    assert by_name["opt.name"].correlation is None  # categorical: no rank correlation


def test_importance_needs_enough_runs(root: Path) -> None:
    sweep = build(root, "few", seed=5, n=4)
    result = param_importance(sweep.store.config, _runs(sweep))
    assert result.method is None
    assert result.note == "needs at least 5 runs with loss (4 so far)"  # one of 5 failed


def _png_pixels(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(io.BytesIO(data), format="png")


def test_written_images_are_real_and_change_with_the_data(root: Path, tmp_path: Path) -> None:
    a = write_plots(build(root, "a", seed=6).store, tmp_path / "a", html_report=True)
    a_again = write_plots(build(tmp_path / "other", "a", seed=6).store, tmp_path / "a2")
    b = write_plots(build(root, "b", seed=7).store, tmp_path / "b")
    assert set(a.pngs) == {"best_so_far", "parallel_coordinates", "metric_curves", "importance"}
    for name, path in a.pngs.items():
        data = path.read_bytes()
        pixels = _png_pixels(data)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400
        assert float(pixels[..., :3].std()) > 0.05  # not a blank canvas
        assert data == a_again.pngs[name].read_bytes(), name  # same data: the same picture
        assert data != b.pngs[name].read_bytes(), name  # other data: another picture
    assert a.best_so_far[-1].best != b.best_so_far[-1].best
    assert a.n_histories == 14


def test_the_html_report_is_self_contained(root: Path, tmp_path: Path) -> None:
    sweep = build(root, "h", seed=8)
    report = write_plots(sweep.store, tmp_path / "out", html_report=True)
    assert report.html is not None
    text = report.html.read_text()
    assert "<script" not in text.lower()
    assert not re.search(r'src="(?!data:)', text)  # nothing loaded from elsewhere
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert [base64.b64decode(i) for i in images] == [p.read_bytes() for p in report.pngs.values()]
    best = best_runs(sweep.store.config, _runs(sweep), 1)[0]
    assert f"<td>{best.id}</td>" in text
    assert f"Method: {METHOD_FOREST}" in text


def test_a_sweep_without_results_still_gets_its_pictures(root: Path, tmp_path: Path) -> None:
    sweep = make_sweep(root, RAW, sweep_id="empty")
    report = write_plots(sweep.store, tmp_path / "empty")
    for path in report.pngs.values():
        assert float(_png_pixels(path.read_bytes())[..., :3].std()) > 0  # the message is drawn
    assert report.importance.method is None
