"""The one incremental model of every source: where a run starts, and how far it re-reads.

A source reads incrementally by a cursor: the highest value of a field (``updated_at``, a
sequence) that the last committed batch carried. A run starts *before* it by the
``safety_window`` (seconds for date/time values, units for numbers), because a row stamped
before the cursor but committed after the hub read is otherwise never seen. Every connector
spells it the same way, ``safety_window``; the older spellings ``safety_window_s`` (OData, RPC)
and ``overlap_s`` (REST) are still read, and ``erpbridge check`` warns with the new name.

``initial_cursor`` is where a first run (or a ``--full`` run) starts, for sources that take one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DEFAULT_TIME_WINDOW", "OLD_WINDOW_SPELLINGS", "Incremental", "old_spellings"]

#: Seconds a date/time cursor re-reads when a source defaults to a window (SQL) and the flow
#: sets none. A row whose transaction took its timestamp before other rows but committed after
#: the hub read them is found on the next run only if it committed within this window; five
#: minutes covers ordinary ERP/MES transactions and replication lag.
DEFAULT_TIME_WINDOW = 300.0

#: Older spellings of ``safety_window``, still read as deprecated aliases.
OLD_WINDOW_SPELLINGS = ("safety_window_s", "overlap_s")

#: The option blocks that hold an incremental model inside a flow's ``source:``.
_NESTED = ("cursor", "incremental")


class Incremental(BaseModel):
    """Incremental reading: how far before the stored cursor each run starts.

    A connector's options inherit this model (as a flow ``cursor:`` block, a source's
    ``incremental:`` block, or its ``source:`` itself), so the window has one name everywhere.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    safety_window: float | None = Field(
        default=None,
        ge=0,
        description="Start each run this much before the stored cursor: seconds for "
        "date/time values, units for numbers, so that rows committed late are read too. "
        "Unset: the connector's default (300 s for SQL date/time columns, otherwise 0).",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        """Read ``safety_window_s`` and ``overlap_s`` as ``safety_window`` (deprecated)."""
        if not isinstance(data, Mapping):
            return data
        old = [name for name in OLD_WINDOW_SPELLINGS if name in data]
        if not old:
            return data
        names = [*old, "safety_window"] if "safety_window" in data else old
        if len(names) > 1:
            raise ValueError(f"give the safety window once ({' and '.join(names)})")
        renamed = {k: v for k, v in data.items() if k != old[0]}
        renamed["safety_window"] = data[old[0]]
        return renamed

    def window(self, default: float = 0.0) -> float:
        """The window in seconds (or units): the flow's own, else ``default``."""
        return default if self.safety_window is None else self.safety_window


def old_spellings(source: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], str]]:
    """``(path, old name)`` of each deprecated window spelling in a raw ``source:`` block."""
    for name in OLD_WINDOW_SPELLINGS:
        if name in source:
            yield (name,), name
    for block in _NESTED:
        inner = source.get(block)
        if isinstance(inner, Mapping):
            for name in OLD_WINDOW_SPELLINGS:
                if name in inner:
                    yield (block, name), name
