"""The HTTP side of erpbridge: the REST API, inbound events and webhooks, OAuth tokens."""

from erpbridge.api.app import build_hub, create_app

__all__ = ["build_hub", "create_app"]
