"""The ``platform`` transport: a web shop or warranty platform that pushes to the hub's API and
takes the hub's changes as signed webhooks.

IN: a platform that calls ``POST /api/v1/events/{flow}`` or sends signed webhooks to
``POST /hooks/{channel}`` needs no connection of ours: its IN flows (trigger ``immediate``) are
fed by those calls, and :meth:`PlatformTransport.read` has nothing to poll.

OUT: each record version of an OUT flow is POSTed as JSON to the channel's ``webhook_url`` —
``{"event", "key", "version", "idempotency_key", "data"}``, or with ``batch: true`` one
``{"event", "records": [...]}`` per write — signed the way the hub verifies inbound webhooks:
an HMAC (``algorithm``) with credential ``webhook_secret`` over ``<timestamp>.<body>`` (the body
alone when ``timestamp_header`` is null), hex, after ``signature_prefix``, in
``signature_header``. The shared :class:`~erpbridge.transports.http.HttpClient` classifies the
answer: 429/5xx and unreachable receivers are retried (``Retry-After`` honoured), other 4xx are
permanent and the delivery goes dead with the receiver's answer.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Self

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from erpbridge.connectors import Sink, Source
from erpbridge.errors import FatalError
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Health,
    OutgoingRecord,
    StreamOptions,
    TargetOptions,
)
from erpbridge.transports.http import (
    HttpChannelOptions,
    HttpClient,
    HttpRefused,
    HttpRetriable,
    HttpUnreachable,
)
from erpbridge.transports.templates import lookup

__all__ = ["PlatformChannelOptions", "PlatformTargetOptions", "PlatformTransport"]

#: The credential that signs outgoing webhooks (the same name inbound webhooks use by default).
SECRET_NAME = "webhook_secret"  # noqa: S105 - a credential name, not a secret


class PlatformChannelOptions(BaseModel):
    """A platform that pushes to the hub; with ``webhook_url`` it also takes OUT flows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/\s]+",
        description="Where OUT flows POST their webhooks (http:// or https://); without it the "
        "channel takes no OUT flows.",
    )
    signature_header: str = Field(
        default="X-Signature", description="The header carrying the HMAC signature."
    )
    signature_prefix: str = Field(
        default="sha256=", description="Written before the hex digest, e.g. `sha256=`."
    )
    algorithm: Literal["sha256", "sha512", "sha1"] = Field(
        default="sha256", description="The HMAC hash: `sha256`, `sha512` or `sha1`."
    )
    timestamp_header: str | None = Field(
        default="X-Timestamp",
        description="The header carrying the Unix time that is signed with the body; null: "
        "sign the body alone.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers sent with every webhook; not for secrets."
    )
    timeout_s: float = Field(default=30, gt=0, description="Read/write timeout per webhook.")
    connect_timeout_s: float = Field(default=10, gt=0, description="Connect timeout.")
    verify: bool | str = Field(
        default=True, description="Verify the receiver's TLS certificate; a path: an own CA bundle."
    )
    requests_per_s: float | None = Field(
        default=None, gt=0, description="Space this process's webhooks to the platform."
    )
    credentials: dict[str, SecretStr] = Field(
        default_factory=dict, description="Filled from the channel's `credentials:` block."
    )

    @model_validator(mode="after")
    def _secret_present(self) -> Self:
        if self.webhook_url is not None and SECRET_NAME not in self.credentials:
            raise ValueError(
                f"webhook_url needs credential `{SECRET_NAME}` to sign the webhooks (add it under "
                "the channel's credentials: as ${ENV_VAR})"
            )
        return self


class PlatformStreamOptions(StreamOptions):
    """No source options: records arrive as events."""


class PlatformTargetOptions(TargetOptions):
    """An OUT flow's ``target:``: the event type the webhooks announce, one POST per record or
    per batch."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    event: str = Field(min_length=1, max_length=200)
    """The event type name sent as ``event``, e.g. ``customer.updated``."""
    batch: bool = False
    """``false``: one POST per record version (with an ``Idempotency-Key`` header); ``true``:
    one POST per write, ``{"event", "records": [...]}``."""
    id_path: str | None = None
    """Dotted path of the platform's id in its JSON answer (per-record POSTs); it becomes the
    record's binding. Default: no id is bound."""


class PlatformTransport(Source[PlatformStreamOptions], Sink[PlatformTargetOptions]):
    """Reads nothing (the platform pushes); writes OUT flows as signed webhooks."""

    channel_options = PlatformChannelOptions
    stream_options = PlatformStreamOptions
    target_options = PlatformTargetOptions

    def __init__(self, channel: str, options: PlatformChannelOptions, base_dir: Path) -> None:
        self.channel = channel
        self._options = options
        self._base_dir = base_dir
        self._http: HttpClient | None = None

    @classmethod
    def check_target(
        cls, channel: str, options: PlatformChannelOptions, target: TargetOptions
    ) -> str | None:
        """Why OUT flow ``target`` cannot write to ``channel`` (no ``webhook_url``), or
        ``None``: for the configuration loader, so the file is refused, not the deliveries."""
        if options.webhook_url is None:
            return _no_webhook_url(channel)
        return None

    def read(
        self,
        stream: StreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Nothing to poll: the channel pushes (events and webhooks)."""
        return iter(())

    def write(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """POST ``records`` to ``webhook_url``, signed; return the platform's ids (or ``None``)."""
        if not isinstance(target, PlatformTargetOptions):
            raise TypeError(f"expected PlatformTargetOptions, got {type(target).__name__}")
        if not records:
            return []
        if target.batch:
            body = {"event": target.event, "records": [_item(r) for r in records]}
            self._post(body, records[0].idempotency_key, _label(records, target.event))
            return [None] * len(records)
        ids: list[str | None] = []
        for record in records:
            body = {"event": target.event, **_item(record)}
            answer = self._post(body, record.idempotency_key, _label([record], target.event))
            ids.append(self._id(answer, target, record))
        return ids

    def health(self) -> Health:
        """Reachable by definition for IN (the platform calls the hub); the webhook receiver is
        not called, as a test POST would be a real event to it."""
        if self._options.webhook_url is None:
            return Health(True, f"channel {self.channel!r} pushes events and webhooks to the API")
        return Health(
            True,
            f"channel {self.channel!r} pushes to the API and takes signed webhooks at "
            f"{self._options.webhook_url}",
        )

    def close(self) -> None:
        """Close the webhook connection pool."""
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- sending ---------------------------------------------------------------------------------

    def _client(self) -> HttpClient:
        options = self._options
        if options.webhook_url is None:
            then = ", then retry the dead deliveries"
            raise FatalError(_no_webhook_url(self.channel, then))
        if self._http is None:
            http_options = HttpChannelOptions(
                base_url=options.webhook_url,
                headers=options.headers,
                timeout_s=options.timeout_s,
                connect_timeout_s=options.connect_timeout_s,
                verify=options.verify,
                requests_per_s=options.requests_per_s,
                max_wait_s=0,
            )
            self._http = HttpClient(self.channel, http_options, self._base_dir)
        return self._http

    def _post(self, body: Mapping[str, Any], idempotency_key: str, label: str) -> httpx.Response:
        client, options = self._client(), self._options
        content = orjson.dumps(body, default=str)
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        headers |= sign(options, content, options.credentials[SECRET_NAME].get_secret_value())
        url = str(options.webhook_url)
        try:
            return client.request("POST", url, content=content, headers=headers)
        except HttpRetriable as exc:
            raise HttpRetriable(
                self._say(label, exc), exc.status, exc.retry_after, exc.category
            ) from exc
        except HttpRefused as exc:
            raise HttpRefused(self._say(label, exc), exc.status, exc.category) from exc
        except HttpUnreachable as exc:
            raise HttpUnreachable(self._say(label, exc), exc.category) from exc

    def _say(self, label: str, exc: Exception) -> str:
        """``channel 'x': webhook …: <the client's own words without the channel>``."""
        prefix = f"channel {self.channel!r}: "
        return f"{prefix}{label}: {str(exc).removeprefix(prefix)}"

    def _id(
        self, response: httpx.Response, target: PlatformTargetOptions, record: OutgoingRecord
    ) -> str | None:
        if target.id_path is None:
            return None
        try:
            value = lookup(response.json(), target.id_path)
        except ValueError:
            value = None
        if value is None or value == "":
            raise FatalError(
                f"channel {self.channel!r}: webhook {_label([record], target.event)} was "
                f"accepted, but the answer has no id at {target.id_path!r}"
            )
        return str(value)


def sign(
    options: PlatformChannelOptions, body: bytes, secret: str, at: int | None = None
) -> dict[str, str]:
    """The signature headers for ``body``: HMAC over ``<unix time>.<body>`` (or the body alone
    without a ``timestamp_header``), as the hub's inbound webhooks verify it."""
    headers: dict[str, str] = {}
    signed = body
    if options.timestamp_header:
        stamp = str(int(time.time()) if at is None else at)
        headers[options.timestamp_header] = stamp
        signed = stamp.encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, getattr(hashlib, options.algorithm)).hexdigest()
    headers[options.signature_header] = options.signature_prefix + digest
    return headers


def _no_webhook_url(channel: str, then: str = "") -> str:
    return (
        f"channel {channel!r} has no webhook_url: it cannot take OUT flows (set "
        f"options.webhook_url{then})"
    )


def _item(record: OutgoingRecord) -> dict[str, Any]:
    return {
        "key": record.key,
        "version": record.version,
        "idempotency_key": record.idempotency_key,
        "data": dict(record.data),
    }


def _label(records: list[OutgoingRecord], event: str) -> str:
    first = records[0]
    more = f" and {len(records) - 1} more" if len(records) > 1 else ""
    return (
        f"webhook {event} for {first.entity} {first.key!r} v{first.version} "
        f"(delivery {first.delivery_id}){more}"
    )
