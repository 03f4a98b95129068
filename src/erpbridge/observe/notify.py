"""Alert notifiers: a signed webhook and e-mail over SMTP with STARTTLS.

**The webhook** POSTs the alert as JSON with the header::

    X-Erpbridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the secret>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes with the shared
secret, compares it in constant time with ``v1`` and refuses a ``t`` older than a few minutes
(a replayed request): :func:`verify_signature` does exactly that, in ten lines to copy.

**E-mail** goes through SMTP upgraded with STARTTLS (the certificate is verified, against
``ca_file`` when given); a server that does not offer STARTTLS is refused, never written to in
clear. The password comes from the environment (``${SMTP_PASSWORD}`` in the configuration).
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
import orjson

from erpbridge.config.alerts import EmailNotifier, NotifierConfig, WebhookNotifier

__all__ = [
    "SIGNATURE_HEADER",
    "Alert",
    "EmailSender",
    "NotifyError",
    "Sender",
    "WebhookSender",
    "sender_for",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Erpbridge-Signature"


class NotifyError(Exception):
    """A notifier could not deliver an alert (the cause, without secrets, in the message)."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One notification: an alert ``fired``, ``repeated`` or ``resolved``."""

    rule: str
    subject: str
    kind: str
    message: str
    at: str
    since: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "subject": self.subject,
            "kind": self.kind,
            "status": "resolved" if self.kind == "resolved" else "firing",
            "message": self.message,
            "at": self.at,
            "since": self.since,
        }

    def title(self) -> str:
        state = "RESOLVED" if self.kind == "resolved" else "FIRING"
        return f"[erpbridge] {state}: {self.rule} ({self.subject})"


class Sender(Protocol):
    """Sends one alert; raises :class:`NotifyError`."""

    def send(self, alert: Alert) -> None: ...


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Erpbridge-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    secret: str, body: bytes, header: str, *, tolerance_s: float = 300, now: float | None = None
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` (a receiver's
    check; the reference for the docs)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookSender:
    """POSTs the alert as JSON, signed with HMAC-SHA256."""

    def __init__(self, name: str, settings: WebhookNotifier, base_dir: Any) -> None:
        self.name, self.settings = name, settings
        self.verify: Any = True
        if settings.ca_file:
            self.verify = ssl.create_default_context(cafile=str(base_dir / settings.ca_file))

    def send(self, alert: Alert) -> None:
        body = orjson.dumps(alert.as_dict())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "erpbridge-alerts",
            SIGNATURE_HEADER: sign(self.settings.secret.get_secret_value(), body, int(time.time())),
        }
        try:
            answer = httpx.post(
                self.settings.url,
                content=body,
                headers=headers,
                timeout=self.settings.timeout_s,
                verify=self.verify,
            )
        except httpx.HTTPError as exc:
            raise NotifyError(f"webhook {self.name!r}: {type(exc).__name__}: {exc}") from None
        if not answer.is_success:
            raise NotifyError(f"webhook {self.name!r}: answered HTTP {answer.status_code}")


class EmailSender:
    """Sends the alert by mail over SMTP + STARTTLS."""

    def __init__(self, name: str, settings: EmailNotifier, base_dir: Any) -> None:
        self.name, self.settings = name, settings
        self.context = ssl.create_default_context(
            cafile=str(base_dir / settings.ca_file) if settings.ca_file else None
        )

    def send(self, alert: Alert) -> None:
        s = self.settings
        mail = EmailMessage()
        mail["Subject"] = alert.title()
        mail["From"] = s.sender
        mail["To"] = ", ".join(s.to)
        mail.set_content(
            f"{alert.message}\n\nrule: {alert.rule}\nsubject: {alert.subject}\n"
            f"status: {'resolved' if alert.kind == 'resolved' else 'firing'} ({alert.kind})\n"
            f"since: {alert.since}\nat: {alert.at}\n"
        )
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise NotifyError(
                        f"e-mail {self.name!r}: {s.host}:{s.port} does not offer STARTTLS; "
                        "not sending in clear"
                    )
                smtp.starttls(context=self.context)
                smtp.ehlo()
                if s.username:
                    password = s.password.get_secret_value() if s.password else ""
                    smtp.login(s.username, password)
                smtp.send_message(mail)
        except NotifyError:
            raise
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise NotifyError(f"e-mail {self.name!r}: {type(exc).__name__}: {exc}") from None


def sender_for(name: str, config: NotifierConfig, base_dir: Any) -> Sender:
    """The sender of notifier ``name`` (the configuration has exactly one kind)."""
    if config.webhook is not None:
        return WebhookSender(name, config.webhook, base_dir)
    assert config.email is not None  # checked by config.alerts.check_alerts
    return EmailSender(name, config.email, base_dir)
