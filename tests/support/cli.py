"""The ``sweepherd`` command run as a user runs it: a separate process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def sweepherd(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``sweepherd ARGS`` in ``cwd``, with this Python; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "sweepherd", *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
