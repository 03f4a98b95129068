"""The HTTP side of erpbridge (health now; the REST API comes with its own issue)."""

from erpbridge.api.app import create_app

__all__ = ["create_app"]
