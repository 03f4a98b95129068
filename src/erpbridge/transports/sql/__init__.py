"""The ``sql`` and ``sqlwrite`` connectors: databases through SQLAlchemy.

``read`` (the read-only ``sql`` transport), ``write`` (the ``sqlwrite`` target), ``connect`` (URL,
session set-up, error classification, shared by both), ``cursor`` (the stored keyset cursor),
``guard`` (what a read-only ``query`` may be).

May import: the shared transport modules (``erpbridge.transports``, ``.base``, ``.window``),
``erpbridge.errors`` and the MES booking fold of ``erpbridge.systems.mes``. Never another
connector package, the store, the engine, the API or the CLI.
"""
