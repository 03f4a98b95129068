"""The workflow check of status changes arriving from an IN flow (the store's ``StatusGate``).

Each workflow of the entity looks at its field: a new record without a state gets the initial
one; an existing record the source sent without a state keeps its own; a change is recognised
as the first transition from the old state to the new one that the flow may fire and whose
required fields and guards hold. A change no transition allows is refused under
``status_policy: enforce`` ("cannot go from submitted to credited; allowed: review, reject") or
taken with a note in the transition log under ``record`` (the channel is master).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from erpbridge.errors import ErpbridgeError
from erpbridge.store.transitions import Admission, Move, Refused
from erpbridge.workflows.machine import Actor, TransitionRefused, Workflow
from erpbridge.workflows.spec import StatusPolicy

__all__ = ["FlowGate", "StatusRefused"]


class StatusRefused(ErpbridgeError):
    """Versions of an all-or-nothing batch (an event) the workflow refused: nothing stored."""

    def __init__(self, refused: Sequence[Refused]) -> None:
        self.refused = list(refused)
        super().__init__("; ".join(f"{r.position} {r.field_path}: {r.reason}" for r in refused))


class FlowGate:
    """The workflows of one IN flow's entity, with the flow's ``status_policy``."""

    def __init__(self, workflows: Sequence[Workflow], policy: StatusPolicy, flow: str) -> None:
        self.workflows = tuple(workflows)
        self.policy = policy
        self.actor = Actor("flow", flow)

    def admit(self, before: Mapping[str, Any] | None, after: dict[str, Any]) -> Admission:
        """Judge one incoming version; ``after`` may be completed (a missing state)."""
        admission = Admission(after)
        for workflow in self.workflows:
            problem = self._judge(workflow, before, after, admission)
            if problem is None:
                continue
            if self.policy == "enforce":
                return Admission(after, [], (workflow.field, problem))
            admission.moves.append(
                Move(
                    workflow.name,
                    workflow.field,
                    workflow.state_of(before),
                    str(after[workflow.field]),
                    None,
                    f"not allowed by workflow {workflow.name!r}: {problem}; taken "
                    "(status_policy: record)",
                )
            )
        return admission

    def _judge(
        self,
        workflow: Workflow,
        before: Mapping[str, Any] | None,
        after: dict[str, Any],
        admission: Admission,
    ) -> str | None:
        """Add the move of ``workflow``'s field to ``admission``, or say what is wrong."""
        old = workflow.state_of(before)
        if after.get(workflow.field) is None:
            if before is None:
                after[workflow.field] = workflow.initial
                admission.moves.append(
                    Move(workflow.name, workflow.field, None, workflow.initial, None)
                )
            elif old is not None:
                after[workflow.field] = old  # the source does not carry the state: kept
            return None
        new = str(after[workflow.field])
        if before is not None and new == old:
            return None
        if new not in workflow.states:
            return (
                f"{new!r} is not a state of {workflow.name!r} "
                f"(states: {', '.join(workflow.states)})"
            )
        if old is None:
            if new != workflow.initial:
                return workflow.illegal_jump(None, new)
            admission.moves.append(Move(workflow.name, workflow.field, None, new, None))
            return None
        problem = None
        allowed = workflow.allowed_from(old)
        for transition in workflow.leads(old, new):
            if not transition.permits(self.actor):
                problem = problem or (
                    f"{self.actor.label()} may not fire {transition.name!r} "
                    f"(allowed: {transition.who()})"
                )
                continue
            try:
                workflow.admissible(transition, after, old, allowed)
            except TransitionRefused as exc:
                problem = problem or f"cannot go from {old} to {new}: {exc}"
                continue
            admission.moves.append(Move(workflow.name, workflow.field, old, new, transition.name))
            return None
        return problem or workflow.illegal_jump(old, new)
