"""``sweepherd aws validate``: the cluster's template checked by cfn-lint, in-process.

cfn-lint checks the template against CloudFormation's resource schemas for the region (types,
required properties, allowed values, references), without calling AWS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    """cfn-lint's findings on ``config``'s template, for its region."""
    return lint_template(template_json(config), [config.region])
