"""Workflows and triggers as configuration: what ``workflows:`` and an OUT flow's ``when:`` say.

A workflow is the status machine of one status field of one entity: its states, the state a new
record starts in, the final states, and named transitions (``from`` → ``to``) with guards
(conditions, see :mod:`erpbridge.workflows.conditions`), required fields, who may fire them and
whether a reason is required. See the README's "Workflows and triggers" section.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from erpbridge.config.api import Scope

__all__ = ["FiredBy", "Role", "StatusPolicy", "TransitionSpec", "WhenSpec", "WorkflowSpec"]

_NAME = r"^[A-Za-z][A-Za-z0-9_.-]*$"

#: The back office's roles (viewer < operator < admin).
Role = Literal["viewer", "operator", "admin"]

#: What an IN flow does with a status change the workflow does not allow: ``enforce`` rejects
#: the record (with the allowed transitions), ``record`` takes it (the ERP is master) with a
#: warning in the run and the transition log.
StatusPolicy = Literal["enforce", "record"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FiredBy(_Strict):
    """Who may fire a transition; anyone allowed by one of the lists may. Omitted: anyone who
    may write records (API scope ``write``, back-office role ``operator``, any IN flow)."""

    scopes: list[Scope] = Field(
        default_factory=list, description="API clients holding one of these scopes."
    )
    roles: list[Role] = Field(
        default_factory=list, description="Back-office users with one of these roles (or above)."
    )
    flows: list[str] = Field(
        default_factory=list, description="IN flows whose status changes may take it."
    )
    clients: list[str] = Field(default_factory=list, description="API clients by name.")


class TransitionSpec(_Strict):
    """One named transition of a workflow."""

    from_: str | list[str] = Field(
        alias="from", description="The state(s) it leaves; '*' for every state but the final."
    )
    to: str = Field(description="The state it enters.")
    description: str = ""
    guard: str | list[str] = Field(
        default_factory=list,
        description="Condition(s) over the record's fields that must all hold, e.g. "
        "'amount > 0 and amount <= 5000'.",
    )
    required: list[str] = Field(
        default_factory=list,
        description="Fields that must have a value (not null, not empty) for it to fire.",
    )
    by: FiredBy | None = Field(default=None, description="Who may fire it; omitted: anyone.")
    reason_required: bool = Field(
        default=False, description="A reason must be given (API, CLI, back office)."
    )

    def sources(self) -> list[str]:
        """The ``from`` state(s) as a list."""
        return [self.from_] if isinstance(self.from_, str) else list(self.from_)

    def guards(self) -> list[str]:
        """The guard condition(s) as a list."""
        return [self.guard] if isinstance(self.guard, str) else list(self.guard)


class WorkflowSpec(_Strict):
    """The status machine of one entity's status field."""

    entity: str = Field(description="The entity (built-in or declared).")
    field: str = Field(default="status", description="The entity's field holding the state.")
    description: str = ""
    states: list[str] = Field(min_length=2, description="Every state, in lifecycle order.")
    initial: str = Field(description="The state a new record starts in.")
    final: list[str] = Field(
        default_factory=list, description="States no transition leaves (closed, cancelled)."
    )
    transitions: dict[str, TransitionSpec] = Field(
        description="Name → transition; fired by name (API, CLI, back office)."
    )

    @field_validator("states", "final")
    @classmethod
    def _state_names(cls, value: list[str]) -> list[str]:
        import re

        for name in value:
            if not re.match(_NAME, name):
                raise ValueError(f"{name!r} is not a valid state name (letters, digits, _ . -)")
        return value

    @field_validator("transitions")
    @classmethod
    def _transition_names(cls, value: dict[str, TransitionSpec]) -> dict[str, TransitionSpec]:
        import re

        if not value:
            raise ValueError("a workflow needs at least one transition")
        for name in value:
            if not re.match(_NAME, name):
                raise ValueError(f"{name!r} is not a valid transition name")
        return value


class WhenSpec(_Strict):
    """When an OUT flow fires: every part given must hold for a new record version.

    Omitted, the flow gets every new version of its entity.
    """

    enters: str | list[str] | None = Field(
        default=None, description="The version entered one of these states (of any workflow)."
    )
    transition: str | list[str] | None = Field(
        default=None,
        description="The version was made by one of these transitions (fired, or recognised "
        "in a status change from an IN flow).",
    )
    changed: list[str] | None = Field(
        default=None,
        min_length=1,
        description="One of these fields changed (a new record changes every field it has).",
    )
    condition: str | None = Field(
        default=None, description="A condition over the new version's fields."
    )
