"""A workflow compiled for use: which transitions leave a state, and whether one may fire.

Every check names what failed: the current state and the transitions allowed from it, the guard
and the values it read, the empty required fields, the missing reason, or who may fire it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from erpbridge.errors import ErpbridgeError
from erpbridge.store.scopes import IMPLIED
from erpbridge.suggest import did_you_mean
from erpbridge.workflows.conditions import Condition

__all__ = [
    "ROLE_RANK",
    "Actor",
    "ActorKind",
    "RefusalCode",
    "Transition",
    "TransitionRefused",
    "Workflow",
]

#: Who fires a transition: an API client, a person (back office, command line) or an IN flow.
ActorKind = Literal["client", "user", "flow"]

#: Why a transition was refused; the API answers 404, 409, 422 or 403 by it.
RefusalCode = Literal[
    "unknown_transition", "illegal_transition", "guard_failed", "required_missing",
    "reason_required", "not_allowed",
]  # fmt: skip

#: A back-office role holds the rights of the roles below it.
ROLE_RANK = {"viewer": 0, "operator": 1, "admin": 2}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who fires a transition, and what they hold (scopes for clients, roles for people)."""

    kind: ActorKind
    name: str
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    def label(self) -> str:
        """``client 'vms'``, ``user 'anna'``, ``flow 'claims-in'``."""
        return f"{self.kind} {self.name!r}"


class TransitionRefused(ErpbridgeError):
    """A transition may not fire; ``code`` says why, ``allowed`` what may fire instead."""

    def __init__(
        self, code: RefusalCode, message: str, state: str | None, allowed: list[str]
    ) -> None:
        super().__init__(message)
        self.code: RefusalCode = code
        self.state = state
        self.allowed = allowed


@dataclass(frozen=True, slots=True)
class Transition:
    """One compiled transition."""

    name: str
    sources: frozenset[str]
    to: str
    guards: tuple[Condition, ...] = ()
    required: tuple[str, ...] = ()
    reason_required: bool = False
    #: ``None``: anyone who may write records; else who may (see ``FiredBy``).
    scopes: frozenset[str] | None = None
    roles: frozenset[str] = frozenset()
    flows: frozenset[str] = frozenset()
    clients: frozenset[str] = frozenset()

    def permits(self, actor: Actor) -> bool:
        """Whether ``actor`` may fire it."""
        if self.scopes is None:
            return True
        if actor.kind == "flow":
            return actor.name in self.flows
        held = set(actor.scopes)
        for scope in actor.scopes:
            held |= IMPLIED.get(scope, frozenset())
        rank = max((ROLE_RANK.get(r, -1) for r in actor.roles), default=-1)
        return (
            bool(held & self.scopes)
            or any(rank >= ROLE_RANK[r] for r in self.roles)
            or (actor.kind == "client" and actor.name in self.clients)
        )

    def who(self) -> str:
        """Who may fire it, for messages."""
        parts = [
            f"{label} {', '.join(sorted(names))}"
            for label, names in (
                ("scopes", self.scopes or ()),
                ("roles", self.roles),
                ("flows", self.flows),
                ("clients", self.clients),
            )
            if names
        ]
        return "; ".join(parts) or "nobody"


def empty(value: Any) -> bool:
    """No value for a required field: null, blank text, an empty list or object."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict) and not value


@dataclass(frozen=True)
class Workflow:
    """The status machine of one entity's status field."""

    name: str
    entity: str
    field: str
    states: tuple[str, ...]
    initial: str
    final: frozenset[str]
    transitions: Mapping[str, Transition]

    def state_of(self, payload: Mapping[str, Any] | None) -> str | None:
        """The record's state (``None`` for no record, or no value)."""
        if payload is None:
            return None
        value = payload.get(self.field)
        return None if value is None else str(value)

    def allowed_from(self, state: str | None) -> list[str]:
        """The names of the transitions that leave ``state``, in declaration order."""
        return [name for name, t in self.transitions.items() if state in t.sources]

    def leads(self, before: str, after: str) -> list[Transition]:
        """The transitions from ``before`` to ``after``."""
        return [t for t in self.transitions.values() if before in t.sources and t.to == after]

    def illegal_jump(self, before: str | None, after: str) -> str:
        """The message for a status change no transition allows."""
        if before is None:
            return f"a new {self.entity} starts in {self.initial}, not {after}"
        allowed = self.allowed_from(before)
        if before in self.final:
            return f"cannot go from {before} to {after}: {before} is a final state"
        return f"cannot go from {before} to {after}; allowed: {', '.join(allowed) or 'none'}"

    def check(
        self,
        name: str,
        payload: Mapping[str, Any],
        actor: Actor,
        reason: str | None,
    ) -> Transition:
        """The transition ``name`` if ``actor`` may fire it now; else :class:`TransitionRefused`.

        ``payload`` is the record as it would be after the transition (with the fields given
        with it), its status field still holding the current state.
        """
        state = self.state_of(payload)
        allowed = self.allowed_from(state)
        transition = self.transitions.get(name)
        if transition is None:
            hint = did_you_mean(name, self.transitions)
            raise TransitionRefused(
                "unknown_transition",
                f"workflow {self.name!r} has no transition {name!r}{hint} "
                f"(transitions: {', '.join(self.transitions)})",
                state,
                allowed,
            )
        if state not in transition.sources:
            raise TransitionRefused(
                "illegal_transition",
                f"{name!r} cannot fire from {state}; allowed: {', '.join(allowed) or 'none'}",
                state,
                allowed,
            )
        if not transition.permits(actor):
            raise TransitionRefused(
                "not_allowed",
                f"{actor.label()} may not fire {name!r} (allowed: {transition.who()})",
                state,
                allowed,
            )
        self.admissible(transition, payload, state, allowed)
        if transition.reason_required and actor.kind != "flow" and empty(reason):
            raise TransitionRefused("reason_required", f"{name!r} needs a reason", state, allowed)
        return transition

    def admissible(
        self, transition: Transition, payload: Mapping[str, Any], state: str | None,
        allowed: list[str],
    ) -> None:  # fmt: skip
        """Raise :class:`TransitionRefused` unless the record has the transition's required
        fields and passes its guards."""
        missing = [f for f in transition.required if empty(payload.get(f))]
        if missing:
            raise TransitionRefused(
                "required_missing",
                f"{transition.name!r} needs {', '.join(missing)}: empty",
                state,
                allowed,
            )
        for guard in transition.guards:
            if not guard(payload):
                raise TransitionRefused(
                    "guard_failed",
                    f"guard of {transition.name!r} failed: {guard.text} ({guard.explain(payload)})",
                    state,
                    allowed,
                )
