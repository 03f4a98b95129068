"""The back office's pages, one module per area; :data:`ROUTERS` is what ``mount_ui`` adds."""

from erpbridge.ui.pages import (
    audit,
    channels,
    clients,
    configuration,
    dashboard,
    fills,
    flows,
    ledger,
    login,
    lookup,
    problems,
    reconciliations,
    records,
    sso,
)

__all__ = ["ROUTERS"]

ROUTERS = (
    login.router,
    sso.router,
    dashboard.router,
    flows.router,
    fills.router,
    ledger.router,
    problems.router,
    records.router,
    reconciliations.router,
    channels.router,
    lookup.router,
    clients.router,
    configuration.router,
    audit.router,
)
