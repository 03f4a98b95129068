"""A flow's ``reconcile:`` block: how ``erpbridge reconcile`` reads the channel's side.

::

    flows:
      - name: orders-to-erp
        direction: out
        ...
        reconcile:
          channel: erp-read          # read through this channel (default: the flow's own)
          source: {table: erp_orders} # the channel's stream options (IN flows: the flow's source)
          mapping:                    # channel shape → canonical (IN flows: the flow's mapping)
            order_code: order_no
            quantity: qty
          fields: [quantity]          # canonical fields compared (default: the mapping's fields)
          amounts: [quantity]         # canonical fields summed on both sides
          schedule: "0 2 * * *"       # or interval: 1d; `erpbridge run` reconciles then

The block is checked and compiled by :mod:`erpbridge.config.reconciliation`. The channel's
side is read from the beginning (no cursor is read or moved) and mapped to the canonical
shape, so both sides are compared field by field in the entity's own terms.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from erpbridge.mapping.spec import MappingSpec
from erpbridge.schedules import Schedule, parse_interval

__all__ = ["ReconcileConfig"]


class ReconcileConfig(BaseModel):
    """A flow's ``reconcile:`` block (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    channel: str | None = Field(
        default=None,
        description="Read the channel's side through this channel (a read-only login on the "
        "same system); default: the flow's channel.",
    )
    source: dict[str, object] | None = Field(
        default=None,
        description="The reading channel's stream options; default for IN flows: the flow's "
        "`source` (its cursor is neither read nor moved). OUT flows must give it.",
    )
    mapping: MappingSpec | None = Field(
        default=None,
        description="Channel shape → canonical fields; default for IN flows: the flow's "
        "mapping, for OUT flows: fields taken by their canonical names.",
    )
    fields: list[str] = Field(
        default_factory=list,
        description="Canonical fields compared (top-level); default: every field the mapping "
        "fills (without a mapping: every field of the entity).",
    )
    amounts: list[str] = Field(
        default_factory=list,
        description="Canonical number fields summed on each side (a total per side and the "
        "difference).",
    )
    schedule: str | None = Field(
        default=None, description="Cron (UTC) of the scheduled reconciliation by `erpbridge run`."
    )
    interval: str | None = Field(
        default=None,
        pattern=r"^\d+(s|m|h|d)$",
        description="Or an interval ('1d', '12h') for the scheduled reconciliation.",
    )
    page_size: int = Field(
        default=1000, ge=1, le=100_000, description="Records asked of the channel per page."
    )

    @model_validator(mode="after")
    def _one_timing(self) -> ReconcileConfig:
        if self.schedule is not None and self.interval is not None:
            raise ValueError("give `schedule` or `interval`, not both")
        return self

    def timing(self) -> Schedule | None:
        """When ``erpbridge run`` reconciles the flow (``None``: only by hand)."""
        if self.schedule is not None:
            return Schedule(cron=self.schedule)
        if self.interval is not None:
            return Schedule(interval=parse_interval(self.interval))
        return None
