"""The attribute mapping: what a verified assertion's attributes grant (``hub.api.saml.grants``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from erpbridge.config.saml import SamlGrant

__all__ = ["Granted", "grant"]


@dataclass(frozen=True, slots=True)
class Granted:
    """Scopes and channel restriction for an assertion's subject."""

    scopes: frozenset[str]
    #: Channels the caller may touch; ``None``: all.
    channels: frozenset[str] | None


def grant(rules: Sequence[SamlGrant], attributes: Mapping[str, tuple[str, ...]]) -> Granted:
    """The union of the rules whose attribute holds their value; no scopes when none matches.

    A matching rule without ``channels`` lifts the channel restriction: rules add rights up.
    """
    scopes: set[str] = set()
    channels: set[str] | None = set()
    for rule in rules:
        if rule.value not in attributes.get(rule.attribute, ()):
            continue
        scopes.update(rule.scopes)
        if rule.channels is None:
            channels = None
        elif channels is not None:
            channels.update(rule.channels)
    return Granted(frozenset(scopes), None if channels is None else frozenset(channels))
