"""The SOAP transport's declarations: channel ``options:``, a flow's ``source:`` and ``target:``.

Each field has its doc line (shown by ``erpbridge schema`` and checked against the README).
Combinations that cannot work are refused when the configuration is loaded, with the field's
place: a ``{cursor}`` without a ``cursor_field``, an unknown placeholder, a missing password.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from erpbridge.transports.base import StreamOptions, TargetOptions
from erpbridge.transports.soap.values import placeholders

__all__ = [
    "READ_PLACEHOLDERS",
    "WRITE_PLACEHOLDERS",
    "SoapChannelOptions",
    "SoapStreamOptions",
    "SoapTargetOptions",
]

#: Placeholders a ``source.params`` template may use.
READ_PLACEHOLDERS = frozenset({"cursor", "offset", "limit", "page"})
#: Placeholders a ``target.params`` template may use.
WRITE_PLACEHOLDERS = frozenset(
    {"record", "key", "version", "entity", "delivery_id", "idempotency_key"}
)


class SoapChannelOptions(BaseModel):
    """A SOAP channel's ``options:``: where the WSDL is, which endpoint, TLS and auth."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, use_attribute_docstrings=True
    )

    wsdl: str = Field(min_length=1)
    """The WSDL: an http(s) URL, or a file path relative to the configuration's folder."""
    service: str | None = None
    """The WSDL service to use when it defines several (default: the first)."""
    port: str | None = None
    """The service's port to use when it has several (default: the first)."""
    endpoint: str | None = None
    """The service address, overriding the one in the WSDL (a test system, a proxy)."""
    timeout: float = Field(30, gt=0)
    """Seconds to wait for an answer (WSDL and operations)."""
    connect_timeout: float = Field(10, gt=0)
    """Seconds to wait for a connection."""
    verify: bool | str = True
    """Verify TLS certificates; a path (relative to the configuration) names an own CA bundle."""
    client_cert: str | None = None
    """Client certificate (PEM) for mutual TLS."""
    client_key: str | None = None
    """Its private key (PEM, unencrypted); default: in the `client_cert` file."""
    auth: Literal["none", "basic", "wsse"] = "none"
    """`basic`: HTTP basic auth (also for the WSDL); `wsse`: a WS-Security UsernameToken
    (PasswordText) in every request; both need `username` and the credential `password`."""
    username: str | None = None
    """The user for `basic` or `wsse`."""
    operations: list[str] = Field(default_factory=list)
    """Operations the WSDL must offer: `erpbridge channels test` checks them."""
    credentials: dict[str, SecretStr] = Field(default_factory=dict)
    """Filled from the channel's `credentials:` block: `password` for `basic` and `wsse`."""

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.auth != "none":
            if not self.username:
                raise ValueError(f"auth {self.auth} needs `username`")
            if "password" not in self.credentials:
                raise ValueError(
                    f"auth {self.auth} needs the credential `password` "
                    "(add it under the channel's credentials: as ${ENV_VAR})"
                )
        if self.client_key and not self.client_cert:
            raise ValueError("`client_key` needs `client_cert`")
        return self


class SoapStreamOptions(StreamOptions):
    """A flow's ``source:`` block: which operation lists the records, and how to page it."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    operation: str = Field(min_length=1)
    """The operation that returns the records, e.g. `ListCustomers`."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Its parameters; strings may hold `{cursor}`, `{offset}`, `{limit}`, `{page}`."""
    records_path: str | None = None
    """Dotted path to the record list in the answer, e.g. `customers.Customer`; default: the
    answer itself."""
    cursor_field: str | None = None
    """Field of each record whose highest value becomes the cursor, e.g. `modified_at`."""
    key_field: str | None = None
    """Field that identifies a record (positions, and records moved while paging)."""
    safety_window: float = Field(0, ge=0)
    """Start each run this much before the cursor (seconds for times, units for numbers)."""
    initial_cursor: str | int | None = None
    """`{cursor}` of the first run (no cursor stored yet); default: nothing (left out)."""
    page_size: int | None = Field(None, ge=1, le=100_000)
    """Records per page; default: the flow's `batch_size`. Needed without `{limit}`."""
    total_path: str | None = None
    """Dotted path to the number of matching records, if the answer has it: paging then goes on
    until that many are read, even past a page that the service cut short."""

    @model_validator(mode="before")
    @classmethod
    def _no_flow_cursor(cls, data: Any) -> Any:
        if isinstance(data, dict) and "cursor" in data:
            raise ValueError(
                "a SOAP flow names its cursor in `source.cursor_field` (and `safety_window`), "
                "not in a flow `cursor:` block"
            )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        used = placeholders(self.params)
        if unknown := sorted(used - READ_PLACEHOLDERS):
            raise ValueError(
                f"unknown placeholder(s) in params: {', '.join(unknown)} "
                f"(known: {', '.join(sorted(READ_PLACEHOLDERS))})"
            )
        if self.cursor_field and "cursor" not in used:
            raise ValueError("`cursor_field` needs a `{cursor}` placeholder in params")
        if "cursor" in used and not self.cursor_field:
            raise ValueError("`{cursor}` in params needs `cursor_field`")
        if self.safety_window and not self.cursor_field:
            raise ValueError("`safety_window` needs `cursor_field`")
        if used & {"offset", "page"} and "limit" not in used and self.page_size is None:
            raise ValueError("paging without `{limit}` needs `page_size` (the service's page size)")
        return self


class SoapTargetOptions(TargetOptions):
    """A flow's ``target:`` block: which operation takes a record, and where its id comes back."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    operation: str = Field(min_length=1)
    """The operation that writes one record, e.g. `UpsertCustomer`."""
    argument: str | None = None
    """The parameter that takes the mapped record, e.g. `customer`; without it and without
    `params`, the record's fields are the operation's parameters."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Further (or all) parameters; strings may hold `{record}`, `{record.<path>}`, `{key}`,
    `{version}`, `{entity}`, `{delivery_id}`, `{idempotency_key}`."""
    id_path: str | None = None
    """Dotted path to the written record's id in the answer; default: the answer itself when
    it is a plain value (a complex answer then gives no id)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if unknown := sorted(placeholders(self.params) - WRITE_PLACEHOLDERS):
            raise ValueError(
                f"unknown placeholder(s) in params: {', '.join(unknown)} "
                f"(known: {', '.join(sorted(WRITE_PLACEHOLDERS))})"
            )
        if self.argument is not None and self.argument in self.params:
            raise ValueError(f"`{self.argument}` is both the `argument` and in `params`")
        return self
