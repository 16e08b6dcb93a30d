"""``sweepherd export`` and ``plot`` through the CLI, their missing-extra errors, and the whole
monitor surface on a sweep run by real agents (``sweepherd run`` with a real trial script)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from monitor.helpers import Sweep, make_sweep
from support.agents import write_trial
from sweepherd.cli.main import main
from sweepherd.errors import ExitStatus


@pytest.fixture
def sweep(tmp_path: Path) -> Sweep:
    sweep = make_sweep(tmp_path / "sweeps")
    for i, (x, lr) in enumerate([(1, 0.1), (2, 0.1), (3, 0.01)]):
        run = sweep.claim({"x": x, "opt": {"lr": lr}}, node=f"node{i}")
        sweep.log(run, 0, loss=float(x))
        sweep.finish(run, metric=float(x) / 2)
    return sweep


def _cli(sweep: Sweep, *args: str) -> int:
    return main([args[0], sweep.id, *args[1:], "--dir", str(sweep.path.parent)])


def test_export_csv_to_stdout(sweep: Sweep, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(sweep, "export") == ExitStatus.OK
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["run_id"], r["param.x"], r["param.opt.lr"], r["metric"]) for r in rows] == [
        ("sw1-0000", "1", "0.1", "0.5"),
        ("sw1-0001", "2", "0.1", "1.0"),
        ("sw1-0002", "3", "0.01", "1.5"),
    ]


@pytest.mark.parametrize("suffix", ["csv", "json", "parquet"])
def test_export_format_from_the_file_suffix(
    sweep: Sweep, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"runs.{suffix}"
    assert _cli(sweep, "export", "-o", str(path)) == ExitStatus.OK
    assert capsys.readouterr().err == f"wrote 3 runs to {path}\n"
    reader = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[suffix]
    frame = reader(path)
    assert frame["param.x"].tolist() == [1, 2, 3]
    assert str(frame["param.x"].dtype) == "int64"
    assert frame["state"].tolist() == ["finished"] * 3


def test_a_suffix_that_names_no_format_is_refused_not_guessed(
    sweep: Sweep, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.tsv"  # CSV written here would break a reader expecting tabs
    assert _cli(sweep, "export", "-o", str(path)) == ExitStatus.USAGE
    assert "cannot tell the format from 'runs.tsv'" in capsys.readouterr().err
    assert not path.exists()
    assert _cli(sweep, "export", "-o", str(path), "--format", "csv") == ExitStatus.OK
    assert path.read_text().startswith("run_id,")


def test_parquet_defaults_to_a_file_named_after_the_sweep(
    sweep: Sweep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _cli(sweep, "export", "--format", "parquet") == ExitStatus.OK
    assert len(pd.read_parquet(tmp_path / "sw1.parquet")) == 3


BLOCKED = """
import sys
sys.modules[{module!r}] = None  # the optional extra is not installed
from sweepherd.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


#: This checkout: sweepherd is installed from it, editable, so the hints name it.
CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("module", "args", "hint"),
    [
        ("pyarrow", ["export", "--format", "parquet"], f"-m pip install -e '{CHECKOUT}[export]'"),
        ("matplotlib", ["plot"], f"-m pip install -e '{CHECKOUT}[plot]'"),
    ],
)
def test_a_missing_extra_is_a_clear_error(
    sweep: Sweep, tmp_path: Path, module: str, args: list[str], hint: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED.format(module=module), args[0], str(sweep.path), *args[1:]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == ExitStatus.ERROR
    assert proc.stderr.startswith("error: ")
    assert hint in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_plot_writes_pngs_and_the_html_report(
    sweep: Sweep, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "pics"
    assert _cli(sweep, "plot", "-o", str(out_dir), "--html") == ExitStatus.OK
    printed = capsys.readouterr()
    names = ["best_so_far", "parallel_coordinates", "metric_curves", "importance"]
    expected = [str(out_dir / f"{n}.png") for n in names] + [str(out_dir / "report.html")]
    assert printed.out.splitlines() == expected
    assert all(Path(p).stat().st_size > 5000 for p in expected)
    assert (
        printed.err
        == "parameter importance not computed: needs at least 5 runs with loss (3 so far)\n"
    )


def test_every_view_on_a_sweep_run_by_real_agents(tmp_path: Path) -> None:
    write_trial(tmp_path)
    (tmp_path / "sweep.yaml").write_text(
        "program: trial.py\nmethod: grid\nmetric: {name: loss, goal: minimize}\n"
        "parameters:\n  x: {values: [1, 2, 3]}\n  exit_code: {values: [0]}\n"
    )

    def sweepherd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sweepherd", *args, "--dir", "sweeps"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )

    ran = sweepherd("run", "sweep.yaml", "--agents", "1", "--slots", "2")
    assert ran.returncode == 0, ran.stderr
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    sid = sweep_dir.name
    listed = sweepherd("ls")
    row = listed.stdout.split("\n")[1].split()
    assert row == [sid, "grid", "done", "3/3", "1", "loss"], (listed, ran.stdout)
    watched = sweepherd("watch", sid, "--once")
    assert watched.stdout.splitlines()[0] == f"sweep {sid}: grid, minimize loss [done]", watched
    assert f"best 1: {sid}-0000 loss 1" in watched.stdout, watched
    exported = sweepherd("export", sid, "--format", "json")
    assert exported.returncode == 0, exported
    records = json.loads(exported.stdout)
    assert sorted((r["param.x"], r["metric"], r["state"]) for r in records) == [
        (1, 1.0, "finished"),
        (2, 4.0, "finished"),
        (3, 9.0, "finished"),
    ]
    assert all(isinstance(r["param.x"], int) and r["node"] for r in records)
    logs = sweepherd("logs", sid, "2")
    assert logs.stdout == f"hello from {sid}-0002\n", logs
    plotted = sweepherd("plot", sid, "-o", "pics")
    assert plotted.returncode == 0, plotted.stderr
    assert len(list((tmp_path / "pics").glob("*.png"))) == 4
