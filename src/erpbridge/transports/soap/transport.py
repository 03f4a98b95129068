"""SOAP transport: IN flows call a list operation page by page, OUT flows call an upsert per record.

Everything is declared: the channel names the WSDL (URL, or a file beside the configuration),
optionally the service, port and endpoint, TLS and auth; a flow names the operation, its
``params`` as a template (``{cursor}``, ``{offset}``, ``{limit}``, ``{page}`` when reading;
``{record}``, ``{record.<path>}``, ``{key}``, ``{version}``, ``{idempotency_key}`` … when
writing), where the records are in the answer and where the written record's id is.

**Cursor.** With ``cursor_field`` a run passes the stored cursor (less ``safety_window``) as
``{cursor}``; the service must return records whose field is *greater than or equal* to it, in
ascending order of it. Records at the boundary are read again and the hub drops them as unchanged
(content hash). The cursor — the highest value read — moves only when a run has read the last
page, so a run that fails half-way starts again where the previous run started. Offset paging over
a result that changes while it is read can shift a record into a page already read: with
``key_field`` a record seen twice in one run reveals such a shift, and the cursor then stays at the
first value of the moved record, so the next run reads the shifted ones again.

The options are :mod:`erpbridge.transports.soap.options`; errors are translated at the border
(:mod:`erpbridge.transports.soap.errors`); templates, paths and the cursor are
:mod:`erpbridge.transports.soap.values`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import requests
from zeep import Client, Settings
from zeep import exceptions as zeep_errors
from zeep.proxy import ServiceProxy
from zeep.transports import Transport as ZeepTransport
from zeep.wsse.username import UsernameToken

from erpbridge.connectors import Sink, Source
from erpbridge.errors import ErpbridgeError, FatalError
from erpbridge.transports.base import (
    Batch,
    CursorValue,
    Health,
    OutgoingRecord,
    SourceRecord,
    StreamOptions,
    TargetOptions,
)
from erpbridge.transports.soap.errors import (
    SoapFailed,
    category_of,
    scrub_url,
    translate,
)
from erpbridge.transports.soap.options import (
    SoapChannelOptions,
    SoapStreamOptions,
    SoapTargetOptions,
)
from erpbridge.transports.soap.values import (
    RunCursor,
    decode_cursor,
    lookup,
    placeholders,
    plain,
    render,
)
from erpbridge.transports.window import minus_window

__all__ = ["SoapChannelOptions", "SoapStreamOptions", "SoapTargetOptions", "SoapTransport"]

_T = TypeVar("_T")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Foreign errors the border translates (anything else is a bug and goes through as it is).
_FOREIGN = (zeep_errors.Error, requests.RequestException, OSError)


class _ZeepTransport(ZeepTransport):
    """zeep's HTTP transport, except that an HTTP error whose body is not XML (an HTML error
    page of a proxy or an application server) is reported with its status, not parsed as SOAP."""

    def post(self, address: str, message: Any, headers: dict[str, str]) -> requests.Response:
        """POST one request; a non-XML error answer raises zeep's ``TransportError``."""
        sent = super().post  # zeep's methods carry no annotations
        response: requests.Response = sent(address, message, headers)  # type: ignore[no-untyped-call]
        kind = response.headers.get("Content-Type", "").lower()
        if response.status_code >= 300 and "xml" not in kind:
            raise zeep_errors.TransportError(  # type: ignore[no-untyped-call]
                f"HTTP {response.status_code}",
                status_code=response.status_code,
                content=response.content,
            )
        return response


class SoapTransport(Source[SoapStreamOptions], Sink[SoapTargetOptions]):
    """Calls the operations of one SOAP service; the WSDL is loaded once per instance."""

    channel_options = SoapChannelOptions
    stream_options: type[StreamOptions] = SoapStreamOptions
    target_options: type[TargetOptions] = SoapTargetOptions

    def __init__(self, channel: str, options: SoapChannelOptions, base_dir: Path) -> None:
        self._channel = channel
        self._options = options
        self._base_dir = base_dir
        self._wsdl = options.wsdl if _URL.match(options.wsdl) else str(base_dir / options.wsdl)
        self._secrets = [s.get_secret_value() for s in options.credentials.values()]
        self._session: requests.Session | None = None
        self._bound: tuple[ServiceProxy, str] | None = None

    # -- the service -----------------------------------------------------------------------------

    def _service(self) -> tuple[ServiceProxy, str]:
        """The bound service and its address; loads and parses the WSDL on first use."""
        if self._bound is None:
            where = f"channel {self._channel}: WSDL {scrub_url(self._wsdl)}"
            with self._border(where):
                client = Client(  # type: ignore[no-untyped-call]
                    self._wsdl,
                    wsse=self._wsse(),
                    transport=self._zeep_transport(),
                    settings=Settings(strict=True, forbid_dtd=True, forbid_entities=True),
                )
            self._bound = self._bind(client, where)
        return self._bound

    def _bind(self, client: Client, where: str) -> tuple[ServiceProxy, str]:
        services = client.wsdl.services
        if not services:
            raise SoapFailed(f"{where} defines no service", "schema")
        name = self._options.service or next(iter(services))
        if name not in services:
            raise SoapFailed(
                f"{where} has no service {name} (services: {', '.join(services)})", "schema"
            )
        ports = services[name].ports
        port_name = self._options.port or next(iter(ports))
        if port_name not in ports:
            raise SoapFailed(
                f"{where}: service {name} has no port {port_name} (ports: {', '.join(ports)})",
                "schema",
            )
        port = ports[port_name]
        address = self._options.endpoint or port.binding_options.get("address")
        if not address:
            raise SoapFailed(f"{where}: port {port_name} has no address; set `endpoint`", "schema")
        proxy = ServiceProxy(client, port.binding, address=address)  # type: ignore[no-untyped-call]
        return proxy, str(address)

    def _zeep_transport(self) -> ZeepTransport:
        if self._session is not None:  # left by a WSDL load that failed
            self._session.close()
        session = requests.Session()
        options = self._options
        if options.auth == "basic":
            session.auth = (str(options.username), self._secrets_of("password"))
        session.verify = (
            options.verify if isinstance(options.verify, bool) else str(self._path(options.verify))
        )
        if options.client_cert:
            cert = str(self._path(options.client_cert))
            key = str(self._path(options.client_key)) if options.client_key else None
            session.cert = (cert, key) if key else cert
        self._session = session
        timeout = (options.connect_timeout, options.timeout)
        return _ZeepTransport(  # type: ignore[no-untyped-call]
            session=session, timeout=timeout, operation_timeout=timeout
        )

    def _wsse(self) -> UsernameToken | None:
        if self._options.auth != "wsse":
            return None
        username, password = str(self._options.username), self._secrets_of("password")
        return UsernameToken(username, password)  # type: ignore[no-untyped-call]

    def _secrets_of(self, name: str) -> str:
        return self._options.credentials[name].get_secret_value()

    def _path(self, path: str) -> Path:
        return self._base_dir / path

    def _operation(self, name: str) -> tuple[ServiceProxy, str]:
        service, address = self._service()
        known = [op for op, _ in service]
        if name not in known:
            raise SoapFailed(
                f"channel {self._channel}: the service at {scrub_url(address)} has no operation "
                f"{name} (operations: {', '.join(known)})",
                "schema",
            )
        return service, address

    def _call(
        self, service: ServiceProxy, operation: str, params: dict[str, Any], where: str
    ) -> Any:
        with self._border(where):
            try:
                return service[operation](**params)
            except TypeError as exc:  # zeep's answer to a parameter the operation does not take
                raise SoapFailed(f"{where}: the parameters do not fit: {exc}", "schema") from exc

    @contextmanager
    def _border(self, where: str) -> Iterator[None]:
        """zeep and requests errors out as erpbridge errors; secrets never in a message."""
        try:
            yield
        except ErpbridgeError as exc:
            exc.args = (self._scrub(str(exc)),)
            raise
        except _FOREIGN as exc:
            error = translate(where, exc) or SoapFailed(f"{where}: {exc}", "error")
            error.args = (self._scrub(str(error)),)
            raise error from exc

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    # -- reading ---------------------------------------------------------------------------------

    def read(
        self,
        stream: StreamOptions,
        cursor: CursorValue,
        batch_size: int,
        required_fields: frozenset[str],
    ) -> Iterator[Batch]:
        """Yield the records of ``stream.operation`` page by page; the last batch carries the
        new cursor."""
        if not isinstance(stream, SoapStreamOptions):
            raise TypeError(f"expected SoapStreamOptions, got {type(stream).__name__}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        return self._read(stream, cursor, batch_size, required_fields)

    def _read(
        self,
        stream: SoapStreamOptions,
        stored: CursorValue,
        batch_size: int,
        required: frozenset[str],
    ) -> Iterator[Batch]:
        service, address = self._operation(stream.operation)
        where = f"channel {self._channel}: {stream.operation} at {scrub_url(address)}"
        field = stream.cursor_field
        start = self._in_channel(decode_cursor, stored, field) if field else None
        since: Any = stream.initial_cursor
        if field and start is not None:
            since = self._in_channel(minus_window, start, stream.safety_window, field)
        tracker = RunCursor(stream.operation, field, stream.key_field, start)
        for offset, records, done in self._pages(service, stream, since, batch_size, where):
            if offset == 0 and records:
                self._require(records[0], required, stream, where)
            positioned = [
                SourceRecord(record, tracker.position(record, offset + i))
                for i, record in enumerate(records)
            ]
            self._in_channel(tracker.see, records)
            chunks = [positioned[i : i + batch_size] for i in range(0, len(positioned), batch_size)]
            *whole, tail = chunks or [[]]
            yield from (Batch(chunk) for chunk in whole)
            if not done:
                if tail:
                    yield Batch(tail)
                continue
            # The cursor moves only with the last page: a run that fails half-way is read again
            # from where it began, as the offsets of a changing result are no place to resume.
            cursor, warning = self._in_channel(tracker.final)
            if tail or cursor is not None or warning:
                yield Batch(
                    tail, cursor=cursor, warnings=[f"{where}: {warning}"] if warning else []
                )

    def _pages(
        self,
        service: ServiceProxy,
        stream: SoapStreamOptions,
        since: Any,
        batch_size: int,
        where: str,
    ) -> Iterator[tuple[int, list[dict[str, Any]], bool]]:
        """``(offset, records, last page?)`` of each page; one page without paging placeholders."""
        paging = bool(placeholders(stream.params) & {"offset", "page"})
        size = stream.page_size or batch_size
        offset, page, previous = 0, 1, None
        while True:
            values = {"cursor": since, "offset": offset, "limit": size, "page": page}
            params = render(stream.params, values)
            answer = plain(self._call(service, stream.operation, params, where))
            records = self._records(answer, stream, where)
            if paging and records and records == previous:
                raise SoapFailed(
                    f"{where}: page {page} repeats the previous page; the service ignores the "
                    "paging parameters",
                    "protocol",
                )
            read = offset + len(records)
            if not paging:
                done = True
            elif stream.total_path is not None:
                done = not records or read >= self._total(answer, stream.total_path, where)
            else:
                done = len(records) < size
            yield offset, records, done
            if done:
                return
            offset, page, previous = read, page + 1, records

    def _records(self, answer: Any, stream: SoapStreamOptions, where: str) -> list[dict[str, Any]]:
        """The record list at ``records_path``; a step the answer does not have is an error, a
        step that is empty is an empty page."""
        current = answer
        steps = stream.records_path.split(".") if stream.records_path else []
        for step in steps:
            if current is None:
                return []
            if not isinstance(current, dict) or step not in current:
                fields = ", ".join(current) if isinstance(current, dict) else type(current).__name__
                raise SoapFailed(
                    f"{where}: records_path {stream.records_path}: the answer has no {step} "
                    f"(found: {fields})",
                    "schema",
                )
            current = current[step]
        if current is None:
            return []
        items = current if isinstance(current, list) else [current]
        if not all(isinstance(item, dict) for item in items):
            kinds = sorted({type(item).__name__ for item in items})
            raise SoapFailed(
                f"{where}: records_path {stream.records_path or '(the answer)'} holds "
                f"{', '.join(kinds)} values, not records",
                "protocol",
            )
        return items

    def _require(
        self,
        record: dict[str, Any],
        required: frozenset[str],
        stream: SoapStreamOptions,
        where: str,
    ) -> None:
        # zeep gives every element of the record's type, empty ones as None: an absent name is
        # not in the type at all, a mistake in the flow rather than in one record.
        named = {stream.cursor_field, stream.key_field} - {None}
        needed = {str(name).split(".")[0] for name in named} | set(required)
        if missing := sorted(needed - set(record)):
            raise SoapFailed(
                f"{where}: the records have no field(s) {', '.join(missing)}; "
                f"fields found: {', '.join(record)}",
                "schema",
            )

    def _total(self, answer: Any, path: str, where: str) -> int:
        value = lookup(answer, path)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SoapFailed(
                f"{where}: total_path {path} holds {value!r}, not a number", "protocol"
            ) from None

    def _in_channel(self, function: Callable[..., _T], *args: Any) -> _T:
        """``function(*args)``; a ``FatalError`` from it (a cursor problem) names the channel."""
        try:
            return function(*args)
        except FatalError as exc:
            raise FatalError(f"channel {self._channel}: {exc}") from exc

    # -- writing ---------------------------------------------------------------------------------

    def write(self, target: TargetOptions, records: list[OutgoingRecord]) -> list[str | None]:
        """Call ``target.operation`` once per record, in order; return each record's id.

        Not atomic: on an error the records before it are written. A retry sends them again, so
        the operation should be an upsert (or take ``{idempotency_key}``).
        """
        if not isinstance(target, SoapTargetOptions):
            raise TypeError(f"expected SoapTargetOptions, got {type(target).__name__}")
        if not records:
            return []
        service, address = self._operation(target.operation)
        ids: list[str | None] = []
        for record in records:
            where = (
                f"channel {self._channel}: {target.operation} at {scrub_url(address)}, "
                f"{record.entity} {record.key} v{record.version} (delivery {record.delivery_id})"
            )
            answer = plain(
                self._call(service, target.operation, self._arguments(target, record), where)
            )
            ids.append(self._id(answer, target, where))
        return ids

    def _arguments(self, target: SoapTargetOptions, record: OutgoingRecord) -> dict[str, Any]:
        data = dict(record.data)
        if target.argument is None and not target.params:
            return data
        values = {
            "record": data,
            "key": record.key,
            "version": record.version,
            "entity": record.entity,
            "delivery_id": record.delivery_id,
            "idempotency_key": record.idempotency_key,
        }
        params: dict[str, Any] = render(target.params, values)
        if target.argument is not None:
            params[target.argument] = data
        return params

    def _id(self, answer: Any, target: SoapTargetOptions, where: str) -> str | None:
        if target.id_path is None:
            return None if answer is None or isinstance(answer, dict | list) else str(answer)
        value = lookup(answer, target.id_path)
        if value is None or isinstance(value, dict | list):
            raise SoapFailed(
                f"{where}: the answer has no id at id_path {target.id_path}: {answer!r}"[:500],
                "protocol",
            )
        return str(value)

    # -- health and closing ----------------------------------------------------------------------

    def health(self) -> Health:
        """Load and parse the WSDL, check the `operations` it must offer, reach the endpoint."""
        try:
            service, address = self._service()
            known = [op for op, _ in service]
            if missing := [op for op in self._options.operations if op not in known]:
                raise SoapFailed(
                    f"channel {self._channel}: the service at {scrub_url(address)} has no "
                    f"operation(s) {', '.join(missing)} (operations: {', '.join(known)})",
                    "schema",
                )
            self._probe(address)
        except ErpbridgeError as exc:
            return Health(ok=False, detail=str(exc), category=category_of(exc))
        return Health(
            ok=True,
            detail=f"SOAP service at {scrub_url(address)}; operations: {', '.join(known)}",
        )

    def _probe(self, address: str) -> None:
        """A GET of the endpoint: only whether it is reached and, with basic auth, accepted."""
        assert self._session is not None  # made with the service
        where = f"channel {self._channel}: endpoint {scrub_url(address)}"
        with self._border(where):
            response = self._session.get(
                address, timeout=(self._options.connect_timeout, self._options.timeout)
            )
        if response.status_code in (401, 403) and self._options.auth != "wsse":
            with self._border(where):
                response.raise_for_status()

    def close(self) -> None:
        """Close the HTTP connections; the parsed WSDL goes with them."""
        if self._session is not None:
            self._session.close()
        self._session = None
        self._bound = None
