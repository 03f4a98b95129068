"""The source half of the conformance suite: what every connector's ``read`` must do."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, get_args

import pytest

from erpbridge.connectors import Batch, Health, HealthCategory, Source
from erpbridge.errors import FatalError, RetriableError
from erpbridge.testing.harness import SourceHarness, last_cursor, opened, read_all

__all__ = ["SourceSuite"]

_FAILURES = frozenset(get_args(HealthCategory)) - {"ok"}


class SourceSuite:
    """Subclass as ``Test<Connector>Source`` and give it a ``harness`` fixture."""

    def keys(self, harness: SourceHarness, batches: Sequence[Batch]) -> list[str]:
        """The keys read, in order, one per record delivered."""
        return [harness.key(record) for batch in batches for record in batch.records]

    def test_reads_every_record_in_batches(self, harness: SourceHarness) -> None:
        """Five records with batch size 2: each one once, in more than one batch."""
        harness.add(["p1", "p2", "p3", "p4", "p5"])
        with opened(harness.connect()) as source:
            batches = read_all(source, harness.stream(), None, 2)
        keys = self.keys(harness, batches)
        assert sorted(keys) == ["p1", "p2", "p3", "p4", "p5"], keys
        if harness.pages:
            assert sum(1 for b in batches if b.records) >= 2, "one run, one batch: no paging"

    def test_resumes_from_the_stored_cursor(self, harness: SourceHarness) -> None:
        """A run from the last committed cursor reads what came since, not everything."""
        harness.add(["r1", "r2", "r3"])
        with opened(harness.connect()) as source:
            first = read_all(source, harness.stream())
        cursor = last_cursor(first)
        if harness.resumes:
            assert cursor is not None, "a run that read records left no cursor to resume from"
        harness.add(["r4", "r5"])
        with opened(harness.connect()) as source:
            again = self.keys(harness, read_all(source, harness.stream(), cursor))
        assert {"r4", "r5"} <= set(again), f"records added since the cursor not read: {again}"
        reread = {"r1", "r2", "r3"} & set(again)
        # A safety window or an inclusive (>=) cursor may read the boundary again, never all.
        assert len(reread) < 3, f"the run from the cursor read everything again: {again}"

    def test_acknowledges_only_after_commit(self, harness: SourceHarness) -> None:
        """A run that never committed (no acknowledge) loses nothing: the next run reads all."""
        harness.add(["a1", "a2", "a3"])
        with opened(harness.connect()) as source:
            read_all(source, harness.stream(), acknowledge=False)
        with opened(harness.connect()) as source:
            keys = self.keys(harness, read_all(source, harness.stream()))
        assert sorted(set(keys)) == ["a1", "a2", "a3"], keys
        if not harness.resumes:  # acknowledged input goes away (files to archive/)
            with opened(harness.connect()) as source:
                left = self.keys(harness, read_all(source, harness.stream()))
            assert left == [], f"acknowledged records read again: {left}"

    def test_one_bad_record_is_a_problem_not_a_failure(self, harness: SourceHarness) -> None:
        """A record that cannot be read is a problem with its place; the others still come."""
        harness.add(["g1"])
        if not harness.add_broken("bad"):
            pytest.skip("this source cannot hold a record it cannot read")
        harness.add(["g2"])
        with opened(harness.connect()) as source:
            batches = read_all(source, harness.stream(), batch_size=10)
        problems = [p for b in batches for p in b.problems]
        assert problems, "the broken record vanished without a problem"
        assert all(p.position and p.reason for p in problems), problems
        assert {"g1", "g2"} <= set(self.keys(harness, batches))

    def failing_read(
        self, harness: SourceHarness, source: Source[Any] | None, error: type[Exception]
    ) -> Health:
        """Read through ``source``, which must fail with ``error`` naming the channel; then
        its connection check."""
        if source is None:
            pytest.skip("this harness cannot stage this failure")
        with opened(source):
            with pytest.raises(error) as caught:
                read_all(source, harness.stream())
            assert harness.channel in str(caught.value), str(caught.value)
            if error is FatalError:
                assert not isinstance(caught.value, RetriableError), "a refusal is retried"
            return source.health()

    def test_unreachable_is_retriable(self, harness: SourceHarness) -> None:
        """A system that cannot be reached: a retriable error naming the channel, and a
        failed connection check with its category."""
        health = self.failing_read(harness, harness.unreachable(), RetriableError)
        assert not health.ok
        assert health.category in _FAILURES, health
        assert health.detail, health

    def test_refusal_is_fatal(self, harness: SourceHarness) -> None:
        """A system that refuses for good (login, missing table): fatal, never retried."""
        health = self.failing_read(harness, harness.refused(), FatalError)
        # A connection check may pass (a missing table shows at the sample read, which just
        # failed); when it fails, it says which kind of failure.
        assert health.ok or health.category in _FAILURES, health

    def test_channels_test_sees_a_sample_and_moves_nothing(self, harness: SourceHarness) -> None:
        """What ``erpbridge channels test`` does: a passing check that says what it reached,
        and one sample record read without acknowledging it (the next run still reads it)."""
        harness.add(["s1"])
        with opened(harness.connect()) as source:
            health = source.health()
            assert health.ok, health
            assert health.category == "ok"
            assert health.detail.strip(), "a passing check must say what it reached"
            batches = iter(source.read(harness.stream(), None, 1, frozenset()))
            try:
                sample = next(batches)
            finally:
                if isinstance(batches, Generator):  # stop it where it is, as the check does
                    batches.close()
        assert [harness.key(r) for r in sample.records] == ["s1"]
        assert all(r.position for r in sample.records), "a record must say where it came from"
        with opened(harness.connect()) as source:
            assert self.keys(harness, read_all(source, harness.stream())) == ["s1"]
