"""``sweepherd aws validate``: the cluster's template checked by cfn-lint, in-process.

cfn-lint checks the template against CloudFormation's resource schemas for the region (types,
required properties, allowed values, references), without calling AWS.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sweepherd.cloud.aws._config import ClusterConfig
from sweepherd.cloud.aws._session import INSTALL_HINT
from sweepherd.cloud.aws._template import template_json
from sweepherd.errors import CloudError


@dataclass(frozen=True)
class LintFinding:
    """One cfn-lint finding."""

    rule: str  # E3031, W1020...
    severity: str  # error, warning, informational
    message: str
    line: int

    @property
    def is_error(self) -> bool:
        """Whether the finding would make CloudFormation reject the template."""
        return self.severity == "error"

    @property
    def is_config_choice(self) -> bool:
        """Whether the cause is a choice in the cluster config (an instance type the region
        does not offer), not the template sweepherd wrote."""
        return self.rule in _CHOICE_RULES


#: cfn-lint rules that fire on what the user chose: E3628, an instance type not in the region.
_CHOICE_RULES = frozenset({"E3628"})
#: cfn-lint's "'x' is not one of [...]" lists every allowed value (hundreds of instance types).
_ONE_OF = re.compile(r"^'(?P<value>[^']*)' is not one of \[(?P<allowed>.*)\]", re.S)
_SHOWN = 6


def lint_template(text: str, regions: Sequence[str]) -> list[LintFinding]:
    """cfn-lint's findings on the template ``text`` for ``regions``."""
    try:
        from cfnlint.api import ManualArgs, lint
    except ImportError:
        raise CloudError("cfn-lint is not installed.", hint=INSTALL_HINT) from None
    matches = lint(text, config=ManualArgs(regions=list(regions)))
    findings = [
        LintFinding(
            rule=str(m.rule.id),
            severity=str(getattr(m.rule, "severity", "error")).lower(),
            message=str(m.message),
            line=int(m.linenumber),
        )
        for m in matches
    ]
    return sorted(findings, key=lambda f: (not f.is_error, f.line, f.rule))


def lint_cluster(config: ClusterConfig) -> list[LintFinding]:
    """cfn-lint's findings on ``config``'s template, for its region; a finding caused by the
    config's own choices says which setting, in the config's words."""
    out: list[LintFinding] = []
    for finding in lint_template(template_json(config), [config.region]):
        worded = _worded(finding, config)
        if (worded.rule, worded.message) not in {(f.rule, f.message) for f in out}:
            out.append(worded)  # a type two partitions use is said once, naming both
    return out


def _nearby_types(value: str, allowed: Sequence[str]) -> list[str]:
    """A few of ``allowed`` like the instance type ``value``: its family (``p5``), else its
    class (``p``), the same size first, newest generation first."""
    family, _, size = value.partition(".")
    kind = re.match(r"[a-z]*", family)
    letters = kind[0] if kind else family

    def rank(t: str) -> tuple[bool, bool, int]:
        t_family, _, t_size = t.partition(".")
        digits = re.match(r"[a-z]+(\d+)", t_family)
        return (t_family != family, t_size != size, -int(digits[1]) if digits else 0)

    alike = [a for a in allowed if re.match(rf"{re.escape(letters)}\d", a)]
    return sorted(alike, key=rank)[:_SHOWN]


def _worded(finding: LintFinding, config: ClusterConfig) -> LintFinding:
    match = _ONE_OF.match(finding.message)
    if match is None:
        return finding
    value = match["value"]
    allowed = [a.strip().strip("'") for a in match["allowed"].split(",") if a.strip()]
    if finding.rule == "E3628":
        users = [f"partition {p.name}" for p in config.partitions if p.instance_type == value]
        if config.head_instance_type == value:
            users.insert(0, "the head node")
        who = " and ".join(users) or "an instance"
        message = f"{who}: instance type {value!r} is not offered in {config.region}"
        if near := _nearby_types(value, allowed):
            message += f"; of its kind it has {', '.join(near)}"
    else:
        shown = ", ".join(repr(a) for a in allowed[:_SHOWN])
        more = f" and {len(allowed) - _SHOWN} more" if len(allowed) > _SHOWN else ""
        message = f"{value!r} is not one of {shown}{more}"
    return replace(finding, message=message)
