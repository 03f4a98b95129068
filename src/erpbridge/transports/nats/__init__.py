"""The ``nats`` connector: NATS JetStream streams, a durable pull consumer IN (acknowledged after
the hub's commit) and confirmed publishes OUT, de-duplicated by ``Nats-Msg-Id`` (nats-py).

``options`` (channel, ``source:``, ``target:``), ``server`` (the connection, the streams it
makes sure of, the error classification), ``transport`` (reading and writing).

May import: the shared transport modules (``erpbridge.transports``, ``.base``, ``.aioloop``,
``.messages``, ``.templates``), ``erpbridge.errors``. Never another connector package, the
store, the engine, the API or the CLI.
"""
