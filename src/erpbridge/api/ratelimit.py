"""Request limits per client and per route group, with the ``limits`` library.

Each limit is a moving window (``20/second`` lets 20 through back to back, then paces; ``100000
/day`` is a daily quota). Storage is in memory for one process, or Redis when several API
processes must share the counts (``hub.api.rate_limits.storage``). A refused request gets 429 with
``Retry-After``; every answer carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and
``RateLimit-Reset`` for the tightest limit.

Failed logins (a missing, wrong, revoked or expired credential, on ``/api/v1`` and at
``/oauth/token``) count per address against ``anonymous``; an address that used it up is refused
before its credential is even looked at (:meth:`Limiter.blocked`). No limit counts failures in a
client's name, so a stranger guessing with a real ``client_id`` never locks that client out.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many, storage
from limits.strategies import MovingWindowRateLimiter

from erpbridge.config.api import RateLimits
from erpbridge.observe.metrics import rate_limited as refused

__all__ = ["Decision", "Limiter"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one hit: allowed or not, and the header values."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` headers, plus ``Retry-After`` when refused."""
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, self.reset_s))
        return out


class Limiter:
    """Counts requests against the configured limits."""

    def __init__(self, settings: RateLimits) -> None:
        self.settings = settings
        self.limiter = MovingWindowRateLimiter(storage.storage_from_string(settings.storage))
        self._parsed: dict[str, list[RateLimitItem]] = {}
        #: Counts kept in this process (``memory://``): counting does no I/O.
        self.local = settings.storage.startswith("memory://")

    def hit(self, who: str, group: str, client_limit: str | None = None) -> Decision:
        """Count one request of ``who`` to route ``group``; the tightest limit decides."""
        checks = [(client_limit or self.settings.per_client, "*")]
        if group in self.settings.per_route:
            checks.append((self.settings.per_route[group], group))
        return self._hit(who, checks)

    def hit_anonymous(self, address: str) -> Decision:
        """Count one failed login (or unauthenticated request) from ``address``."""
        return self._hit(f"anon:{address}", [(self.settings.anonymous, "*")])

    def hit_ui_login(self, address: str) -> Decision:
        """Count one failed back-office sign-in from ``address`` (``ui_logins``)."""
        return self._hit(f"ui:{address}", [(self.settings.ui_logins, "*")])

    def blocked(self, address: str) -> Decision | None:
        """The refusal for ``address`` while its failed logins fill the ``anonymous`` limit;
        ``None`` when it may try. Counts nothing."""
        return self._blocked(self.settings.anonymous, f"anon:{address}")

    def ui_login_blocked(self, address: str) -> Decision | None:
        """The refusal for ``address`` while its failed sign-ins fill ``ui_logins``."""
        return self._blocked(self.settings.ui_logins, f"ui:{address}")

    def _blocked(self, text: str, who: str) -> Decision | None:
        for item in self._items(text):
            if not self.limiter.test(item, who, "*"):
                refused(_own_group(who))
                stats = self.limiter.get_window_stats(item, who, "*")
                reset = max(1, math.ceil(stats.reset_time - time.time()))
                return Decision(False, item.amount, 0, reset)
        return None

    def _hit(self, who: str, checks: list[tuple[str, str]]) -> Decision:
        tightest: Decision | None = None
        for text, group in checks:
            for item in self._items(text):
                ok = self.limiter.hit(item, who, group)
                stats = self.limiter.get_window_stats(item, who, group)
                reset = max(0, math.ceil(stats.reset_time - time.time()))
                decision = Decision(ok, item.amount, stats.remaining, reset)
                if not ok:
                    refused(group if group != "*" else _own_group(who))
                    return decision
                if tightest is None or decision.remaining < tightest.remaining:
                    tightest = decision
        assert tightest is not None  # every limit text holds at least one item
        return tightest

    def _items(self, text: str) -> list[RateLimitItem]:
        if text not in self._parsed:
            self._parsed[text] = parse_many(text)
        return self._parsed[text]


def _own_group(who: str) -> str:
    """The ``group`` label of a refusal by ``who``'s own limit (not a route's): ``anonymous``
    (failed logins), ``ui_logins`` (back-office sign-ins) or ``client``."""
    if who.startswith("anon:"):
        return "anonymous"
    return "ui_logins" if who.startswith("ui:") else "client"
