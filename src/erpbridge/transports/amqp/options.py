"""The ``amqp`` transport's options: the channel (a broker), an IN flow's queue, an OUT flow's
exchange with its routing key and header templates."""

from __future__ import annotations

from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from erpbridge.transports.base import StreamOptions, TargetOptions
from erpbridge.transports.messages import WRITE_PLACEHOLDERS
from erpbridge.transports.templates import placeholders

__all__ = ["AmqpBinding", "AmqpChannelOptions", "AmqpStreamOptions", "AmqpTargetOptions"]

PASSWORD = "password"  # noqa: S105 - a credential name, not a secret


class AmqpChannelOptions(BaseModel):
    """An AMQP 0-9-1 broker (RabbitMQ) channel's ``options:``. The URL may hold a password:
    it stays out of reprs and validation errors."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, use_attribute_docstrings=True
    )

    url: str = Field(repr=False)
    """``amqp://user@host:5672/vhost`` (``amqps://`` for TLS); the password may come from
    credential ``password`` instead of the URL."""
    connect_timeout_s: float = Field(10, gt=0)
    """Seconds to wait for the broker's connection."""
    confirm_timeout_s: float = Field(30, gt=0)
    """Seconds an OUT write waits for the broker's publisher confirms."""
    heartbeat_s: int = Field(30, ge=0)
    """The AMQP heartbeat proposed to the broker (0: none)."""
    credentials: dict[str, SecretStr] = Field(default_factory=dict)
    """Filled from the channel's ``credentials:`` block (``password``)."""

    @field_validator("url")
    @classmethod
    def _is_amqp(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("not an AMQP URL (amqp://user@host:5672/vhost or amqps://…)")
        return value


class AmqpBinding(BaseModel):
    """One binding of an IN flow's queue to an exchange."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    exchange: str = Field(min_length=1)
    """The exchange (it must exist, or be declared by an OUT flow's ``exchange_type``)."""
    routing_key: str = "#"
    """The binding key (``#``: everything on a topic exchange)."""


class AmqpStreamOptions(StreamOptions):
    """An IN flow's ``source:``: the queue it consumes, with manual acknowledgement after the
    hub's commit."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    queue: str = Field(min_length=1, max_length=255)
    """The queue to consume."""
    declare: bool = True
    """Declare the queue (durable) when it is missing; ``false``: it must exist."""
    arguments: dict[str, Any] = Field(default_factory=dict)
    """Queue arguments when declaring it (``x-queue-type: quorum``, ``x-max-length``, …)."""
    bind: list[AmqpBinding] = Field(default_factory=list)
    """Bindings the queue gets when the run starts (declared every time; harmless)."""
    prefetch: int | None = Field(None, ge=1, le=65535)
    """Messages the broker sends ahead of the acknowledgements (default: twice the flow's
    batch size)."""
    wait_s: float = Field(1.0, ge=0)
    """A run ends when no message came for this long."""
    max_run_s: float = Field(60.0, gt=0)
    """A run takes no new batch after this long (the next run goes on), so a busy queue is
    consumed in runs of bounded length."""
    dedup_window: int = Field(1000, ge=1, le=100_000)
    """How many committed message ids the flow's cursor keeps; a redelivered message among
    them (its batch was committed, its acknowledgement lost) is acknowledged and skipped."""


class AmqpTargetOptions(TargetOptions):
    """An OUT flow's ``target:``: each record version one persistent message, confirmed by the
    broker before the delivery counts as delivered."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    exchange: str = ""
    """The exchange to publish to (``""``: the default exchange, which routes to the queue
    named by the routing key)."""
    exchange_type: Literal["direct", "topic", "fanout", "headers"] | None = None
    """Declare the exchange (durable) with this type when it is missing; ``null``: it must
    exist."""
    routing_key: str = Field(min_length=1, max_length=255)
    """Template, e.g. ``erp.{entity}.{record.country}``."""
    headers: dict[str, Any] = Field(default_factory=dict)
    """Message headers; values are templates (``{key}``, ``{record.status}``, …)."""
    mandatory: bool = True
    """A message no queue takes is an error (the delivery goes dead with the reason) instead
    of vanishing."""
    persistent: bool = True
    """Delivery mode 2: the broker writes the message to disk before it confirms."""

    @model_validator(mode="after")
    def _known_placeholders(self) -> Self:
        used = placeholders(self.routing_key) | placeholders(self.headers)
        if unknown := sorted(used - WRITE_PLACEHOLDERS):
            raise ValueError(
                f"unknown placeholder(s): {', '.join(unknown)} "
                f"(known: {', '.join(sorted(WRITE_PLACEHOLDERS))})"
            )
        if self.exchange == "" and self.exchange_type is not None:
            raise ValueError("the default exchange (`exchange: ''`) cannot be declared")
        return self
