"""The canonical JSON of a batch in one call: the very bytes of one call per payload."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from erpbridge.engine.canonical import dump_payloads
from erpbridge.store.records import dump_payload

# Texts that look like the boundary between two objects, escapes and non-ASCII.
TEXTS = st.one_of(
    st.sampled_from(['},{"', '"},{"a":1}', "\\", '\\"', "{", "}", "", "ü€😀", "\x00\n"]),
    st.text(max_size=8),
)
SCALARS = st.one_of(TEXTS, st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none())
PAYLOADS = st.dictionaries(st.one_of(TEXTS, st.sampled_from(["a", "b", "z"])), SCALARS)


@settings(max_examples=150)
@given(st.lists(PAYLOADS, max_size=12))
def test_flat_payloads_dumped_at_once_are_the_bytes_of_one_at_a_time(
    payloads: list[dict[str, Any]],
) -> None:
    assert dump_payloads(payloads, flat=True) == [dump_payload(p) for p in payloads]


NESTED = st.dictionaries(st.sampled_from(["a", "b"]), st.lists(PAYLOADS, max_size=3))


@given(st.lists(NESTED, max_size=4))
def test_nested_payloads_are_dumped_one_at_a_time(payloads: list[dict[str, Any]]) -> None:
    assert dump_payloads(payloads, flat=False) == [dump_payload(p) for p in payloads]
