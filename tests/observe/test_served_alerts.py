"""Alerts end to end on a served ``erpbridge run``: a real SMTP server (aiosmtpd, STARTTLS
required, login required) receives the mails; a local HTTP receiver checks each webhook's
signature by hand (HMAC-SHA256 over ``<t>.<body>``). A fault is injected (the OUT flow's target
folder is a file), the alert fires once, repeats after its cooldown, and "resolved" arrives
after the fault is removed; ``erpbridge status`` exits 1 meanwhile and 0 after."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from httpserve import QuietHandler, serve_handler
from hubprocess import free_port, serve_hub
from integration.pki import make_pki
from observe.obshub import CONFIG, query, wait_for

HOOK_SECRET = "whsec-3f9a1c-never-logged"
SMTP_PASSWORD = "smtp-pw-71c0e2-never-logged"


@dataclass
class Inbox:
    """What the SMTP server received: (envelope sender, recipients, message)."""

    mails: list[tuple[str, list[str], Message]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        assert session.ssl is not None  # only after STARTTLS (require_starttls refuses before)
        message = email.message_from_bytes(envelope.content)
        with self.lock:
            self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(m["Subject"]) for _, _, m in self.mails]


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"alerts",
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok)


@dataclass
class Hooks:
    """What the webhook receiver got: each body (decoded), whether its signature held, and
    when it arrived (monotonic seconds)."""

    received: list[tuple[dict[str, Any], bool]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)

    def kinds(self, rule: str) -> list[str]:
        return [body["kind"] for body, _ in self.received if body["rule"] == rule]


def _verified(body: bytes, header: str) -> bool:
    """The receiver's check, written from the documentation (not the hub's own code)."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    timestamp = int(parts["t"])
    if abs(time.time() - timestamp) > 300:
        return False
    mac = hmac.new(HOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts["v1"])


def _receiver(hooks: Hooks) -> type[QuietHandler]:
    class Receiver(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            signed = _verified(body, self.headers.get("X-Erpbridge-Signature", ""))
            hooks.received.append((json.loads(body), signed))
            hooks.arrived.append(time.monotonic())
            self.send_response(204 if signed else 401)
            self.end_headers()

    return Receiver


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Inbox, Path, int]]:
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    inbox, port = Inbox(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticate,
        auth_required=True,
    )
    controller.start()
    try:
        yield inbox, pki.ca, port
    finally:
        controller.stop()


ALERTS = """
alerts:
  interval_s: 0.5
  cooldown_s: 6
  notifiers:
    hook:
      webhook: {{url: "{hook}/alerts", secret: "${{HOOK_SECRET}}"}}
    mail:
      email:
        host: 127.0.0.1
        port: {smtp_port}
        username: alerts
        password: ${{SMTP_PASSWORD}}
        sender: hub@example.com
        to: [ops@example.com]
        ca_file: {ca}
    gone:
      webhook: {{url: "http://127.0.0.1:{gone}/", secret: "${{HOOK_SECRET}}", timeout_s: 2}}
  rules:
    - {{name: erp-down, when: channel_down, channel: erp, notify: [hook, mail, gone]}}
"""


def _cli(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "erpbridge", *args, "-c", str(root / "erpbridge.yaml")]
    return subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True, timeout=60)


def test_alert_fires_once_repeats_and_resolves(
    tmp_path: Path, smtp: tuple[Inbox, Path, int]
) -> None:
    inbox, ca, smtp_port = smtp
    hooks = Hooks()
    root = tmp_path / "hub"
    (root / "inbox").mkdir(parents=True)
    (root / "erp").write_text("a file where the target folder should be", encoding="utf-8")
    (root / "inbox" / "a.csv").write_text("id,name\nC1,Ann\nC2,Bob\n", encoding="utf-8")
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    token = create_client(engine, "ops", {"read"})[1]
    engine.dispose()
    env = {"HOOK_SECRET": HOOK_SECRET, "SMTP_PASSWORD": SMTP_PASSWORD}
    with serve_handler(_receiver(hooks)) as receiver:
        alerts = ALERTS.format(hook=receiver.url, smtp_port=smtp_port, ca=ca, gone=free_port())
        config = CONFIG.format(alerts=alerts).replace("max_attempts: 50", "max_attempts: 1000")
        args = ("--interval", "0.2", "--log-format", "json")
        with serve_hub(root, config, command="run", args=args, env=env) as hub:
            # The fault: fired once, to the webhook (signed) and by mail (over STARTTLS).
            wait_for(lambda: hooks.kinds("erp-down"), 60, "the webhook's 'fired'")
            wait_for(lambda: inbox.subjects(), 30, "the fired mail")
            time.sleep(2)  # four more evaluations: still one notification
            assert hooks.kinds("erp-down") == ["fired"]
            assert all(signed for _, signed in hooks.received)
            assert inbox.subjects() == ["[erpbridge] FIRING: erp-down (erp)"]
            sender, recipients, mail = inbox.mails[0]
            assert (sender, recipients) == ("hub@example.com", ["ops@example.com"])
            assert "channel 'erp' down since" in mail.get_payload()
            body = hooks.received[0][0]
            assert body["status"] == "firing" and body["subject"] == "erp"

            failing = _cli(root, hub.env, "status")
            assert failing.returncode == 1, failing.stdout + failing.stderr
            assert "erp" in failing.stdout and "erp-down" in failing.stdout

            # The cooldown (6 s) passes: repeated, every 6 s while the fault lasts.
            wait_for(lambda: "repeated" in hooks.kinds("erp-down"), 30, "the repeat")

            # The fault removed: the deliveries go out, the channel is up, "resolved" arrives.
            (root / "erp").unlink()
            (root / "erp").mkdir()
            wait_for(lambda: "resolved" in hooks.kinds("erp-down"), 60, "the resolution")
            wait_for(lambda: "RESOLVED" in inbox.subjects()[-1], 30, "the resolved mail")
            assert inbox.subjects()[-1] == "[erpbridge] RESOLVED: erp-down (erp)"
            assert sorted(p.name for p in (root / "erp").iterdir()) == ["C1.json", "C2.json"]
            time.sleep(1.5)
            kinds = hooks.kinds("erp-down")
            repeats = len(kinds) - 2
            assert repeats >= 1 and kinds == ["fired", *["repeated"] * repeats, "resolved"]
            assert all(signed for _, signed in hooks.received)
            firing_gaps = [b - a for a, b in pairwise(hooks.arrived[:-1])]
            assert all(gap >= 5.5 for gap in firing_gaps), firing_gaps
            assert len(inbox.subjects()) == len(kinds)

            recovered = _cli(root, hub.env, "status")
            assert recovered.returncode == 0, recovered.stdout + recovered.stderr

            # The history, with what each notifier answered ("gone" never answers).
            with hub.client(headers={"X-API-Key": token}) as client:
                response = client.get("/api/v1/alerts")
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["firing"] == []
            history = list(reversed(answer["history"]))
            assert [h["kind"] for h in history] == kinds
            for row in history:
                assert row["rule"] == "erp-down" and row["subject"] == "erp"
                assert row["notified"]["hook"] == "ok" and row["notified"]["mail"] == "ok"
                assert "ConnectError" in row["notified"]["gone"]
            shown = _cli(root, hub.env, "alerts", "--json")
            assert shown.returncode == 0, shown.stderr
            assert json.loads(shown.stdout)["history"] == answer["history"]
            output = hub.output()

    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events if e.get("rule") == "erp-down"]
    assert [n for n in names if n != "alert.notify_failed"] == [f"alert.{k}" for k in kinds]
    assert names.count("alert.notify_failed") == len(kinds)
    changes = [(e["state"]) for e in events if e["event"] == "channel.state_changed"]
    assert changes[:1] == ["down"] and changes[-1] == "up"
    assert HOOK_SECRET not in output and SMTP_PASSWORD not in output


SOURCE_DOWN = """
channels:
  mes: {{system: sql, options: {{url: "sqlite:///mes.db"}}}}
flows:
  - name: customers-in
    channel: mes
    entity: customer
    direction: in
    trigger: {{interval: 1s}}
    source: {{table: customers}}
    key: id
    cursor: {{column: updated_at, tiebreaker: id, safety_window: 0}}
    mapping: {{code: id, name: name}}
alerts:
  interval_s: 0.5
  cooldown_s: 600
  notifiers:
    hook: {{webhook: {{url: "{hook}/alerts", secret: "${{HOOK_SECRET}}"}}}}
    mail:
      email:
        host: 127.0.0.1
        port: {smtp_port}
        username: alerts
        password: ${{SMTP_PASSWORD}}
        sender: hub@example.com
        to: [ops@example.com]
        ca_file: {ca}
  rules:
    - {{name: mes-failing, when: flow_failing, flow: customers-in, runs: 2, notify: [hook, mail]}}
"""


def test_a_stopped_source_database_alerts_after_two_failed_runs_and_resolves(
    tmp_path: Path, smtp: tuple[Inbox, Path, int]
) -> None:
    inbox, ca, smtp_port = smtp
    hooks = Hooks()
    root = tmp_path / "hub"
    root.mkdir()
    source = root / "mes.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE customers (id TEXT, name TEXT, updated_at TEXT)")
        conn.execute("INSERT INTO customers VALUES ('C1', 'Ann', '2026-01-01 00:00:00')")
    env = {"HOOK_SECRET": HOOK_SECRET, "SMTP_PASSWORD": SMTP_PASSWORD}
    with serve_handler(_receiver(hooks)) as receiver:
        config = SOURCE_DOWN.format(hook=receiver.url, smtp_port=smtp_port, ca=ca)
        args = ("--interval", "0.2", "--log-format", "json")
        with serve_hub(root, config, command="run", args=args, env=env) as hub:
            wait_for(lambda: query(hub.database, "SELECT 1 FROM runs WHERE status = 'succeeded'"))
            assert hooks.received == []
            source.rename(root / "mes.db.stopped")  # the source database is gone

            wait_for(lambda: hooks.kinds("mes-failing"), 60, "the webhook's 'fired'")
            wait_for(lambda: inbox.subjects(), 30, "the fired mail")
            failed = query(hub.database, "SELECT count(*) FROM runs WHERE status = 'failed'")
            assert failed[0][0] >= 2
            body = hooks.received[0][0]
            assert body["subject"] == "customers-in" and "mes.db" in body["message"]
            assert inbox.subjects() == ["[erpbridge] FIRING: mes-failing (customers-in)"]
            assert _cli(root, hub.env, "status").returncode == 1

            (root / "mes.db").unlink(missing_ok=True)
            (root / "mes.db.stopped").rename(source)  # back
            wait_for(lambda: "resolved" in hooks.kinds("mes-failing"), 60, "the resolution")
            wait_for(lambda: "RESOLVED" in inbox.subjects()[-1], 30, "the resolved mail")
            time.sleep(1.5)
            assert hooks.kinds("mes-failing") == ["fired", "resolved"]
            assert inbox.subjects() == [
                "[erpbridge] FIRING: mes-failing (customers-in)",
                "[erpbridge] RESOLVED: mes-failing (customers-in)",
            ]
            assert all(signed for _, signed in hooks.received)
            assert _cli(root, hub.env, "status").returncode == 0
