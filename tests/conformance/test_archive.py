"""The archive connector through the conformance suite's sink half: each record version's
document kept read-only in a temporary archive folder, with its metadata beside it.

Its source half does not apply: an archive is written to, never read from."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from erpbridge.connectors import OutgoingRecord
from erpbridge.testing import SinkHarness, SinkSuite
from erpbridge.transports.archive.transport import (
    ArchiveChannelOptions,
    ArchiveTargetOptions,
    ArchiveTransport,
)
from erpbridge.transports.base import OutgoingDocument

TEMPLATE = "customer-sheet"


class ArchiveSink(SinkHarness):
    """A document per record version (``<key>-v<version>.json``, its data as the content)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "archive").mkdir()

    def _transport(self, path: str) -> ArchiveTransport:
        return ArchiveTransport(self.channel, ArchiveChannelOptions(path=path), self.root)

    def connect(self) -> ArchiveTransport:
        return self._transport("archive")

    def target(self) -> ArchiveTargetOptions:
        return ArchiveTargetOptions()

    def record(
        self, key: str, version: int, data: Mapping[str, Any] | None = None, delivery: int = 0
    ) -> OutgoingRecord:
        plain = super().record(key, version, data, delivery)
        if data is not None:
            return plain  # refused_data: a record without its document
        content = orjson.dumps(plain.data)
        document = OutgoingDocument(
            template=TEMPLATE,
            number=f"{key}-{version}",
            file_name=f"{key}-v{version}.json",
            media_type="application/json",
            sha256=hashlib.sha256(content).hexdigest(),
            content=content,
            issued_at=datetime(2026, 3, 1, tzinfo=UTC),
        )
        return OutgoingRecord(
            delivery_id=plain.delivery_id,
            entity=plain.entity,
            key=plain.key,
            version=plain.version,
            idempotency_key=plain.idempotency_key,
            data=plain.data,
            document=document,
        )

    def stored(self) -> Mapping[str, str]:
        """Each key's newest document, as someone looking into the archive reads it."""
        newest: dict[str, tuple[int, str]] = {}
        for meta in (self.root / "archive").rglob("*.json.json"):
            about = orjson.loads(meta.read_bytes())
            name = orjson.loads(meta.with_name(about["file_name"]).read_bytes())["name"]
            if about["version"] >= newest.get(about["key"], (0, ""))[0]:
                newest[about["key"]] = (about["version"], name)
        return {key: name for key, (_, name) in newest.items()}

    def refused_data(self) -> dict[str, Any]:
        return {"id": "x1", "name": "no document"}

    def unreachable(self) -> ArchiveTransport:
        return self._transport("unmounted")  # a folder that is not there (yet)


class TestArchiveSink(SinkSuite):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> ArchiveSink:
        return ArchiveSink(tmp_path)
