"""The notifiers against real local servers, where they must refuse: an SMTP server without
STARTTLS gets nothing in clear, an untrusted certificate is refused, a webhook that answers an
error is a failure naming the status, and a signature over another body or an old time does
not verify."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from erpbridge.config.alerts import EmailNotifier, WebhookNotifier
from erpbridge.observe.notify import (
    Alert,
    EmailSender,
    NotifyError,
    WebhookSender,
    sign,
    verify_signature,
)
from httpserve import QuietHandler, serve_handler
from hubprocess import free_port
from integration.pki import make_pki

ALERT = Alert("erp-down", "erp", "fired", "channel 'erp' down", "2026-12-07T12:00:00+00:00", "-")


class Received:
    def __init__(self) -> None:
        self.mails: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(envelope.content)
        return "250 OK"


@pytest.fixture
def pki_folder(tmp_path: Path) -> Path:
    (tmp_path / "pki").mkdir()
    return tmp_path / "pki"


def _smtp(received: Received, tls: ssl.SSLContext | None) -> Iterator[int]:
    port = free_port()
    options: dict[str, Any] = {"tls_context": tls, "require_starttls": True} if tls else {}
    controller = Controller(received, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _email(port: int, ca: Path | None) -> EmailSender:
    settings = EmailNotifier(
        host="127.0.0.1",
        port=port,
        sender="hub@example.com",
        to=["ops@example.com"],
        timeout_s=5,
        ca_file=str(ca) if ca else None,
    )
    return EmailSender("mail", settings, Path("/"))


def test_a_server_without_starttls_gets_nothing_in_clear() -> None:
    received = Received()
    for port in _smtp(received, None):
        with pytest.raises(NotifyError) as info:
            _email(port, None).send(ALERT)
        assert str(info.value) == (
            f"e-mail 'mail': 127.0.0.1:{port} does not offer STARTTLS; not sending in clear"
        )
    assert received.mails == []


def test_an_untrusted_certificate_is_refused_and_a_trusted_one_accepted(pki_folder: Path) -> None:
    pki = make_pki(pki_folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    received = Received()
    for port in _smtp(received, context):
        with pytest.raises(NotifyError) as info:
            _email(port, None).send(ALERT)  # the system's CAs do not know the test CA
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
        assert received.mails == []
        _email(port, pki.ca).send(ALERT)
    assert len(received.mails) == 1
    assert b"Subject: [erpbridge] FIRING: erp-down (erp)" in received.mails[0]


def test_a_webhook_answering_an_error_or_nothing_is_a_failure() -> None:
    class Refuses(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(500)
            self.end_headers()

    with serve_handler(Refuses) as served:
        hook = WebhookSender(
            "hook", WebhookNotifier(url=served.url, secret=SecretStr("k" * 16)), Path("/")
        )
        with pytest.raises(NotifyError, match=r"^webhook 'hook': answered HTTP 500$"):
            hook.send(ALERT)
    gone = WebhookSender(
        "gone",
        WebhookNotifier(url=f"http://127.0.0.1:{free_port()}/", secret=SecretStr("k" * 16)),
        Path("/"),
    )
    with pytest.raises(NotifyError, match=r"^webhook 'gone': ConnectError: "):
        gone.send(ALERT)


def test_a_signature_holds_for_its_body_and_time_only() -> None:
    body, now = b'{"rule":"erp-down"}', int(time.time())
    header = sign("secret-1", body, now)
    assert verify_signature("secret-1", body, header)
    assert not verify_signature("secret-2", body, header)
    assert not verify_signature("secret-1", body + b" ", header)
    assert not verify_signature("secret-1", body, sign("secret-1", body, now - 301))
    assert not verify_signature("secret-1", body, "t=abc,v1=00")
    assert not verify_signature("secret-1", body, "")
