"""How to install one of sweepherd's extras into the environment that runs it.

sweepherd is installed from a checkout or a wheel, not from PyPI, so ``pip install
'sweepherd[aws]'`` would look for a package of that name on PyPI instead. The hint names this
interpreter's pip and, for an editable install, the checkout itself.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

#: The checkout sweepherd runs from when it was installed editable (``pip install -e .``).
_CHECKOUT = Path(__file__).resolve().parents[2]


def install_extra_hint(extra: str) -> str:
    """A sentence saying how to add ``extra`` (``aws``, ``wandb``...) to this installation."""
    pip = f"{shlex.quote(sys.executable)} -m pip install"
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "src" / "sweepherd").is_dir():
        return f"Install the {extra} extra: {pip} -e {shlex.quote(f'{_CHECKOUT}[{extra}]')}"
    return (
        f"Install the {extra} extra: {pip} 'SOURCE[{extra}]', where SOURCE is the sweepherd "
        "checkout, git URL or wheel this installation came from."
    )
