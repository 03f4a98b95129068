"""Generate the demo's sources in ``data/``: an MES database and a drop folder with ERP exports.

- ``data/mes.db`` (SQLite) stands for the shop floor's MES/ERP database: an **order table**
  ``production_orders`` (one row per production order, line 1) and a **booking table**
  ``bookings`` (START/END events, line 2), including one END without a START and one START that
  is never closed, so the demo can show how those are reported.
- ``data/inbox/`` stands for the folder an ERP drops its exports into: a German-style customer
  CSV (``;``, decimal comma, J/N flags, Windows-1252) with one deliberately bad row, and a price
  list JSON with list and customer-specific prices.

Everything derives from a fixed seed, so generating twice gives identical content.
``--files-only`` drops the inbox files again and leaves the database alone.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 4
# Fixed clock: the generated data never depends on the day the demo runs.
EPOCH = datetime(2024, 3, 4, 6, 0, 0)
ORDER_ROWS = 200
BOOKED_ORDERS = 150
PRODUCTS = ["25-1002", "25-1003", "25-1010", "31-2040", "31-2041", "40-0007"]
LINE1_MACHINES = ["M1", "M2", "M3", "M4"]
LINE2_MACHINES = ["P1", "P2", "P3"]


def _stamp(moment: datetime) -> str:
    # MES databases usually keep naive local time; the flow says which zone it is.
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _order_rows(rng: random.Random) -> list[tuple[object, ...]]:
    """Line 1's order table: consecutive orders per machine, the newest ones still open."""
    rows: list[tuple[object, ...]] = []
    clock = dict.fromkeys(LINE1_MACHINES, EPOCH)
    for number in range(1, ORDER_ROWS + 1):
        machine = rng.choice(LINE1_MACHINES)
        start = clock[machine] + timedelta(minutes=rng.randint(5, 50))
        end = start + timedelta(minutes=rng.randint(90, 420))
        clock[machine] = end
        # The last few orders per machine are planned (no start yet) or still running (no end).
        fate = "finished" if number <= ORDER_ROWS - 12 else rng.choice(["running", "planned"])
        start_text = None if fate == "planned" else _stamp(start)
        end_text = _stamp(end) if fate == "finished" else None
        updated = (end if fate == "finished" else start) + timedelta(seconds=rng.randint(1, 600))
        quantity = rng.choice([250, 500, 750, 1000, 1200, 2500])
        product = rng.choice(PRODUCTS)
        # Some MES clients type codes in lower case or with blanks; the flow cleans them up.
        if number % 17 == 0:
            product, machine = f" {product} ", machine.lower()
        rows.append(
            (
                number,
                f"FA-{10000 + number}",
                product,
                start_text,
                end_text,
                machine,
                quantity,
                _stamp(updated),
            )
        )
    # Two rows share the same updated_at on purpose: the cursor's tiebreaker (id) keeps both.
    last = list(rows[-1])
    last[7] = rows[-2][7]
    rows[-1] = tuple(last)
    return rows


def _booking_rows(rng: random.Random) -> list[tuple[object, ...]]:
    """Line 2's booking table: a START and an END per order, plus two anomalies."""
    events: list[tuple[datetime, str, str, str, str]] = []
    clock = dict.fromkeys(LINE2_MACHINES, EPOCH)
    for number in range(1, BOOKED_ORDERS + 1):
        code = f"AB-{20000 + number}"
        machine = rng.choice(LINE2_MACHINES)
        product = rng.choice(PRODUCTS)
        start = clock[machine] + timedelta(minutes=rng.randint(5, 40), seconds=rng.randint(0, 59))
        end = start + timedelta(minutes=rng.randint(60, 360), seconds=rng.randint(0, 59))
        clock[machine] = end
        if number == 73:
            # The START was never booked (terminal offline): an END without START.
            events.append((end, code, product, machine, "END"))
        elif number == BOOKED_ORDERS:
            # The newest order was started and never closed (still running, or forgotten).
            events.append((start, code, product, machine, "START"))
        else:
            events.append((start, code, product, machine, "START"))
            events.append((end, code, product, machine, "END"))
    events.sort(key=lambda e: (e[0], e[1], e[4] != "START"))
    return [
        (index, _stamp(moment), code, product, machine, event)
        for index, (moment, code, product, machine, event) in enumerate(events, start=1)
    ]


def write_database(path: Path, rng: random.Random) -> tuple[int, int]:
    """Create ``mes.db`` from scratch; return the row counts of both tables."""
    path.unlink(missing_ok=True)
    orders = _order_rows(rng)
    bookings = _booking_rows(rng)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(
            """
            CREATE TABLE production_orders (
                id           INTEGER PRIMARY KEY,
                order_code   TEXT NOT NULL UNIQUE,
                product_code TEXT NOT NULL,
                start        TEXT,
                "end"        TEXT,
                machine_code TEXT NOT NULL,
                quantity     NUMERIC NOT NULL,
                updated_at   TEXT NOT NULL
            );
            CREATE INDEX ix_production_orders_updated ON production_orders (updated_at, id);
            CREATE TABLE bookings (
                id           INTEGER PRIMARY KEY,
                timestamp    TEXT NOT NULL,
                order_code   TEXT NOT NULL,
                product_code TEXT NOT NULL,
                machine_code TEXT NOT NULL,
                event        TEXT NOT NULL CHECK (event IN ('START', 'END'))
            );
            CREATE INDEX ix_bookings_timestamp ON bookings (timestamp, id);
            """
        )
        with conn:
            conn.executemany(
                "INSERT INTO production_orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)", orders
            )
            conn.executemany("INSERT INTO bookings VALUES (?, ?, ?, ?, ?, ?)", bookings)
    finally:
        conn.close()
    return len(orders), len(bookings)


_CUSTOMER_HEADER = [
    "Kundennr", "Name1", "Name2", "Strasse", "Hausnr", "PLZ", "Ort", "Land", "LiefStrasse",
    "LiefPLZ", "LiefOrt", "LiefLand", "UStIdNr", "EMail", "Telefon", "Waehrung", "ZahlBed",
    "Kreditlimit", "Gesperrt", "Sperrgrund", "Newsletter", "GeaendertAm",
]  # fmt: skip

# fmt: off
_CUSTOMERS = [
    ["10001", "Müller Maschinenbau", "GmbH", "Industriestraße", "12", "70565", "Stuttgart", "D",
     "Lagerweg", "70567", "Stuttgart", "D", "DE811234567", "einkauf@mueller-mb.example",
     "+49 711 123450", "EUR", "Z14", "25.000,00", "N", "", "J", "04.03.2024 09:15"],
    ["10002", "Schäfer & Söhne", "KG", "Hauptstr.", "3a", "80331", "München", "D",
     "", "", "", "", "DE129876543", "info@schaefer-soehne.example", "+49 89 555012",
     "EUR", "Z30", "12.500,50", "N", "", "N", "01.03.2024 14:02"],
    ["10003", "Alpen Hydraulik", "AG", "Bahnhofstrasse", "7", "8001", "Zürich", "CH",
     "", "", "", "", "CHE-123.456.789", "orders@alpen-hydraulik.example", "+41 44 1234567",
     "CHF", "Z60", "40.000,00", "N", "", "J", "28.02.2024 08:30"],
    ["10004", "Donau Antriebe", "GmbH", "Am Hafen", "1", "1020", "Wien", "A",
     "Hafenstraße", "1020", "Wien", "A", "ATU12345678", "buchhaltung@donau-antriebe.example",
     "+43 1 2345678", "EUR", "SOFORT", "8.000,00", "J", "Zahlungsverzug",
     "N", "02.03.2024 17:45"],
    ["10005", "Nordlicht Fördertechnik", "", "Speicherstadt", "22", "20457", "Hamburg", "D",
     "", "", "", "", "DE998877665", "kontakt@nordlicht.example", "+49 40 998877",
     "EUR", "Z14", "1.250,75", "N", "", "J", "03.03.2024 11:11"],
    # Deliberately bad: a credit limit that is not a number. The demo shows it as rejected.
    ["10006", "Werkzeugbau Kaiser", "e.K.", "Gewerbering", "5", "90402", "Nürnberg", "D",
     "", "", "", "", "DE445566778", "kaiser@werkzeugbau.example", "+49 911 44556",
     "EUR", "Z30", "unbegrenzt", "N", "", "N", "04.03.2024 07:58"],
]
# fmt: on

# (price list, article, customer, currency, price, from quantity, valid from, valid to)
_PRICE_ROWS = [
    ("VK01", "25-1002", None, "EUR", 12.5, 1, "2024-01-01", None),
    ("VK01", "25-1002", None, "EUR", 11.9, 100, "2024-01-01", None),
    ("VK01", "25-1003", None, "EUR", 8.75, 1, "2024-01-01", None),
    ("VK01", "31-2040", None, "EUR", 149.0, 1, "2024-01-01", "2024-12-31"),
    ("KND", "25-1002", "10001", "EUR", 10.95, 1, "2024-02-01", None),
    ("KND", "31-2040", "10003", "CHF", 139.0, 1, "2024-02-15", None),
]
_PRICE_KEYS = ("list", "article", "customer", "currency", "price", "from_qty", "valid_from",
               "valid_to")  # fmt: skip


def _prices() -> dict[str, object]:
    """The ERP's price export: list prices (no customer) and customer-specific prices."""
    prices = [
        {k: v for k, v in zip(_PRICE_KEYS, row, strict=True) if v is not None or k == "customer"}
        for row in _PRICE_ROWS
    ]
    return {"exported_at": "2024-03-04T06:00:00+01:00", "prices": prices}


def write_inbox(inbox: Path) -> list[Path]:
    """Drop the ERP's export files into ``inbox`` (written aside, then renamed into place)."""
    inbox.mkdir(parents=True, exist_ok=True)
    customers = ";".join(_CUSTOMER_HEADER) + "\r\n"
    customers += "".join(";".join(row) + "\r\n" for row in _CUSTOMERS)
    prices = json.dumps(_prices(), indent=2, ensure_ascii=False) + "\n"
    written = []
    for name, data in (
        ("customers_20240304.csv", customers.encode("cp1252")),
        ("prices_20240304.json", prices.encode("utf-8")),
    ):
        # A ".part" name is ignored by the folder channel until the rename completes.
        partial = inbox / f"{name}.part"
        partial.write_bytes(data)
        partial.replace(inbox / name)
        written.append(inbox / name)
    return written


def main() -> None:
    """Parse the command line and write the data."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE / "data", help="Output folder.")
    parser.add_argument(
        "--files-only", action="store_true", help="Only drop the inbox files again."
    )
    args = parser.parse_args()
    data: Path = args.data
    data.mkdir(parents=True, exist_ok=True)
    if not args.files_only:
        orders, bookings = write_database(data / "mes.db", random.Random(SEED))  # noqa: S311 - demo data
        print(f"wrote {data / 'mes.db'}: {orders} production orders, {bookings} bookings")
    for file in write_inbox(data / "inbox"):
        print(f"dropped {file}")


if __name__ == "__main__":
    main()
