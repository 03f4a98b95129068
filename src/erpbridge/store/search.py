"""The search help: prefix and substring look-up of master data records kept in the hub.

An entity is searchable when it names its ``search`` fields (customer and product do). Each of
its records has one ``search_index`` row, written in the transaction that writes the record
(``store.searchindex``): its key, its label and the values of its search fields, folded
(casefold, accents stripped: ``muller`` finds ``Müller``). A query is split into words that
must all match. Candidates come from indexes only: exact and prefix matches of the whole query
on key and label from B-trees, substring matches from the trigram index (FTS5 ``trigram`` on
SQLite, ``pg_trgm`` GIN on PostgreSQL), capped; they are ranked exact key, prefix, word start,
substring. A query without a word of three characters is a prefix look-up only. A reader
restricted to channels finds only the records it may see (``store.read.scope``): the condition
sits inside each candidate query, before its cap.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, TextClause, bindparam, text

from erpbridge.model.entities import EntitySpec
from erpbridge.store.read.scope import EVERYTHING, VISIBLE_RECORD_SQL, VISIBLE_SET_SQL, Scope

__all__ = [
    "MAX_LIMIT",
    "MIN_SUBSTRING",
    "MatchKind",
    "SearchHit",
    "SearchSpec",
    "fold",
    "fts_name",
    "fts_table",
    "search",
    "searchable",
]

#: The most hits one query returns.
MAX_LIMIT = 100
#: The shortest word the trigram index can look up; shorter queries are prefix look-ups.
MIN_SUBSTRING = 3
# A long value (a product description) is indexed by its start: the index stays small.
_VALUE_CHARS = 256
_FOLDED_CHARS = 512
# Substring candidates fetched per wanted hit and ranked here: room for a word start found
# late in index order to beat plain substrings found early, at a bounded cost per query.
_POOL = 3
# Rows a word under three characters may narrow: it has no trigram, so it is tested on rows the
# longer words found, and this bounds the work when it occurs in few of them ("gmbh xy").
_SCAN = 20_000
# PostgreSQL: spellings of a query looked up (``müller grün``: 4); more fall back to two.
_SPELLINGS = 4

# Combining diacritical marks (Latin, Greek, Cyrillic), left over by NFKD decomposition.
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Letters NFKD does not decompose, as a reader of Latin script would write them in ASCII.
_LETTERS = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "æ": "ae", "œ": "oe", "þ": "th", "ı": "i"})
# German spelling without umlauts: a query for "müller" also finds "Mueller".
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})


# Control characters become spaces: PostgreSQL text cannot hold NUL, and none is searchable.
_CONTROLS = str.maketrans(dict.fromkeys([*range(32), *range(127, 160)], " "))


def fold(value: str) -> str:
    """``value`` as the index compares it: casefolded, accents stripped, spaces collapsed."""
    folded = value.casefold().translate(_CONTROLS)
    if not folded.isascii():
        folded = _MARKS.sub("", unicodedata.normalize("NFKD", folded)).translate(_LETTERS)
        folded = unicodedata.normalize("NFC", folded)
    return " ".join(folded.split())


def fts_name(entity: str) -> str:
    """SQLite: the name of entity's FTS5 ``trigram`` table (``store.searchindex`` makes it).

    One table per entity, because a match must not wade through other entities' rows: a
    shared table scoped by an entity column cost 5x on 20 000 rows (the scope's postings
    list every row of the entity), and more as the entity grows."""
    return f"search_fts_{entity}"


def fts_table(entity: str) -> str:
    """:func:`fts_name` quoted for SQL (entity names may hold ``.`` and ``-``, never ``"``)."""
    return f'"{fts_name(entity)}"'


Getter = Callable[[Any, list[str]], None]


def _scalars(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _scalars(item, out)
    elif value is not None and not isinstance(value, dict):
        out.append(str(value))


def _getter(parts: list[str]) -> Getter:
    """A function appending the text values at ``parts`` of a payload (lists on the way are
    walked); compiled once per spec, as the upsert calls it for every record."""
    head = parts[0]
    if len(parts) == 1:

        def leaf(data: Any, out: list[str]) -> None:
            if isinstance(data, dict):
                _scalars(data.get(head), out)

        return leaf
    inner = _getter(parts[1:])

    def branch(data: Any, out: list[str]) -> None:
        value = data.get(head) if isinstance(data, dict) else None
        if isinstance(value, list):
            for item in value:
                inner(item, out)
        elif isinstance(value, dict):
            inner(value, out)

    return branch


@dataclass(frozen=True, slots=True)
class SearchSpec:
    """What the index keeps of one entity: its search fields and the one shown as the label."""

    entity: str
    fields: tuple[str, ...]
    label: str
    _getters: dict[str, Getter] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        getters = {path: _getter(path.split(".")) for path in self.fields}
        object.__setattr__(self, "_getters", getters)

    @classmethod
    def of(cls, name: str, entity: EntitySpec) -> SearchSpec | None:
        """The spec of entity ``name``, or None when it declares no ``search`` fields."""
        if not entity.search:
            return None
        plain = [f for f in entity.search if f not in entity.key and "." not in f]
        label = "name" if "name" in entity.search else (plain or list(entity.search))[0]
        return cls(name, entity.search, label)

    def values(self, payload: Mapping[str, Any], path: str) -> list[str]:
        """The text values at search field ``path`` (lists on the way are walked)."""
        out: list[str] = []
        self._getters[path](payload, out)
        return out

    def label_of(self, payload: Mapping[str, Any]) -> str:
        """The label of one record: the first value of the label field, or empty."""
        found = self.values(payload, self.label)
        return found[0] if found else ""

    def document(self, key: str, payload: Mapping[str, Any]) -> tuple[str, str, str]:
        """``(key_folded, label_folded, text)``: one record's index row."""
        found: list[str] = []
        for getter in self._getters.values():
            getter(payload, found)
        texts = dict.fromkeys(fold(value[:_VALUE_CHARS]) for value in found)
        texts.pop("", None)
        label = fold(self.label_of(payload)[:_VALUE_CHARS])[:_FOLDED_CHARS]
        # Values are joined by a space, which no query word holds: a match never spans two.
        return fold(key)[:_FOLDED_CHARS], label, " ".join(texts)


def searchable(entities: Mapping[str, EntitySpec]) -> dict[str, SearchSpec]:
    """The searchable entities of a catalogue, by name."""
    specs = {name: SearchSpec.of(name, entity) for name, entity in entities.items()}
    return {name: spec for name, spec in specs.items() if spec is not None}


# -- the query ----------------------------------------------------------------------------------

MatchKind = Literal["key", "prefix", "word", "substring"]
_KINDS: tuple[MatchKind, ...] = ("key", "prefix", "word", "substring")


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One record found: its key, version, label, the fields that matched and how it matched."""

    entity: str
    key: str
    version: int
    label: str
    #: ``key`` (the exact key), ``prefix`` (key or label starts with the query), ``word``
    #: (every word of the query starts a word of the record), ``substring``.
    match: MatchKind
    matched: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Term:
    """One word of a query, with its spellings (``müller``: ``muller``, ``mueller``)."""

    variants: tuple[str, ...]

    @property
    def long(self) -> bool:
        return len(self.variants[0]) >= MIN_SUBSTRING


def _terms(query: str) -> list[_Term]:
    terms: dict[tuple[str, ...], None] = {}
    for word in query.translate(_CONTROLS).split():
        plain = fold(word)
        german = fold(unicodedata.normalize("NFC", word.casefold()).translate(_UMLAUTS))
        variants = tuple(dict.fromkeys(v for v in (plain, german) if v))
        if variants:
            terms[variants] = None
    return [_Term(v) for v in terms]


def _wholes(terms: list[_Term]) -> list[str]:
    """The whole query, folded, in its plain and its German spelling (when they differ)."""
    plain = " ".join(t.variants[0] for t in terms)
    german = " ".join(t.variants[-1] for t in terms)
    return [plain] if german == plain else [plain, german]


def _next(prefix: str) -> str:
    """The least string above every string that starts with ``prefix`` (code-point order)."""
    stem = prefix.rstrip("\U0010ffff")
    if not stem:  # only the highest code point: nothing is above, so bound by one beyond it
        return prefix + "\U0010ffff"
    return stem[:-1] + chr(ord(stem[-1]) + 1)


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_quote(value: str) -> str:
    # Inside an FTS5 string every character is text, operators and all; only '"' is doubled.
    return '"' + value.replace('"', '""') + '"'


# Hand-written SQL: the look-ups run per keystroke, and composing them in SQLAlchemy Core cost
# 4 ms a query (a union of subqueries, compiled each time: measured) against 0.01 ms to run.
_COLUMNS = "record_id, key_folded, label_folded, text"
#: A restricted search reads the visible records as a set first when there are fewer than this
#: (a bounded count decides); with more, it probes each candidate (most will be visible).
#: Probing 20 000 candidates of which 20 were visible took 390 ms (SQLite) and 800 ms
#: (PostgreSQL); the set of 20 records, 2 ms (measured).
_FEW_VISIBLE = 2000
_COUNT_VISIBLE = text(
    f"SELECT count(*) FROM (SELECT record_id FROM ({VISIBLE_SET_SQL}) AS v LIMIT :few) AS c"
)


def _few_visible(conn: Connection, entity: str, scope: Scope) -> bool:
    """True when fewer than ``_FEW_VISIBLE`` records of ``entity`` are visible in ``scope``."""
    count = _COUNT_VISIBLE.bindparams(scope.channels_param(), scope_entity=entity)
    return bool(conn.execute(count, {"few": _FEW_VISIBLE}).scalar_one() < _FEW_VISIBLE)


def _among_visible(entity: str, terms: list[_Term], scope: Scope) -> Any:
    """Few visible records: every one of them that matches, read from the set (no cap needed,
    so no page is short): the whole query a prefix of key or label, or every word in the text
    when one word is long enough for the substring look-up (as the unrestricted branches).
    CROSS JOIN makes SQLite start from the set instead of walking the index for members."""
    params: dict[str, Any] = {"entity": entity, "scope_entity": entity}
    prefixes: list[str] = []
    for i, whole in enumerate(_wholes(terms)):
        params[f"w{i}"], params[f"a{i}"] = whole, _next(whole)
        prefixes.extend(
            f"({column} >= :w{i} AND {column} < :a{i})" for column in ("key_folded", "label_folded")
        )
    if any(t.long for t in terms):
        prefixes.append(f"(TRUE{_contains(terms, params, 'search_index.text')})")
    return text(
        "SELECT search_index.record_id, key_folded, label_folded, text "
        f"FROM (SELECT DISTINCT record_id FROM ({VISIBLE_SET_SQL}) AS s) AS v "
        "CROSS JOIN search_index WHERE search_index.record_id = v.record_id "
        f"AND search_index.entity = :entity AND ({' OR '.join(prefixes)})"
    ).bindparams(scope.channels_param(), **params)


def _btree(visible: str) -> TextClause:
    return text(
        f"SELECT {_COLUMNS} FROM search_index WHERE entity = :entity AND key_folded = :whole"
        f"{visible} UNION ALL SELECT * FROM (SELECT {_COLUMNS} FROM search_index "
        f"WHERE entity = :entity AND key_folded >= :whole AND key_folded < :above{visible} "
        "ORDER BY key_folded LIMIT :limit) AS by_key "
        f"UNION ALL SELECT * FROM (SELECT {_COLUMNS} FROM search_index "
        f"WHERE entity = :entity AND label_folded >= :whole AND label_folded < :above{visible} "
        "ORDER BY label_folded LIMIT :limit) AS by_label"
    )


_BTREE = _btree("")
_DETAILS = text("SELECT id, key, version, payload FROM records WHERE id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
_FTS_EXISTS = text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name")


def _contains(terms: list[_Term], params: dict[str, Any], column: str) -> str:
    """``AND (column LIKE … OR …)`` per term, its patterns added to ``params``."""
    conditions = []
    for i, term in enumerate(terms):
        alternatives = []
        for j, variant in enumerate(term.variants):
            params[f"s{i}_{j}"] = _like(variant)
            alternatives.append(f"{column} LIKE :s{i}_{j} ESCAPE '\\'")
        conditions.append(f" AND ({' OR '.join(alternatives)})")
    return "".join(conditions)


def _spellings(terms: list[_Term]) -> list[tuple[str, ...]]:
    """The ways to spell all ``terms`` (each word plain or German), at most ``_SPELLINGS``."""
    every = list(itertools.product(*(t.variants for t in terms)))
    if len(every) <= _SPELLINGS:
        return every
    return [tuple(t.variants[0] for t in terms), tuple(t.variants[-1] for t in terms)]


def _trigram_query(entity: str, terms: list[_Term], pool: int, visible: str) -> Any:
    """PostgreSQL: one branch per spelling, each word a LIKE answered by the ``pg_trgm`` GIN
    index. Only a plain AND of LIKEs reliably gets the index: with an OR of two spellings (or a
    regular expression of both) the planner filtered row by row (80–300 ms at 1 M, measured).
    Words under three characters (no trigram) narrow the first ``_SCAN`` rows found."""
    long_terms = [t for t in terms if t.long]
    short = [t for t in terms if not t.long]
    params: dict[str, Any] = {"entity": entity, "pool": pool}
    branches = []
    for b, words in enumerate(_spellings(long_terms)):
        likes = []
        for i, word in enumerate(words):
            params[f"p{b}_{i}"] = _like(word)
            likes.append(f" AND text LIKE :p{b}_{i} ESCAPE '\\'")
        branches.append(
            f"(SELECT {_COLUMNS} FROM search_index WHERE entity = :entity{''.join(likes)}"
            f"{visible.format(id='search_index.record_id', entity='search_index.entity')} "
            f"LIMIT :{'scan' if short else 'pool'})"
        )
    found = " UNION ALL ".join(branches)
    if not short:
        return text(found).bindparams(**params)
    params["scan"] = _SCAN
    narrow = _contains(short, params, "text")
    return text(
        f"SELECT {_COLUMNS} FROM ({found}) AS found WHERE TRUE{narrow} LIMIT :pool"
    ).bindparams(**params)


def _fts_query(entity: str, terms: list[_Term], pool: int, visible: str) -> Any:
    """SQLite: the words of three characters or more through the entity's FTS5 table; the
    shorter ones (no trigram) narrow the first ``_SCAN`` rows it finds. CROSS JOIN makes
    SQLite walk the matches and fetch their rows: left to itself it scanned the rows and
    re-ran the match for each (seconds on 20 000 rows, measured)."""
    params: dict[str, Any] = {
        "match": " AND ".join(
            f"({' OR '.join(_fts_quote(v) for v in t.variants)})" for t in terms if t.long
        ),
        "pool": pool,
        "scan": _SCAN,
    }
    narrow = _contains([t for t in terms if not t.long], params, "search_index.text")
    table = fts_table(entity)
    return text(
        f"SELECT {_COLUMNS} FROM (SELECT rowid FROM {table} WHERE text MATCH :match "
        "LIMIT :scan) AS fts "
        f"CROSS JOIN search_index ON search_index.record_id = fts.rowid WHERE TRUE{narrow}"
        f"{visible.format(id='search_index.record_id', entity='search_index.entity')} LIMIT :pool"
    ).bindparams(**params)


def _candidates(
    conn: Connection, entity: str, terms: list[_Term], limit: int, scope: Scope
) -> list[Any]:
    """Index rows that may be hits: exact key, key and label prefixes, then substrings."""
    if scope.unrestricted:
        visible = ""
    elif _few_visible(conn, entity, scope):
        return list(conn.execute(_among_visible(entity, terms, scope)))
    else:
        visible = " AND " + VISIBLE_RECORD_SQL
    btree = (
        _btree(visible.format(id="search_index.record_id", entity="search_index.entity"))
        if visible
        else _BTREE
    )
    queries = [
        btree.bindparams(entity=entity, whole=whole, above=_next(whole), limit=limit)
        for whole in _wholes(terms)
    ]
    if any(t.long for t in terms):
        pool = limit * _POOL
        if conn.dialect.name != "sqlite":
            queries.append(_trigram_query(entity, terms, pool, visible))
        elif conn.execute(_FTS_EXISTS, {"name": fts_name(entity)}).first():
            queries.append(_fts_query(entity, terms, pool, visible))
    if visible:
        queries = [q.bindparams(scope.channels_param()) for q in queries]
    found: dict[int, Any] = {}
    for query in queries:
        for row in conn.execute(query):
            found.setdefault(row.record_id, row)
    return list(found.values())


def _word_start(value: str, body: str) -> bool:
    at = body.find(value)
    while at >= 0:
        if at == 0 or not body[at - 1].isalnum():
            return True
        at = body.find(value, at + 1)
    return False


def _rank(row: Any, wholes: list[str], terms: list[_Term]) -> int:
    if row.key_folded in wholes:
        return 0
    if any(row.key_folded.startswith(w) or row.label_folded.startswith(w) for w in wholes):
        return 1
    if all(any(_word_start(v, row.text) for v in t.variants) for t in terms):
        return 2
    return 3


def _matched(spec: SearchSpec, payload: Mapping[str, Any], terms: list[_Term]) -> tuple[str, ...]:
    variants = [v for t in terms for v in t.variants]
    return tuple(
        path
        for path in spec.fields
        if any(v in fold(value) for value in spec.values(payload, path) for v in variants)
    )


def search(
    conn: Connection, spec: SearchSpec, query: str, limit: int = 20, scope: Scope = EVERYTHING
) -> list[SearchHit]:
    """The records of ``spec.entity`` within ``scope`` matching every word of ``query``, best
    first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    terms = _terms(query)
    if not terms:
        return []
    wholes = _wholes(terms)
    ranked = sorted(
        (
            (_rank(row, wholes, terms), row)
            for row in _candidates(conn, spec.entity, terms, limit, scope)
        ),
        key=lambda pair: (
            pair[0],
            len(pair[1].label_folded),
            pair[1].label_folded,
            pair[1].key_folded,
        ),
    )[:limit]
    if not ranked:
        return []
    wanted = [row.record_id for _, row in ranked]
    details = {r.id: r for r in conn.execute(_DETAILS, {"ids": wanted})}
    hits = []
    for rank, row in ranked:
        record = details[row.record_id]
        payload = orjson.loads(record.payload)
        hits.append(
            SearchHit(
                spec.entity,
                record.key,
                record.version,
                spec.label_of(payload),
                _KINDS[rank],
                _matched(spec, payload, terms),
            )
        )
    return hits
