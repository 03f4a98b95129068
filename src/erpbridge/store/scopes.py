"""The scopes an API client can hold, and what each implies (cheap to import: CLI help)."""

from __future__ import annotations

__all__ = ["IMPLIED", "SCOPES"]

#: The scopes a client can hold.
SCOPES = frozenset({"read", "write", "events", "operations", "admin"})
#: What each scope implies besides itself: ``admin`` everything, ``write`` also ``read``.
IMPLIED: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "write", "events", "operations"}),
    "write": frozenset({"read"}),
}
