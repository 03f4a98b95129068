"""Benchmark: the search help on N generated customers (default 1 000 000), on SQLite or PostgreSQL.

1. Loads N customers into a fresh hub store (``bench/.data/search/hub.db``, or a database
   ``erpbridge_bench_search`` made beside ``--pg URL``'s), either through the real record
   upsert, which indexes in the same transaction (``--load upsert``, the default), or through
   the upsert without the index followed by the index's own bulk rebuild (``--load rebuild``).
   Both report the load time; ``rebuild`` also the time without any index.
2. Runs ~2 000 mixed queries (prefix, substring in the middle of a name, two words, a city,
   exact key, 1–2 characters, no hit) directly against the index (``store.search.search``), then
   through the HTTP API in-process (httpx ``ASGITransport`` against the FastAPI app, with an API
   key), after a warm-up pass of as many other queries; prints p50/p99/max per kind and overall.

The last line printed is one JSON object with the figures. ``--keep`` keeps the store, and a
kept store holding N customers is reused by the next run (loading is skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data" / "search"
PG_DATABASE = "erpbridge_bench_search"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


LAST = _words(
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch "
    "Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann "
    "Hartmann Lange Schmitt Werner Schmitz Krause Meier Lehmann Schmid Schulze Maier Köhler "
    "Herrmann König Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller Weiß Jung Hahn "
    "Schubert Vogel Friedrich Keller Günther Frank Berger Winkler Roth Beck Lorenz Baumann "
    "Franke Albrecht Schuster Simon Ludwig Böhm Winter Kraus Martin Schumacher Krämer Vogt "
    "Stein Jäger Otto Sommer Groß Seidel Heinrich Brandt Haas Schreiber Graf Dietrich Ziegler "
    "Kuhn Pohl Engel Horn Busch Bergmann Voigt Sauer Arnold Pfeiffer Lefèvre Dupont García "
    "Núñez Østergaard Łukasiewicz Nowak Rossi Bianchi Smith O'Brien Dvořák Søndergaard "
    "Åkesson"
)
FIRST = _words(
    "Hans Peter Anna Jürgen Özlem Sören Maria Thomas Andreas Stefan Michael Sabine Petra "
    "Claudia Klaus Uwe Ralf Björn Jörg Günter Käthe Zoë Renée José François Lukas Jonas Leon "
    "Mia Emma Sophie Hannah Lena Felix Paul Ben Elias Noah Marie Johanna Lea Greta Ida"
)
TRADES = _words(
    "Maschinenbau Logistik Elektrotechnik Bau Handel Metallbau Software Holzbau Druckerei "
    "Automotive Kunststofftechnik Anlagenbau Medizintechnik Lebensmittel Getränke Textil "
    "Gebäudetechnik Umwelttechnik Präzisionsteile Werkzeugbau"
)
SYLLABLES = _words(
    "ber gen hol kam lin mar nor ost ren sil tor val wen zan dor fel gra hei kro lau mün sel "
    "tal brü"
)
CITIES = _words(
    "Berlin Hamburg München Köln Frankfurt Stuttgart Düsseldorf Leipzig Dortmund Essen Bremen "
    "Dresden Hannover Nürnberg Duisburg Bochum Wuppertal Bielefeld Bonn Münster Mannheim "
    "Karlsruhe Augsburg Wiesbaden Mönchengladbach Gelsenkirchen Aachen Braunschweig Kiel "
    "Chemnitz Halle Magdeburg Freiburg Krefeld Mainz Lübeck Erfurt Oberhausen Rostock Kassel "
    "Hagen Potsdam Saarbrücken Hamm Ludwigshafen Oldenburg Mülheim Osnabrück Leverkusen "
    "Darmstadt Heidelberg Solingen Regensburg Herne Paderborn Neuss Ingolstadt Offenbach "
    "Fürth Würzburg Ulm Heilbronn Pforzheim Wolfsburg Göttingen Bottrop Reutlingen Koblenz "
    "Bremerhaven Erlangen Trier Recklinghausen Jena Remscheid Salzgitter Moers Siegen "
    "Hildesheim Cottbus Zürich Wien Graz Linz Basel Bern Salzburg Innsbruck Malmö Kraków "
    "Gdańsk Poznań Brno Ljubljana"
)
FORMS = (
    "{last} GmbH",
    "{first} {last}",
    "{last} & {last2} KG",
    "{last} {trade} AG",
    "{made} {trade} GmbH",
    "{first} {made}",
    "{made} & Söhne",
)


def _made(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def customers(count: int) -> Iterator[dict[str, Any]]:
    """Deterministic customers: German and European company and person names, 1–2 addresses."""
    rng = random.Random(7)
    for i in range(1, count + 1):
        name = rng.choice(FORMS).format(
            last=rng.choice(LAST),
            last2=rng.choice(LAST),
            first=rng.choice(FIRST),
            trade=rng.choice(TRADES),
            made=_made(rng),
        )
        slug = "".join(c for c in name.lower().split()[0] if c.isalnum())
        addresses = [
            {
                "type": kind,
                "street": f"{rng.choice(LAST)}straße {rng.randint(1, 200)}",
                "postal_code": f"{rng.randint(1000, 99999):05d}",
                "city": rng.choice(CITIES),
                "country": "DE",
            }
            for kind in (("billing",) if rng.random() < 0.7 else ("billing", "shipping"))
        ]
        yield {
            "code": f"C-{i:07d}",
            "name": name,
            "vat_id": f"DE{rng.randint(10**8, 10**9 - 1)}",
            "email": f"{slug}.{i}@example.com",
            "currency": "EUR",
            "locked": False,
            "addresses": addresses,
        }


# -- loading ------------------------------------------------------------------------------------


def _load(engine: Any, rows: int, batch_size: int, indexed: bool) -> float:
    """Upsert ``rows`` customers in batches; return seconds."""
    from erpbridge.model.entities import BUILTIN_ENTITIES
    from erpbridge.store.records import (
        Incoming,
        Lineage,
        content_hash,
        dump_payload,
        upsert_records,
    )
    from erpbridge.store.search import SearchSpec

    spec = SearchSpec.of("customer", BUILTIN_ENTITIES["customer"]) if indexed else None
    began = time.perf_counter()
    batch: list[Incoming] = []

    def flush() -> None:
        lineage = Lineage("customer", "bench", "customers-in", None, datetime.now(UTC), search=spec)
        with engine.begin() as conn:
            upsert_records(conn, lineage, batch)
        batch.clear()

    for n, payload in enumerate(customers(rows), 1):
        blob = dump_payload(payload)
        batch.append(Incoming(payload["code"], payload, blob, content_hash(blob), None, str(n)))
        if len(batch) == batch_size:
            flush()
            if n % 200_000 == 0:
                rate = n / (time.perf_counter() - began)
                print(f"  {n:>9,} customers, {rate:,.0f}/s", file=sys.stderr)
    if batch:
        flush()
    return time.perf_counter() - began


def _rebuild(engine: Any) -> float:
    from erpbridge.model.entities import BUILTIN_ENTITIES
    from erpbridge.store.search import SearchSpec
    from erpbridge.store.searchindex import rebuild_index

    spec = SearchSpec.of("customer", BUILTIN_ENTITIES["customer"])
    assert spec is not None
    began = time.perf_counter()
    with engine.begin() as conn:
        rebuild_index(conn, spec)
    return time.perf_counter() - began


def _counts(engine: Any) -> tuple[int, int]:
    from sqlalchemy import func, select

    from erpbridge.store.searchindex import count_indexed
    from erpbridge.store.tables import records

    with engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).select_from(records).where(records.c.entity == "customer")
        ).scalar_one()
        return int(stored), count_indexed(conn, "customer")


# -- queries ------------------------------------------------------------------------------------


def queries(count: int, rows: int, seed: int = 11) -> list[tuple[str, str]]:
    """``count`` mixed queries ``(kind, text)`` drawn from the generator's vocabulary."""
    rng = random.Random(seed)
    names = [c["name"] for c in customers(min(rows, 20_000))]
    kinds: dict[str, Callable[[], str]] = {
        "prefix": lambda: rng.choice(names)[: rng.randint(3, 5)],
        "substring": lambda: _middle(rng, rng.choice(names)),
        "two_words": lambda: _two_words(rng, rng.choice(names)),
        "city": lambda: rng.choice(CITIES),
        "key": lambda: f"C-{rng.randint(1, rows):07d}",
        "short": lambda: rng.choice(names)[: rng.randint(1, 2)],
        "no_hit": lambda: "zq" + "".join(rng.choice("xvwjq") for _ in range(4)),
    }
    weights = {"prefix": 4, "substring": 4, "two_words": 3, "city": 3, "key": 2, "short": 2}
    weights["no_hit"] = 2
    plan = [k for k, w in weights.items() for _ in range(w)]
    return [(kind, kinds[kind]()) for kind in (rng.choice(plan) for _ in range(count))]


def _middle(rng: random.Random, name: str) -> str:
    word = max(name.split(), key=len)
    if len(word) < 5:
        return word
    size = rng.randint(3, min(6, len(word) - 1))
    start = rng.randint(1, len(word) - size)
    return word[start : start + size]


def _two_words(rng: random.Random, name: str) -> str:
    words = [w for w in name.split() if w != "&"]
    if len(words) < 2:
        return f"{words[0]} {rng.choice(CITIES)[:4]}"
    return f"{words[0][: rng.randint(3, 6)]} {words[1][: rng.randint(3, 5)]}"


def _figures(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    table = {}
    everything = [s for values in samples.values() for s in values]
    for kind, values in [*sorted(samples.items()), ("all", everything)]:
        ordered = sorted(values)
        table[kind] = {
            "n": len(ordered),
            "p50_ms": round(statistics.median(ordered), 3),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
            "max_ms": round(ordered[-1], 3),
        }
    return table


def _print(title: str, table: dict[str, dict[str, float]], hit_rates: dict[str, float]) -> None:
    print(f"{title}:", file=sys.stderr)
    print(f"  {'kind':<10} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'with hits':>9}",
          file=sys.stderr)  # fmt: skip
    for kind, f in table.items():
        rate = f"{hit_rates[kind]:.0%}" if kind in hit_rates else ""
        print(
            f"  {kind:<10} {f['n']:>5} {f['p50_ms']:>8.2f} {f['p99_ms']:>8.2f} "
            f"{f['max_ms']:>8.2f} {rate:>9}",
            file=sys.stderr,
        )


def run_direct(
    engine: Any, plan: list[tuple[str, str]], warm_up: list[tuple[str, str]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every query through ``store.search.search`` on one read-only connection, after the
    ``warm_up`` queries (other ones: the caches hold the index, not these answers)."""
    from erpbridge.model.entities import BUILTIN_ENTITIES
    from erpbridge.store.database import READ_ONLY
    from erpbridge.store.search import SearchSpec, search

    spec = SearchSpec.of("customer", BUILTIN_ENTITIES["customer"])
    assert spec is not None
    samples: dict[str, list[float]] = {}
    hits: dict[str, list[bool]] = {}
    with engine.connect() as raw:
        conn = raw.execution_options(**{READ_ONLY: True})
        for _, text in warm_up:
            search(conn, spec, text)
            conn.rollback()
        for kind, text in plan:
            began = time.perf_counter()
            found = search(conn, spec, text)
            conn.rollback()
            samples.setdefault(kind, []).append((time.perf_counter() - began) * 1000)
            hits.setdefault(kind, []).append(bool(found))
    return _figures(samples), {k: sum(v) / len(v) for k, v in hits.items()}


def run_api(
    config_path: Path, engine: Any, plan: list[tuple[str, str]]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Every query as ``GET /api/v1/search/customer`` through httpx's ASGI transport."""
    import httpx

    from erpbridge import load_config
    from erpbridge.api.app import build_hub, create_app
    from erpbridge.store.apiclients import create_client, revoke_client

    config = load_config(config_path)
    app = create_app(build_hub(config, engine))
    name = f"bench-{time.time_ns()}"
    _, key = create_client(engine, name, {"read"}, rate_limit="1000000/second")
    samples: dict[str, list[float]] = {}
    took: dict[str, list[float]] = {}
    hits: dict[str, list[bool]] = {}

    async def go() -> None:
        transport = httpx.ASGITransport(app=app)
        headers = {"X-API-Key": key}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as client:
            for _, text in plan[:100]:  # warm-up
                (await client.get("/api/v1/search/customer", params={"q": text})).raise_for_status()
            for kind, text in plan:
                began = time.perf_counter()
                answer = await client.get("/api/v1/search/customer", params={"q": text})
                elapsed = (time.perf_counter() - began) * 1000
                answer.raise_for_status()
                body = answer.json()
                samples.setdefault(kind, []).append(elapsed)
                took.setdefault(kind, []).append(body["took_ms"])
                hits.setdefault(kind, []).append(bool(body["hits"]))

    try:
        asyncio.run(go())
    finally:
        revoke_client(engine, name)
    return _figures(samples), _figures(took), {k: sum(v) / len(v) for k, v in hits.items()}


# -- the driver ---------------------------------------------------------------------------------


def _pg_url(admin_url: str, fresh: bool) -> str:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.exec_driver_sql(
            "SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)
        ).first()
        if exists and fresh:
            conn.exec_driver_sql(f'DROP DATABASE "{PG_DATABASE}" WITH (FORCE)')
        if fresh or not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{PG_DATABASE}"')
    admin.dispose()
    return make_url(admin_url).set(database=PG_DATABASE).render_as_string(hide_password=False)


def _drop_pg(admin_url: str) -> None:
    from sqlalchemy import create_engine

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    admin.dispose()


def _remove(data: Path) -> None:
    for name in ("hub.db", "erpbridge.yaml", "erpbridge.key"):
        for suffix in ("", "-wal", "-shm", "-journal"):
            (data / f"{name}{suffix}").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        data.rmdir()


def _analyze(engine: Any) -> None:
    """Fresh planner statistics, as autovacuum would have after a load this size."""
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def main() -> None:
    """Parse the command line, load (or reuse) the store, run the queries, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Customers to load.")
    parser.add_argument("--queries", type=int, default=2000, help="Queries to measure.")
    parser.add_argument(
        "--load",
        choices=("upsert", "rebuild"),
        default="upsert",
        help="Index while upserting, or upsert then rebuild the index.",
    )
    parser.add_argument("--batch-size", type=int, default=5000, help="Customers per batch.")
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL server (admin URL) to use.")
    parser.add_argument("--keep", action="store_true", help="Keep (and reuse) the store.")
    parser.add_argument("--data", type=Path, default=DATA, help="Working folder (SQLite).")
    args = parser.parse_args()

    from erpbridge.store import open_store

    data: Path = args.data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    url = _pg_url(args.pg, fresh=not args.keep) if args.pg else f"sqlite:///{data / 'hub.db'}"
    if not args.keep and not args.pg:
        _remove(data)
        data.mkdir(parents=True, exist_ok=True)
    config_path = data / "erpbridge.yaml"
    config_path.write_text(f'hub: {{database_url: "{url}"}}\n', encoding="utf-8")
    engine = open_store(url)
    dialect = engine.dialect.name
    load: dict[str, Any] = {"path": args.load}
    stored, indexed = _counts(engine)
    if (stored, indexed) == (args.rows, args.rows):
        print(f"{dialect}: reusing {stored:,} customers", file=sys.stderr)
        load["reused"] = True
    else:
        if stored:
            raise SystemExit(f"the store holds {stored:,} customers, not {args.rows:,}: drop it")
        print(f"{dialect}: loading {args.rows:,} customers ({args.load})", file=sys.stderr)
        if args.load == "upsert":
            load["seconds"] = round(_load(engine, args.rows, args.batch_size, True), 1)
        else:
            load["seconds_without_index"] = round(
                _load(engine, args.rows, args.batch_size, False), 1
            )
            load["rebuild_seconds"] = round(_rebuild(engine), 1)
            load["seconds"] = round(load["seconds_without_index"] + load["rebuild_seconds"], 1)
        stored, indexed = _counts(engine)
        if (stored, indexed) != (args.rows, args.rows):
            raise SystemExit(f"CHECK FAILED: {stored:,} customers, {indexed:,} indexed")
        print(f"  loaded in {load['seconds']} s: {json.dumps(load)}", file=sys.stderr)
    if dialect == "postgresql":
        _analyze(engine)
    if dialect == "sqlite":
        load["hub_db_mb"] = round((data / "hub.db").stat().st_size / 1048576, 1)

    plan = queries(args.queries, args.rows)
    direct, direct_hits = run_direct(engine, plan, queries(args.queries, args.rows, seed=12))
    _print(f"direct (store.search.search), {dialect}", direct, direct_hits)
    api, took, api_hits = run_api(config_path, engine, plan)
    _print(f"HTTP API (httpx ASGITransport, client side), {dialect}", api, api_hits)
    _print("HTTP API (took_ms, server side)", took, api_hits)
    if direct_hits != api_hits:
        raise SystemExit("CHECK FAILED: the API and the index found different things")
    if direct_hits.get("no_hit", 0) != 0 or direct_hits.get("key", 0) != 1:
        raise SystemExit(f"CHECK FAILED: hit rates {direct_hits}")
    engine.dispose()
    if not args.keep:
        if args.pg:
            _drop_pg(args.pg)
        else:
            _remove(data)
    summary = {
        "dialect": dialect,
        "rows": args.rows,
        "queries": len(plan),
        "load": load,
        "direct": direct["all"],
        "api": api["all"],
        "api_took": took["all"],
        "direct_by_kind": direct,
        "api_by_kind": api,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
