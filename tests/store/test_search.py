"""The search help on SQLite and PostgreSQL: prefix, substring, accents, several words, ranking,
an index kept in step with the records by the upsert, limits, and hostile queries as plain text."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from erpbridge import FlowRunner, load_config, open_store
from erpbridge.model.entities import BUILTIN_ENTITIES, EntitySpec
from erpbridge.store.records import (
    Incoming,
    Lineage,
    UpsertCounts,
    content_hash,
    dump_payload,
    upsert_records,
)
from erpbridge.store.search import SearchHit, SearchSpec, fold, search, searchable
from erpbridge.store.searchindex import count_indexed, rebuild_index
from erpbridge.store.tables import records, search_index

CUSTOMER = SearchSpec.of("customer", BUILTIN_ENTITIES["customer"])
PRODUCT = SearchSpec.of("product", BUILTIN_ENTITIES["product"])
assert CUSTOMER is not None and PRODUCT is not None

PEOPLE = [
    {"code": "C-1001", "name": "Müller GmbH", "email": "info@mueller-gmbh.de",
     "addresses": [{"city": "Berlin", "postal_code": "10115"}]},
    {"code": "C-1002", "name": "Hans Müller", "addresses": [{"city": "Köln"}]},
    {"code": "C-1003", "name": "Mueller AG", "vat_id": "DE811234567",
     "addresses": [{"city": "München"}, {"city": "Berlin"}]},
    {"code": "C-1004", "name": "Østergaard ApS", "addresses": [{"city": "Århus"}]},
    {"code": "C-1005", "name": "Keller & Straße KG", "addresses": [{"city": "Mannheim"}]},
    {"code": "C-2001", "name": "São Paulo Comércio", "addresses": [{"city": "São Paulo"}]},
]  # fmt: skip


@pytest.fixture
def engine(hub_url: str) -> Iterator[Engine]:
    engine = open_store(hub_url)
    yield engine
    engine.dispose()


def item(payload: dict[str, Any], key_field: str = "code") -> Incoming:
    blob = dump_payload(payload)
    return Incoming(str(payload[key_field]), payload, blob, content_hash(blob), None, "test")


def upsert(
    engine: Engine,
    payloads: list[dict[str, Any]],
    spec: SearchSpec | None = CUSTOMER,
    entity: str = "customer",
    key_field: str = "code",
) -> UpsertCounts:
    lineage = Lineage(entity, "test", "test-in", None, datetime.now(UTC), search=spec)
    with engine.begin() as conn:
        return upsert_records(conn, lineage, [item(p, key_field) for p in payloads])


def find(
    engine: Engine, query: str, spec: SearchSpec = CUSTOMER, limit: int = 20
) -> list[SearchHit]:
    with engine.connect() as conn:
        return search(conn, spec, query, limit)


def keys(engine: Engine, query: str, spec: SearchSpec = CUSTOMER) -> list[str]:
    return [hit.key for hit in find(engine, query, spec)]


def test_fold_casefolds_strips_accents_and_collapses_spaces() -> None:
    assert fold("  MÜLLER \t Straße ") == "muller strasse"
    assert fold("ŁÓDŹ Østergaard São Æble") == "lodz ostergaard sao aeble"
    assert fold("a\x00b") == "a b"


def test_prefix_of_the_name_and_of_the_key(engine: Engine) -> None:
    upsert(engine, PEOPLE)
    hits = find(engine, "Mül")
    # Both spellings start the label (the shorter first); inside a name it is a word start.
    assert [(h.key, h.match) for h in hits] == [
        ("C-1003", "prefix"),
        ("C-1001", "prefix"),
        ("C-1002", "word"),
    ]
    assert (hits[1].label, hits[1].version, hits[1].entity) == ("Müller GmbH", 1, "customer")
    assert hits[1].matched == ("name", "email")  # info@mueller-gmbh.de
    assert set(keys(engine, "c-100")) == {"C-1001", "C-1002", "C-1003", "C-1004", "C-1005"}


def test_substring_in_the_middle_and_the_fields_it_matched(engine: Engine) -> None:
    upsert(engine, PEOPLE)
    assert set(keys(engine, "ller")) == {"C-1001", "C-1002", "C-1003", "C-1005"}
    hits = find(engine, "erlin")
    assert {h.key for h in hits} == {"C-1001", "C-1003"}
    assert all(h.match == "substring" and h.matched == ("addresses.city",) for h in hits)
    assert keys(engine, "81123") == ["C-1003"]  # the VAT id
    assert find(engine, "1234567")[0].matched == ("vat_id",)


def test_accents_and_case_do_not_matter(engine: Engine) -> None:
    upsert(engine, PEOPLE)
    for query in ("muller", "MULLER", "Müller", "mÜller"):
        assert {"C-1001", "C-1002"} <= set(keys(engine, query)), query
    # Written with an umlaut, the query also finds the spelling without one.
    assert set(keys(engine, "müller")) == {"C-1001", "C-1002", "C-1003"}
    assert keys(engine, "ostergaard") == ["C-1004"]
    assert keys(engine, "aarhus") == []  # å is a letter of its own, not "aa"
    assert keys(engine, "arhus") == ["C-1004"]
    assert keys(engine, "strasse") == ["C-1005"]
    assert keys(engine, "sao paulo") == ["C-2001"]


def test_many_words_with_umlauts_find_both_spellings(engine: Engine) -> None:
    upsert(
        engine,
        [
            {"code": "U-1", "name": "Grün Müller Köhler"},
            {"code": "U-2", "name": "Gruen Mueller Koehler"},
            {"code": "U-3", "name": "Gruen Müller Köhler"},
        ],
    )
    # Eight spellings; PostgreSQL looks up the two consistent ones (all plain, all German).
    assert {"U-1", "U-2"} <= set(keys(engine, "grün müller köhler"))
    assert set(keys(engine, "grün müller")) == {"U-1", "U-2", "U-3"}


def test_every_word_must_match_in_any_order(engine: Engine) -> None:
    upsert(engine, PEOPLE)
    assert set(keys(engine, "müller berlin")) == {"C-1001", "C-1003"}
    assert keys(engine, "berlin gmbh") == ["C-1001"]
    assert keys(engine, "gmbh berlin") == ["C-1001"]
    assert keys(engine, "hans köln") == ["C-1002"]
    assert keys(engine, "hans berlin") == []
    # A word under three characters narrows what the others found.
    assert keys(engine, "müller ag") == ["C-1003"]


def test_ranking_exact_key_then_prefix_then_word_then_substring(engine: Engine) -> None:
    upsert(
        engine,
        [
            {"code": "X-3", "name": "Hermann KG"},
            {"code": "X-2", "name": "Hans Mann"},
            {"code": "MANN", "name": "Zeppelin"},
            {"code": "X-1", "name": "Mannheimer Versicherung"},
            {"code": "X-4", "name": "Mann AG"},
        ],
    )
    hits = find(engine, "mann")
    assert [(h.key, h.match) for h in hits] == [
        ("MANN", "key"),
        ("X-4", "prefix"),  # the shorter label first
        ("X-1", "prefix"),
        ("X-2", "word"),
        ("X-3", "substring"),
    ]


def test_a_short_query_is_a_prefix_look_up(engine: Engine) -> None:
    upsert(engine, PEOPLE)
    assert keys(engine, "mü") == ["C-1003", "C-1001"]  # Mueller AG, Müller GmbH; not Hans Müller
    assert all(h.match == "prefix" for h in find(engine, "C-"))
    assert keys(engine, "ll") == []  # inside a word, but no prefix


def test_an_update_changes_the_index(engine: Engine) -> None:
    upsert(engine, PEOPLE)
    renamed = {"code": "C-1001", "name": "Schulz Logistik", "addresses": [{"city": "Hamburg"}]}
    assert upsert(engine, [renamed]).updated == 1
    assert "C-1001" not in keys(engine, "müller")
    assert keys(engine, "ller gmbh") == []  # the old text is gone from the trigram index too
    assert "C-1001" not in keys(engine, "erlin")
    hits = find(engine, "logistik hamburg")
    assert [(h.key, h.version, h.label) for h in hits] == [("C-1001", 2, "Schulz Logistik")]


@contextmanager
def index_writes(engine: Engine) -> Iterator[list[str]]:
    """The statements that write the search index (its table or an FTS5 table) meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        lowered = statement.lower()
        if "search_" in lowered and not lowered.lstrip().startswith("select"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_an_unchanged_upsert_and_a_change_outside_the_search_fields_write_nothing(
    engine: Engine,
) -> None:
    upsert(engine, PEOPLE)
    with index_writes(engine) as writes:
        assert upsert(engine, PEOPLE).unchanged == len(PEOPLE)
        assert writes == []
        counts = upsert(engine, [{**PEOPLE[1], "phone": "+49 221 1234", "credit_limit": "5000"}])
        assert counts.updated == 1
        assert writes == []
    assert find(engine, "hans müller")[0].version == 2


def test_a_record_stored_before_its_entity_was_searchable_is_indexed_on_change(
    engine: Engine,
) -> None:
    upsert(engine, PEOPLE, spec=None)
    assert keys(engine, "müller") == []
    upsert(engine, [{**PEOPLE[1], "phone": "+49 221 1234"}])
    assert keys(engine, "müller") == ["C-1002"]


def test_rebuild_indexes_what_is_stored(engine: Engine) -> None:
    upsert(engine, PEOPLE, spec=None)
    with engine.begin() as conn:
        assert rebuild_index(conn, CUSTOMER, batch_size=4) == len(PEOPLE)
    with engine.begin() as conn:  # twice: the same, nothing doubled
        assert rebuild_index(conn, CUSTOMER) == len(PEOPLE)
        assert count_indexed(conn, "customer") == len(PEOPLE)
    assert set(keys(engine, "ller")) == {"C-1001", "C-1002", "C-1003", "C-1005"}


def test_limits(engine: Engine) -> None:
    upsert(engine, [{"code": f"K-{i:03d}", "name": f"Kunde Nummer {i}"} for i in range(130)])
    assert len(find(engine, "kunde")) == 20
    assert len(find(engine, "nummer", limit=5)) == 5
    assert len(find(engine, "nummer", limit=100)) == 100
    assert len(find(engine, "k-", limit=100)) == 100
    for wrong in (0, 101, -1):
        with pytest.raises(ValueError, match="between 1 and 100"):
            find(engine, "kunde", limit=wrong)


def test_entities_are_searched_apart(engine: Engine) -> None:
    upsert(engine, PEOPLE)
    upsert(
        engine,
        [{"sku": "SCR-1", "name": "Müller Schraube M8", "description": "verzinkt, Berlin"}],
        spec=PRODUCT,
        entity="product",
        key_field="sku",
    )
    assert "SCR-1" not in keys(engine, "müller")
    hits = find(engine, "schraube", PRODUCT)
    assert [(h.key, h.entity, h.label) for h in hits] == [
        ("SCR-1", "product", "Müller Schraube M8")
    ]
    assert keys(engine, "berlin", PRODUCT) == ["SCR-1"]


HOSTILE = [
    '"', '""', "'", "%", "_", "\\", "*", "(", ")", ":", "^", "-", "+", "{", "}", "NEAR(",
    "NEAR(a b)", "OR", "AND", "NOT", "a OR b", 'x" OR "y', "mül*", "text:x", "scope : x",
    "'; DROP TABLE records; --", '"); DELETE FROM search_index; --', "%%%", "___", "\\%",
    "\x00", "a\x00b", "🙂", "ﬁ", "ǅ", "\u200b", "x" * 200,
]  # fmt: skip


def test_hostile_queries_are_plain_text(engine: Engine) -> None:
    upsert(engine, PEOPLE)
    for query in HOSTILE:
        for hit in find(engine, query):  # no error; and a hit holds every word of the query
            text = " ".join(fold(v) for v in (hit.key, hit.label))
            assert hit.match in ("key", "prefix") or hit.matched, (query, text)
    assert keys(engine, "'; DROP TABLE records; --") == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(records)).scalar_one() == 6
        assert conn.execute(select(func.count()).select_from(search_index)).scalar_one() == 6


def test_query_syntax_in_data_is_found_literally(engine: Engine) -> None:
    upsert(
        engine,
        [
            *PEOPLE,
            {"code": "Q-1", "name": 'Weird "NEAR(" 100% a_b OR Co'},
            {"code": "Q-2", "name": "1000 Rabatt axb"},
            {"code": "Q-3", "name": "Back\\slash*star"},
        ],
    )
    assert keys(engine, "NEAR(") == ["Q-1"]
    assert keys(engine, '"near("') == ["Q-1"]
    assert keys(engine, "100%") == ["Q-1"]  # % is no wildcard: "1000" does not match
    assert keys(engine, "a_b") == ["Q-1"]  # _ is no wildcard: "axb" does not match
    assert keys(engine, "k\\sl") == ["Q-3"]
    assert keys(engine, "h*st") == ["Q-3"]
    assert keys(engine, "weird or") == ["Q-1"]


def test_search_fields_declared_for_an_entity_of_the_configuration(engine: Engine) -> None:
    partner = EntitySpec.model_validate(
        {
            "key": ["number"],
            "fields": {
                "number": "string",
                "company": "string",
                "address": {"type": "object", "fields": {"city": "string"}},
                "tags": {"type": "list", "items": "string"},
            },
            "search": ["number", "company", "address.city", "tags"],
        }
    )
    spec = SearchSpec.of("business_partner", partner)
    assert spec is not None and spec.label == "company"
    assert searchable({"business_partner": partner, "order": BUILTIN_ENTITIES["order"]}) == {
        "business_partner": spec
    }
    upsert(
        engine,
        [{"number": "BP-7", "company": "Fjord Fisk AS", "address": {"city": "Tromsø"},
          "tags": ["Lieferant", "Premium"]}],
        spec=spec, entity="business_partner", key_field="number",
    )  # fmt: skip
    hits = find(engine, "tromso premium", spec)
    assert [(h.key, h.label, h.matched) for h in hits] == [
        ("BP-7", "Fjord Fisk AS", ("address.city", "tags"))
    ]


@pytest.mark.parametrize(
    ("search_fields", "message"),
    [
        (["nope"], "search field 'nope': no field 'nope'"),
        (["address"], "search field 'address' must be a scalar field"),
        (["company.x"], "search field 'company.x': no field 'x'"),
    ],
)
def test_search_fields_must_exist_and_be_scalars(search_fields: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        EntitySpec.model_validate(
            {
                "key": ["number"],
                "fields": {
                    "number": "string",
                    "company": "string",
                    "address": {"type": "object", "fields": {"city": "string"}},
                },
                "search": search_fields,
            }
        )


FLOW = """
hub: {{database_url: "{url}"}}
channels:
  crm: {{system: folder, options: {{path: inbox}}}}
flows:
  - name: customers-in
    channel: crm
    entity: customer
    direction: in
    source: {{pattern: "*.csv", delimiter: ";"}}
    key: Nr
    mapping: {{code: Nr, name: Name, email: Mail}}
"""


def test_an_in_flow_indexes_what_it_stores(hub_url: str, tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "customers.csv").write_text(
        "Nr;Name;Mail\nK-1;Bäckerei Öztürk;info@oeztuerk.de\nK-2;Weber Söhne;weber@example.com\n",
        encoding="utf-8",
    )
    config_path = tmp_path / "erpbridge.yaml"
    config_path.write_text(FLOW.format(url=hub_url), encoding="utf-8")
    config = load_config(config_path)
    engine = open_store(hub_url)
    try:
        result = FlowRunner(config, engine).run("customers-in")
        assert (result.status, result.created) == ("succeeded", 2), result.error
        assert keys(engine, "backerei ozt") == ["K-1"]
        assert keys(engine, "sohne") == ["K-2"]
    finally:
        engine.dispose()
