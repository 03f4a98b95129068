"""The sink half of the conformance suite: what every connector's ``write`` must do."""

from __future__ import annotations

import pytest

from erpbridge.connectors import Sink, sink_class
from erpbridge.errors import DataError, FatalError, RetriableError
from erpbridge.testing.harness import SinkHarness, opened

__all__ = ["SinkSuite"]


class SinkSuite:
    """Subclass as ``Test<Connector>Sink`` and give it a ``harness`` fixture."""

    def test_is_a_sink_class(self, harness: SinkHarness) -> None:
        """The registry sees the class as one OUT flows can write to."""
        with opened(harness.connect()) as sink:
            assert sink_class(type(sink)) is not None
            assert isinstance(sink, Sink)

    def test_writes_one_id_per_record(self, harness: SinkHarness) -> None:
        """Two records in one write: two answers, both records in the channel."""
        records = [harness.record("w1", 1), harness.record("w2", 1, delivery=2)]
        with opened(harness.connect()) as sink:
            ids = sink.write(harness.target(), records)
        assert len(ids) == 2, ids
        assert all(i is None or isinstance(i, str) for i in ids), ids
        assert dict(harness.stored()) == {"w1": "w1 v1", "w2": "w2 v1"}

    def test_same_idempotency_key_has_one_effect(self, harness: SinkHarness) -> None:
        """A retry after a lost answer sends the same record again: still one record."""
        record = harness.record("i1", 1)
        with opened(harness.connect()) as sink:
            first = sink.write(harness.target(), [record])
        with opened(harness.connect()) as sink:
            second = sink.write(harness.target(), [record])
        assert dict(harness.stored()) == {"i1": "i1 v1"}
        if first[0] is not None and second[0] is not None:
            assert first == second, "the same record got a second id in the channel"

    def test_new_version_updates_in_place(self, harness: SinkHarness) -> None:
        """Version 2 of a record replaces version 1 in the channel; it adds no second one."""
        with opened(harness.connect()) as sink:
            sink.write(harness.target(), [harness.record("u1", 1)])
            sink.write(harness.target(), [harness.record("u1", 2)])
        assert dict(harness.stored()) == {"u1": "u1 v2"}

    def test_refused_record_is_not_retried(self, harness: SinkHarness) -> None:
        """A record the channel refuses for what it holds: a data or fatal error, not retry."""
        data = harness.refused_data()
        if data is None:
            pytest.skip("this target takes any record")
        with opened(harness.connect()) as sink, pytest.raises((DataError, FatalError)) as caught:
            sink.write(harness.target(), [harness.record("x1", 1, data)])
        assert not isinstance(caught.value, RetriableError), caught.value
        assert str(caught.value), "the refusal must say why"

    def test_unreachable_is_retriable(self, harness: SinkHarness) -> None:
        """A target that cannot be reached: a retriable error naming the channel."""
        sink = harness.unreachable()
        if sink is None:
            pytest.skip("this harness cannot stage an unreachable target")
        with opened(sink), pytest.raises(RetriableError) as caught:
            sink.write(harness.target(), [harness.record("d1", 1)])
        assert harness.channel in str(caught.value), str(caught.value)
