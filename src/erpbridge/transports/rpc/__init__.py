"""The ``rpc`` connector: Tryton and Odoo over JSON-RPC or XML-RPC.

``transport`` (the transport), ``session`` (the dialect-neutral session protocol), ``tryton`` and
``odoo`` (the two dialects), ``wire`` (JSON-RPC/XML-RPC encoding), ``values`` (record values to and
from the ERP, related records), ``related`` (find-or-create of related records), ``firstmatch``
(lookups), ``call`` (templated method calls).

May import: the shared transport modules (``erpbridge.transports``, ``.base``, ``.http``,
``.templates``, ``.xmlguard``), ``erpbridge.errors``. Never another connector package, the store,
the engine, the API or the CLI.
"""
