"""The mapping language: declarative field mappings compiled once per flow."""

from erpbridge.mapping.compiler import (
    CompiledMapping,
    CurrencyRates,
    MappingCompileError,
    compile_mapping,
)
from erpbridge.mapping.spec import CurrencyConversion, FieldMapping, MappingSpec, UnitConversion
from erpbridge.mapping.transforms import TRANSFORMS

__all__ = [
    "TRANSFORMS",
    "CompiledMapping",
    "CurrencyConversion",
    "CurrencyRates",
    "FieldMapping",
    "MappingCompileError",
    "MappingSpec",
    "UnitConversion",
    "compile_mapping",
]
