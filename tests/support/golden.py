"""Golden files: rendered text compared exactly with a file saved in the repository.

After an intended change, regenerate them with ``SWEEPHERD_REGEN_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path


def check_golden(path: Path, text: str) -> None:
    """Assert ``text`` equals the golden file at ``path`` (written first when regenerating)."""
    if os.environ.get("SWEEPHERD_REGEN_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with SWEEPHERD_REGEN_GOLDEN=1"
    assert text == path.read_text()
