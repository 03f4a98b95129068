"""The ``nats`` transport's options: the channel (a NATS server with JetStream and the streams
it makes sure of), an IN flow's stream and durable consumer, an OUT flow's subject and headers."""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from erpbridge.transports.base import StreamOptions, TargetOptions
from erpbridge.transports.messages import WRITE_PLACEHOLDERS
from erpbridge.transports.templates import placeholders

__all__ = ["NatsChannelOptions", "NatsStream", "NatsStreamOptions", "NatsTargetOptions"]

#: The credentials a channel may give: a user's password, or a token.
PASSWORD = "password"  # noqa: S105 - a credential name, not a secret
TOKEN = "token"  # noqa: S105 - a credential name, not a secret

_NAME = r"^[A-Za-z0-9_-]+$"


class NatsStream(BaseModel):
    """A JetStream stream the channel creates when it is missing (file storage)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    subjects: list[str] = Field(min_length=1)
    """The subjects it stores (``erp.>``, ``shop.orders.*``)."""
    duplicate_window_s: float = Field(120, gt=0)
    """How long the server remembers a ``Nats-Msg-Id`` to drop a repeated publish."""
    max_age_s: float | None = Field(None, gt=0)
    """Messages older than this are removed (default: kept)."""


class NatsChannelOptions(BaseModel):
    """A NATS server (with JetStream) channel's ``options:``."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, use_attribute_docstrings=True
    )

    url: str = Field(repr=False)
    """``nats://host:4222`` (``tls://`` for TLS); a user name may come in the URL, the password
    or a token from the credentials."""
    user: str | None = None
    """The user to log in as (with credential ``password``)."""
    connect_timeout_s: float = Field(10, gt=0)
    """Seconds to wait for the connection."""
    publish_timeout_s: float = Field(10, gt=0)
    """Seconds an OUT write waits for JetStream's acknowledgements of its messages."""
    streams: dict[str, NatsStream] = Field(default_factory=dict)
    """Streams created (by name) when missing, before the first read or write; existing ones
    are left as they are."""
    credentials: dict[str, SecretStr] = Field(default_factory=dict)
    """Filled from the channel's ``credentials:`` block (``password`` or ``token``)."""

    @field_validator("url")
    @classmethod
    def _is_nats(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ValueError("not a NATS URL (nats://host:4222 or tls://host:4222)")
        return value

    @field_validator("streams")
    @classmethod
    def _stream_names(cls, value: dict[str, NatsStream]) -> dict[str, NatsStream]:
        for name in value:
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"stream name {name!r}: letters, digits, '-' and '_' only")
        return value


class NatsStreamOptions(StreamOptions):
    """An IN flow's ``source:``: a stream read through a durable pull consumer, each message
    acknowledged after the hub's commit."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    stream: str = Field(min_length=1, pattern=_NAME)
    """The JetStream stream."""
    consumer: str = Field(min_length=1, pattern=_NAME)
    """The durable consumer (created when missing): it keeps the position between runs."""
    subject: str | None = None
    """Only messages of this subject (wildcards allowed) when the consumer is created."""
    deliver: Literal["all", "new"] = "all"
    """Where a new consumer starts: the stream's first message, or only what comes next."""
    ack_wait_s: float = Field(30, gt=0)
    """A message not acknowledged this long after delivery (its consumer died) is delivered
    again (set when the consumer is created)."""
    max_ack_pending: int | None = Field(None, ge=1)
    """Messages the consumer lets be unacknowledged (set when it is created; default: the
    flow's batch size). More than one batch breaks per-key order after a crash."""
    wait_s: float = Field(1.0, gt=0)
    """A run ends when no message came for this long."""
    max_run_s: float = Field(60.0, gt=0)
    """A run takes no new batch after this long (the next run goes on)."""
    dedup_window: int = Field(1000, ge=1, le=100_000)
    """How many committed stream sequences the flow's cursor keeps; a redelivered message
    among them (its batch was committed, its acknowledgement lost) is acknowledged and
    skipped."""


class NatsTargetOptions(TargetOptions):
    """An OUT flow's ``target:``: each record version one message to a subject a stream
    stores, acknowledged by JetStream before the delivery counts as delivered."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    subject: str = Field(min_length=1)
    """Template, e.g. ``erp.{entity}.{key}``."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Message headers; values are templates (``{key}``, ``{record.status}``, …)."""
    stream: str | None = Field(None, pattern=_NAME)
    """The stream that must store the message (JetStream refuses it otherwise)."""

    @model_validator(mode="after")
    def _known_placeholders(self) -> Self:
        used = placeholders(self.subject) | placeholders(self.headers)
        if unknown := sorted(used - WRITE_PLACEHOLDERS):
            raise ValueError(
                f"unknown placeholder(s): {', '.join(unknown)} "
                f"(known: {', '.join(sorted(WRITE_PLACEHOLDERS))})"
            )
        return self
