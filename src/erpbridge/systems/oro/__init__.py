"""The ``oro`` system type: OroCommerce's back-office API, which speaks JSON:API.

``document`` (JSON:API documents: resource objects flattened to records and built from them,
``errors`` objects made readable), ``options`` (the ``jsonapi`` transport's source and target
blocks), ``transport`` (the ``jsonapi`` transport: the REST transport with JSON:API bodies),
``presets.yaml`` (the flows of the MDS integration: customers with their customer users, orders
with their line items, prices, inventory levels, order statuses).

The ``jsonapi`` transport knows JSON:API, not Oro: Oro's own conventions (``/admin/api/``,
``filter[updatedAt][gte]``, ``/oauth2-token``) are the system type's defaults and presets.

May import: the REST connector (``erpbridge.transports.rest``), the shared transport modules,
``erpbridge.errors``, ``erpbridge.jsonvalues``. Never the store, the engine, the API or the CLI.
"""
