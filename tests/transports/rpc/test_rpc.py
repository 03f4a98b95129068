"""The RPC transport's options and wire: typed values both ways, XML-RPC bodies, the DOCTYPE
guard; Tryton's faults as trytond 8.2 answers them (recorded, replayed by a local server, for
the ones a test cannot provoke on a real server at will). Tryton itself:
tests/integration/test_rpc_tryton.py; Odoo: test_rpc_odoo.py."""

from __future__ import annotations

import json
import uuid
import xmlrpc.client
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr, ValidationError

from erpbridge.errors import FatalError, RetriableError
from erpbridge.transports.base import OutgoingRecord
from erpbridge.transports.rpc.transport import (
    RpcChannelOptions,
    RpcStreamOptions,
    RpcTargetOptions,
    RpcTransport,
)
from erpbridge.transports.rpc.wire import (
    RpcFault,
    odoo_encode,
    tryton_decode,
    tryton_encode,
    tryton_hook,
    xml_dumps,
    xml_loads,
)
from httpserve import QuietHandler, serve_handler

VALUES: dict[str, Any] = {
    "price": Decimal("19.90"),
    "at": datetime(2024, 5, 1, 6, 30, 15, 123456),
    "day": date(2024, 5, 1),
    "clock": time(6, 30, 15, 5),
    "lasting": timedelta(hours=2, seconds=1),
    "blob": b"\x00\xffPDF",
    "nested": [{"qty": Decimal("2.5"), "when": date(2024, 1, 2)}, None, True, 3, "text"],
}


def test_tryton_json_values_survive_a_round_trip() -> None:
    sent = json.dumps(tryton_encode(VALUES))
    assert '{"__class__": "Decimal", "decimal": "19.90"}' in sent
    assert json.loads(sent, object_hook=tryton_hook) == VALUES


def test_an_aware_datetime_goes_to_tryton_as_naive_utc() -> None:
    local = datetime(2024, 5, 1, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    encoded = tryton_encode(local)
    assert (encoded["__class__"], encoded["hour"]) == ("datetime", 6)


def test_tryton_xml_values_survive_a_round_trip_in_whole_seconds() -> None:
    body = xml_dumps("model.x.write", [tryton_encode(VALUES, xml=True)])
    (params,), method = xmlrpc.client.loads(body, use_builtin_types=True)
    assert method == "model.x.write"
    # What trytond's marshaller answers: the same structs, datetimes as dateTime.iso8601.
    answer = xmlrpc.client.dumps((params,), methodresponse=True, allow_none=True).encode()
    decoded = tryton_decode(xml_loads(answer))
    assert decoded == {**VALUES, "at": VALUES["at"].replace(microsecond=0)}


def test_trytons_bigdecimal_answer_is_a_decimal() -> None:
    answer = (
        b"<?xml version='1.0'?><methodResponse><params><param><value><struct><member>"
        b"<name>rounding</name><value><bigdecimal>0.01</bigdecimal></value></member>"
        b"</struct></value></param></params></methodResponse>"
    )
    assert xml_loads(answer) == {"rounding": Decimal("0.01")}


def test_odoo_values_are_text_floats_and_false() -> None:
    assert odoo_encode(
        {
            "amount": Decimal("12.50"),
            "at": datetime(2024, 5, 1, 8, 0, 5, 999, tzinfo=timezone(timedelta(hours=2))),
            "day": date(2024, 5, 1),
            "gone": None,
            "lines": [[0, 0, {"note": None}]],
        }
    ) == {
        "amount": 12.5,
        "at": "2024-05-01 06:00:05",
        "day": "2024-05-01",
        "gone": False,
        "lines": [[0, 0, {"note": False}]],
    }


def test_a_value_that_cannot_be_sent_is_named() -> None:
    with pytest.raises(ValueError, match="type set cannot be sent"):
        tryton_encode({"tags": {"a"}})
    with pytest.raises(ValueError, match="type object cannot be sent"):
        odoo_encode([object()])


def test_a_fault_is_an_rpc_fault() -> None:
    fault = xmlrpc.client.dumps(xmlrpc.client.Fault(1, "Missing - ")).encode()
    with pytest.raises(RpcFault) as caught:
        xml_loads(fault)
    assert (caught.value.code, caught.value.message) == (1, "Missing - ")


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<methodResponse><params><param><value><string>&e;</string></value></param>"
        b"</params></methodResponse>",
        b"<methodResponse><params><param><value><string>cut",
        b"not xml at all",
        b"<methodResponse><params></params></methodResponse>",
    ],
)
def test_anything_but_a_plain_xml_rpc_response_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"DOCTYPE|not an XML-RPC response|one value"):
        xml_loads(body)


def test_the_channel_needs_the_password_credential() -> None:
    base = {"base_url": "http://erp:8000", "dialect": "tryton", "database": "d", "username": "u"}
    with pytest.raises(ValidationError, match="credential `password`"):
        RpcChannelOptions.model_validate(base)
    secret = "pw-7f3a9c"
    options = RpcChannelOptions.model_validate({**base, "credentials": {"password": secret}})
    assert options.credentials["password"] == SecretStr(secret)
    assert secret not in repr(options)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"model": "party.party"}, "method upsert needs `match_field`"),
        (
            {
                "model": "party.party",
                "method": "create",
                "lookups": {"a.b.c": {"model": "m", "field": "f"}},
            },
            "deeper than a field of a list's items",
        ),
        ({"model": "party.party", "method": "create", "one2many": {"x": "merge"}}, "create"),
    ],
)
def test_target_options_are_checked(target: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RpcTargetOptions.model_validate(target)


def test_utc_is_kept_for_tryton_when_already_utc() -> None:
    moment = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
    assert tryton_decode(tryton_hook(tryton_encode(moment))) == moment.replace(tzinfo=None)


# -- Tryton faults, from answers recorded on trytond 8.2 -------------------------------------------


class Canned(QuietHandler):
    """Answers Tryton calls by method name from ``answers``: (status, JSON body or fault)."""

    answers: ClassVar[dict[str, tuple[int, Any]]] = {}
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        xml = "xml" in self.headers["Content-Type"]
        method = xmlrpc.client.loads(body)[1] if xml else json.loads(body)["method"]
        self.seen.append(method)
        status, answer = self.answers.get(method, (200, {"result": None}))
        if xml and status == 200:
            reply = xmlrpc.client.dumps(
                answer.get("fault", (answer.get("result"),)),
                methodresponse=True,
                allow_none=True,
            ).encode()
        else:
            reply = json.dumps({"id": 1, **answer}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


LOGIN = {
    "common.db.login": (200, {"result": [1, "0a1b2c", None]}),
    "model.res.user.get_preferences": (200, {"result": {"company": 1, "language": "en"}}),
}


@pytest.fixture
def canned() -> Iterator[tuple[type[Canned], str]]:
    handler = type("Handler", (Canned,), {"answers": dict(LOGIN), "seen": []})
    with serve_handler(handler, poll_interval=0.05) as served:
        yield handler, f"{served.url}/"


def tryton(url: str, protocol: str = "jsonrpc") -> RpcTransport:
    options = RpcChannelOptions.model_validate(
        {
            "base_url": url,
            "dialect": "tryton",
            "protocol": protocol,
            "database": "db",
            "username": f"user-{uuid.uuid4().hex[:6]}",  # no session shared between tests
            "credentials": {"password": "pw"},
        }
    )
    return RpcTransport("erp", options, Path("."))


WRITE = "model.party.party.create"
RECORD = OutgoingRecord(4, "customer", "C-1", 2, "k", {"name": "Anna"})
CREATE = RpcTargetOptions(model="party.party", method="create")


@pytest.mark.parametrize(
    ("answer", "fault", "error", "text"),
    [
        (
            {"error": ["ConcurrencyException", "Records were modified in the meanwhile"]},
            xmlrpc.client.Fault(4, "Records were modified in the meanwhile"),
            RetriableError,
            "Records were modified in the meanwhile (changed meanwhile; tried again later)",
        ),
        (
            {"error": ["UserWarning", ["party_dup", "Party Anna exists already.", ""]]},
            xmlrpc.client.Fault(2, "Party Anna exists already. - "),
            FatalError,
            "Party Anna exists already.",
        ),
        (
            {"error": ["UserError", ['The value "x" for field "Code" is not valid.', "", None]]},
            xmlrpc.client.Fault(1, 'The value "x" for field "Code" is not valid. - '),
            FatalError,
            'UserError: The value "x" for field "Code" is not valid.',
        ),
    ],
)
@pytest.mark.parametrize("protocol", ["jsonrpc", "xmlrpc"])
def test_trytons_faults_on_write(
    protocol: str,
    answer: dict[str, Any],
    fault: xmlrpc.client.Fault,
    error: type[Exception],
    text: str,
    canned: tuple[type[Canned], str],
) -> None:
    handler, url = canned
    handler.answers[WRITE] = (200, answer if protocol == "jsonrpc" else {"fault": fault})
    rpc = tryton(url, protocol)

    with pytest.raises(error) as caught:
        rpc.write(CREATE, [RECORD])
    rpc.close()

    assert text in str(caught.value)
    assert "party.party" in str(caught.value)
    if error is FatalError:
        assert "customer 'C-1' v2 (delivery 4)" in str(caught.value)


def test_a_second_401_after_a_fresh_login_is_an_auth_failure(
    canned: tuple[type[Canned], str],
) -> None:
    handler, url = canned
    handler.answers[WRITE] = (401, {})
    rpc = tryton(url)

    with pytest.raises(FatalError) as caught:
        rpc.write(CREATE, [RECORD])
    rpc.close()

    assert getattr(caught.value, "category", None) == "auth"
    assert "refused a fresh session (HTTP 401)" in str(caught.value)
    assert handler.seen.count("common.db.login") == 2  # the first session, and one renewal
    assert handler.seen.count(WRITE) == 2


def test_a_login_that_asks_for_more_than_a_password_is_an_auth_failure(
    canned: tuple[type[Canned], str],
) -> None:
    handler, url = canned
    handler.answers["common.db.login"] = (
        200,
        {"error": ["LoginException", ["totp_code", "Enter your code", "char"]]},
    )
    rpc = tryton(url)

    health = rpc.health()
    rpc.close()

    assert (health.ok, health.category) == (False, "auth")
    assert "the login needs more than a password: Enter your code" in health.detail


def test_related_needs_a_cursor_field_and_a_via() -> None:
    related = [{"model": "party.address", "via": ["addresses"]}]
    with pytest.raises(ValidationError, match="related follows changes since the last pass"):
        RpcStreamOptions.model_validate({"model": "party.party", "related": related})
    with pytest.raises(ValidationError, match="via"):
        RpcStreamOptions.model_validate(
            {"model": "party.party", "cursor_field": "write_date",
             "related": [{"model": "party.address", "via": []}]}
        )  # fmt: skip
    ok = RpcStreamOptions.model_validate(
        {"model": "party.party", "cursor_field": "write_date", "related": related}
    )
    assert ok.related[0].via == ["addresses"]
