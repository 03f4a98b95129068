"""Warranty claims for the document tests: the example's entity and templates, a hub with an
IN folder flow, and helpers to feed claims and deliver."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from erpbridge import FlowRunner, load_config
from erpbridge.engine.worker import Worker, WorkerStats

EXAMPLE = Path(__file__).parents[2] / "examples" / "warranty"

ENTITY = """
entities:
  warranty_claim:
    key: [claim_number]
    fields:
      claim_number: {type: string, required: true}
      status: string
      vin: string
      dealer_id: string
      dealer_name: string
      manufacturer_id: string
      repair_date: date
      currency: string
      labour_hours: decimal
      labour_amount: decimal
      claimed_amount: decimal
      credit_amount: decimal
      rejection_reason: string
      lines:
        type: list
        fields:
          part_number: string
          description: string
          quantity: decimal
          unit_price: decimal
          amount: decimal
"""


def claim(number: str, **changes: Any) -> dict[str, Any]:
    """A claim of two parts and labour: 2 × 45.25 + 1 × 129.90 + 80.00 = 300.40."""
    data: dict[str, Any] = {
        "claim_number": number,
        "status": "approved",
        "vin": "WVWZZZ1JZXW000001",
        "dealer_id": "4711",
        "dealer_name": "Autohaus Müller + Söhne",
        "manufacturer_id": "4000000000001",
        "repair_date": "2026-11-30",
        "currency": "EUR",
        "labour_hours": "1.6",
        "labour_amount": "80.00",
        "claimed_amount": "300.40",
        "credit_amount": "300.40",
        "rejection_reason": None,
        "lines": [
            {
                "part_number": "1K0-615-301",
                "description": "Brake disc, front",
                "quantity": "2",
                "unit_price": "45.25",
                "amount": "90.50",
            },
            {
                "part_number": "5Q0-698-151",
                "description": "Brake pads 'sport'",
                "quantity": "1",
                "unit_price": "129.90",
                "amount": "129.90",
            },
        ],
    }
    data.update(changes)
    return data


def hub_folder(tmp_path: Path) -> Path:
    """A folder with the example's templates, an inbox, an archive and an outbox."""
    shutil.copytree(EXAMPLE / "templates", tmp_path / "templates")
    for name in ("inbox", "archive", "out"):
        (tmp_path / name).mkdir()
    return tmp_path


def write_config(root: Path, url: str, documents: str, flows: str, channels: str = "") -> Path:
    """erpbridge.yaml in ``root``: the claim entity, an inbox flow, ``documents`` and ``flows``."""
    text = f"""
hub: {{database_url: "{url}"}}
{ENTITY}
channels:
  platform:
    system: folder
    options: {{path: inbox}}
  archive:
    system: archive
    options: {{path: archive, retention: 10y}}
{channels}
documents:
{documents}
flows:
  - name: claims-in
    channel: platform
    entity: warranty_claim
    direction: in
    source: {{pattern: "*.json"}}
{flows}
"""
    path = root / "erpbridge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def feed(config_path: Path, engine: Engine, *claims: dict[str, Any], name: str = "c") -> None:
    """Drop ``claims`` into the inbox and run the IN flow."""
    inbox = config_path.parent / "inbox"
    (inbox / f"{name}.json").write_bytes(orjson.dumps(list(claims)))
    result = FlowRunner(load_config(config_path), engine).run("claims-in")
    assert result.status == "succeeded", result


def deliver(config_path: Path, engine: Engine) -> WorkerStats:
    worker = Worker(load_config(config_path), engine)
    try:
        return worker.run_once()
    finally:
        worker.close()
