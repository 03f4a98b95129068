"""The platform transport's webhooks (OUT flows) against a real receiver (uvicorn on 127.0.0.1)
that verifies each HMAC signature itself: per record and batched, through the real Worker, and
the failure paths — a receiver that is busy (429 with Retry-After, 503), one that refuses (400),
one that is gone, a channel without ``webhook_url`` and one without its secret."""

from __future__ import annotations

import hashlib
import hmac
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from pydantic import SecretStr, ValidationError

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.worker import Worker
from erpbridge.errors import ConfigError, FatalError, RetriableError, SourceUnavailable
from erpbridge.transports.base import OutgoingRecord
from erpbridge.transports.platform.transport import (
    PlatformChannelOptions,
    PlatformTargetOptions,
    PlatformTransport,
    sign,
)
from integration.webhook_receiver import Receiver, receiving

SECRET = "whsec-platform-test-0123456789"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving(SECRET) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(receiver: Receiver) -> None:
    receiver.clear()
    receiver.answers.clear()


def _transport(url: str | None, **options: Any) -> PlatformTransport:
    model = PlatformChannelOptions.model_validate(
        {"webhook_url": url, "credentials": {"webhook_secret": SecretStr(SECRET)}, **options}
    )
    return PlatformTransport("shop", model, Path("."))


def _record(key: str, version: int = 1, **data: Any) -> OutgoingRecord:
    return OutgoingRecord(
        delivery_id=40 + version,
        entity="customer",
        key=key,
        version=version,
        idempotency_key=f"customers-to-shop:{key}:{version}",
        data={"code": key, **data},
    )


def test_each_record_is_one_signed_post(receiver: Receiver) -> None:
    transport = _transport(receiver.url)
    target = PlatformTargetOptions(event="customer.updated", id_path="id")
    try:
        ids = transport.write(target, [_record("C-1", name="Anna"), _record("C-2", 3, name="Bo")])
    finally:
        transport.close()
    assert ids == ["wh-1", "wh-2"]
    assert receiver.refused == []
    assert receiver.accepted == [
        {
            "event": "customer.updated",
            "key": "C-1",
            "version": 1,
            "idempotency_key": "customers-to-shop:C-1:1",
            "data": {"code": "C-1", "name": "Anna"},
        },
        {
            "event": "customer.updated",
            "key": "C-2",
            "version": 3,
            "idempotency_key": "customers-to-shop:C-2:3",
            "data": {"code": "C-2", "name": "Bo"},
        },
    ]
    assert receiver.headers[1]["idempotency-key"] == "customers-to-shop:C-2:3"


def test_a_batch_is_one_post_with_its_records(receiver: Receiver) -> None:
    transport = _transport(receiver.url)
    try:
        ids = transport.write(
            PlatformTargetOptions(event="price.updated", batch=True),
            [_record("P-1", amount="9.5"), _record("P-2", amount="8")],
        )
    finally:
        transport.close()
    assert ids == [None, None]
    assert len(receiver.accepted) == 1
    assert [r["key"] for r in receiver.events("price.updated")] == ["P-1", "P-2"]


def test_the_signature_is_hmac_over_timestamp_and_body() -> None:
    options = PlatformChannelOptions.model_validate(
        {
            "webhook_url": "https://shop.example.com/hooks",
            "signature_header": "X-Shop-Signature",
            "signature_prefix": "",
            "algorithm": "sha512",
            "credentials": {"webhook_secret": SecretStr("k")},
        }
    )
    headers = sign(options, b'{"a":1}', "k", at=1700000000)
    expected = hmac.new(b"k", b'1700000000.{"a":1}', hashlib.sha512).hexdigest()
    assert headers == {"X-Timestamp": "1700000000", "X-Shop-Signature": expected}
    bare = options.model_copy(update={"timestamp_header": None})
    assert sign(bare, b"x", "k") == {
        "X-Shop-Signature": hmac.new(b"k", b"x", hashlib.sha512).hexdigest()
    }


def test_busy_receiver_is_retriable_with_its_retry_after(receiver: Receiver) -> None:
    receiver.answers += [(429, {"Retry-After": "7"}), (503, {})]
    transport = _transport(receiver.url)
    target = PlatformTargetOptions(event="customer.updated")
    try:
        with pytest.raises(RetriableError) as busy:
            transport.write(target, [_record("C-1")])
        with pytest.raises(RetriableError) as down:
            transport.write(target, [_record("C-1")])
    finally:
        transport.close()
    assert busy.value.retry_after == 7
    assert "channel 'shop': webhook customer.updated for customer 'C-1' v1 (delivery 41)" in str(
        busy.value
    )
    assert "HTTP 429" in str(busy.value) and "HTTP 503" in str(down.value)
    assert receiver.accepted == []


def test_a_refusal_is_permanent_and_names_record_and_answer(receiver: Receiver) -> None:
    receiver.answers.append((400, {}))
    transport = _transport(receiver.url)
    try:
        with pytest.raises(FatalError) as refused:
            transport.write(PlatformTargetOptions(event="customer.updated"), [_record("C-9")])
    finally:
        transport.close()
    message = str(refused.value)
    assert message.startswith("channel 'shop': webhook customer.updated for customer 'C-9' v1")
    assert "HTTP 400" in message and "told to answer 400" in message
    assert SECRET not in message


def test_a_wrong_secret_is_refused_by_the_receiver_as_401(receiver: Receiver) -> None:
    model = PlatformChannelOptions.model_validate(
        {"webhook_url": receiver.url, "credentials": {"webhook_secret": SecretStr("wrong")}}
    )
    transport = PlatformTransport("shop", model, Path("."))
    try:
        with pytest.raises(FatalError, match="HTTP 401"):
            transport.write(PlatformTargetOptions(event="customer.updated"), [_record("C-1")])
    finally:
        transport.close()
    assert receiver.refused == ["bad signature"]


def test_an_absent_receiver_is_passing() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = _transport(f"http://127.0.0.1:{port}/hooks")
    try:
        with pytest.raises(SourceUnavailable, match="connection refused"):
            transport.write(PlatformTargetOptions(event="customer.updated"), [_record("C-1")])
    finally:
        transport.close()


def test_without_webhook_url_nothing_is_sent() -> None:
    transport = _transport(None)
    with pytest.raises(FatalError, match="channel 'shop' has no webhook_url"):
        transport.write(PlatformTargetOptions(event="customer.updated"), [_record("C-1")])


def test_the_loader_can_ask_whether_a_channel_takes_out_flows() -> None:
    target = PlatformTargetOptions(event="customer.updated")
    bare = PlatformChannelOptions()
    assert PlatformTransport.check_target("shop", bare, target) == (
        "channel 'shop' has no webhook_url: it cannot take OUT flows (set options.webhook_url)"
    )
    ready = PlatformChannelOptions.model_validate(
        {"webhook_url": "https://x.example/h", "credentials": {"webhook_secret": SecretStr("k")}}
    )
    assert PlatformTransport.check_target("shop", ready, target) is None


def test_webhook_url_needs_the_secret() -> None:
    with pytest.raises(ValidationError, match="needs credential `webhook_secret`"):
        PlatformChannelOptions.model_validate({"webhook_url": "https://shop.example.com/h"})
    with pytest.raises(ValidationError, match="webhook_url"):
        PlatformChannelOptions.model_validate(
            {"webhook_url": "ftp://x", "credentials": {"webhook_secret": SecretStr("k")}}
        )


def _config(tmp_path: Path, url: str, flows: list[dict[str, Any]]) -> Path:
    document = {
        "hub": {"database_url": f"sqlite:///{tmp_path / 'hub.db'}"},
        "channels": {
            "drop": {"system": "folder", "options": {"path": "inbox"}},
            "shop": {
                "system": "platform",
                "options": {"webhook_url": url},
                "credentials": {"webhook_secret": "${SHOP_WEBHOOK_SECRET}"},
            },
        },
        "flows": flows,
    }
    (tmp_path / "inbox").mkdir(exist_ok=True)
    path = tmp_path / "erpbridge.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


DROP_IN = {
    "name": "drop-in",
    "channel": "drop",
    "entity": "customer",
    "direction": "in",
    "source": {"pattern": "*.csv"},
}
TO_SHOP = {
    "name": "customers-to-shop",
    "channel": "shop",
    "entity": "customer",
    "direction": "out",
    "trigger": "immediate",
    "target": {"event": "customer.updated"},
    "retry": {"max_attempts": 3, "backoff_s": 1, "min_delay_s": 0},
}


def test_the_worker_delivers_and_retries_busy_answers(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_WEBHOOK_SECRET", SECRET)
    loaded = load_config(_config(tmp_path, receiver.url, [DROP_IN, TO_SHOP]))
    engine = open_store(loaded.database_url())
    (tmp_path / "inbox" / "c.csv").write_text("code,name\nK-1,Anna\nK-2,Bo\n", encoding="utf-8")
    assert FlowRunner(loaded, engine).run("drop-in").status == "succeeded"
    with engine.connect() as conn:
        stored = {
            key: orjson.loads(payload)
            for key, payload in conn.exec_driver_sql("SELECT key, payload FROM records")
        }
    receiver.answers.append((503, {"Retry-After": "60"}))
    worker = Worker(loaded, engine)
    try:
        first = worker.run_once()
        assert receiver.by_key("customer.updated") == {}
        with engine.begin() as conn:  # the retry's backoff has passed
            conn.exec_driver_sql("UPDATE deliveries SET next_attempt_at = '2000-01-01'")
        second = worker.run_once()
    finally:
        worker.close()
        engine.dispose()
    assert (first.delivered, second.delivered) == (0, 2)
    got = receiver.by_key("customer.updated")
    assert got == stored  # the canonical payload, as the hub holds it
    assert (got["K-1"]["name"], got["K-2"]["name"]) == ("Anna", "Bo")
    assert receiver.refused == []


def test_payload_is_the_out_mapping(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_WEBHOOK_SECRET", SECRET)
    flow = {**TO_SHOP, "mapping": {"number": "code", "company": "name"}}
    loaded = load_config(_config(tmp_path, receiver.url, [DROP_IN, flow]))
    engine = open_store(loaded.database_url())
    (tmp_path / "inbox" / "c.csv").write_text("code,name\nK-7,Cleo\n", encoding="utf-8")
    FlowRunner(loaded, engine).run("drop-in")
    worker = Worker(loaded, engine)
    try:
        assert worker.run_once().delivered == 1
    finally:
        worker.close()
        engine.dispose()
    (item,) = receiver.events("customer.updated")
    assert item["data"] == {"number": "K-7", "company": "Cleo"}
    assert orjson.dumps(item["version"]) == b"1"


def test_an_out_flow_on_a_channel_without_webhook_url_is_refused_at_load(tmp_path: Path) -> None:
    document = {"channels": {"shop": {"system": "platform"}}, "flows": [TO_SHOP]}
    path = tmp_path / "erpbridge.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(ConfigError, match="channel 'shop' has no webhook_url"):
        load_config(path)
