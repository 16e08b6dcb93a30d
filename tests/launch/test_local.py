"""The local launcher's GPU split."""

from __future__ import annotations

import pytest

from sweepherd.errors import LaunchError
from sweepherd.launch.local import split_gpus


def test_split_gpus_contiguous_and_even() -> None:
    assert split_gpus(("0", "1", "2", "3"), 2) == [("0", "1"), ("2", "3")]
    assert split_gpus(("0", "1", "2"), 2) == [("0", "1"), ("2",)]
    assert split_gpus(("0",), 1) == [("0",)]


def test_more_agents_than_gpus_is_refused() -> None:
    with pytest.raises(LaunchError, match="at least one"):
        split_gpus(("0",), 2)
