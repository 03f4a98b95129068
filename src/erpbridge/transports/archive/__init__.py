"""The ``archive`` connector: the document archive that keeps every document an OUT flow
delivers (``erpbridge.documents``) with its metadata and retention period (``transport``).

May import: the shared transport modules (``erpbridge.transports``, ``.base``),
``erpbridge.errors``. Never another connector package, the store, the engine, the API or the CLI.
"""
