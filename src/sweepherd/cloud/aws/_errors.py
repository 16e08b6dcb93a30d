"""The error raised for an invalid cluster config: every problem at once, each with its key."""

from __future__ import annotations

from collections.abc import Sequence

from sweepherd.errors import CloudError


class ClusterConfigError(CloudError):
    """The AWS cluster config is invalid. ``violations`` lists every problem, with its key path."""

    def __init__(
        self, message: str, *, violations: Sequence[str] = (), hint: str | None = None
    ) -> None:
        self.violations = list(violations)
        super().__init__(message, hint=hint)

    def __str__(self) -> str:
        head = super().__str__()
        if not self.violations:
            return head
        return "\n".join([head, *(f"  - {v}" for v in self.violations)])
