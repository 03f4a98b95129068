"""The ``amqp`` connector: RabbitMQ (AMQP 0-9-1) queues IN and exchanges OUT, with publisher
confirms and acknowledgement after the hub's commit (aio-pika).

``options`` (channel, ``source:``, ``target:``), ``broker`` (the connection and the error
classification), ``transport`` (reading and writing).

May import: the shared transport modules (``erpbridge.transports``, ``.base``, ``.aioloop``,
``.messages``, ``.templates``), ``erpbridge.errors``. Never another connector package, the
store, the engine, the API or the CLI.
"""
