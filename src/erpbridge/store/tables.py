"""The hub store's tables (SQLAlchemy Core). Migrations in ``migrations/`` create them.

JSON columns hold orjson text rather than a dialect JSON type: the same bytes are hashed,
stored and compared on SQLite and PostgreSQL, and the hot path skips a serialisation round.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

__all__ = [
    "AuditPayload",
    "admin_audit",
    "alert_history",
    "alert_state",
    "api_clients",
    "audit",
    "bindings",
    "channel_secrets",
    "channel_tokens",
    "conflicts",
    "cursors",
    "deliveries",
    "delivery_attempts",
    "document_sequences",
    "documents",
    "flow_locks",
    "flow_switches",
    "idempotency_keys",
    "metadata",
    "reconciliations",
    "records",
    "rejected",
    "runs",
    "saml_requests",
    "schedule_fires",
    "search_index",
    "seen_assertions",
    "signing_keys",
    "transitions",
    "ui_sessions",
    "ui_users",
    "webhook_signatures",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger primary keys become INTEGER on SQLite so that they stay rowid aliases.
_Id = BigInteger().with_variant(Integer(), "sqlite")
# Compared in code-point order on both dialects, so a key range is exactly a prefix match
# (SQLite's BINARY; PostgreSQL's database collation may order "a-b" after "ab c").
_Folded = String(512).with_variant(String(512, collation="C"), "postgresql")

records = Table(
    "records",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("entity", String(64), nullable=False),
    Column("key", String(512), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("origin_channel", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("entity", "key"),
)

bindings = Table(
    "bindings",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("channel", String(128), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("external_id", String(512), nullable=False),
    Column("record_id", _Id, ForeignKey("records.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("channel", "entity", "external_id"),
    Index(None, "record_id"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("flow", String(128), nullable=False),
    Column("channel", String(128), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("mode", String(16), nullable=False),  # incremental | full | replay | event
    # running | succeeded | failed | interrupted (its process went away: see lease_until)
    Column("status", String(16), nullable=False),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("duration_s", Float, nullable=True),
    Column("read", Integer, nullable=False, default=0),
    Column("created", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("rejected", Integer, nullable=False, default=0),
    # Records older than the stored version (the flow's version_field): skipped, not applied.
    Column("stale", Integer, nullable=False, default=0, server_default="0"),
    # Records that became tombstones (deleted in the channel: ``store.tombstones``).
    Column("deleted", Integer, nullable=False, default=0, server_default="0"),
    Column("cursor_before", Text, nullable=True),
    Column("cursor_after", Text, nullable=True),
    Column("warnings", Text, nullable=True),
    Column("error", Text, nullable=True),
    # The process running it (shown when it holds its flow) and how long it is known alive:
    # its heartbeat moves ``lease_until``; a running run past it has lost its process.
    Column("host", String(255), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("node", String(255), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Index(None, "flow", "id"),
    Index(None, "status"),
)

# One row per IN flow being run: the run lock. Inserting it is taking the lock (the primary key
# lets one process win); the holder's heartbeat extends ``expires_at`` and each batch of the run
# checks it still holds the row (fencing), so a lock whose process died (kill -9) frees itself.
flow_locks = Table(
    "flow_locks",
    metadata,
    Column("flow", String(128), primary_key=True),
    Column("run_id", _Id, nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("node", String(255), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

cursors = Table(
    "cursors",
    metadata,
    Column("flow", String(128), primary_key=True),
    Column("value", Text, nullable=True),
    # An unfinished full pass (initial migration): where it stands, so it can resume.
    Column("full_pass", Text, nullable=True),
    Column("run_id", _Id, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class AuditPayload(TypeDecorator[str]):
    """``audit.payload``: stored only for superseded versions, read whole for every version.

    The audit row of a record's current version stores no payload (``NULL``): the record holds
    it, and an initial migration would otherwise write every payload twice (measured: the audit
    was 46 of 110 MB of a 100 000-record hub). When a record's version or payload changes, a
    trigger on ``records`` (migration 0025) moves the payload it had into the audit row of that
    version, whoever writes the record. Every select of the column reads
    ``COALESCE(payload, <the record's payload>)``, so readers see each version's whole payload
    as before; raw SQL must do the same (``store.payloads``).
    """

    impl = Text
    cache_ok = True

    def column_expression(self, column: ColumnElement[str]) -> ColumnElement[str]:
        owner = getattr(column, "table", None)
        if owner is None or "record_id" not in owner.c:
            return column
        # An alias of records of its own: never correlated with a records in the outer query.
        current = records.alias("current_record")
        stored = select(current.c.payload).where(current.c.id == owner.c.record_id)
        return func.coalesce(column, stored.scalar_subquery())


audit = Table(
    "audit",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("record_id", _Id, ForeignKey("records.id"), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("key", String(512), nullable=False),
    Column("version", Integer, nullable=False),
    # created | updated | deleted (a tombstone) | recreated (after a tombstone)
    Column("action", String(16), nullable=False),
    Column("content_hash", String(32), nullable=False),
    # NULL: the version is the record's current one, its payload is the record's (see above).
    Column("payload", AuditPayload(), nullable=True),
    Column("changed_fields", Text, nullable=True),
    Column("run_id", _Id, nullable=True),
    Column("flow", String(128), nullable=True),
    Column("channel", String(128), nullable=True),
    Column("external_id", String(512), nullable=True),
    Column("source_position", String(512), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index(None, "record_id", "version"),
    # A channel-restricted reader's records by channel (``store.read.scope``).
    Index(None, "channel", "entity", "record_id"),
)

rejected = Table(
    "rejected",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("flow", String(128), nullable=False),
    Column("channel", String(128), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("run_id", _Id, nullable=True),
    Column("position", String(512), nullable=False),
    Column("external_id", String(512), nullable=True),
    Column("payload", Text, nullable=True),
    Column("field_path", String(512), nullable=False, default=""),
    Column("reason", Text, nullable=False),
    # Every failing field as JSON [{"path", "reason"}] (field_path/reason: the first of them).
    Column("problems", Text, nullable=True),
    Column("status", String(16), nullable=False),  # open | replayed | superseded | dismissed
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("resolved_run_id", _Id, nullable=True),
    # A dismissal: who, and the reason they gave.
    Column("resolved_by", String(255), nullable=True),
    Column("note", Text, nullable=True),
    Index(None, "status", "flow"),
)

# -- the delivery ledger (OUT flows) ------------------------------------------------------------

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("flow", String(128), nullable=False),
    Column("channel", String(128), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("record_id", _Id, ForeignKey("records.id"), nullable=False),
    Column("key", String(512), nullable=False),
    Column("version", Integer, nullable=False),
    # flow + entity + key: deliveries of one ordering key go out one at a time, in id order.
    Column("ordering_key", String(800), nullable=False),
    # flow + record + version: the same version is never queued twice for one flow.
    Column("idempotency_key", String(300), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    # pending | in_flight | failed (waiting for a retry) | delivered | dead | cancelled
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    # Raised on every claim; a worker may only finish a delivery with the fence it claimed.
    Column("fence", Integer, nullable=False, default=0),
    Column("external_id", String(512), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    # The backfill or replay run that queued it (``None``: a live change); its progress.
    Column("run_id", _Id, nullable=True),
    UniqueConstraint("idempotency_key"),
    Index(None, "state", "priority", "next_attempt_at", "id"),
    # The dashboard's backlog and deliveries of the last day per flow, from the index alone.
    Index(None, "state", "flow", "delivered_at", "created_at", "updated_at"),
    Index(None, "ordering_key", "id"),
    # A channel-restricted reader's records (``store.read.scope``): by record, and by channel.
    Index(None, "record_id"),
    Index(None, "channel", "entity", "record_id"),
    Index(None, "run_id", "state"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("delivery_id", _Id, ForeignKey("deliveries.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker", String(128), nullable=False),
    Column("fence", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    # delivered | retry | dead | lost_lease
    Column("outcome", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Index(None, "delivery_id", "attempt"),
    # Channel health reads the recent attempts (``store.read.health``).
    Index(None, "finished_at"),
)

# One row per fire time of a scheduled flow: the unique key makes each fire run once, however
# many schedulers run (one per process, on any number of machines sharing the store).
schedule_fires = Table(
    "schedule_fires",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("flow", String(128), nullable=False),
    Column("fire_time", DateTime(timezone=True), nullable=False),
    Column("scheduler", String(128), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("run_id", _Id, nullable=True),
    UniqueConstraint("flow", "fire_time"),
)

# Two-way flows: a change that came IN from a channel while the hub's own change to the same
# record was still on its way OUT to that channel. Kept with both sides, open (``manual``) or
# resolved by the flow's policy, so every decision is visible.
conflicts = Table(
    "conflicts",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("flow", String(128), nullable=False),
    Column("channel", String(128), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("record_id", _Id, ForeignKey("records.id"), nullable=False),
    Column("key", String(512), nullable=False),
    Column("hub_version", Integer, nullable=False),
    Column("incoming_payload", Text, nullable=False),
    Column("external_id", String(512), nullable=True),
    Column("policy", String(16), nullable=False),
    # open | resolved
    Column("status", String(16), nullable=False),
    # source | hub: whose version stood
    Column("winner", String(16), nullable=True),
    Column("run_id", _Id, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Index(None, "status", "flow"),
)

# One token bucket per rate-limited channel (``limits.requests_per_second``): every worker on
# this store draws from the same row, so the rate holds across processes and machines.
channel_tokens = Table(
    "channel_tokens",
    metadata,
    Column("channel", String(128), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("refilled_at", DateTime(timezone=True), nullable=False),
)

# API clients: one credential each (shown once at creation, stored as a SHA-256 hash; it is a
# random 256-bit secret, so a slow hash adds nothing), usable as an API key or as the OAuth 2.0
# client secret. Scopes, channels and allowed networks are JSON lists.
api_clients = Table(
    "api_clients",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("key_prefix", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("channels", Text, nullable=True),
    Column("allowed_ips", Text, nullable=True),
    Column("rate_limit", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("name"),
    UniqueConstraint("key_prefix"),
)

# Keys that sign the hub's own JWTs. The newest active one signs; retired ones still verify
# until every token they signed has expired. Private keys are encrypted (Fernet).
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("private_key", Text, nullable=False),
    Column("public_jwk", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
)

# SAML assertions already exchanged for a token, kept until they expire so that none is used twice,
# whichever API process sees it again. The key is a digest of issuer and assertion ID: both are
# chosen by the IdP and may be long.
seen_assertions = Table(
    "seen_assertions",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("issuer", String(512), nullable=False),
    Column("assertion_id", String(256), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

# The back office's SAML sign-in requests (AuthnRequest IDs) still awaiting their answer: the
# browser that started one holds a cookie whose SHA-256 is ``browser``; ``used_at`` is set by the
# answer that took it, so a second answer (a replay) is named as such until the row expires.
saml_requests = Table(
    "saml_requests",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("browser", String(64), nullable=False),
    Column("next_path", String(512), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

# A POST with an Idempotency-Key answers the same on a retry: the first answer is kept here.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("scope", String(256), nullable=False),
    Column("key", String(256), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("scope", "key"),
)

# Signatures of accepted webhooks, kept until they leave the timestamp tolerance: the same
# signed request again inside the window is a replay (refused by every API process).
webhook_signatures = Table(
    "webhook_signatures",
    metadata,
    Column("channel", String(128), primary_key=True),
    Column("digest", String(64), primary_key=True),  # sha256 of the signature header's value
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index(None, "expires_at"),
)

# Every configuration a hub process loaded or an operator reloaded or rolled back to: the YAML
# text as written (comments kept; it holds no secrets, `erpbridge check` refuses plain ones).
config_versions = Table(
    "config_versions",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(32), nullable=False),  # start | reload | save | rollback
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The configuration version each serving process runs (erpbridge run / api), by host and pid.
config_processes = Table(
    "config_processes",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("pid", Integer, primary_key=True),
    Column("role", String(16), nullable=False),
    Column("version_id", _Id, nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)

# Administrative actions through the API and CLI: who, when, what, from which address.
admin_audit = Table(
    "admin_audit",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("address", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(512), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=True),
    Index(None, "at"),
)

# Channel credentials set through the API, encrypted with the hub's secret key (Fernet).
channel_secrets = Table(
    "channel_secrets",
    metadata,
    Column("channel", String(128), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("ciphertext", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Flows paused or resumed through the API: a paused IN flow is not scheduled and refuses events;
# a paused OUT flow's deliveries wait in the ledger until it is resumed.
flow_switches = Table(
    "flow_switches",
    metadata,
    Column("flow", String(128), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("changed_by", String(128), nullable=False),
)

# Alerts (``alerts:`` in the configuration): the state of each rule per subject (a flow, a
# channel), moved by compare-and-set so that one scheduler sends each notification, and the
# history of what fired, repeated and resolved, with what each notifier answered.
alert_state = Table(
    "alert_state",
    metadata,
    Column("rule", String(128), primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column("state", String(16), nullable=False),  # firing | ok
    Column("since", DateTime(timezone=True), nullable=False),
    Column("last_sent_at", DateTime(timezone=True), nullable=True),
    Column("sent", Integer, nullable=False, default=0),
    Column("message", Text, nullable=True),
    Column("version", Integer, nullable=False, default=0),
)

alert_history = Table(
    "alert_history",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("rule", String(128), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("kind", String(16), nullable=False),  # fired | repeated | resolved
    Column("at", DateTime(timezone=True), nullable=False),
    Column("message", Text, nullable=False),
    Column("notified", Text, nullable=True),  # JSON: notifier -> "ok" | error text
    Index(None, "rule", "id"),
)

# The search help (``store.search``): one row per searchable record, its text folded (casefold,
# accents stripped). B-tree indexes answer exact and prefix look-ups of key and label; the
# substring index lives beside it, per dialect, kept out of this declaration (see
# ``store.database.include_name``): on SQLite an FTS5 ``trigram`` table per entity, made and
# written by ``store.searchindex``; on PostgreSQL a ``pg_trgm`` GIN index on ``text``, made by
# migration 0007.
search_index = Table(
    "search_index",
    metadata,
    Column("record_id", _Id, ForeignKey("records.id"), primary_key=True, autoincrement=False),
    Column("entity", String(64), nullable=False),
    Column("key_folded", _Folded, nullable=False),
    Column("label_folded", _Folded, nullable=False),
    Column("text", Text, nullable=False),
    Index(None, "entity", "key_folded"),
    Index(None, "entity", "label_folded"),
)

# Back-office users (``erpbridge users``): a role (viewer, operator, admin) and optionally the
# channels they are limited to; the password as an argon2id hash (``store.users``).
ui_users = Table(
    "ui_users",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("channels", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("password_changed_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("name"),
)

# Back-office sessions, server-side: the cookie holds a random token, the row its SHA-256 (a
# stolen database yields no usable cookie), the CSRF token and the expiry. A new row at every
# login (the session id changes: no fixation); deleting the row logs out everywhere at once.
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("user_name", String(128), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("address", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index(None, "user_name"),
    Index(None, "expires_at"),
)

# Documents (``erpbridge.documents``): generated once per (record version, template), stored
# immutably with their SHA-256 (a trigger of migration 0014 refuses UPDATE), delivered like
# records. ``number`` comes from ``document_sequences`` in the transaction that inserts the row,
# so a number is either used by a stored document or was never taken: no gap, no duplicate.
documents = Table(
    "documents",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("template", String(128), nullable=False),
    Column("record_id", _Id, ForeignKey("records.id"), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("key", String(512), nullable=False),
    Column("version", Integer, nullable=False),
    Column("sequence", String(64), nullable=True),
    Column("year", Integer, nullable=True),
    Column("seq", Integer, nullable=True),
    Column("number", String(128), nullable=True),
    Column("file_name", String(255), nullable=False),
    Column("media_type", String(128), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("record_id", "version", "template"),
    UniqueConstraint("sequence", "year", "seq"),
    Index(None, "template", "id"),
)

# The last number taken per sequence and year (gapless: only ever moved in the transaction that
# stores the document carrying the number).
document_sequences = Table(
    "document_sequences",
    metadata,
    Column("sequence", String(64), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("last", Integer, nullable=False),
)

# The transition log (``store.transitions``): one row per status change of a record, fired
# (API, CLI, back office) or arriving from an IN flow; append-only (migration 0018 makes the
# database refuse UPDATE and DELETE on it). ``transition`` is null for a change no transition
# allowed that a ``status_policy: record`` flow took anyway (``note`` says so), and for a new
# record's first state. An ``idempotency_key`` answers a retried fire with its first result.
transitions = Table(
    "transitions",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("record_id", _Id, ForeignKey("records.id"), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("key", String(512), nullable=False),
    Column("version", Integer, nullable=False),
    Column("workflow", String(128), nullable=False),
    Column("field", String(128), nullable=False),
    Column("from_state", String(128), nullable=True),
    Column("to_state", String(128), nullable=False),
    Column("transition", String(128), nullable=True),
    Column("actor_kind", String(16), nullable=False),  # client | user | flow
    Column("actor", String(256), nullable=False),
    Column("reason", Text, nullable=True),
    Column("note", Text, nullable=True),
    Column("run_id", _Id, nullable=True),
    Column("idempotency_key", String(256), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index(None, "record_id", "id"),
    Index(None, "entity", "at"),
    UniqueConstraint("record_id", "actor", "idempotency_key"),
)

# Reconciliations (``erpbridge reconcile``, scheduled or by hand, ``store.reconciliations``):
# one row per flow compared, with its counts and the report (first differences, sums) as JSON.
# ``channel`` is the flow's channel (the reader's scope); the report names the channel read.
reconciliations = Table(
    "reconciliations",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("flow", String(128), nullable=False),
    Column("channel", String(128), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("trigger", String(16), nullable=False),  # manual | schedule | api
    Column("status", String(16), nullable=False),  # succeeded | failed
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_s", Float, nullable=True),
    Column("hub_count", BigInteger, nullable=False, default=0),
    Column("channel_count", BigInteger, nullable=False, default=0),
    Column("missing_in_channel", BigInteger, nullable=False, default=0),
    Column("missing_in_hub", BigInteger, nullable=False, default=0),
    Column("differing", BigInteger, nullable=False, default=0),
    Column("report", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("repair", String(16), nullable=True),
    Column("repaired", BigInteger, nullable=False, default=0),
    Index(None, "flow", "id"),
)
