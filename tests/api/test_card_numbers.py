"""Card numbers (PCI DSS) hub-wide, through the served hub (``erpbridge run`` as a subprocess).

A card number in any field, written in any way, through the events API, a signed webhook or a
folder file, is rejected (or masked where the flow says so); afterwards the whole hub store (the
SQLite file with its WAL, or a dump of the PostgreSQL database), the OUT folder, every answer and
the process's log are searched for the number's digits: they are nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy.engine import make_url

from erpbridge.pci import luhn_ok
from erpbridge.store import open_store
from erpbridge.store.apiclients import create_client
from hubprocess import serve_hub


def _card(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


#: Distinctive digits (a repetitive test card like 4111… could match by accident in a dump).
PAN = _card("492913578024681")
MASKED = PAN[:6] + "******" + PAN[-4:]
FULL_WIDTH = str.maketrans("0123456789 ", "０１２３４５６７８９\u3000")
GROUPS = " ".join(PAN[i : i + 4] for i in range(0, 16, 4))
#: Every way of writing the number the issue names, each one must be rejected.
WRITTEN = [
    GROUPS.replace(" ", "."),
    GROUPS.replace(" ", "/"),
    GROUPS.replace(" ", "_"),
    GROUPS.replace(" ", "\t"),
    GROUPS.replace(" ", "\u00a0"),
    GROUPS.replace(" ", "  "),
    GROUPS.replace(" ", " - "),
    PAN.translate(FULL_WIDTH),
    GROUPS.translate(FULL_WIDTH),
    PAN,
    GROUPS,
]
SECRET = "whsec-pci-0123456789"

CONFIG = """
hub:
  database_url: "{url}"
  api:
    rate_limits: {{per_client: "10000/second", per_route: {{}}, anonymous: "10000/second"}}
channels:
  shop:
    system: platform
    credentials: {{webhook_secret: "${{SHOP_HOOK_SECRET}}"}}
    inbound:
      allowed_ips: ["127.0.0.1"]
      webhook: {{flow: customers-in, records_path: data}}
  drop:
    system: folder
    options: {{path: inbox}}
  erp:
    system: folder
    options: {{path: erp}}
flows:
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    trigger: immediate
    key: code
  - name: customers-masked
    channel: shop
    entity: customer
    direction: in
    trigger: immediate
    key: code
    card_numbers: {{lock_reason: mask, addresses: mask}}
  - name: customers-file
    channel: drop
    entity: customer
    direction: in
    key: code
    source: {{pattern: "*.csv"}}
    mapping:
      code: {{from: code, required: true}}
      name: {{from: name, required: true}}
      lock_reason: notes
  - name: customers-out
    channel: erp
    entity: customer
    direction: out
    trigger: immediate
    target: {{format: json, name: "customer-{{key}}-v{{version}}.json"}}
"""


def _holds_pan(data: bytes) -> bool:
    """The number's 16 digits in order, however separated or encoded as text (JSON escapes,
    full-width digits), anywhere in ``data``."""
    text = data.decode("utf-8", "replace")
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    text = text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    return re.search(r"[^0-9]{0,6}".join(PAN), text) is not None


def test_the_scan_of_a_dump_would_find_the_number() -> None:
    """The search used below is not blind: it finds every written form."""
    for written in WRITTEN:
        assert _holds_pan(f'x"{written}"y'.encode())
        assert _holds_pan(orjson.dumps({"a": written}))
    assert _holds_pan(b'{"a": "\\uff14\\uff19\\uff12\\uff19' + PAN[4:].encode() + b'"}')
    assert not _holds_pan(MASKED.encode())


def _signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return {
        "X-Signature": "sha256=" + digest.hexdigest(),
        "X-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def _wait(check: Callable[[], bool], what: str, timeout_s: float = 40) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _dump(url: str) -> bytes:
    """Everything the hub store holds, as bytes to search."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = Path(str(parsed.database))
        files = sorted(database.parent.glob(database.name + "*"))  # the file, -wal, -shm
        assert files, "the hub database file is missing"
        return b"".join(f.read_bytes() for f in files)
    plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run(
        ["pg_dump", "--data-only", "--no-owner", plain], check=True, capture_output=True
    ).stdout


def test_card_numbers_are_never_stored_or_written(hub_url: str, tmp_path: Path) -> None:
    root = tmp_path / "hub"
    (root / "inbox").mkdir(parents=True)
    (root / "erp").mkdir()
    engine = open_store(hub_url)
    shop = create_client(engine, "shop", {"events", "read", "write"})[1]
    engine.dispose()
    (root / "inbox" / "customers.csv").write_text(
        "code,name,notes\n"
        "F-1,File GmbH,ok\n"
        f"F-2,File AG,card {WRITTEN[0]}\n"
        f"{WRITTEN[3].replace(chr(9), ' ')},Key KG,\n",
        encoding="utf-8",
    )
    answers: list[httpx.Response] = []
    config = CONFIG.format(url=hub_url)
    served = serve_hub(
        root, config, command="run", env={"SHOP_HOOK_SECRET": SECRET}, ready_timeout_s=120
    )
    with served as hub:
        with hub.client(headers={"X-API-Key": shop}, timeout=30) as http:
            # Events: a number in the name, the notes (lock_reason), a street, the key, and
            # in a field whose value is not even text.
            fields: list[Callable[[str], dict[str, object]]] = [
                lambda pan: {"code": "E-1", "name": f"Muster {pan}"},
                lambda pan: {"code": "E-2", "name": "N", "lock_reason": f"paid {pan} ok"},
                lambda pan: {"code": "E-3", "name": "N", "addresses": [{"street": pan}]},
                lambda pan: {"code": pan, "name": "N"},
            ]
            for i, written in enumerate(WRITTEN):
                for j, make in enumerate(fields):
                    answer = http.post(
                        "/api/v1/events/customers-in",
                        json=make(written),
                        headers={"Idempotency-Key": f"k-{i}-{j}"},
                    )
                    assert answer.status_code == 422, (written, answer.text)
                    assert "card number" in answer.text
                    answers.append(answer)
            # The Idempotency-Key itself may be a number: it is stored masked.
            answers.append(
                http.post(
                    "/api/v1/events/customers-in",
                    json={"code": "E-9", "name": "Key in the header"},
                    headers={"Idempotency-Key": PAN},
                )
            )
            assert answers[-1].status_code == 202
            # A signed webhook.
            body = orjson.dumps({"data": [{"code": "W-1", "name": "Hook", "lock_reason": GROUPS}]})
            answers.append(http.post("/hooks/shop", content=body, headers=_signed(body)))
            assert answers[-1].status_code == 422 and "card number" in answers[-1].text
            # The mask policy: stored as first six and last four, delivered OUT like that.
            masked = http.post(
                "/api/v1/events/customers-masked",
                json={
                    "code": "M-1",
                    "name": "Masked GmbH",
                    "lock_reason": f"paid with {WRITTEN[1]}",
                    "addresses": [{"street": WRITTEN[7]}],
                },
            )
            assert masked.status_code == 202, masked.text
            record = http.get("/api/v1/records/customer/M-1")
            assert record.status_code == 200, record.text
            answers += [masked, record]
            # An error answer that names what was asked for does not echo a number either.
            missing = http.get(f"/api/v1/records/customer/{GROUPS}")
            assert missing.status_code == 404 and "card number removed" in missing.text
            answers.append(missing)
            payload = record.json()["payload"]
            assert payload["lock_reason"] == f"paid with {MASKED}"
            assert payload["addresses"][0]["street"] == MASKED
            # A folder file: the good row lands, the others are rejected with a clean copy.
            started = http.post("/api/v1/flows/customers-file/run")
            assert started.status_code == 202, started.text
            _wait(
                lambda: (
                    [
                        r["status"]
                        for r in http.get("/api/v1/runs", params={"flow": "customers-file"}).json()
                    ]
                    == ["succeeded"]
                ),
                "the folder run",
            )
            rejected = http.get("/api/v1/rejected", params={"flow": "customers-file"})
            answers.append(rejected)
            assert sorted(r["field_path"] for r in rejected.json()) == ["code", "lock_reason"]
            for row in rejected.json():
                assert "card number" in row["reason"]
            _wait(
                lambda: (
                    {p.name for p in (root / "erp").glob("*.json")}
                    >= {"customer-F-1-v1.json", "customer-M-1-v1.json", "customer-E-9-v1.json"}
                ),
                "the OUT files",
            )
            answers += [
                http.get("/api/v1/runs"),
                http.get("/api/v1/deliveries"),
                http.get("/api/v1/audit"),
            ]
        out = orjson.loads((root / "erp" / "customer-M-1-v1.json").read_bytes())
        assert out["lock_reason"] == f"paid with {MASKED}"
        dump = _dump(hub_url)
        log = hub.output()
    for answer in answers:
        assert not _holds_pan(answer.content), answer.text
    assert MASKED.encode() in dump  # the search sees the store's content
    assert not _holds_pan(dump)
    for written in WRITTEN:
        assert written.encode() not in dump
    for path in (root / "erp").rglob("*"):
        if path.is_file():
            assert not _holds_pan(path.read_bytes()), path
    assert not _holds_pan(log.encode()), log


@pytest.mark.parametrize("written", WRITTEN)
def test_every_written_form_is_refused_in_a_token(written: str, tmp_path: Path) -> None:
    """The guard of payment_token fields, which today misses most of these forms."""
    from erpbridge.errors import DataError
    from erpbridge.model.entities import BUILTIN_ENTITIES

    with pytest.raises(DataError) as caught:
        BUILTIN_ENTITIES["payment_token"].validate_payload(
            {"token": written, "customer_code": "C-1"}
        )
    assert caught.value.path == "token" and not _holds_pan(str(caught.value).encode())
