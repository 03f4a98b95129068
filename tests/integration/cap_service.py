"""The SAP CAP test service (``scripts/cap.sh``) through its own OData V4 API, to make and check
changes beside erpbridge."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["PASSWORD", "USER", "Service"]

USER, PASSWORD = "erp", "erp-secret"  # the mocked user of servers/cap/package.json


class Service:
    """The CAP service's own OData V4 API."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=f"{base}/odata/v4/", auth=(USER, PASSWORD))

    def get(self, path: str) -> dict[str, Any] | None:
        """The entity at ``path``, or None when there is none (404)."""
        response = self.client.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def count(self, entity_set: str) -> int:
        """How many entities ``entity_set`` holds."""
        response = self.client.get(f"{entity_set}/$count")
        response.raise_for_status()
        return int(response.text)

    def patch(self, path: str, body: dict[str, Any]) -> None:
        """Change the entity at ``path``."""
        # Entities with an ETag demand If-Match (428 otherwise): '*' = whatever it is now.
        self.client.patch(path, json=body, headers={"If-Match": "*"}).raise_for_status()

    def post(self, path: str, body: dict[str, Any]) -> None:
        """Create an entity in the set at ``path``."""
        self.client.post(path, json=body).raise_for_status()

    def close(self) -> None:
        """Close the connections."""
        self.client.close()
