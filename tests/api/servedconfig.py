"""Configuration pieces the served-process tests share."""

from __future__ import annotations

__all__ = ["CUSTOMERS_IN"]

#: The IN flow of customers a platform channel ``shop`` pushes (events and webhooks), as the
#: items of a ``flows:`` list.
CUSTOMERS_IN = """
  - name: customers-in
    channel: shop
    entity: customer
    direction: in
    trigger: immediate
    mapping:
      code: {from: id, required: true}
      name: {from: name, required: true}
"""
