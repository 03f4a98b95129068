"""The ``sftp`` connector: the drop folder of :mod:`erpbridge.transports.files` on an SFTP server
(paramiko): ``transport`` (the transport), ``connect`` (host keys, login), ``filesystem`` (the
:class:`~erpbridge.transports.files.filesystems.FileSystem` over SFTP), ``errors`` (SFTP and
socket failures classified as retriable or fatal).

May import: its parent package :mod:`erpbridge.transports.files`, the shared transport modules,
``erpbridge.errors``. Never another connector package, the store, the engine, the API or the CLI.
"""
