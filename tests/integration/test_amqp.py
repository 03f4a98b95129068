"""The ``amqp`` transport against the real RabbitMQ of ``scripts/rabbitmq.sh``.

IN flows run through the real engine (``FlowRunner``) into a SQLite hub, OUT flows through the
real ``Worker``; the partner's side is an independent client (:class:`AmqpPeer`) that publishes
and drains. Each test has queues of its own. The broker restart kills RabbitMQ as a crash would
(``scripts/rabbitmq.sh restart``) and costs a few seconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import yaml
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.worker import Worker
from erpbridge.errors import FatalError, RetriableError
from erpbridge.store.tables import rejected
from erpbridge.transports.amqp.options import AmqpChannelOptions, AmqpTargetOptions
from erpbridge.transports.amqp.transport import AmqpTransport
from erpbridge.transports.base import Batch, OutgoingRecord
from integration.brokers import (
    AmqpPeer,
    amqp_url,
    customers,
    deliver_all,
    hub_records,
    interleaved,
    kill_mid_stream_and_resume,
    restart,
)


@pytest.fixture(scope="module")
def peer() -> AmqpPeer:
    return AmqpPeer(amqp_url())


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Engine]:
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    yield engine
    engine.dispose()


def config(tmp_path: Path, url: str, inbox: str, outbox: str, **source: Any) -> LoadedConfig:
    """A hub with customers IN from queue ``inbox`` (channel ``shop``) and OUT to queue
    ``outbox`` (channel ``erp``: a record is never sent back to the channel it came from), both
    on the test broker."""
    broker = {
        "system": "rabbitmq",
        "options": {"url": url.replace(":guest@", "@")},
        "credentials": {"password": "${AMQP_PASSWORD}"},
    }
    document = {
        "hub": {"database_url": f"sqlite:///{tmp_path / 'hub.db'}"},
        "channels": {"shop": broker, "erp": broker},
        "flows": [
            {
                "name": "customers-in",
                "channel": "shop",
                "entity": "customer",
                "direction": "in",
                "batch_size": 200,
                "source": {"queue": inbox, "wait_s": 0.3, **source},
                "key": "id",
                "mapping": {"code": "id", "name": "name"},
            },
            {
                "name": "customers-out",
                "channel": "erp",
                "entity": "customer",
                "direction": "out",
                "target": {
                    "routing_key": outbox,
                    "headers": {"customer": "{key}", "entity": "{entity}"},
                },
                # Quick retries that outlast a broker restart (tens of seconds on a busy machine).
                "retry": {
                    "backoff_s": 0.2,
                    "max_backoff_s": 1,
                    "min_delay_s": 0,
                    "max_attempts": 1000,
                },
                "mapping": {"id": "code", "name": "name"},
            },
        ],
    }
    path = tmp_path / "erpbridge.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return load_config(path, env={**os.environ, "AMQP_PASSWORD": urlsplit(url).password or ""})


# -- IN ------------------------------------------------------------------------------------------


def test_in_flow_acknowledges_after_commit_and_rejects_poison_messages(
    tmp_path: Path, peer: AmqpPeer, hub: Engine
) -> None:
    inbox, outbox = peer.queue(), peer.queue()
    peer.publish(inbox, customers(["C1", "C2"]), ["m1", "m2"])
    peer.publish(inbox, [b"KUNNR;NAME\nC9;Nine", b"[1, 2]"], ["m3", "m4"])
    peer.publish(inbox, [orjson.dumps({"id": "C3"})], ["m5"])  # no name: the mapping refuses
    peer.publish(inbox, customers(["C4"]), ["m6"])
    loaded = config(tmp_path, peer.url, inbox, outbox)

    result = FlowRunner(loaded, hub).run("customers-in")

    assert (result.status, result.read, result.created, result.rejected) == (
        "succeeded",
        4,
        3,
        3,
    ), result
    assert sorted(hub_records(hub)) == ["C1", "C2", "C4"]
    # Every message was acknowledged: the poison ones are the hub's rejections now.
    assert peer.count(inbox) == 0
    with hub.connect() as conn:
        bad = conn.execute(
            select(rejected.c.position, rejected.c.reason, rejected.c.field_path).order_by(
                rejected.c.id
            )
        ).all()
    assert [row.position for row in bad] == [
        f"queue {inbox} message m3",
        f"queue {inbox} message m4",
        f"queue {inbox} message m5",
    ]
    assert "not JSON" in bad[0].reason
    assert "not an object" in bad[1].reason
    assert bad[2].field_path == "name"
    again = FlowRunner(loaded, hub).run("customers-in")
    assert (again.status, again.read) == ("succeeded", 0)


def test_consumer_killed_before_ack_gets_them_again_and_skips_the_committed(
    tmp_path: Path, peer: AmqpPeer, hub: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies right after the hub committed a batch, before its acknowledgement:
    the broker delivers the batch again, and the flow's cursor knows those message ids. Every
    key comes twice in a row (v1, v2): a committed v1 applied again would make a stale v3."""
    inbox, outbox = peer.queue(), peer.queue()
    keys = [f"K{i:03d}" for i in range(300)]
    bodies = interleaved(keys)
    peer.publish(inbox, bodies, [f"{v}-{k}" for k in keys for v in "ab"])
    loaded = config(tmp_path, peer.url, inbox, outbox)

    class Killed(BaseException):
        """The consumer's process dying (not an error the engine handles)."""

    committed: list[int] = []

    def die_before_ack(batch: Batch) -> None:
        committed.append(len(batch.records))
        if len(committed) == 2:
            raise Killed

    with monkeypatch.context() as patched:
        patched.setattr(Batch, "acknowledge", die_before_ack)
        with pytest.raises(Killed):
            FlowRunner(loaded, hub).run("customers-in")
    done = sum(committed)  # two batches in the hub, neither acknowledged
    assert len(committed) == 2 and done < 600, committed

    result = FlowRunner(loaded, hub).run("customers-in")

    assert result.status == "succeeded", result.error
    assert result.read == 600 - done, "the committed messages were taken again"
    skipped = [int(w.split()[0]) for w in result.warnings if "redelivered message(s)" in w]
    assert sum(skipped) == done, result.warnings
    held = hub_records(hub)
    assert len(held) == 300
    assert {version for version, _ in held.values()} == {2}
    assert all(data["name"] == f"second {key}" for key, (_, data) in held.items())
    assert peer.count(inbox) == 0


def test_served_hub_killed_mid_stream_takes_every_message_once(
    tmp_path: Path, peer: AmqpPeer
) -> None:
    """A served ``erpbridge run`` consuming on an interval, killed with SIGKILL mid-stream
    (wherever it is: before a commit, between a commit and its acknowledgement, ...), then
    started again: every key ends at version 2 (v1 and v2 each applied once)."""
    inbox = peer.queue()
    keys = [f"S{i:04d}" for i in range(1000)]
    peer.publish(inbox, interleaved(keys), [f"{v}-{k}" for k in keys for v in "ab"])
    broker = {
        "system": "rabbitmq",
        "options": {"url": peer.url.replace(":guest@", "@")},
        "credentials": {"password": "${AMQP_PASSWORD}"},
    }
    flow = {
        "name": "customers-in",
        "channel": "shop",
        "entity": "customer",
        "direction": "in",
        "trigger": {"interval": "1s"},
        "batch_size": 100,
        "source": {"queue": inbox, "wait_s": 0.3},
        "key": "id",
        "mapping": {"code": "id", "name": "name"},
    }
    config = yaml.safe_dump({"channels": {"shop": broker}, "flows": [flow]}, sort_keys=False)
    env = {"AMQP_PASSWORD": urlsplit(peer.url).password or ""}

    kill_mid_stream_and_resume(tmp_path / "hub", config, env, len(keys))

    assert peer.count(inbox) == 0


# -- OUT -----------------------------------------------------------------------------------------


def test_out_flow_publishes_confirmed_messages_with_key_headers_and_order(
    tmp_path: Path, peer: AmqpPeer, hub: Engine
) -> None:
    inbox, outbox = peer.queue(), peer.queue()
    # Three versions of C1 and one of C2, committed in separate runs (three record versions).
    loaded = config(tmp_path, peer.url, inbox, outbox)
    runner = FlowRunner(loaded, hub)
    for name in ("one", "two", "three"):
        peer.publish(inbox, customers(["C1"], name) + customers(["C2"], "only"))
        runner.run("customers-in")
    worker = Worker(loaded, hub)
    try:
        deliver_all(worker)
    finally:
        worker.close()

    got = peer.drain(outbox)
    assert [(orjson.loads(m.body)["id"], m.headers["x-erpbridge-version"]) for m in got] == [
        ("C1", 1),
        ("C2", 1),
        ("C1", 2),
        ("C1", 3),
    ]
    first = got[0]
    assert orjson.loads(first.body) == {"id": "C1", "name": "one"}
    assert first.routing_key == outbox
    assert first.content_type == "application/json"
    assert first.persistent
    assert first.message_id and first.message_id.startswith("customers-out|")
    assert first.headers["customer"] == "C1"
    assert first.headers["entity"] == "customer"
    assert first.headers["x-erpbridge-key"] == "C1"
    assert len({m.message_id for m in got}) == 4


def outgoing(key: str, version: int = 1) -> OutgoingRecord:
    return OutgoingRecord(
        version, "customer", key, version, f"t:{key}:{version}", {"id": key, "v": version}
    )


def test_a_broker_that_refuses_a_publish_is_retried_and_loses_nothing(peer: AmqpPeer) -> None:
    # A queue that takes one message and refuses the next (reject-publish: a nack).
    full = peer.queue(**{"x-max-length": 1, "x-overflow": "reject-publish"})
    options = AmqpChannelOptions(url=peer.url, confirm_timeout_s=5)
    transport = AmqpTransport("erp-bus", options, Path("."))
    target = AmqpTargetOptions(routing_key=full)
    try:
        assert transport.write(target, [outgoing("K1")]) == [None]
        with pytest.raises(RetriableError) as refused:
            transport.write(target, [outgoing("K2")])
        assert "channel erp-bus" in str(refused.value)
        assert "refused the message (nack)" in str(refused.value)
        assert [m.message_id for m in peer.drain(full)] == ["t:K1:1"]
        # The retry goes through once there is room.
        assert transport.write(target, [outgoing("K2")]) == [None]
        assert [m.message_id for m in peer.drain(full)] == ["t:K2:1"]
        with pytest.raises(FatalError) as unroutable:
            transport.write(AmqpTargetOptions(routing_key="no-such-queue"), [outgoing("K3")])
        assert "no queue takes the message" in str(unroutable.value)
        assert "customer K3 v1" in str(unroutable.value)
        with pytest.raises(FatalError) as missing:
            transport.write(
                AmqpTargetOptions(exchange="no-such", routing_key="x"), [outgoing("K4")]
            )
        assert "not found" in str(missing.value)
        # The channel is usable again after each refusal.
        assert transport.write(target, [outgoing("K5")]) == [None]
    finally:
        transport.close()
    assert [m.message_id for m in peer.drain(full)] == ["t:K5:1"]


# -- the broker restarted, and the volume ---------------------------------------------------------


def test_broker_restarted_mid_stream_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, peer: AmqpPeer, hub: Engine
) -> None:
    inbox, outbox = peer.queue(), peer.queue()
    total = 1500
    peer.publish(inbox, customers(range(total)))
    loaded = config(tmp_path, peer.url, inbox, outbox)
    worker = Worker(loaded, hub)
    stop = threading.Event()

    def deliver() -> None:
        while not stop.is_set():
            worker.run_once()
            time.sleep(0.05)

    delivering = threading.Thread(target=deliver)
    delivering.start()
    try:
        runs: list[Any] = []
        reading = threading.Thread(
            target=lambda: runs.append(FlowRunner(loaded, hub).run("customers-in"))
        )
        reading.start()
        deadline = time.monotonic() + 30
        while len(hub_records(hub)) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        restart("rabbitmq", peer.url)
        reading.join(60)
        [interrupted] = runs
        # Unless the run had already finished, the broker's going away failed it (retriable).
        if interrupted.status != "succeeded":
            assert "channel 'shop'" in (interrupted.error or ""), interrupted.error
        result = FlowRunner(loaded, hub).run("customers-in")
        assert result.status == "succeeded", result.error
        stop.set()
        delivering.join(60)
        deliver_all(worker)
    finally:
        stop.set()
        worker.close()

    held = hub_records(hub)
    assert len(held) == total
    assert {version for version, _ in held.values()} == {1}
    assert peer.count(inbox) == 0
    got = peer.drain(outbox)
    # At least once: a publish whose confirm the restart swallowed is sent again, under the
    # same message id; nothing is missing, and a duplicate is the same message.
    by_id: dict[str, bytes] = {}
    for message in got:
        assert message.message_id is not None
        assert by_id.setdefault(message.message_id, message.body) == message.body
    assert len(by_id) == total
    assert {orjson.loads(body)["id"] for body in by_id.values()} == {str(i) for i in range(total)}


def test_ten_thousand_messages_each_way(tmp_path: Path, peer: AmqpPeer, hub: Engine) -> None:
    inbox, outbox = peer.queue(), peer.queue()
    total = 10_000
    peer.publish(inbox, customers(range(total)))
    loaded = config(tmp_path, peer.url, inbox, outbox)

    result = FlowRunner(loaded, hub).run("customers-in")
    assert (result.status, result.read, result.created) == ("succeeded", total, total)
    assert peer.count(inbox) == 0
    worker = Worker(loaded, hub, batch_size=500)  # writes of 500: fewer confirm rounds
    try:
        deliver_all(worker)
    finally:
        worker.close()

    assert peer.count(outbox) == total
    got = peer.drain(outbox)
    assert len({m.message_id for m in got}) == total
    assert {orjson.loads(m.body)["id"] for m in got} == {str(i) for i in range(total)}
