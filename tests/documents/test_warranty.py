"""examples/warranty end to end, served as a user runs it (``erpbridge run``): the platform pushes
a vehicle and claims as events; an approved claim becomes a credit memo request in the SAP CAP
service, an EDIFACT credit note on the OpenSSH server and a PDF in the archive; a rejected claim
a PDF letter in the archive and a signed webhook to the platform. Each document read back."""

from __future__ import annotations

import hashlib
import hmac
import io
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from pydifact.segmentcollection import Interchange
from pypdf import PdfReader

from documents.claims import EXAMPLE
from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from httpserve import QuietHandler, serve_handler
from hubprocess import ServedHub, serve_hub
from integration.servers import require_server
from integration.sftp_server import sftp_server

T = TypeVar("T")
SECRET = "platform-webhook-secret"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout} s")
        time.sleep(0.2)


class Webhooks:
    """What the platform received: (headers, body) per POST."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()


@pytest.fixture
def webhooks() -> Iterator[tuple[Webhooks, str]]:
    sink = Webhooks()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with sink.lock:
                sink.received.append((dict(self.headers.items()), body))
            self.send_response(200)
            self.end_headers()

    with serve_handler(Handler) as served:
        yield sink, f"{served.url}/hooks"


@pytest.fixture
def hub(tmp_path: Path, webhooks: tuple[Webhooks, str]) -> Iterator[tuple[ServedHub, str, Path]]:
    cap = require_server("ERPBRIDGE_TEST_CAP_URL", "the SAP CAP OData service (scripts/cap.sh)")
    sftp = sftp_server()
    root = tmp_path / "hub"
    root.mkdir()
    shutil.copytree(EXAMPLE / "templates", root / "templates")
    (root / "archive").mkdir()
    engine = open_store(f"sqlite:///{root / 'erpbridge.db'}")
    key = create_client(engine, "platform", {"events", "read"})[1]
    engine.dispose()
    with sftp.box("in") as box:
        env = {
            "ERPBRIDGE_DATABASE_URL": f"sqlite:///{root / 'erpbridge.db'}",
            "SAP_URL": f"{cap}/odata/v2",
            "SAP_PASSWORD": "erp-secret",
            "DEALER_SFTP_HOST": sftp.host,
            "DEALER_SFTP_PORT": str(sftp.port),
            "DEALER_SFTP_USER": sftp.user,
            "DEALER_SFTP_KEY": str(sftp.key),
            "DEALER_SFTP_KNOWN_HOSTS": str(sftp.known_hosts),
            "DEALER_SFTP_PATH": f"{box}/in",
            "PLATFORM_WEBHOOK_URL": webhooks[1],
            "PLATFORM_WEBHOOK_SECRET": SECRET,
        }
        config = (EXAMPLE / "erpbridge.yaml").read_text("utf-8")
        with serve_hub(root, config, command="run", args=["--interval", "0.2"], env=env) as served:
            yield served, key, sftp.files / box / "in"


def post(hub: ServedHub, key: str, flow: str, body: dict[str, Any]) -> httpx.Response:
    with hub.client(headers={"X-API-Key": key}, timeout=30) as client:
        return client.post(f"/api/v1/events/{flow}", json=body)


def claim(number: str, status: str, **changes: Any) -> dict[str, Any]:
    """A claim of two parts and labour: 2 × 45.25 + 1 × 129.90 + 80.00 = 300.40."""
    data: dict[str, Any] = {
        "claim_number": number,
        "status": status,
        "vin": "WVWZZZ1JZXW000001",
        "dealer_id": "4711",
        "dealer_name": "Autohaus Müller + Söhne",
        "manufacturer_id": "4000000000001",
        "repair_date": "2026-11-30",
        "currency": "EUR",
        "labour_hours": "1.6",
        "labour_amount": "80.00",
        "claimed_amount": "300.40",
        "credit_amount": None,
        "rejection_reason": None,
        "lines": [
            {"line_no": "10", "part_number": "1K0-615-301", "description": "Brake disc, front",
             "quantity": "2", "unit_price": "45.25", "amount": "90.50"},
            {"line_no": "20", "part_number": "5Q0-698-151", "description": "Brake pads 'sport'",
             "quantity": "1", "unit_price": "129.90", "amount": "129.90"},
        ],
    }  # fmt: skip
    data.update(changes)
    return data


def cap_credit_memo(number: str) -> dict[str, Any] | None:
    cap = require_server("ERPBRIDGE_TEST_CAP_URL", "the SAP CAP OData service (scripts/cap.sh)")
    answer = httpx.get(
        f"{cap}/odata/v4/API_CREDIT_MEMO_REQUEST_SRV/A_CreditMemoRequest('{number}')",
        params={"$expand": "to_Item($orderby=CreditMemoRequestItem)"},
        auth=("erp", "erp-secret"),
        timeout=10,
    )
    return answer.json() if answer.status_code == 200 else None  # type: ignore[no-any-return]


def one_file(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.rglob(pattern))
    return found[0] if len(found) == 1 and found[0].stat().st_size else None


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(path.read_bytes())).pages)


def test_an_approved_claim_reaches_sap_the_dealer_and_the_archive_with_the_same_amounts(
    hub: tuple[ServedHub, str, Path],
) -> None:
    served, key, dealer_inbox = hub
    vehicle = {"vin": "WVWZZZ1JZXW000001", "model": "Golf", "dealer_id": "4711"}
    assert post(served, key, "vehicles-from-platform", vehicle).status_code == 202
    for status in ("submitted", "in_review"):
        assert post(served, key, "claims-from-platform", claim("WC-1", status)).status_code == 202
    approved = claim("WC-1", "approved", credit_amount="300.40")
    assert post(served, key, "claims-from-platform", approved).status_code == 202

    number = f"C{datetime.now(UTC).year}00001"
    # SAP: the credit memo request, numbered as the credit note, with its items.
    memo = wait_for("credit memo request in CAP", lambda: cap_credit_memo(number))
    assert memo["PurchaseOrderByCustomer"] == "WC-1" and memo["SoldToParty"] == "4711"
    assert Decimal(str(memo["TotalNetAmount"])) == Decimal("300.40")
    assert [(i["Material"], Decimal(str(i["NetAmount"]))) for i in memo["to_Item"]] == [
        ("1K0-615-301", Decimal("90.50")),
        ("5Q0-698-151", Decimal("129.90")),
    ]
    # The dealer: the EDIFACT credit note parses back to the same number and amounts.
    edi = wait_for("EDIFACT file on the SFTP server", lambda: one_file(dealer_inbox, "*.edi"))
    assert edi.name == f"{number}.edi"
    [message] = Interchange.from_str(edi.read_text("utf-8")).get_messages()
    assert (message.type, message.version) == ("INVOIC", "D.96A")
    segments = message.segments
    bgm = next(s for s in segments if s.tag == "BGM")
    assert bgm.elements[0:2] == ["381", number]
    moa = [(s.elements[0][0], Decimal(s.elements[0][1])) for s in segments if s.tag == "MOA"]
    assert moa == [
        ("203", Decimal("90.50")),
        ("203", Decimal("129.90")),
        ("77", Decimal("300.40")),
        ("79", Decimal("80.00")),
    ]
    nad = next(s for s in segments if s.tag == "NAD" and s.elements[0] == "BY")
    assert nad.elements[3] == "Autohaus Müller + Söhne"
    # The archive: the PDF credit note with claim number and amounts, and its metadata.
    archive = served.root / "archive"
    pdf = wait_for("credit note PDF", lambda: one_file(archive / "credit_note_pdf", "*.pdf"))
    text = pdf_text(pdf)
    for expected in ("WC-1", pdf.stem, "300.40", "90.50", "129.90", "80.00", "Müller + Söhne"):
        assert expected in text, (expected, text)
    meta = orjson.loads(pdf.with_name(pdf.name + ".json").read_bytes())
    assert meta["sha256"] == hashlib.sha256(pdf.read_bytes()).hexdigest()
    # Looked at once: the page rendered to PNG (kept beside the archive for a person to see).
    png = served.root / "credit-note"
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(pdf), str(png)], check=True)
    assert png.with_suffix(".png").stat().st_size > 10_000
    # Nothing for the rejection flows; one document of each kind.
    assert not (archive / "rejection_letter").exists()


def test_a_rejected_claim_gets_a_letter_in_the_archive_and_a_signed_webhook(
    hub: tuple[ServedHub, str, Path], webhooks: tuple[Webhooks, str]
) -> None:
    served, key, dealer_inbox = hub
    sink = webhooks[0]
    assert post(served, key, "claims-from-platform", claim("WC-2", "submitted")).status_code == 202
    rejected = claim("WC-2", "rejected", rejection_reason="Wear part: brake pads are excluded")
    assert post(served, key, "claims-from-platform", rejected).status_code == 202

    archive = served.root / "archive"
    pdf = wait_for("rejection letter", lambda: one_file(archive / "rejection_letter", "*.pdf"))
    assert pdf.stem == f"RL-{datetime.now(UTC).year}-00001"
    text = pdf_text(pdf)
    for expected in ("WC-2", pdf.stem, "300.40", "Wear part: brake pads are excluded"):
        assert expected in text, (expected, text)

    headers, body = wait_for("webhook", lambda: sink.received[0] if sink.received else None)
    event = orjson.loads(body)
    assert event["event"] == "claim.rejected" and event["key"] == "WC-2"
    assert event["data"]["reason"] == "Wear part: brake pads are excluded"
    signature = {k.lower(): v for k, v in headers.items()}
    stamp = next(v for k, v in signature.items() if k.endswith("timestamp"))
    sent = next(v for k, v in signature.items() if k.endswith("signature"))
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert expected in sent
    # No credit note for a rejected claim, anywhere.
    assert not (archive / "credit_note_pdf").exists()
    assert not list(dealer_inbox.iterdir())
