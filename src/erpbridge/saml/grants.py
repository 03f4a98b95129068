"""The attribute mappings: what a verified assertion's attributes grant, as API scopes
(``hub.api.saml.grants``) or as a back-office role (``hub.api.saml.backoffice.roles``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, get_args

from erpbridge.config.saml import BackofficeRole, SamlGrant, SamlRole

__all__ = ["Granted", "RoleGranted", "grant", "grant_role"]

_ROLE_ORDER = get_args(BackofficeRole)


class _Rule(Protocol):
    @property
    def attribute(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def channels(self) -> list[str] | None: ...


_R = TypeVar("_R", bound=_Rule)


@dataclass(frozen=True, slots=True)
class Granted:
    """Scopes and channel restriction for an assertion's subject."""

    scopes: frozenset[str]
    #: Channels the caller may touch; ``None``: all.
    channels: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class RoleGranted:
    """A back-office role and channel restriction for an assertion's subject."""

    #: ``None`` when no rule matches (the user may not sign in).
    role: BackofficeRole | None
    channels: frozenset[str] | None


def _matching(
    rules: Sequence[_R], attributes: Mapping[str, tuple[str, ...]]
) -> tuple[list[_R], frozenset[str] | None]:
    """The rules whose attribute holds their value, and the union of their channels (a matching
    rule without ``channels`` lifts the restriction: rules add rights up)."""
    matched = [rule for rule in rules if rule.value in attributes.get(rule.attribute, ())]
    channels: set[str] | None = set()
    for rule in matched:
        if rule.channels is None:
            channels = None
        elif channels is not None:
            channels.update(rule.channels)
    return matched, None if channels is None else frozenset(channels)


def grant(rules: Sequence[SamlGrant], attributes: Mapping[str, tuple[str, ...]]) -> Granted:
    """The union of the rules whose attribute holds their value; no scopes when none matches."""
    matched, channels = _matching(rules, attributes)
    scopes = {scope for rule in matched for scope in rule.scopes}
    return Granted(frozenset(scopes), channels)


def grant_role(rules: Sequence[SamlRole], attributes: Mapping[str, tuple[str, ...]]) -> RoleGranted:
    """The highest role of the rules whose attribute holds their value (``None``: no match)."""
    matched, channels = _matching(rules, attributes)
    if not matched:
        return RoleGranted(None, frozenset())
    role = max((rule.role for rule in matched), key=_ROLE_ORDER.index)
    return RoleGranted(role, channels)
