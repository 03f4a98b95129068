"""The read model: what the CLI, the API (and a back office) list and show from the hub store.

Every listing is one query here, with its filters and the reader's :class:`Scope` (the channels
an API client is restricted to) applied in SQL before ``LIMIT``. Callers never query
``store.tables`` for these themselves.
"""

from erpbridge.store.read.asof import (
    FieldChange,
    RecordAsOf,
    changed_between,
    diff_payloads,
    record_as_of,
    records_as_of,
)
from erpbridge.store.read.audit import audit_page
from erpbridge.store.read.dashboard import FlowActivity, flow_activity
from erpbridge.store.read.ledger import (
    Order,
    conflict_by_id,
    conflicts_page,
    deliveries_page,
    delivery_attempts_of,
    delivery_by_id,
    rejected_by_id,
    rejected_page,
    run_by_id,
    runs_page,
)
from erpbridge.store.read.reconciliations import (
    latest_reconciliations,
    reconciliation_by_id,
    reconciliations_page,
)
from erpbridge.store.read.records import (
    FieldOrigin,
    RecordView,
    Version,
    field_origins,
    is_deleted,
    record_view,
    records_page,
)
from erpbridge.store.read.scope import EVERYTHING, Scope
from erpbridge.store.read.transitions import record_transitions, visible_record

__all__ = [
    "EVERYTHING",
    "FieldChange",
    "FieldOrigin",
    "FlowActivity",
    "Order",
    "RecordAsOf",
    "RecordView",
    "Scope",
    "Version",
    "audit_page",
    "changed_between",
    "conflict_by_id",
    "conflicts_page",
    "deliveries_page",
    "delivery_attempts_of",
    "delivery_by_id",
    "diff_payloads",
    "field_origins",
    "flow_activity",
    "is_deleted",
    "latest_reconciliations",
    "reconciliation_by_id",
    "reconciliations_page",
    "record_as_of",
    "record_transitions",
    "record_view",
    "records_as_of",
    "records_page",
    "rejected_by_id",
    "rejected_page",
    "run_by_id",
    "runs_page",
    "visible_record",
]
