"""Benchmark: the streaming transports (RabbitMQ ``amqp``, NATS JetStream ``nats``) through the
real engine — messages/s IN and OUT, and the p99 from a partner's publish to the hub's commit.

For each broker: N messages (default 10 000) published by a partner's client are consumed by
one IN flow run (``FlowRunner``, SQLite hub, batch size 500): messages/s IN. The N records then
flow OUT through the ``Worker`` (publisher confirms / JetStream acknowledgements): messages/s
OUT, and the broker's count of what arrived is checked. Then the latency: the partner publishes
``--rate`` messages/s for ``--seconds`` (in groups of a twentieth of a second) while IN runs
go on back to back; each record's ``created_at`` (stamped in the transaction that commits it)
minus the moment its group's publish started gives publish → hub commit; p50, p99 and max.

Brokers: ``ERPBRIDGE_TEST_AMQP_URL`` / ``ERPBRIDGE_TEST_NATS_URL`` when set, else started here
with ``scripts/rabbitmq.sh`` / ``scripts/nats.sh`` on free ports and stopped at the end.
The figures go to stderr; the last line on stdout is one JSON object per run.
``.venv/bin/python bench/stream.py`` takes two to three minutes (RabbitMQ's start included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

import aio_pika
import nats
import orjson
import yaml
from nats.js.api import StreamConfig
from sqlalchemy import func, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.engine.worker import Worker
from erpbridge.store.tables import records

ROOT = Path(__file__).resolve().parents[1]


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _free_ports(count: int) -> int:
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return int(first)
    raise SystemExit("no free ports")


@contextmanager
def broker(script: str, variable: str, port_variable: str, ports: int) -> Iterator[str]:
    """The broker's URL from ``variable``, or one started with ``scripts/<script>.sh``."""
    if os.environ.get(variable):
        yield os.environ[variable]
        return
    env = {**os.environ, port_variable: str(_free_ports(ports))}
    started = time.perf_counter()
    url = subprocess.run(
        ["bash", str(ROOT / "scripts" / f"{script}.sh"), "start"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    _log(f"{script}: started in {time.perf_counter() - started:.1f} s at {url}")
    try:
        yield url
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / f"{script}.sh"), "stop"], env=env)


# -- the partner's side ---------------------------------------------------------------------------


class AmqpPartner:
    """Publishes to a queue of its own; counts what the hub sent to another."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.inbox = f"bench-in-{uuid.uuid4().hex[:8]}"
        self.outbox = f"bench-out-{uuid.uuid4().hex[:8]}"

    def channel(self) -> dict[str, Any]:
        return {"system": "rabbitmq", "options": {"url": self.url.replace(":guest@", "@")}}

    def credentials(self) -> dict[str, str]:
        return {"password": "${BENCH_AMQP_PASSWORD}"}

    def source(self) -> dict[str, Any]:
        return {"queue": self.inbox, "wait_s": 0.3}

    def target(self) -> dict[str, Any]:
        return {"routing_key": self.outbox}

    async def setup(self) -> None:
        connection = await aio_pika.connect(self.url)
        channel = await connection.channel()
        for name in (self.inbox, self.outbox):
            await channel.declare_queue(name, durable=True)
        await connection.close()

    async def publish(self, bodies: list[bytes], sent: Callable[[], None] | None = None) -> None:
        connection = await aio_pika.connect(self.url)
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange
        if sent is not None:
            sent()
        for start in range(0, len(bodies), 500):
            part = bodies[start : start + 500]
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        self.inbox,
                    )
                    for body in part
                )
            )
        await connection.close()

    async def arrived(self) -> int:
        connection = await aio_pika.connect(self.url)
        channel = await connection.channel()
        queue = await channel.declare_queue(self.outbox, passive=True)
        await connection.close()
        return int(queue.declaration_result.message_count or 0)


class NatsPartner:
    """Publishes to a stream of its own; counts what the hub sent to another."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.inbox = f"BENCHIN{uuid.uuid4().hex[:8]}"
        self.outbox = f"BENCHOUT{uuid.uuid4().hex[:8]}"

    def channel(self) -> dict[str, Any]:
        streams = {self.outbox: {"subjects": [f"{self.outbox}.>"]}}
        return {"system": "nats", "options": {"url": self.url, "streams": streams}}

    def credentials(self) -> dict[str, str]:
        return {}

    def source(self) -> dict[str, Any]:
        return {"stream": self.inbox, "consumer": "hub", "wait_s": 0.3}

    def target(self) -> dict[str, Any]:
        return {"subject": f"{self.outbox}.{{entity}}.{{key}}"}

    async def setup(self) -> None:
        client = await nats.connect(self.url)
        await client.jetstream().add_stream(
            StreamConfig(name=self.inbox, subjects=[f"{self.inbox}.>"])
        )
        await client.close()

    async def publish(self, bodies: list[bytes], sent: Callable[[], None] | None = None) -> None:
        client = await nats.connect(self.url)
        js = client.jetstream(timeout=30)
        if sent is not None:
            sent()
        for start in range(0, len(bodies), 500):
            part = bodies[start : start + 500]
            await asyncio.gather(*(js.publish(f"{self.inbox}.customers", b) for b in part))
        await client.close()

    async def arrived(self) -> int:
        client = await nats.connect(self.url)
        info = await client.jetstream().stream_info(self.outbox)
        await client.close()
        return int(info.state.messages)


Partner = AmqpPartner | NatsPartner


# -- the hub's side -------------------------------------------------------------------------------


def hub_config(root: Path, partner: Partner) -> Path:
    shop = {**partner.channel(), "credentials": partner.credentials()}
    erp = {**partner.channel(), "credentials": partner.credentials()}
    if not shop["credentials"]:
        del shop["credentials"], erp["credentials"]
    document = {
        "hub": {"database_url": f"sqlite:///{root / 'hub.db'}"},
        "channels": {"shop": shop, "erp": erp},
        "flows": [
            {
                "name": "customers-in",
                "channel": "shop",
                "entity": "customer",
                "direction": "in",
                "batch_size": 500,
                "source": partner.source(),
                "key": "id",
                "mapping": {"code": "id", "name": "name"},
            },
            {
                "name": "customers-out",
                "channel": "erp",
                "entity": "customer",
                "direction": "out",
                "target": partner.target(),
                "mapping": {"id": "code", "name": "name"},
            },
        ],
    }
    path = root / "erpbridge.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def bodies(keys: range, prefix: str) -> list[bytes]:
    return [orjson.dumps({"id": f"{prefix}{k}", "name": f"Customer {k}"}) for k in keys]


def measure(
    name: str, partner: Partner, messages: int, rate: int, seconds: float
) -> dict[str, Any]:
    asyncio.run(partner.setup())
    with tempfile.TemporaryDirectory(prefix="erpbridge-bench-stream-") as folder:
        root = Path(folder)
        env = {**os.environ, "BENCH_AMQP_PASSWORD": "guest"}
        loaded = load_config(hub_config(root, partner), env=env)
        hub = open_store(f"sqlite:///{root / 'hub.db'}")
        try:
            started = time.perf_counter()
            asyncio.run(partner.publish(bodies(range(messages), "B")))
            publish_s = time.perf_counter() - started
            _log(f"{name}: partner published {messages} in {publish_s:.2f} s")

            started = time.perf_counter()
            result = FlowRunner(loaded, hub).run("customers-in")
            in_s = time.perf_counter() - started
            _log(f"{name}: IN {result.read} read, {result.created} created in {in_s:.2f} s")

            worker = Worker(loaded, hub)
            started = time.perf_counter()
            try:
                delivered = 0
                while True:
                    stats = worker.run_once()
                    delivered += stats.delivered
                    if not stats.claimed:
                        break
            finally:
                worker.close()
            out_s = time.perf_counter() - started
            arrived = asyncio.run(partner.arrived())
            _log(f"{name}: OUT {delivered} delivered in {out_s:.2f} s; the broker holds {arrived}")

            latency = latencies(loaded, hub, partner, rate, seconds)
        finally:
            hub.dispose()
    with_counts = result.read == result.created == messages == delivered == arrived
    return {
        "broker": name,
        "messages": messages,
        "partner_publish_per_s": round(messages / publish_s),
        "in_per_s": round(messages / in_s),
        "out_per_s": round(messages / out_s),
        "in_read": result.read,
        "out_delivered": delivered,
        "out_arrived": arrived,
        **latency,
        "ok": bool(with_counts and latency["latency_messages"] == round(rate * seconds)),
    }


def latencies(loaded: Any, hub: Any, partner: Partner, rate: int, seconds: float) -> dict[str, Any]:
    """Publish ``rate`` messages/s for ``seconds`` while IN runs go on back to back."""
    total = round(rate * seconds)
    sent: dict[str, float] = {}
    stop = threading.Event()

    def consume() -> None:
        runner = FlowRunner(loaded, hub)
        while not stop.is_set():
            runner.run("customers-in")

    consuming = threading.Thread(target=consume)
    consuming.start()
    try:
        step = max(1, rate // 20)  # twenty groups a second
        started = time.monotonic()
        for index in range(0, total, step):
            keys = range(index, min(index + step, total))

            def stamp(keys: range = keys) -> None:  # connected: the publish starts now
                now = time.time()
                for key in keys:
                    sent[f"L{key}"] = now

            asyncio.run(partner.publish(bodies(keys, "L"), stamp))
            pause = started + (index + step) / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with hub.connect() as conn:
                done = conn.execute(
                    select(func.count()).where(records.c.key.like("L%"))
                ).scalar_one()
            if done >= total:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        consuming.join(120)
    with hub.connect() as conn:
        rows = conn.execute(
            select(records.c.key, records.c.created_at).where(records.c.key.like("L%"))
        ).all()
    delays = sorted(
        (at.replace(tzinfo=at.tzinfo or UTC).timestamp() - sent[key]) * 1000 for key, at in rows
    )

    def quantile(q: float) -> float:
        return round(delays[min(len(delays) - 1, int(q * len(delays)))], 1) if delays else 0.0

    figures = {
        "latency_messages": len(delays),
        "latency_rate_per_s": rate,
        "p50_ms": quantile(0.50),
        "p99_ms": quantile(0.99),
        "max_ms": round(delays[-1], 1) if delays else 0.0,
    }
    _log(f"  publish -> hub commit at {rate}/s: {figures}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=["amqp", "nats", "both"], default="both")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=200, help="latency: messages/s published")
    parser.add_argument("--seconds", type=float, default=5, help="latency: for how long")
    args = parser.parse_args()
    results = []
    if args.broker in ("amqp", "both"):
        with broker("rabbitmq", "ERPBRIDGE_TEST_AMQP_URL", "ERPBRIDGE_RABBITMQ_PORT", 3) as url:
            results.append(
                measure("rabbitmq", AmqpPartner(url), args.messages, args.rate, args.seconds)
            )
    if args.broker in ("nats", "both"):
        with broker("nats", "ERPBRIDGE_TEST_NATS_URL", "ERPBRIDGE_NATS_PORT", 1) as url:
            results.append(
                measure("nats", NatsPartner(url), args.messages, args.rate, args.seconds)
            )
    for item in results:
        _log(json.dumps(item))
    print(json.dumps({"bench": "stream", "results": results, "ok": all(r["ok"] for r in results)}))


if __name__ == "__main__":
    main()
