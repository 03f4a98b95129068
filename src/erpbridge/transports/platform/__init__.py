"""The ``platform`` connector: a platform that pushes events and webhooks to the hub's API and takes
the hub's changes as signed webhooks (``transport``).

May import: the shared transport modules (``erpbridge.transports``, ``.base``, ``.http``,
``.templates``), ``erpbridge.errors``. Never another connector package, the store, the engine, the
API or the CLI.
"""
