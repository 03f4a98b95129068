"""The ``odata`` connector: OData V4 and V2 services (SAP Gateway, SAP CAP, Dynamics) over HTTP.

``transport`` (the transport), ``client`` (requests, paging, batches), ``edm`` (``$metadata``),
``query`` (``$filter`` and key literals), ``write`` (create/update of entities).

May import: the shared transport modules (``erpbridge.transports``, ``.base``, ``.http``,
``.xmlguard``), ``erpbridge.errors``, ``erpbridge.jsonvalues``. Never another connector package,
the store, the engine, the API or the CLI.
"""
