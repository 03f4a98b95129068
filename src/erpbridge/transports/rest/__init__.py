"""The ``rest`` connector: JSON REST APIs read page by page and written item by item.

``transport`` (the transport), ``options`` (channel, source and target options), ``paging``
(pagination styles), ``cursor`` (the changed-since cursor), ``call`` (one templated request).

May import: the shared transport modules (``erpbridge.transports``, ``.base``, ``.http``,
``.pathparams``, ``.templates``), ``erpbridge.errors``, ``erpbridge.jsonvalues``. Never another
connector package, the store, the engine, the API or the CLI.
"""
