"""The ``platform`` transport: a web shop or warranty platform that pushes to the hub's API.

A web shop or warranty platform that calls ``POST /api/v1/events/{flow}`` or sends signed
webhooks to ``POST /hooks/{channel}`` needs no connection of ours: its IN flows (trigger
``immediate``) are fed by those calls, and :meth:`PlatformTransport.read` has nothing to poll.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from erpbridge.transports.base import Batch, CursorValue, Health, StreamOptions

__all__ = ["PlatformTransport"]


class PlatformChannelOptions(BaseModel):
    """No options: the channel's system calls us."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    credentials: dict[str, SecretStr] = Field(
        default_factory=dict, description="Filled from the channel's `credentials:` block."
    )


class PlatformStreamOptions(StreamOptions):
    """No source options: records arrive as events."""


class PlatformTransport:
    """Reads nothing; records reach the flow through the API."""

    channel_options = PlatformChannelOptions
    stream_options = PlatformStreamOptions

    def __init__(self, channel: str, options: PlatformChannelOptions, base_dir: Path) -> None:
        self.channel = channel

    def read(
        self,
        stream: StreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Nothing to poll: the channel pushes (events and webhooks)."""
        return iter(())

    def health(self) -> Health:
        """Always reachable: the channel calls the hub, not the other way round."""
        return Health(True, f"channel {self.channel!r} pushes events and webhooks to the API")

    def close(self) -> None:
        """Nothing to release."""
