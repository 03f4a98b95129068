"""File connectors: ``folder`` (a local directory) and ``sftp`` (a directory on an SFTP server).

Both are one :class:`~erpbridge.transports.files.drop.DropFolder` over a
:class:`~erpbridge.transports.files.filesystems.FileSystem`: the same formats (``formats``,
``writers``), source and target options (``options``), archive/error handling and atomic writes.

May import: the shared transport modules (``erpbridge.transports``, ``.base``, ``.xmlguard``),
``erpbridge.errors``, ``erpbridge.pci``, ``erpbridge.jsondepth`` and the IDoc format of
``erpbridge.systems.sap``. Never another connector package, the store, the engine, the API or
the CLI.
"""
