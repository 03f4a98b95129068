"""How flows treat deletes: how an IN flow's source says a record is gone, and what an OUT
flow does with a record the hub holds as deleted (a tombstone version, ``store.tombstones``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from erpbridge.mapping.paths import getter

__all__ = ["DeleteMarker", "OnDelete"]

#: OUT: ``delete`` removes the record in the channel, ``deactivate`` writes the last version with
#: the flow's ``deactivate`` fields set, ``ignore`` sends nothing.
OnDelete = Literal["delete", "deactivate", "ignore"]

#: Values that never mark a record deleted when the marker has no ``value``.
_UNSET: tuple[Any, ...] = (None, False, 0, "", "0", "false", "False", "N", "n")


class DeleteMarker(BaseModel):
    """IN: the source field that says a record is deleted (a soft-delete column, an ``active``
    flag, a REST ``deleted`` flag, a file's operation column)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(description="Source path of the marker (dotted for nested fields).")
    value: Any = Field(
        default=None,
        description="The record is deleted when the field equals this value (`false` for an "
        "`active` flag, `D` for an operation code); omitted: when the field holds anything but "
        "null, false, 0, '' (a `deleted_at` time, `is_deleted = 1`).",
    )

    def test(self) -> Callable[[Mapping[str, Any]], bool]:
        """A predicate over source records (compiled once per flow)."""
        get = getter(self.field)
        if "value" not in self.model_fields_set:
            return lambda data: get(data) not in _UNSET
        wanted = self.value
        if isinstance(wanted, bool):
            return lambda data: _flag(get(data)) is wanted
        return lambda data: (
            (found := get(data)) == wanted or (found is not None and str(found) == str(wanted))
        )


def _flag(value: Any) -> bool | None:
    """A source's yes/no value as a bool (``None``: absent or not a flag): MariaDB's 0/1,
    text such as ``"false"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str):
        return _TEXT_FLAGS.get(value.strip().lower())
    return None


_TEXT_FLAGS = {"true": True, "1": True, "yes": True, "x": True, "false": False, "0": False,
               "no": False, "": None}  # fmt: skip
