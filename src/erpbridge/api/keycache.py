"""API keys of event senders, remembered by an API process for ``hub.api.key_cache_s`` seconds.

An event's sender is checked on every request; looking its key up costs a read transaction (and a
trip to a worker thread) per event, as much as storing a small event. So the event routes
(``require("events", "events")``) remember a key that opened the API: the next request with it
is authenticated on the event loop, without the store.

What the cache does not weaken: the event's own transaction reads the client's row again by its
id (:func:`erpbridge.api.auth.client_guard`, in the group transaction of
:meth:`FlowRunner.ingest`, one read by primary key) and refuses the event with 401, storing
nothing, when the client was revoked or expired meanwhile; with 401 too, and the key forgotten,
when its scopes, channels or allowed addresses changed (the sender's next request is checked
afresh). Revocation and expiry stay immediate for events, from any process. Other routes do not
use the cache.

Keys are held by their SHA-256 digest, never in clear; failed keys are not remembered.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from erpbridge.store.apiclients import ApiClient
from erpbridge.store.runs import now

__all__ = ["KeyCache"]

#: At most this many keys are remembered; beyond, the oldest are forgotten.
MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    client: ApiClient
    until: float


class KeyCache:
    """Digest of an API key -> the client it opened, until ``ttl_s`` after it was looked up."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[bytes, _Entry] = {}
        self._lock = threading.Lock()
        #: Client id -> the transaction that last found it usable: one check per group of
        #: events (the object is kept, so its identity is not reused).
        self.checked: dict[int, object] = {}

    @staticmethod
    def digest(key: str) -> bytes:
        return hashlib.sha256(key.encode()).digest()

    def get(self, key: str) -> ApiClient | None:
        """The client ``key`` opened, if looked up within ``ttl_s`` and not expired since."""
        if self.ttl_s <= 0:
            return None
        entry = self._entries.get(self.digest(key))
        if entry is None or entry.until < time.monotonic():
            return None
        expires = entry.client.expires_at
        if expires is not None and expires <= now():
            return None
        return entry.client

    def put(self, key: str, client: ApiClient) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= MAX_KEYS:
                for old in list(self._entries)[: MAX_KEYS // 10]:
                    del self._entries[old]
            self._entries[self.digest(key)] = _Entry(client, time.monotonic() + self.ttl_s)

    def forget(self, client_id: int) -> None:
        """Forget every key of client ``client_id``."""
        with self._lock:
            for digest in [d for d, e in self._entries.items() if e.client.id == client_id]:
                del self._entries[digest]
            self.checked.pop(client_id, None)
