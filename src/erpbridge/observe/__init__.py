"""Observability: structured logs and their events, Prometheus metrics, alert notifiers.

:mod:`~erpbridge.observe.logs` and :mod:`~erpbridge.observe.events` import nothing from the
hub's layers but :mod:`erpbridge.pci`, so that the store, the engine and the API all can log
events; :mod:`~erpbridge.observe.metrics` reads the hub store at scrape time.
"""
