"""W&B's own engine as the oracle, and the corpus of configs the config tests run on.

``wandb_rejections(config)`` asks the ``sweeps`` package (W&B's engine, a test-only dependency)
whether it accepts a config: its schema check must find nothing, and the engine must be able to
start the sweep (``next_run``) and, with ``early_terminate``, run hyperband (``stop_runs``).
W&B's schema lets some configs through that its engine then fails on (grid with continuous
parameters, bayes without a metric, nested ``min > max``...), so both are consulted.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

CORPUS_DIR = Path(__file__).parent / "corpus"


def wandb_rejections(config: Any) -> list[str]:
    """Why W&B's engine refuses ``config``; ``[]`` when it accepts it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps

        try:
            found = sweeps.schema_violations_from_proposed_config(copy.deepcopy(config))
        except Exception as exc:  # the engine raises on some malformed configs
            return [f"schema check raised {exc!r}"]
        if found:
            return [str(v) for v in found]
        try:
            sweeps.next_run(copy.deepcopy(config), [])
        except Exception as exc:
            return [f"next_run raised {exc!r}"]
        if "early_terminate" in config:
            try:
                sweeps.stop_runs(copy.deepcopy(config), [])
            except Exception as exc:
                return [f"stop_runs raised {exc!r}"]
    return []


def load_corpus() -> list[Any]:
    """Every corpus case as a ``pytest.param`` with the id ``file:case``.

    Each YAML document in ``corpus/`` is one case: ``id``, ``config``, ``paths`` (exactly the key
    paths sweepherd reports, ``[]`` for a valid config), optionally ``differs`` (why sweepherd
    refuses what W&B's engine accepts, on purpose) and ``unsupported`` (every problem is a W&B
    feature sweepherd does not run).
    """
    cases = []
    for path in sorted(CORPUS_DIR.glob("*.yaml")):
        for case in yaml.safe_load_all(path.read_text()):
            cases.append(pytest.param(case, id=f"{path.stem}:{case['id']}"))
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``corpus_case`` runs once per case; ``valid_corpus_case``, per valid one."""
    if "corpus_case" in metafunc.fixturenames:
        metafunc.parametrize("corpus_case", load_corpus())
    if "valid_corpus_case" in metafunc.fixturenames:
        valid = [c for c in load_corpus() if not c.values[0]["paths"]]
        metafunc.parametrize("valid_corpus_case", valid)


@pytest.fixture
def wandb_verdict() -> Callable[[Any], list[str]]:
    """The oracle: why W&B's engine rejects a config (``[]``: it accepts)."""
    return wandb_rejections
