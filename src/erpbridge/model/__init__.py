"""Canonical entities and their field types."""

from erpbridge.model.entities import BUILTIN_ENTITIES, EntityCatalog, EntitySpec
from erpbridge.model.fields import FieldSpec, FieldType, coerce_value

__all__ = [
    "BUILTIN_ENTITIES",
    "EntityCatalog",
    "EntitySpec",
    "FieldSpec",
    "FieldType",
    "coerce_value",
]
