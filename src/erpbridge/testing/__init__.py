"""A conformance suite for connectors, shipped with erpbridge so that out-of-tree connectors
run the same tests as the built-ins (pytest needed).

Give the suite a *harness* — a seeded system and connectors on it — and subclass a suite class
in a test module::

    import pytest
    from erpbridge.testing import SourceHarness, SourceSuite

    class MyHarness(SourceHarness): ...

    class TestMySource(SourceSuite):
        @pytest.fixture
        def harness(self, tmp_path):
            return MyHarness(tmp_path)

:class:`SourceSuite` checks paging, resume from a stored cursor, acknowledge only after
commit, error classification (retriable, fatal, one bad record) and what ``erpbridge channels
test`` sees; :class:`SinkSuite` checks one id per record, idempotent writes, new versions and
error classification. A harness that cannot stage a case (a folder cannot refuse a login)
leaves it out, and the test is skipped with the reason.
"""

from __future__ import annotations

from erpbridge.testing.harness import SinkHarness, SourceHarness, read_all
from erpbridge.testing.sinks import SinkSuite
from erpbridge.testing.sources import SourceSuite

__all__ = ["SinkHarness", "SinkSuite", "SourceHarness", "SourceSuite", "read_all"]
