"""Real-time operations over REST: one templated request, answered within the caller's request.

```yaml
operations:
  validate_po:
    method: GET
    path: customers/{customer}/purchase-orders/{po_number}
    result_path: data
    timeout_s: 5
```

Placeholders in ``path`` are the caller's parameters, URL-quoted, each one path segment (a value
that would change the path, such as ``..`` or one holding ``/``, is refused: see
:mod:`.pathparams`); ``query`` and ``body`` are
templates too (a value that is exactly one placeholder keeps its JSON type). ``not_found`` says
what a 404 means: an error (default) or an answer (``null``), as for a look-up that may miss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson
from pydantic import Field

from erpbridge.errors import DataError
from erpbridge.transports.base import OperationOptions
from erpbridge.transports.http import HttpClient
from erpbridge.transports.pathparams import path_segment
from erpbridge.transports.rest.paging import json_body
from erpbridge.transports.templates import lookup, placeholders, render

__all__ = ["RestOperationOptions", "call_rest"]


class RestOperationOptions(OperationOptions):
    """One request: method, path, query and body templates, where the answer sits."""

    method: Literal["GET", "POST", "PUT", "PATCH"] = "GET"
    path: str = Field(description="Relative to base_url; {param} placeholders are URL-quoted.")
    query: dict[str, Any] = Field(default_factory=dict, description="Query parameter templates.")
    body: Any = Field(default=None, description="A JSON body template (POST, PUT, PATCH).")
    result_path: str | None = Field(
        default=None, description="Dotted path of the answer in the response body."
    )
    not_found: Literal["error", "null"] = Field(
        default="error", description="What a 404 means: an error, or the answer null."
    )


def call_rest(
    client: HttpClient, operation: RestOperationOptions, params: Mapping[str, Any]
) -> Any:
    """Send the operation's request with ``params`` filled in; return the answer (plain JSON)."""
    needed = placeholders(operation.path) | placeholders(operation.query)
    needed |= placeholders(operation.body)
    for name in sorted(needed - set(params)):
        raise DataError(name, "missing parameter")
    in_path = placeholders(operation.path)
    path = render(operation.path, {k: path_segment(k, params[k]) for k in in_path})
    query = {k: v for k, v in render(operation.query, params).items() if v is not None}
    content = None
    headers = {"Accept": "application/json"}
    if operation.body is not None:
        content = orjson.dumps(render(operation.body, params), default=str)
        headers["Content-Type"] = "application/json"
    ok = frozenset({404}) if operation.not_found == "null" else frozenset()
    response = client.request(
        operation.method, path, params=query or None, content=content, headers=headers, ok=ok
    )
    if response.status_code == 404:
        return None
    if not response.content:
        return None
    return lookup(json_body(client.channel, response), operation.result_path)
