"""The ``soap`` connector: a SOAP web service described by a WSDL (zeep).

``transport`` (the transport), ``options`` (channel and flow options), ``values`` (templated
parameters and answers to and from plain values), ``errors`` (faults classified).

May import: the shared transport modules (``erpbridge.transports``, ``.base``, ``.templates``,
``.window``), ``erpbridge.errors``. Never another connector package, the store, the engine, the
API or the CLI.
"""
