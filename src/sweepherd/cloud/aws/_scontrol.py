"""The few ``scontrol`` calls the power-saving programs make, on the head node.

Slurm runs the resume and suspend programs as its SlurmUser with ``SLURM_CONF`` set when it is
not the default, so plain ``scontrol`` finds the controller.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence

from sweepherd.errors import CloudError

_PAIR_RE = re.compile(r"(\w+)=(.*?)(?=\s+\w+=|\s*$)")


class Scontrol:
    """Runs ``scontrol``; every failure is a :class:`CloudError` carrying Slurm's own words."""

    def __init__(
        self,
        executable: str = "scontrol",
        *,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.executable = executable
        self.env = dict(os.environ if env is None else env)
        self.timeout_s = timeout_s

    def run(self, args: Sequence[str]) -> str:
        """Run ``scontrol ARGS`` and return its standard output."""
        argv = [self.executable, *args]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=self.timeout_s,
                check=False,
            )
        except FileNotFoundError:
            raise CloudError(
                f"{self.executable} is not installed here",
                hint="Run this on the cluster's head node.",
            ) from None
        except subprocess.TimeoutExpired:
            raise CloudError(
                f"`{' '.join(argv)}` did not answer in {self.timeout_s:.0f} s"
            ) from None
        if done.returncode != 0:
            words = (done.stderr or done.stdout).strip()
            raise CloudError(f"`{' '.join(argv)}` failed: {words}")
        return done.stdout

    def hostnames(self, hostlist: str) -> list[str]:
        """Expand a Slurm hostlist (``gpu-[1-3],cpu-2``) into node names."""
        return [line for line in self.run(["show", "hostnames", hostlist]).split() if line]

    def update_node(self, node: str, **params: str) -> None:
        """``scontrol update NodeName=node Key=Value ...``."""
        args = ["update", f"NodeName={node}"]
        args += [f"{key}={value}" for key, value in params.items()]
        self.run(args)

    def show_nodes(self, hostlist: str) -> list[dict[str, str]]:
        """``scontrol show node -o`` parsed into one ``{Key: Value}`` dict per node."""
        return [
            parse_node_line(line)
            for line in self.run(["show", "node", "-o", hostlist]).splitlines()
            if line.strip()
        ]


def parse_node_line(line: str) -> dict[str, str]:
    """One line of ``scontrol show node -o`` as ``{Key: Value}`` (values may hold spaces)."""
    return {m.group(1): m.group(2) for m in _PAIR_RE.finditer(line.strip())}
