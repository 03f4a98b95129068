"""The MES side of the ``sql`` connector: the fold of a booking table's START/END events into
production orders (``bookings``, pure functions), used by ``structure: bookings``.

Imports nothing of erpbridge.
"""
