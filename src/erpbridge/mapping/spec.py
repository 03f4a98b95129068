"""The mapping language as configuration: what a flow's ``mapping:`` block may say.

A mapping is a dict from canonical field name to either a source path (``"CustomerNo"``,
``"address.city"``) or a :class:`FieldMapping`. See the README's "Mapping language" section.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CurrencyConversion", "FieldMapping", "MappingSpec", "UnitConversion"]


class UnitConversion(BaseModel):
    """Convert a quantity between units of one dimension (mass, length, volume, count, time)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(default=None, alias="from", description="The source unit, fixed.")
    from_path: str | None = Field(default=None, description="Or: source path holding the unit.")
    to: str = Field(description="The canonical unit.")

    @model_validator(mode="after")
    def _one_source(self) -> UnitConversion:
        if (self.from_ is None) == (self.from_path is None):
            raise ValueError("give exactly one of 'from' and 'from_path'")
        return self


class CurrencyConversion(BaseModel):
    """Convert an amount with the configuration's ``currency_rates`` table."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(default=None, alias="from", description="Source currency, fixed.")
    from_path: str | None = Field(default=None, description="Or: source path holding it.")
    to: str = Field(description="The canonical currency (ISO 4217).")

    @model_validator(mode="after")
    def _one_source(self) -> CurrencyConversion:
        if (self.from_ is None) == (self.from_path is None):
            raise ValueError("give exactly one of 'from' and 'from_path'")
        return self


class FieldMapping(BaseModel):
    """How one canonical field is produced from a source record.

    Exactly one way to get the raw value: ``from`` (a path), ``template`` (``"{A} {B}"``),
    ``value`` (a constant), or ``fields``/``each`` for objects and lists. Then, when the value is
    present: ``transforms`` in order, ``map`` (with ``fallback``), ``unit``, ``currency``,
    ``round``. A
    missing or empty value takes ``default``; ``required`` rejects the record when still empty.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(
        default=None, alias="from", description="Source path, nested with dots."
    )
    template: str | None = Field(default=None, description="Text with {source.path} placeholders.")
    value: Any = Field(default=None, description="A constant.")
    each: str | None = Field(
        default=None, description="Source path of a list; 'fields' map each item."
    )
    fields: dict[str, str | FieldMapping] | None = Field(
        default=None, description="Nested mapping for an object field (or each list item)."
    )
    items: list[dict[str, str | FieldMapping]] | None = Field(
        default=None,
        description="A list built from flat columns: one nested mapping per item (billing, "
        "shipping, …); items that come out empty are left out.",
    )
    transforms: list[str | dict[str, Any]] = Field(
        default_factory=list, description="Named transforms: 'trim' or {date: '%d.%m.%Y'}."
    )
    # Keys are Any: YAML reads keys like 1 or true as numbers and booleans.
    map: dict[Any, Any] | None = Field(default=None, description="Value or code map.")
    fallback: Any = Field(default=None, description="Result for values the map does not know.")
    keep_unmapped: bool = Field(default=False, description="Pass unknown values through the map.")
    unit: UnitConversion | None = None
    currency: CurrencyConversion | None = None
    round: int | None = Field(
        default=None,
        ge=0,
        le=12,
        description="Round to this many decimal places after unit and currency conversion.",
    )
    default: Any = Field(
        default=None, description="Used when the source value is missing or empty."
    )
    required: bool = Field(default=False, description="Reject the record when the value is empty.")

    @model_validator(mode="after")
    def _one_source(self) -> FieldMapping:
        given = [
            name
            for name, present in (
                ("from", self.from_ is not None),
                ("template", self.template is not None),
                ("value", self.value is not None),
                ("each", self.each is not None),
                ("items", self.items is not None),
            )
            if present
        ]
        if len(given) > 1:
            raise ValueError(f"give only one of {', '.join(given)}")
        if self.each is not None and self.fields is None:
            raise ValueError("'each' needs 'fields' to map every item")
        if self.items is not None and self.fields is not None:
            raise ValueError("give 'items' (a list of item mappings) or 'fields', not both")
        if not given and self.fields is None and self.default is None:
            raise ValueError(
                "give one of 'from', 'template', 'value', 'each', 'items', 'fields' or 'default'"
            )
        return self


MappingSpec = dict[str, str | FieldMapping]
"""A flow's mapping: canonical field → source path or :class:`FieldMapping`."""
