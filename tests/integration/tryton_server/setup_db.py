"""Prepare a fresh Tryton database for erpbridge's tests (run once by scripts/tryton.sh).

Run with the Tryton virtualenv's Python, with TRYTOND_DATABASE__URI/PATH set. What it leaves,
for the tests and `make demo-erp` (tests look these up by name, never by id):

- a company (currency EUR) the admin user belongs to, and countries DE, FR, AT, US;
- a chart of accounts (Tryton's English minimal chart) with default receivable, payable,
  revenue and expense accounts, and calendar fiscal years from five years back to ten ahead,
  each with monthly periods and an invoice sequence, so sales can be confirmed and invoices
  posted on any date a test uses;
- a product category ``Goods`` (accounting) with the revenue and expense accounts: give a
  product template ``account_category`` = that category so its sales can be invoiced;
- the customers' default payment term ``Upon Receipt`` (account_invoice also ships ``Net 30 days``
  and others);
- warehouses: Tryton's own ``WH`` and a second one, ``WH2`` (``Second Warehouse``), each with
  input, output and storage locations (for per-warehouse stock); the admin user works at ``WH``
  (its preferences put ``warehouse`` in every call's context, so sales default to ``WH``);
- price lists: ``Retail`` (formula ``unit_price``: the list price) and ``Wholesale`` (10 % off
  the list price from 10 units on), neither set as a default;
- party categories the Tryton presets use for concepts Tryton has no field for (see
  docs/parts/tryton-masterdata.md): ``Locked``, ``E-mail: newsletter``,
  ``E-mail: order updates``, ``E-mail: invoices``.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from proteus import Model
from proteus import config as pconfig
from trytond.modules.account.tests.tools import create_chart, create_fiscalyear, get_accounts
from trytond.modules.account_invoice.tests.tools import set_fiscalyear_invoice_sequences
from trytond.modules.company.tests.tools import create_company, get_company

PARTY_CATEGORIES = ("Locked", "E-mail: newsletter", "E-mail: order updates", "E-mail: invoices")


def main(database: str) -> None:
    """Set up ``database`` as the module docstring describes."""
    config = pconfig.set_trytond(database=database)
    create_company(currency="EUR", config=config)
    company = get_company(config=config)
    countries(config)
    accounts = accounting(company, config)
    payment_terms(config)
    product_category(accounts, config)
    warehouse("Second Warehouse", "WH2", config)
    default_warehouse("WH", config)
    price_lists(config)
    Category = Model.get("party.category", config=config)
    for name in PARTY_CATEGORIES:
        Category(name=name).save()


def countries(config: Any) -> None:
    """A few countries (Tryton ships none)."""
    Country = Model.get("country.country", config=config)
    for code, name in (("DE", "Germany"), ("FR", "France"), ("AT", "Austria"), ("US", "USA")):
        if not Country.find([("code", "=", code)]):
            Country(name=name, code=code).save()


def accounting(company: Any, config: Any) -> dict[str, Any]:
    """Chart of accounts and fiscal years with periods and invoice sequences."""
    create_chart(company, config=config)
    this_year = dt.date.today().year
    for year in range(this_year - 5, this_year + 11):
        start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
        fiscalyear = create_fiscalyear(company, today=(start, end), config=config)
        # create_fiscalyear widens the range around its middle; keep calendar years.
        fiscalyear.start_date, fiscalyear.end_date = start, end
        set_fiscalyear_invoice_sequences(fiscalyear, config=config)
        fiscalyear.save()
        fiscalyear.click("create_period")
    return get_accounts(company, config=config)


def payment_terms(config: Any) -> None:
    """The customers' default payment term: ``Upon Receipt`` (account_invoice ships it, with
    ``Net 30 days`` and a few more)."""
    PaymentTerm = Model.get("account.invoice.payment_term", config=config)
    (upon_receipt,) = PaymentTerm.find([("name", "=", "Upon Receipt")])
    Configuration = Model.get("account.configuration", config=config)
    configuration = Configuration(1)
    configuration.default_customer_payment_term = upon_receipt
    configuration.save()


def default_warehouse(code: str, config: Any) -> None:
    """The admin user works at warehouse ``code``: with two warehouses Tryton has no default,
    and a sale (its lines) needs one; the user's preference fills the context's
    ``warehouse``."""
    Location = Model.get("stock.location", config=config)
    User = Model.get("res.user", config=config)
    (wh,) = Location.find([("code", "=", code), ("type", "=", "warehouse")])
    (admin,) = User.find([("login", "=", "admin")])
    admin.warehouse = wh
    admin.save()


def product_category(accounts: dict[str, Any], config: Any) -> None:
    """An accounting product category, so sold products can be invoiced."""
    Category = Model.get("product.category", config=config)
    goods = Category(name="Goods", accounting=True)
    goods.account_revenue = accounts["revenue"]
    goods.account_expense = accounts["expense"]
    goods.save()


def warehouse(name: str, code: str, config: Any) -> None:
    """A warehouse with its input, output and storage locations and Tryton's lost and found."""
    Location = Model.get("stock.location", config=config)
    input_, output, storage = (
        Location(name=f"{name} {kind}", code=f"{code}-{kind[:3].upper()}", type="storage")
        for kind in ("Input", "Output", "Storage")
    )
    for location in (input_, output, storage):
        location.save()
    (lost_found,) = Location.find([("type", "=", "lost_found")], limit=1)
    wh = Location(name=name, code=code, type="warehouse")
    wh.input_location, wh.output_location, wh.storage_location = input_, output, storage
    # Inventories post their differences to it (as Tryton's own WH does).
    wh.lost_found_location = lost_found
    wh.save()
    for location in (input_, output, storage):
        location.parent = wh
        location.save()


def price_lists(config: Any) -> None:
    """``Retail`` (the list price) and ``Wholesale`` (10 % off from 10 units)."""
    PriceList = Model.get("product.price_list", config=config)
    retail = PriceList(name="Retail")
    retail.lines.new(formula="unit_price")
    retail.save()
    wholesale = PriceList(name="Wholesale")
    wholesale.lines.new(quantity=10, formula="unit_price * 0.9")
    wholesale.lines.new(formula="unit_price")
    wholesale.save()


if __name__ == "__main__":
    main(sys.argv[1])
