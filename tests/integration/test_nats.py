"""The ``nats`` transport against the real nats-server (with JetStream) of ``scripts/nats.sh``.

IN flows run through the real engine (``FlowRunner``) into a SQLite hub, OUT flows through the
real ``Worker``; the partner's side is an independent client (:class:`NatsPeer`) that publishes
and reads the streams back by sequence. Each test has streams of its own. The restart kills
nats-server as a crash would (``scripts/nats.sh restart``) and starts it on its data.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from sqlalchemy import Engine, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.config.loader import LoadedConfig
from erpbridge.engine.worker import Worker
from erpbridge.errors import FatalError, RetriableError
from erpbridge.store.tables import rejected
from erpbridge.transports.base import Batch, OutgoingRecord
from erpbridge.transports.nats.options import NatsChannelOptions, NatsTargetOptions
from erpbridge.transports.nats.transport import NatsTransport
from integration.brokers import (
    NatsPeer,
    customers,
    deliver_all,
    hub_records,
    interleaved,
    kill_mid_stream_and_resume,
    nats_url,
    restart,
)


@pytest.fixture(scope="module")
def peer() -> NatsPeer:
    return NatsPeer(nats_url())


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Engine]:
    engine = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    yield engine
    engine.dispose()


def config(tmp_path: Path, url: str, inbox: str, outbox: str, **source: Any) -> LoadedConfig:
    """Customers IN from stream ``inbox`` (channel ``shop``) and OUT to ``<outbox>.customer.<key>``
    (channel ``erp``, which makes sure stream ``outbox`` exists)."""
    document = {
        "hub": {"database_url": f"sqlite:///{tmp_path / 'hub.db'}"},
        "channels": {
            "shop": {"system": "nats", "options": {"url": url}},
            "erp": {
                "system": "nats",
                "options": {"url": url, "streams": {outbox: {"subjects": [f"{outbox}.>"]}}},
            },
        },
        "flows": [
            {
                "name": "customers-in",
                "channel": "shop",
                "entity": "customer",
                "direction": "in",
                "batch_size": 200,
                "source": {"stream": inbox, "consumer": "hub", "wait_s": 0.5, **source},
                "key": "id",
                "mapping": {"code": "id", "name": "name"},
            },
            {
                "name": "customers-out",
                "channel": "erp",
                "entity": "customer",
                "direction": "out",
                "target": {
                    "subject": f"{outbox}.{{entity}}.{{key}}",
                    "headers": {"Customer": "{key}"},
                },
                # Quick retries that outlast a server restart.
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
    return load_config(path)


def fresh() -> str:
    return f"O{uuid.uuid4().hex[:12]}"


# -- IN ------------------------------------------------------------------------------------------


def test_in_flow_acknowledges_after_commit_and_rejects_poison_messages(
    tmp_path: Path, peer: NatsPeer, hub: Engine
) -> None:
    inbox = peer.stream()
    subject = f"{inbox}.customers"
    peer.publish(subject, customers(["C1", "C2"]))
    peer.publish(subject, [b"KUNNR;NAME\nC9;Nine", b"[1, 2]", orjson.dumps({"id": "C3"})])
    peer.publish(subject, customers(["C4"]))
    loaded = config(tmp_path, peer.url, inbox, fresh())

    result = FlowRunner(loaded, hub).run("customers-in")

    assert (result.status, result.read, result.created, result.rejected) == (
        "succeeded",
        4,
        3,
        3,
    ), result
    assert sorted(hub_records(hub)) == ["C1", "C2", "C4"]
    assert peer.pending(inbox, "hub") == (0, 0)  # everything delivered and acknowledged
    with hub.connect() as conn:
        bad = conn.execute(
            select(rejected.c.position, rejected.c.reason, rejected.c.field_path).order_by(
                rejected.c.id
            )
        ).all()
    assert [row.position for row in bad] == [
        f"stream {inbox} sequence 3",
        f"stream {inbox} sequence 4",
        f"stream {inbox} sequence 5",
    ]
    assert "not JSON" in bad[0].reason
    assert "not an object" in bad[1].reason
    assert bad[2].field_path == "name"
    again = FlowRunner(loaded, hub).run("customers-in")
    assert (again.status, again.read) == ("succeeded", 0)


def test_consumer_killed_before_ack_gets_them_again_and_skips_the_committed(
    tmp_path: Path, peer: NatsPeer, hub: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies right after the hub committed a batch, before its acknowledgements:
    JetStream delivers the batch again after ack_wait_s, and the flow's cursor knows those
    sequences. Every key comes twice in a row (v1, v2): a committed v1 applied again would
    make a stale version 3."""
    inbox = peer.stream()
    keys = [f"K{i:03d}" for i in range(300)]
    bodies = interleaved(keys)
    peer.publish(f"{inbox}.customers", bodies)
    loaded = config(tmp_path, peer.url, inbox, fresh(), ack_wait_s=1, wait_s=2)

    class Killed(BaseException):
        """The consumer's process dying (not an error the engine handles)."""

    def die_before_ack(batch: Batch) -> None:
        raise Killed

    with monkeypatch.context() as patched:
        patched.setattr(Batch, "acknowledge", die_before_ack)
        with pytest.raises(Killed):
            FlowRunner(loaded, hub).run("customers-in")
    assert len(hub_records(hub)) == 100  # one batch: v1 and v2 of 100 keys, not acknowledged

    result = FlowRunner(loaded, hub).run("customers-in")

    assert result.status == "succeeded", result.error
    assert result.read == 400, "the committed messages were taken again"
    skipped = [int(w.split()[0]) for w in result.warnings if "redelivered message(s)" in w]
    assert sum(skipped) == 200, result.warnings
    held = hub_records(hub)
    assert len(held) == 300
    assert {version for version, _ in held.values()} == {2}
    assert all(data["name"] == f"second {key}" for key, (_, data) in held.items())
    assert peer.pending(inbox, "hub") == (0, 0)


def test_served_hub_killed_mid_stream_takes_every_message_once(
    tmp_path: Path, peer: NatsPeer
) -> None:
    """A served ``erpbridge run`` consuming on an interval, killed with SIGKILL mid-stream,
    then started again: what it held comes again after ack_wait_s, and every key ends at
    version 2 (v1 and v2 each applied once)."""
    inbox = peer.stream()
    keys = [f"S{i:04d}" for i in range(1000)]
    peer.publish(f"{inbox}.customers", interleaved(keys))
    flow = {
        "name": "customers-in",
        "channel": "shop",
        "entity": "customer",
        "direction": "in",
        "trigger": {"interval": "1s"},
        "batch_size": 100,
        "source": {"stream": inbox, "consumer": "hub", "wait_s": 0.3, "ack_wait_s": 1},
        "key": "id",
        "mapping": {"code": "id", "name": "name"},
    }
    channels = {"shop": {"system": "nats", "options": {"url": peer.url}}}
    config = yaml.safe_dump({"channels": channels, "flows": [flow]}, sort_keys=False)

    kill_mid_stream_and_resume(tmp_path / "hub", config, {}, len(keys))

    assert peer.pending(inbox, "hub") == (0, 0)


# -- OUT -----------------------------------------------------------------------------------------


def test_out_flow_publishes_acknowledged_messages_with_headers_in_order(
    tmp_path: Path, peer: NatsPeer, hub: Engine
) -> None:
    inbox, outbox = peer.stream(), fresh()
    loaded = config(tmp_path, peer.url, inbox, outbox)
    runner = FlowRunner(loaded, hub)
    for name in ("one", "two", "three"):
        peer.publish(f"{inbox}.customers", customers(["C1"], name) + customers(["C2"], "only"))
        runner.run("customers-in")
    worker = Worker(loaded, hub)
    try:
        deliver_all(worker)
    finally:
        worker.close()

    got = peer.messages(outbox)
    assert [(m.subject, m.headers["Erpbridge-Version"]) for m in got] == [
        (f"{outbox}.customer.C1", "1"),
        (f"{outbox}.customer.C2", "1"),
        (f"{outbox}.customer.C1", "2"),
        (f"{outbox}.customer.C1", "3"),
    ]
    first = got[0]
    assert orjson.loads(first.data) == {"id": "C1", "name": "one"}
    assert first.headers["Nats-Msg-Id"].startswith("customers-out|")
    assert first.headers["Customer"] == "C1"
    assert first.headers["Content-Type"] == "application/json"


def outgoing(key: str, version: int = 1) -> OutgoingRecord:
    return OutgoingRecord(
        version, "customer", key, version, f"t:{key}:{version}", {"id": key, "v": version}
    )


def test_publishing_again_is_stored_once_and_refusals_say_why(peer: NatsPeer) -> None:
    full = peer.stream(max_msgs=1, discard="new")
    options = NatsChannelOptions(url=peer.url, publish_timeout_s=5)
    transport = NatsTransport("erp-bus", options, Path("."))
    target = NatsTargetOptions(subject=f"{full}.{{key}}")
    try:
        assert transport.write(target, [outgoing("K1")]) == [None]
        # A retry after a lost acknowledgement: the same Nats-Msg-Id, stored once.
        assert transport.write(target, [outgoing("K1")]) == [None]
        assert [m.headers["Nats-Msg-Id"] for m in peer.messages(full)] == ["t:K1:1"]
        with pytest.raises(RetriableError) as refused:
            transport.write(target, [outgoing("K2")])
        assert "channel erp-bus" in str(refused.value)
        assert "refused the message" in str(refused.value)
        with pytest.raises(FatalError) as nowhere:
            transport.write(NatsTargetOptions(subject="nowhere.{key}"), [outgoing("K3")])
        assert "no stream stores this subject" in str(nowhere.value)
        assert "customer K3 v1" in str(nowhere.value)
        with pytest.raises(FatalError) as wildcard:
            transport.write(NatsTargetOptions(subject="erp.{record.v}.*"), [outgoing("K4")])
        assert "'erp.1.*' is not a subject to publish to" in str(wildcard.value)
    finally:
        transport.close()
    assert [m.headers["Nats-Msg-Id"] for m in peer.messages(full)] == ["t:K1:1"]


# -- the server restarted, and the volume ---------------------------------------------------------


def test_server_restarted_mid_stream_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, peer: NatsPeer, hub: Engine
) -> None:
    inbox, outbox = peer.stream(), fresh()
    total = 1500
    peer.publish(f"{inbox}.customers", customers(range(total)))
    loaded = config(tmp_path, peer.url, inbox, outbox, ack_wait_s=2)
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
            time.sleep(0.02)
        restart("nats", peer.url)
        reading.join(60)
        [interrupted] = runs
        if interrupted.status != "succeeded":
            assert "channel 'shop'" in (interrupted.error or ""), interrupted.error
        # Until ack_wait_s has passed, what the killed server had delivered is not due again.
        time.sleep(2.5)
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
    assert peer.pending(inbox, "hub") == (0, 0)
    got = peer.messages(outbox)
    # JetStream dropped what a retry sent again (Nats-Msg-Id): one message per record.
    assert len(got) == total
    assert {orjson.loads(m.data)["id"] for m in got} == {str(i) for i in range(total)}


def test_ten_thousand_messages_each_way(tmp_path: Path, peer: NatsPeer, hub: Engine) -> None:
    inbox, outbox = peer.stream(), fresh()
    total = 10_000
    peer.publish(f"{inbox}.customers", customers(range(total)))
    loaded = config(tmp_path, peer.url, inbox, outbox)

    result = FlowRunner(loaded, hub).run("customers-in")
    assert (result.status, result.read, result.created) == ("succeeded", total, total)
    assert peer.pending(inbox, "hub") == (0, 0)
    worker = Worker(loaded, hub, batch_size=500)  # writes of 500: fewer confirm rounds
    try:
        deliver_all(worker)
    finally:
        worker.close()

    got = peer.messages(outbox)
    assert len(got) == total
    assert len({m.headers["Nats-Msg-Id"] for m in got}) == total
    assert {orjson.loads(m.data)["id"] for m in got} == {str(i) for i in range(total)}
