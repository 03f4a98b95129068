"""The ``sap`` system type: SAP S/4HANA. Its flow presets (``presets.yaml``, ``idoc.yaml``) and
the IDoc XML format (``idoc``) that the file connectors read and write with ``format: idoc``.

May import: the file connector's formats and writers (``erpbridge.transports.files``), the shared
transport modules. Never the store, the engine, the API or the CLI.
"""
