"""The base of the configuration's models: an unknown setting is an error, and a setting may be
given by its name or by its alias."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Strict"]


class Strict(BaseModel):
    """A configuration block that refuses settings it does not know."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
