"""Benchmark: immediate flows driven by events (``POST /api/v1/events/{flow}``) and webhooks
(``POST /hooks/{channel}``), from the request to the record visible in the target.

An open-loop generator sends on a fixed schedule (request ``i`` at ``t0 + i / rate``) over
keep-alive HTTP/1.1 connections (raw asyncio sockets: the generator shares the machine with the
hub and must stay cheap); every latency is counted from the request's *scheduled* time, so a
server that falls behind shows it as latency instead of hiding it (no coordinated omission).
A watcher sees each record arrive in the target: ``inotify`` on the folder target (the file's
rename), or polling of the ``sqlwrite`` table every 5 ms.

Every event has a key of its own, so each accepted event is one new record and one delivery.

Phases (each against a fresh hub folder, store and target):

- ``embedded``: ``erpbridge run`` on SQLite (API, scheduler and worker in one process); folder
  target at every level, ``sqlwrite`` target (a SQLite table), batches of 100 records per POST,
  and signed webhooks.
- ``scaled``: PostgreSQL (``scripts/postgres.sh`` on a free port, or ``--pg-url``), 1, 2 and 4
  ``erpbridge api`` processes (requests spread round robin) and ``--workers`` (1)
  ``erpbridge worker`` processes.

Levels are events per second offered (for batches: records per second). For each, the table
shows what was accepted (202) per second, what was refused for load (429/503), other answers and
client timeouts, POST latency p50/p99 (every answer), end-to-end p50/p99 (scheduled send to
visible in the target, accepted events), how many accepted events reached the target, and the
load average at the end of the level. The last line on stdout is one JSON object
(``embedded_max_events_per_s``, ``embedded_p99_ms_at_1000``, ``embedded_e2e_p99_ms_at_1000``,
``scaled_max_events_per_s``, ``webhook_max_events_per_s``, ...).

``.venv/bin/python bench/events.py`` (about 6 minutes with ``--duration 10``); ``--quick`` is a
smoke check of a few seconds (one hub, low levels). On the shared 2-core machine the generator,
the hub and every other process share the CPUs: read the figures with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (100, 250, 500, 1000, 2000)
HOOK_SECRET = "whsec-bench-0123456789"
REQUEST_TIMEOUT_S = 10.0
#: After the schedule ends: answers are awaited this long, then target arrivals this long.
ANSWER_GRACE_S = 12.0
ARRIVAL_GRACE_S = 20.0

CONFIG = """
hub:
  api:
    rate_limits: {{per_client: "1000000/second", per_route: {{}}, anonymous: "1000/second"}}
channels:
  shop:
    system: platform
    credentials: {{webhook_secret: "${{BENCH_HOOK_SECRET}}"}}
    inbound:
      webhook: {{flow: orders-in}}
{target_channel}
flows:
  - name: orders-in
    channel: shop
    entity: order
    direction: in
    trigger: immediate
    key: id
    mapping:
      number: {{from: id, required: true}}
      customer_code: {{from: customer, required: true}}
      total: total
  - name: orders-out
    channel: erp
    entity: order
    direction: out
    trigger: immediate
    target: {target}
    mapping:
      number: number
      customer_code: customer_code
      total: total
"""
FOLDER_CHANNEL = """  erp:
    system: folder
    options: {path: erp}"""
SQLWRITE_CHANNEL = """  erp:
    system: sql
    transport: sqlwrite
    options: {{url: "sqlite:///{path}"}}"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the hub under test -------------------------------------------------------------------


@dataclass
class Hub:
    """One bench hub: its folder, environment, API ports and processes."""

    root: Path
    env: dict[str, str]
    target: str
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    key: str = ""

    @property
    def config(self) -> Path:
        return self.root / "erpbridge.yaml"

    @property
    def target_db(self) -> Path:
        return self.root / "target.db"

    def erpbridge(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "erpbridge", *args, "-c", str(self.config)]

    def start(self, command: str, *args: str, port: int | None = None) -> None:
        argv = self.erpbridge(command, *args)
        if port is not None:
            argv += ["--port", str(port)]
        name = f"{command}-{port or len(self.processes)}.log"
        with (self.root / name).open("wb") as sink:
            self.processes.append(
                subprocess.Popen(
                    argv, env=self.env, cwd=self.root, stdout=sink, stderr=subprocess.STDOUT
                )
            )
        if port is not None:
            self.ports.append(port)
            _wait_ready(port, self.processes[-1], self.root / name)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.processes.clear()

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the hub's processes have used so far."""
        total = 0
        for process in self.processes:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / os.sysconf("SC_CLK_TCK")

    def log_lines(self, word: str) -> int:
        """Lines holding ``word`` in the hub's logs (e.g. 'Traceback')."""
        return sum(path.read_text(errors="replace").count(word) for path in self.root.glob("*.log"))


def _wait_ready(port: int, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hub exited: {log_file.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 "):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"hub on port {port} not ready: {log_file.read_text(errors='replace')}")


@contextlib.contextmanager
def hub(target: str, database_url: str | None = None) -> Iterator[Hub]:
    """A fresh hub folder with its configuration, store, client key and target."""
    from cryptography.fernet import Fernet

    root = Path(tempfile.mkdtemp(prefix="bench-events-"))
    env = {
        **os.environ,
        "ERPBRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
        "BENCH_HOOK_SECRET": HOOK_SECRET,
    }
    env.pop("ERPBRIDGE_DATABASE_URL", None)
    if database_url:
        env["ERPBRIDGE_DATABASE_URL"] = database_url
    made = Hub(root, env, target)
    if target == "folder":
        (root / "erp").mkdir()
        text = CONFIG.format(
            target_channel=FOLDER_CHANNEL, target='{format: json, name: "{key}.json"}'
        )
    else:
        with sqlite3.connect(made.target_db) as db:
            db.execute(
                "CREATE TABLE orders (number TEXT PRIMARY KEY, customer_code TEXT, total TEXT)"
            )
            db.execute("PRAGMA journal_mode=WAL")
        text = CONFIG.format(
            target_channel=SQLWRITE_CHANNEL.format(path=made.target_db),
            target="{table: orders, key: [number]}",
        )
    made.config.write_text(text, encoding="utf-8")
    added = subprocess.run(
        made.erpbridge("clients", "add", "bench", "-s", "events"),
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
    )
    if added.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"erpbridge clients add: {added.stdout}{added.stderr}")
    made.key = added.stdout.strip().splitlines()[-1]
    try:
        yield made
    finally:
        made.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str | None]:
    """A PostgreSQL server URL: the given one, or one started with scripts/postgres.sh."""
    if url:
        yield url
        return
    port = str(free_port())
    env = {**os.environ, "ERPBRIDGE_PG_PORT": port}
    script = str(ROOT / "scripts" / "postgres.sh")
    started = subprocess.run(["bash", script, "start"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        log(f"PostgreSQL not available, scaled shape skipped: {started.stderr.strip()}")
        yield None
        return
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True)


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_events_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


# --- the target watcher ---------------------------------------------------------------------

_IN_CLOSE_WRITE, _IN_MOVED_TO = 0x8, 0x80
_EVENT = struct.Struct("iIII")


class Watcher:
    """Records when each key first shows in the target (``seen[key] = loop time``)."""

    def __init__(self, made: Hub, loop: asyncio.AbstractEventLoop) -> None:
        self.seen: dict[str, float] = {}
        self.loop = loop
        self._fd = -1
        self._task: asyncio.Task[None] | None = None
        if made.target == "folder":
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            self._fd = libc.inotify_init1(os.O_NONBLOCK)
            folder = str(made.root / "erp").encode()
            if (
                self._fd < 0
                or libc.inotify_add_watch(self._fd, folder, _IN_MOVED_TO | _IN_CLOSE_WRITE) < 0
            ):
                raise OSError(ctypes.get_errno(), "inotify")
            loop.add_reader(self._fd, self._read)
        else:
            self._db = sqlite3.connect(made.target_db, check_same_thread=False)
            self._task = loop.create_task(self._poll())

    def _read(self) -> None:
        at = self.loop.time()
        try:
            data = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return
        offset = 0
        while offset < len(data):
            _wd, _mask, _cookie, size = _EVENT.unpack_from(data, offset)
            name = data[offset + 16 : offset + 16 + size].rstrip(b"\0").decode()
            offset += 16 + size
            if name.endswith(".json") and not name.startswith("."):
                self.seen.setdefault(name[:-5], at)

    async def _poll(self) -> None:
        last = 0
        while True:
            rows = self._db.execute(
                "SELECT rowid, number FROM orders WHERE rowid > ?", (last,)
            ).fetchall()
            at = self.loop.time()
            for rowid, number in rows:
                self.seen.setdefault(number, at)
                last = max(last, rowid)
            await asyncio.sleep(0.005)

    def close(self) -> None:
        if self._fd >= 0:
            self.loop.remove_reader(self._fd)
            os.close(self._fd)
        if self._task is not None:
            self._task.cancel()
            self._db.close()


# --- the open-loop generator ----------------------------------------------------------------


@dataclass
class Sent:
    """One scheduled request and what became of it."""

    scheduled: float
    keys: list[str]
    status: int = 0  # 0: no answer (timeout, connection lost, never sent)
    answered: float = 0.0


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = 0, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


Build = Callable[[int], tuple[bytes, list[str]]]


async def offer(
    ports: Sequence[int], build: Build, rate: float, duration: float, concurrency: int
) -> tuple[list[Sent], float]:
    """Send ``rate * duration`` requests on schedule; return them and the schedule's start."""
    loop = asyncio.get_running_loop()
    count = max(1, int(rate * duration))
    t0 = loop.time() + 0.3
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    sent: list[Sent | None] = [None] * count

    async def connection(port: int) -> None:
        conn = Connection(port)
        while (item := await queue.get()) is not None:
            i, scheduled = item
            raw, keys = build(i)
            record = sent[i] = Sent(scheduled, keys)
            try:
                record.status = await asyncio.wait_for(conn.request(raw), REQUEST_TIMEOUT_S)
                record.answered = loop.time()
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                conn.close()
        conn.close()

    workers = [loop.create_task(connection(ports[i % len(ports)])) for i in range(concurrency)]
    for i in range(count):
        scheduled = t0 + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, scheduled))
    for _ in workers:
        queue.put_nowait(None)
    _done, pending = await asyncio.wait(workers, timeout=ANSWER_GRACE_S + REQUEST_TIMEOUT_S)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return [s if s is not None else Sent(t0 + i / rate, []) for i, s in enumerate(sent)], t0


def event_request(made: Hub, tag: str, batch: int) -> Build:
    head = (
        "POST /api/v1/events/orders-in HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {made.key}\r\nContent-Length: "
    ).encode()

    def build(i: int) -> tuple[bytes, list[str]]:
        keys = [f"{tag}-{i}"] if batch == 1 else [f"{tag}-{i}-{j}" for j in range(batch)]
        records = [{"id": k, "customer": "C-1", "total": "12.50"} for k in keys]
        body = json.dumps(records[0] if batch == 1 else records).encode()
        return head + str(len(body)).encode() + b"\r\n\r\n" + body, keys

    return build


def hook_request(tag: str) -> Build:
    def build(i: int) -> tuple[bytes, list[str]]:
        key = f"{tag}-{i}"
        body = json.dumps({"id": key, "customer": "C-1", "total": "12.50"}).encode()
        stamp = str(int(time.time()))
        digest = hmac.new(HOOK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        head = (
            "POST /hooks/shop HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
            f"X-Timestamp: {stamp}\r\nX-Signature: sha256={digest.hexdigest()}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        return head + body, [key]

    return build


# --- one level ------------------------------------------------------------------------------


@dataclass
class Level:
    phase: str
    offered: float  # events (records) per second
    duration: float
    accepted_per_s: float = 0.0
    accepted: int = 0
    overload: int = 0
    other: int = 0
    timeouts: int = 0
    post_p50_ms: float | None = None
    post_p99_ms: float | None = None
    accepted_p99_ms: float | None = None
    overload_p99_ms: float | None = None
    e2e_p50_ms: float | None = None
    e2e_p99_ms: float | None = None
    delivered: int = 0
    expected: int = 0
    load: float = 0.0
    #: CPU seconds the hub's processes used during the level (sending and the arrival wait).
    hub_cpu_s: float = 0.0
    #: Of those, per accepted event (record), in milliseconds.
    cpu_ms_per_event: float | None = None
    #: The "other" answers by status.
    other_statuses: dict[int, int] = field(default_factory=dict)

    @property
    def sustained(self) -> bool:
        """Accepted what was offered (≥ 98 %), delivered all of it, POST p99 under 1 s."""
        return (
            self.accepted_per_s >= 0.98 * self.offered
            and self.delivered == self.expected
            and (self.post_p99_ms or 0) < 1000
        )


async def run_level(
    made: Hub, phase: str, rate: float, duration: float, concurrency: int, kind: str, batch: int = 1
) -> Level:
    loop = asyncio.get_running_loop()
    watcher = Watcher(made, loop)
    tag = f"{phase.replace('/', '_')}-{int(rate)}-{uuid.uuid4().hex[:4]}"
    build = hook_request(tag) if kind == "hook" else event_request(made, tag, batch)
    cpu_before = made.cpu_s()
    try:
        sent, t0 = await offer(made.ports, build, rate / batch, duration, concurrency)
        accepted = [s for s in sent if s.status == 202]
        expected = {k: s.scheduled for s in accepted for k in s.keys}
        deadline = loop.time() + ARRIVAL_GRACE_S
        while loop.time() < deadline and not expected.keys() <= watcher.seen.keys():
            await asyncio.sleep(0.05)
    finally:
        watcher.close()
    cpu = made.cpu_s() - cpu_before
    answered = [s for s in sent if s.status]
    overload = [s for s in answered if s.status in (429, 503)]
    latency = [s.answered - s.scheduled for s in answered]
    e2e = [watcher.seen[k] - at for k, at in expected.items() if k in watcher.seen]
    last = max((s.answered for s in accepted), default=t0 + duration)
    span = max(duration, last - t0)
    return Level(
        phase=phase,
        offered=rate,
        duration=duration,
        accepted_per_s=round(len(accepted) * batch / span, 1),
        accepted=len(accepted) * batch,
        overload=len(overload),
        other=len(answered) - len(accepted) - len(overload),
        timeouts=len(sent) - len(answered),
        post_p50_ms=ms(percentile(latency, 50)),
        post_p99_ms=ms(percentile(latency, 99)),
        accepted_p99_ms=ms(percentile([s.answered - s.scheduled for s in accepted], 99)),
        overload_p99_ms=ms(percentile([s.answered - s.scheduled for s in overload], 99)),
        e2e_p50_ms=ms(percentile(e2e, 50)),
        e2e_p99_ms=ms(percentile(e2e, 99)),
        delivered=len(e2e),
        expected=len(expected),
        load=round(os.getloadavg()[0], 2),
        hub_cpu_s=round(cpu, 2),
        cpu_ms_per_event=round(cpu * 1000 / (len(accepted) * batch), 2) if accepted else None,
        other_statuses=dict(Counter(s.status for s in answered if s.status not in (202, 429, 503))),
    )


def show(level: Level) -> None:
    def f(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    log(
        f"{level.phase:<26} {level.offered:>6g} {level.accepted_per_s:>8g} {level.overload:>6} "
        f"{level.other:>5} {level.timeouts:>5} {f(level.post_p50_ms):>8} "
        f"{f(level.post_p99_ms):>8} {f(level.e2e_p50_ms):>8} {f(level.e2e_p99_ms):>8} "
        f"{level.delivered:>6}/{level.expected:<6} {level.load:>5} {level.hub_cpu_s:>6g} "
        f"{f(level.cpu_ms_per_event):>6}"
        + (f"  other: {level.other_statuses}" if level.other_statuses else "")
    )


HEADER = (
    f"{'phase':<26} {'offer':>6} {'acc/s':>8} {'429/3':>6} {'other':>5} {'tmo':>5} "
    f"{'post50':>8} {'post99':>8} {'e2e50':>8} {'e2e99':>8} {'delivered':>13} {'load':>5} "
    f"{'cpu_s':>6} {'ms/ev':>6}"
)


# --- the plan -------------------------------------------------------------------------------


def embedded(
    args: argparse.Namespace, results: list[Level], loop: asyncio.AbstractEventLoop
) -> None:
    plans: list[tuple[str, str, str, Sequence[float], int]] = (
        [
            ("embedded/folder", "folder", "event", (100, 250), 1),
            ("embedded/hook", "folder", "hook", (100,), 1),
        ]
        if args.quick
        else [
            ("embedded/folder", "folder", "event", args.levels, 1),
            (
                "embedded/sqlwrite",
                "sqlwrite",
                "event",
                [v for v in args.levels if v in (500, 1000, 2000)],
                1,
            ),
            ("embedded/batch100", "folder", "event", (1000, 5000), 100),
            (
                "embedded/hook",
                "folder",
                "hook",
                [v for v in args.levels if v in (500, 1000, 2000)],
                1,
            ),
        ]
    )
    for phase, target, kind, levels, batch in plans:
        if args.phases and phase.split("/")[1] not in args.phases:
            continue
        try:
            with hub(target) as made:
                made.start("run", "--interval", "1", port=free_port())
                for rate in levels:
                    level = loop.run_until_complete(
                        run_level(made, phase, rate, args.duration, args.concurrency, kind, batch)
                    )
                    show(level)
                    results.append(level)
                tracebacks = made.log_lines("Traceback")
                if tracebacks:
                    log(f"{phase}: {tracebacks} traceback(s) in the hub's log")
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            log(f"{phase}: failed: {exc}")


def scaled(args: argparse.Namespace, results: list[Level], loop: asyncio.AbstractEventLoop) -> None:
    with postgres(args.pg_url) as server:
        if server is None:
            return
        for procs in args.procs:
            phase = f"scaled/{procs}api{args.workers}w/folder"
            try:
                with fresh_database(server) as url, hub("folder", url) as made:
                    for _ in range(procs):
                        made.start("api", port=free_port())
                    for _ in range(args.workers):
                        made.start("worker", "--interval", "1")
                    for rate in args.scaled_levels or [v for v in args.levels if v >= 500]:
                        level = loop.run_until_complete(
                            run_level(made, phase, rate, args.duration, args.concurrency, "event")
                        )
                        show(level)
                        results.append(level)
            except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                log(f"{phase}: failed: {exc}")


def summary(results: list[Level]) -> dict[str, Any]:
    def of(prefix: str) -> list[Level]:
        return [r for r in results if r.phase.startswith(prefix)]

    def at(prefix: str, rate: float) -> Level | None:
        return next((r for r in of(prefix) if r.offered == rate), None)

    def best(prefix: str) -> float | None:
        return max((r.accepted_per_s for r in of(prefix)), default=None)

    def sustained(prefix: str) -> float | None:
        return max((r.offered for r in of(prefix) if r.sustained), default=None)

    out: dict[str, Any] = {
        "embedded_max_events_per_s": best("embedded/folder"),
        "embedded_sustained_level": sustained("embedded/folder"),
        "embedded_sqlwrite_max_events_per_s": best("embedded/sqlwrite"),
        "embedded_batch_max_records_per_s": best("embedded/batch100"),
        "webhook_max_events_per_s": best("embedded/hook"),
        "webhook_sustained_level": sustained("embedded/hook"),
        "scaled_max_events_per_s": best("scaled/"),
    }
    for name, prefix in (
        ("embedded", "embedded/folder"),
        ("sqlwrite", "embedded/sqlwrite"),
        ("webhook", "embedded/hook"),
    ):
        level = at(prefix, 1000)
        out[f"{name}_p99_ms_at_1000"] = level.post_p99_ms if level else None
        out[f"{name}_e2e_p99_ms_at_1000"] = level.e2e_p99_ms if level else None
    for procs in (1, 2, 4):
        out[f"scaled_{procs}api_max_events_per_s"] = best(f"scaled/{procs}api")
        level = at(f"scaled/{procs}api", 1000)
        out[f"scaled_{procs}api_p99_ms_at_1000"] = level.post_p99_ms if level else None
    over = at("embedded/folder", 2000)
    if over is not None:
        out["overload_refused_at_2000"] = over.overload
        out["overload_refusal_p99_ms_at_2000"] = over.overload_p99_ms
        out["overload_timeouts_at_2000"] = over.timeouts
    out["load_average"] = [round(v, 2) for v in os.getloadavg()]
    out["levels"] = [r.__dict__ for r in results]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="A smoke check of a few seconds.")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per level.")
    parser.add_argument(
        "--levels", type=lambda t: [float(v) for v in t.split(",")], default=list(LEVELS)
    )
    parser.add_argument("--shapes", default="embedded,scaled", help="embedded, scaled or both.")
    parser.add_argument("--procs", type=lambda t: [int(v) for v in t.split(",")], default=[1, 2, 4])
    parser.add_argument(
        "--phases",
        type=lambda t: t.split(","),
        help="Only these embedded phases (folder, sqlwrite, batch100, hook); default all.",
    )
    parser.add_argument(
        "--scaled-levels",
        type=lambda t: [float(v) for v in t.split(",")],
        help="Levels of the scaled shape (default: those of --levels from 500 up).",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="erpbridge worker processes (scaled shape)."
    )
    parser.add_argument("--pg-url", help="A PostgreSQL server (else one is started).")
    parser.add_argument("--concurrency", type=int, default=256, help="Connections open at once.")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.shapes, args.concurrency = min(args.duration, 2.0), "embedded", 32
    # The generator always runs on the plain asyncio loop, so that figures of hubs with and
    # without uvloop installed are measured by the same generator.
    loop = asyncio.new_event_loop()
    # SIGTERM (a stopped bench) unwinds like Ctrl-C: the hubs are stopped, their folders removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: list[Level] = []
    log(f"load average at the start: {os.getloadavg()}")
    log(HEADER)
    try:
        if "embedded" in args.shapes:
            embedded(args, results, loop)
        if "scaled" in args.shapes:
            scaled(args, results, loop)
    finally:
        loop.close()
    print(json.dumps(summary(results)))


if __name__ == "__main__":
    main()
