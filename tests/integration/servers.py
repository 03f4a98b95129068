"""Servers the integration tests talk to, started by ``scripts/test.sh`` (``make test``).

Each server's script prints its address, which ``scripts/test.sh`` exports as an
``ERPBRIDGE_TEST_*`` variable. Without it a test skips on a developer's machine, but fails under
CI or ``make test`` (``CI`` / ``ERPBRIDGE_REQUIRE_SERVERS``): never a silent skip.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["require_server"]


def require_server(variable: str, what: str) -> str:
    """The address in ``variable``, or skip (developer machine) / fail (CI, make test)."""
    value = os.environ.get(variable)
    if value:
        return value
    message = f"{what} is needed: {variable} is not set (run the suite with `make test`)"
    if os.environ.get("CI") or os.environ.get("ERPBRIDGE_REQUIRE_SERVERS"):
        pytest.fail(message)
    pytest.skip(message)
