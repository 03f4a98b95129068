"""The flows' activity (``store.read.dashboard``) as the dashboard and the flows page show it,
remembered for :data:`FRESH_S` seconds per reader's scope.

Every open dashboard asks again every 5 seconds; with a few operators and a wall screen that
is several identical reads a second of the same grouped queries. Remembered for two seconds,
they run at most once per two seconds per scope whatever the number of screens, and a failing
flow still shows within one refresh. Readers asking at the same moment wait for one read (the
lock) instead of each starting their own. A flow's own page and every action read afresh.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from erpbridge.api.context import Hub
from erpbridge.store.read import FlowActivity, Scope, flow_activity
from erpbridge.store.runs import now
from erpbridge.ui.auth import Operator
from erpbridge.ui.pages.common import visible_flows

__all__ = ["FRESH_S", "recent_activity"]

#: How long one read of the activity is shown again.
FRESH_S = 2.0

_lock = threading.Lock()
_Key = tuple[int, Scope, tuple[str, ...]]
_memory: dict[_Key, tuple[float, datetime, dict[str, FlowActivity]]] = {}


def recent_activity(hub: Hub, who: Operator) -> tuple[datetime, dict[str, FlowActivity]]:
    """The activity of the flows ``who`` may see, and the moment it was read (at most
    :data:`FRESH_S` ago)."""
    flows = tuple(flow.name for flow in visible_flows(hub, who))
    key = (id(hub.engine), who.scope, flows)
    with _lock:
        clock = time.monotonic()
        found = _memory.get(key)
        if found is not None and found[0] > clock:
            return found[1], found[2]
        at = now()
        with hub.engine.connect() as conn:
            activity = flow_activity(conn, who.scope, at, flows)
        for stale in [k for k, (until, _, _) in _memory.items() if until <= clock]:
            del _memory[stale]
        _memory[key] = (time.monotonic() + FRESH_S, at, activity)
        return at, activity
