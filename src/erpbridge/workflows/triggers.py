"""An OUT flow's ``when:`` compiled into the filter the outbox applies to each new version.

The store calls the filter with the version's payload before (``None`` for a new record), its
payload after, and the transitions that made it (fired, or recognised in an IN flow's status
change); the delivery is written only when it answers true, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from erpbridge.workflows.conditions import Condition
from erpbridge.workflows.machine import Workflow

__all__ = ["Trigger"]


@dataclass(frozen=True)
class Trigger:
    """Every given part must hold: entered a state, made by a transition, a field changed,
    a condition on the new version."""

    workflows: Sequence[Workflow]
    enters: frozenset[str] | None = None
    transitions: frozenset[str] | None = None
    changed: tuple[str, ...] | None = None
    condition: Condition | None = None

    def __call__(
        self,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
        transitions: frozenset[str],
    ) -> bool:
        if self.transitions is not None and not (self.transitions & transitions):
            return False
        if self.enters is not None and not self._entered(before, after):
            return False
        if self.changed is not None and not any(
            before is None or before.get(name) != after.get(name) for name in self.changed
        ):
            return False
        return self.condition is None or self.condition(after)

    def _entered(self, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> bool:
        assert self.enters is not None
        for workflow in self.workflows:
            state = workflow.state_of(after)
            if state in self.enters and workflow.state_of(before) != state:
                return True
        return False
