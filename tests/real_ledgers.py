"""Ledgers in the shapes of real exports that this project's generator did not make.

Each function writes one ledger to the path it is given and returns the path. Merchants,
spellings, categories and rhythms are written here, independently of
`pyfunc_models.generator` and its catalogue, so the tests built on them meet data the models
were not designed around. Everything is seeded: the same call writes the same bytes.

The ledgers are learnable the way real ones are (a merchant always lands in the same category,
its amounts vary around its own median, bills come on their day) and noisy the way real ones
are (spellings and store numbers vary, amounts are skewed, a few rows are odd), but nothing is
tuned to any model.

    titans_export          the real Titans Finance export: 127 rows, 123 days, 22 categories
    titans_sample_export   the Titans sample export: debit/credit, completed, 'Food & Dining'
    bank_style             a bank's export: 'Posted Date', signed amounts, MEMO-style merchants, a year
    personal_finance       another tool's history: lower-case categories, extra columns, ISO dates
    tiny                   four months with an all-empty column and whole-number amounts
    uk_bank                a UK bank's current account: 'Paid out' and 'Paid in' columns, £, day-first dates
    german_bank            a German bank's export: semicolons, German header, dates with dots, decimal commas

`SEPARATORS` says how a user reads each file with pandas (`pd.read_csv(file, sep=...)`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

# The real export's header, written out here: a fact about the export, not about this project's config.
TITANS_HEADER = ("Date", "Type", "Description", "Amount", "Category", "Payment Method", "Status", "Reference",
                 "Receipt URL")


@dataclass(frozen=True)
class Merchant:
    """How one merchant shows up in a ledger: its spellings, its category and what it usually costs."""

    spellings: tuple  # one is chosen per row; "{n}" becomes a few random digits (terminal, check, trip ids)
    category: str
    median: float  # typical amount, positive
    spread: float = 0.25  # standard deviation of log(amount): how much one visit differs from the next
    method: str = ""  # payment method, where the export has one


def _days(start: date, end: date) -> list:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _describe(rng, merchant: Merchant) -> str:
    spelling = merchant.spellings[rng.integers(len(merchant.spellings))]
    while "{n}" in spelling:
        spelling = spelling.replace("{n}", str(rng.integers(1000, 99999)), 1)
    return spelling


def _amount(rng, merchant: Merchant) -> float:
    return round(float(merchant.median * np.exp(rng.normal(0.0, merchant.spread))), 2)


def _some_days(rng, start: date, end: date, count: int, weekday_weights=(1, 1, 1, 1, 1, 1, 1)) -> list:
    """`count` days between start and end, more often on the heavier weekdays (Monday first)."""
    days = _days(start, end)
    weights = np.array([weekday_weights[d.weekday()] for d in days], dtype=float)
    picked = rng.choice(len(days), size=count, replace=count > len(days), p=weights / weights.sum())
    return [days[i] for i in picked]


def _monthly(start: date, end: date, day_of_month: int) -> list:
    return [d for d in _days(start, end) if d.day == day_of_month]


def _every(first: date, end: date, step: int) -> list:
    return [first + timedelta(days=i) for i in range(0, (end - first).days + 1, step)]


def _scheduled_rows(rng, start: date, end: date, plans, weekday_weights, months: int | None = None,
                    every_from: date | None = None) -> list:
    """(date, kind, merchant) rows from plans of (kind, ((merchant, when), ...)), sorted, the first and last on the
    period's first and last days. `when` is a count of random days, "monthly:<day>" (at most `months` of them),
    or "every:<days>" from `every_from`."""
    rows = []
    for kind, plan in plans:
        for merchant, when in plan:
            if isinstance(when, str) and when.startswith("monthly"):
                days = _monthly(start, end, int(when.split(":")[1]))[:months]
            elif isinstance(when, str):
                days = _every(every_from, end, int(when.split(":")[1]))
            else:
                days = _some_days(rng, start, end, when, weekday_weights=weekday_weights)
            rows += [(day, kind, merchant) for day in days]
    rows.sort(key=lambda row: (row[0], row[1], row[2].spellings[0]))
    rows[0], rows[-1] = (start, *rows[0][1:]), (end, *rows[-1][1:])  # the export's period, first to last day
    return rows


def _write(path, header, rows, delimiter: str = ",") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _money(value: float) -> str:
    return f"{value:.2f}"


# --- the real Titans Finance export ------------------------------------------------------------------

# A freelancer's ledger kept in the Titans app: (merchant, rows over the four months). Recurring bills
# are placed on their day below; the rest fall on random days.
_TITANS_EXPENSES = (
    (Merchant(("ÉPICERIE MÜLLER", "Epicerie Müller - weekly shop"), "Groceries", 54.0, 0.35, "credit_card"), 8),
    (Merchant(("Whole Foods Market", "WHOLE FOODS MKT"), "Groceries", 71.0, 0.4, "credit_card"), 6),
    (Merchant(("Lidl", "LIDL DIENSTLEISTUNG"), "Groceries", 32.0, 0.35, "other"), 4),
    (Merchant(("CAFÉ DE FLORE", "Café de Flore - coffee"), "Meals & Entertainment", 13.5, 0.3, "other"), 6),
    (Merchant(("Lunch - Dishoom", "Dishoom King's Cross"), "Meals & Entertainment", 31.0, 0.3, "credit_card"), 4),
    (Merchant(("東京ラーメン 一蘭",), "Meals & Entertainment", 17.0, 0.2, "credit_card"), 3),
    (Merchant(("Кафе «Пушкин»",), "Meals & Entertainment", 46.0, 0.25, "credit_card"), 2),
    (Merchant(("مطعم الشام",), "Meals & Entertainment", 24.0, 0.2, "other"), 1),
    (Merchant(("Figma subscription",), "Software", 15.0, 0.0, "credit_card"), "monthly:9"),
    (Merchant(("GitHub Copilot",), "Software", 10.0, 0.0, "credit_card"), "monthly:14"),
    (Merchant(("JetBrains All Products licence",), "Software", 249.0, 0.0, "credit_card"), 1),
    (Merchant(("AWS invoice", "Amazon Web Services"), "Hosting", 86.0, 0.3, "credit_card"), "monthly:3"),
    (Merchant(("DigitalOcean droplets",), "Hosting", 24.0, 0.1, "credit_card"), "monthly:1"),
    (Merchant(("Office rent - Unit 4B",), "Rent", 1200.0, 0.0, "bank_transfer"), "monthly:1"),
    (Merchant(("Electricity - Octopus Energy",), "Utilities", 94.0, 0.2, "bank_transfer"), "monthly:20"),
    (Merchant(("Vodafone mobile",), "Phone & Internet", 35.0, 0.05, "credit_card"), "monthly:12"),
    (Merchant(("Fibre broadband - Init7",), "Phone & Internet", 45.0, 0.0, "bank_transfer"), "monthly:25"),
    (Merchant(("Shell station", "SHELL 4471"), "Fuel", 61.0, 0.3, "credit_card"), 5),
    (Merchant(("BP Connect", "Aral Tankstelle"), "Fuel", 58.0, 0.3, "credit_card"), 4),
    (Merchant(("Uber trip", "UBER *TRIP"), "Transport", 17.0, 0.45, "credit_card"), 5),
    (Merchant(("Train ticket - DB", "Deutsche Bahn ticket"), "Transport", 54.0, 0.35, "credit_card"), 2),
    (Merchant(("Flight LH 2041 Berlin", "Lufthansa booking"), "Travel", 215.0, 0.3, "credit_card"), 2),
    (Merchant(("Hotel Adlon Kempinski", "Hôtel Lutetia"), "Travel", 185.0, 0.25, "credit_card"), 2),
    (Merchant(("Müller Bürobedarf", "Staples"), "Office Supplies", 27.0, 0.5, "credit_card"), 5),
    (Merchant(("Monthly account fee",), "Bank Fees", 9.5, 0.0, "other"), "monthly:28"),
    (Merchant(("Professional liability insurance - Hiscox",), "Insurance", 84.0, 0.0, "bank_transfer"), 2),
    (Merchant(("Netflix",), "Subscriptions", 15.99, 0.0, "credit_card"), "monthly:17"),
    (Merchant(("Spotify Premium",), "Subscriptions", 10.99, 0.0, "credit_card"), "monthly:22"),
    (Merchant(("Google Ads", "LinkedIn Ads campaign"), "Advertising", 110.0, 0.3, "credit_card"), 2),
    (Merchant(("Accountant - Schmidt & Partner",), "Professional Services", 350.0, 0.1, "bank_transfer"), 2),
    (Merchant(("Udemy course - Docker",), "Education", 19.99, 0.0, "credit_card"), 1),
    (Merchant(("Client gift - flowers",), "Gifts", 45.0, 0.0, "other"), 1),
    (Merchant(("VAT payment Q1",), "Taxes", 1840.0, 0.0, "bank_transfer"), 1),
    (Merchant(("Notary fee",), "Legal", 150.0, 0.0, "bank_transfer"), 1),
    (Merchant(("Apple Store - USB-C charger", "Dell U2723QE monitor"), "Equipment", 160.0, 0.7, "credit_card"), 2),
    (Merchant(("Apotheke am Markt",), "Health", 18.4, 0.0, "other"), 1),
)
_TITANS_INCOME = (
    (Merchant(("Client payment - Northwind Studio",), "", 3200.0, 0.0), "monthly:28"),
    (Merchant(("Invoice - Brightline GmbH", "Invoice - Kestrel Labs", "Invoice - Oakridge & Co"), "", 980.0, 0.5), 5),
    (Merchant(("Refund - Müller Bürobedarf",), "", 27.0, 0.0), 1),
)


def titans_export(path, seed: int = 12) -> Path:
    """The real Titans Finance export: 127 rows from 2024-01-02 to 2024-05-03 (123 days), 22 expense
    categories of which five have one row and four have two, positive amounts with `Type` Income/Expense,
    Category and Payment Method empty on income rows, Status paid/received and three `written_off`,
    Payment Method credit_card/bank_transfer/other and the typo `credit_car`, Reference empty or a pure
    number, Receipt URL empty in the whole file, a few merchants with accents or in other scripts."""
    rng = np.random.default_rng(seed)
    start, end = date(2024, 1, 2), date(2024, 5, 3)
    rows = _scheduled_rows(rng, start, end, (("Expense", _TITANS_EXPENSES), ("Income", _TITANS_INCOME)),
                           weekday_weights=(3, 3, 3, 3, 4, 2, 1), months=4)
    assert len(rows) == 127, len(rows)

    invoice, transfer = 1040, 88400
    written_off = {i for i, row in enumerate(rows) if row[2].spellings[0].startswith("Invoice")}
    written_off = set(sorted(written_off)[1:5:2]) | {next(i for i, row in enumerate(rows)
                                                         if row[2].category == "Advertising")}
    card_rows = [i for i, row in enumerate(rows) if row[2].method == "credit_card"]
    typos = set(rng.choice(card_rows, size=3, replace=False).tolist())
    lines = []
    for i, (day, kind, merchant) in enumerate(rows):
        income = kind == "Income"
        status = "written_off" if i in written_off else "received" if income else "paid"
        method = "" if income else "credit_car" if i in typos else merchant.method
        reference = ""
        if income and merchant.spellings[0].startswith("Invoice"):
            invoice += 1
            reference = str(invoice)
        elif method == "bank_transfer":
            transfer += int(rng.integers(3, 40))
            reference = str(transfer)
        lines.append((day.isoformat(), kind, _describe(rng, merchant), _money(_amount(rng, merchant)),
                      merchant.category, method, status, reference, ""))
    return _write(path, TITANS_HEADER, lines)


# --- the Titans sample export ------------------------------------------------------------------------

_SAMPLE_DEBITS = (
    (Merchant(("Starbucks", "Starbucks Coffee #{n}"), "Food & Dining", 6.4, 0.25, "debit_card"), 34),
    (Merchant(("Chipotle Mexican Grill",), "Food & Dining", 13.8, 0.2, "credit_card"), 10),
    (Merchant(("Whole Foods Market", "Trader Joe's"), "Food & Dining", 78.0, 0.35, "debit_card"), 16),
    (Merchant(("Uber", "Lyft Ride"), "Transportation", 19.0, 0.45, "credit_card"), 14),
    (Merchant(("Shell Gas Station", "Chevron"), "Transportation", 48.0, 0.25, "credit_card"), 9),
    (Merchant(("Amazon.com", "AMAZON MKTPLACE PMTS"), "Shopping", 42.0, 0.8, "credit_card"), 14),
    (Merchant(("Target", "Best Buy"), "Shopping", 65.0, 0.6, "debit_card"), 6),
    (Merchant(("Netflix",), "Entertainment", 15.49, 0.0, "credit_card"), "monthly:5"),
    (Merchant(("AMC Theatres", "Spotify"), "Entertainment", 16.0, 0.3, "credit_card"), 5),
    (Merchant(("AT&T Wireless",), "Bills & Utilities", 85.0, 0.02, "bank_transfer"), "monthly:18"),
    (Merchant(("Con Edison",), "Bills & Utilities", 112.0, 0.2, "bank_transfer"), "monthly:22"),
    (Merchant(("Rent Payment - Parkview Apartments",), "Bills & Utilities", 2150.0, 0.0, "bank_transfer"),
     "monthly:1"),
    (Merchant(("Planet Fitness",), "Health & Fitness", 24.99, 0.0, "debit_card"), "monthly:10"),
    (Merchant(("CVS Pharmacy", "Walgreens"), "Health & Fitness", 21.0, 0.5, "cash"), 5),
    (Merchant(("ATM Withdrawal - Chase", "ATM Withdrawal"), "Cash & ATM", 80.0, 0.3, "atm"), 5),
)
_SAMPLE_CREDITS = (
    (Merchant(("Payroll Deposit - TechCorp Inc",), "Income", 3450.0, 0.0, "direct_deposit"), "every:14"),
    (Merchant(("Freelance Payment - Upwork",), "Income", 620.0, 0.4, "bank_transfer"), 2),
)


def titans_sample_export(path, seed: int = 21) -> Path:
    """The Titans *sample* export: the same header as the real export, Type debit/credit, Payment Method
    credit_card/debit_card/bank_transfer/cash/direct_deposit/atm, Status completed, categories such as
    'Food & Dining' and 'Income'; four months (2024-02-01 to 2024-05-31), Reference a transaction
    number on every row, a receipt URL on some shopping rows."""
    rng = np.random.default_rng(seed)
    start, end = date(2024, 2, 1), date(2024, 5, 31)
    rows = _scheduled_rows(rng, start, end, (("debit", _SAMPLE_DEBITS), ("credit", _SAMPLE_CREDITS)),
                           weekday_weights=(2, 2, 2, 2, 3, 4, 3), every_from=date(2024, 2, 2))  # every other Friday
    lines = []
    for i, (day, kind, merchant) in enumerate(rows):
        receipt = ""
        if merchant.category == "Shopping" and rng.random() < 0.4:
            receipt = f"https://receipts.titans.example/r/{rng.integers(16 ** 7, 16 ** 8):08x}.pdf"
        lines.append((day.isoformat(), kind, _describe(rng, merchant), _money(_amount(rng, merchant)),
                      merchant.category, merchant.method, "completed", str(7_310_000 + 17 * i), receipt))
    return _write(path, TITANS_HEADER, lines)


# --- a bank-style export -------------------------------------------------------------------------------

BANK_HEADER = ("Posted Date", "Transaction Type", "Memo", "Amount", "Category", "Status")
# (merchant, visits per week) for everyday spending; bills and pay are scheduled in `bank_style`.
_BANK_EVERYDAY = (
    (Merchant(("POS PURCHASE SAFEWAY #1711 SUNNYVALE CA", "POS PURCHASE SAFEWAY #0985 SAN JOSE CA",
               "SAFEWAY STORE 1711 SUNNYVALE CA"), "Groceries", 92.0, 0.4), 1.2),
    (Merchant(("POS PURCHASE TRADER JOE'S #127 SAN JOSE CA", "TRADER JOE S #127 QPS SAN JOSE CA"),
              "Groceries", 48.0, 0.35), 0.8),
    (Merchant(("SQ *SUNNYVALE FARMERS MKT Sunnyvale CA",), "Groceries", 26.0, 0.4), 0.5),
    (Merchant(("SQ *BLUE BOTTLE COFFEE Oakland CA", "SQ *BLUE BOTTLE COFFEE San Jose CA"), "Coffee Shops", 6.75,
              0.2), 1.8),
    (Merchant(("SQ *CAFÉ MADELEINE San Jose CA", "SQ *CAFE MADELEINE San Jose CA"), "Coffee Shops", 8.2, 0.25),
     1.0),
    (Merchant(("SHELL OIL 57444 SAN JOSE CA", "SHELL OIL 57561 SUNNYVALE CA"), "Gas", 54.0, 0.25), 0.6),
    (Merchant(("CHEVRON 0207812 CUPERTINO CA",), "Gas", 58.0, 0.25), 0.35),
    (Merchant(("POS PURCHASE CHIPOTLE 1845 SAN JOSE CA", "CHIPOTLE ONLINE 1845"), "Restaurants", 15.5, 0.25), 0.7),
    (Merchant(("SQ *TAQUERIA EL GÜERO San Jose CA", "SQ *TAQUERIA EL GUERO San Jose CA"), "Restaurants", 22.0,
              0.3), 0.4),
    (Merchant(("DOORDASH*THAI BASIL", "DOORDASH*PHO HOA", "DOORDASH*SUSHI ZEN"), "Restaurants", 38.0, 0.35), 0.4),
    (Merchant(("AMAZON.COM*{n} AMZN.COM/BILL WA", "AMZN Mktp US*{n}"), "Shopping", 36.0, 0.8), 0.8),
    (Merchant(("POS PURCHASE TARGET 00012734 SAN JOSE CA",), "Shopping", 58.0, 0.6), 0.3),
    (Merchant(("UBER *TRIP HELP.UBER.COM", "LYFT *RIDE {n}"), "Transportation", 21.0, 0.5), 0.5),
    (Merchant(("CALTRAIN TVM SAN JOSE DIRIDON", "SJC PARKING GARAGE"), "Transportation", 9.5, 0.4), 0.35),
    (Merchant(("CVS/PHARMACY #09921 SAN JOSE CA", "WALGREENS #4437 SUNNYVALE CA"), "Pharmacy", 24.0, 0.5), 0.3),
    (Merchant(("ZELLE PAYMENT TO J MARTINEZ {n}", "VENMO PAYMENT {n}"), "Transfers", 60.0, 0.7), 0.35),
)
_BANK_RARE = (  # (merchant, rows in the year)
    (Merchant(("POS PURCHASE PETCO 1450 SAN JOSE CA", "BANFIELD PET HOSPITAL"), "Pet Care", 75.0, 0.5), 3),
    (Merchant(("THE HOME DEPOT #0644 SAN JOSE CA",), "Home Improvement", 140.0, 0.6), 2),
    (Merchant(("RED CROSS DONATION",), "Charity", 50.0, 0.0), 1),
)


def bank_style(path, seed: int = 33) -> Path:
    """A bank's export of a year (2023-05-01 to 2024-04-30, 366 days), about 700 rows and 17 categories
    (three of them with one to three rows), unlabelled: `Posted Date,Transaction Type,Memo,Amount,
    Category,Status` with MM/DD/YYYY dates, DEBIT/CREDIT, signed amounts (debits negative), Status posted,
    pending in the last days and a few `in review`; payroll every other Friday, rent on the 1st, bills
    and subscriptions on their day, groceries and coffee each week."""
    rng = np.random.default_rng(seed)
    start, end = date(2023, 5, 1), date(2024, 4, 30)
    weeks = ((end - start).days + 1) / 7
    rows = []  # (date, merchant, income?)
    bills = (
        (Merchant(("ACH DEBIT PARKSIDE PROPERTY MGMT RENT",), "Rent", 2450.0, 0.0), 1),
        (Merchant(("ACH DEBIT PG&E WEB ONLINE {n}",), "Utilities", 118.0, 0.3), 14),
        (Merchant(("ACH DEBIT SJ WATER CO AUTOPAY",), "Utilities", 64.0, 0.2), 21),
        (Merchant(("ACH DEBIT COMCAST XFINITY {n}",), "Utilities", 89.99, 0.0), 8),
        (Merchant(("ACH DEBIT GEICO AUTO INS PPD",), "Insurance", 132.4, 0.0), 5),
        (Merchant(("NETFLIX.COM 866-579-7172 CA",), "Subscriptions", 15.49, 0.0), 12),
        (Merchant(("SPOTIFY USA 877-778-1161",), "Subscriptions", 10.99, 0.0), 19),
        (Merchant(("APPLE.COM/BILL 866-712-7753 CA",), "Subscriptions", 2.99, 0.0), 23),
        (Merchant(("24 HOUR FITNESS USA 800-432-6348",), "Subscriptions", 44.99, 0.0), 27),
    )
    for merchant, day_of_month in bills:
        rows += [(day, merchant, False) for day in _monthly(start, end, day_of_month)]
    payroll = Merchant(("PAYROLL DIRECT DEP ACME ROBOTICS INC PPD",), "Payroll", 3285.0, 0.02)
    rows += [(day, payroll, True) for day in _every(date(2023, 5, 5), end, 14)]
    interest = Merchant(("INTEREST PAYMENT",), "Interest", 4.1, 0.3)
    rows += [(day, interest, True) for day in _monthly(start, end, 28)]
    refund = Merchant(("AMAZON.COM REFUND AMZN.COM/BILL WA", "RETURN TARGET 00012734"), "Refunds", 31.0, 0.6)
    rows += [(day, refund, True) for day in _some_days(rng, start, end, 5)]
    for merchant, per_week in _BANK_EVERYDAY:
        count = int(rng.poisson(per_week * weeks))
        weekday_weights = (3, 3, 3, 3, 3, 1, 1) if merchant.category == "Coffee Shops" else (2, 2, 2, 2, 3, 4, 3)
        rows += [(day, merchant, False) for day in _some_days(rng, start, end, count, weekday_weights)]
    for merchant, count in _BANK_RARE:
        rows += [(day, merchant, False) for day in _some_days(rng, start, end, count)]
    rows.sort(key=lambda row: (row[0], row[1].spellings[0]))

    in_review = set(rng.choice(len(rows) - 20, size=4, replace=False).tolist())
    lines = []
    for i, (day, merchant, income) in enumerate(rows):
        status = "in review" if i in in_review else "pending" if (end - day).days < 3 else "posted"
        amount = _amount(rng, merchant)
        lines.append((day.strftime("%m/%d/%Y"), "CREDIT" if income else "DEBIT", _describe(rng, merchant),
                      _money(amount if income else -amount), merchant.category, status))
    return _write(path, BANK_HEADER, lines)


# --- a personal-finance history written by another tool -----------------------------------------------

PERSONAL_HEADER = ("date", "description", "amount", "category", "account", "balance", "notes")
_PERSONAL_EVERYDAY = (  # (merchant, rows per month)
    (Merchant(("Albert Heijn", "AH to go Centraal", "Albert Heijn 1024"), "groceries", 38.0, 0.45, "checking"), 9),
    (Merchant(("Lidl Amsterdam", "LIDL"), "groceries", 27.0, 0.4, "checking"), 4),
    (Merchant(("Bäckerei Schmidt", "Bakkerij Vlaamsch Broodhuys"), "groceries", 7.5, 0.3, "cash"), 3),
    (Merchant(("Café Central", "Café de Jaren", "Coffee Company"), "eating out", 9.0, 0.4, "credit card"), 5),
    (Merchant(("Thuisbezorgd.nl", "Deliveroo"), "eating out", 27.0, 0.3, "credit card"), 2),
    (Merchant(("Restaurant Moeders", "Brasserie Ambassade"), "eating out", 54.0, 0.3, "credit card"), 1.2),
    (Merchant(("NS Reizen", "GVB Amsterdam OV-chipkaart"), "public transport", 14.0, 0.6, "checking"), 5),
    (Merchant(("Deutsche Bahn", "NS International"), "travel", 89.0, 0.4, "credit card"), 0.4),
    (Merchant(("bol.com", "Coolblue"), "shopping", 46.0, 0.8, "credit card"), 1.5),
    (Merchant(("HEMA", "Action"), "household", 14.0, 0.5, "checking"), 2),
    (Merchant(("Uniqlo", "Zara"), "clothes", 49.0, 0.4, "credit card"), 0.7),
    (Merchant(("Etos", "Kruidvat"), "health", 12.0, 0.5, "checking"), 1.3),
    (Merchant(("Boekhandel Athenaeum", "Waterstones"), "books", 22.0, 0.3, "credit card"), 0.6),
)


def personal_finance(path, seed: int = 44) -> Path:
    """A personal-finance history kept in another tool, 2023-03-01 to 2023-12-31 (306 days), about 400 rows:
    `date,description,amount,category,account,balance,notes` with ISO dates, negative expenses and positive
    income, no type column, categories in lower case with spaces, and three columns this project has never
    heard of (account, a running balance, free-text notes)."""
    rng = np.random.default_rng(seed)
    start, end = date(2023, 3, 1), date(2023, 12, 31)
    months = 10
    rows = []  # (date, merchant, income?)
    scheduled = (
        (Merchant(("Salaris Stichting Zorggroep",), "salary", 2890.0, 0.01, "checking"), 24, True),
        (Merchant(("Huur Rochdale woning",), "rent", 1085.0, 0.0, "checking"), 1, False),
        (Merchant(("Vattenfall energie", "Vattenfall"), "utilities", 138.0, 0.05, "checking"), 6, False),
        (Merchant(("Ziggo internet",), "utilities", 55.0, 0.0, "checking"), 12, False),
        (Merchant(("KPN Mobiel abonnement",), "phone bill", 23.5, 0.0, "checking"), 15, False),
        (Merchant(("Basic-Fit",), "gym", 29.99, 0.0, "checking"), 3, False),
        (Merchant(("Zilveren Kruis zorgverzekering",), "insurance", 142.0, 0.0, "checking"), 1, False),
    )
    for merchant, day_of_month, income in scheduled:
        rows += [(day, merchant, income) for day in _monthly(start, end, day_of_month)]
    for merchant, per_month in _PERSONAL_EVERYDAY:
        count = int(rng.poisson(per_month * months))
        rows += [(day, merchant, False) for day in _some_days(rng, start, end, count, (2, 2, 2, 2, 3, 4, 2))]
    for merchant, count, income in (
        (Merchant(("Tikkie van Sanne", "Tikkie terugbetaling"), "reimbursements", 21.0, 0.5, "checking"), 6, True),
        (Merchant(("Belastingdienst teruggave",), "tax refund", 412.0, 0.0, "checking"), 1, True),
        (Merchant(("Bloemenkiosk Leidseplein",), "gifts", 25.0, 0.2, "cash"), 2, False),
        (Merchant(("KWF Kankerbestrijding",), "charity", 15.0, 0.0, "checking"), 1, False),
    ):
        rows += [(day, merchant, income) for day in _some_days(rng, start, end, count)]
    rows.sort(key=lambda row: (row[0], row[1].spellings[0]))
    rows[-1] = (end, *rows[-1][1:])

    notes = ("", "", "", "", "", "", "split with Sanne", "work trip", "reimbursable", "birthday", "?")
    balance, lines = 2400.0, []
    for day, merchant, income in rows:
        amount = _amount(rng, merchant) * (1 if income else -1)
        balance = round(balance + amount, 2)
        lines.append((day.isoformat(), _describe(rng, merchant), _money(amount), merchant.category, merchant.method,
                      _money(balance), notes[rng.integers(len(notes))]))
    return _write(path, PERSONAL_HEADER, lines)


# --- a tiny ledger -----------------------------------------------------------------------------------

TINY_HEADER = ("Date", "Type", "Description", "Amount", "Category", "Payment Method", "Status", "Reference")
_TINY_EXPENSES = (  # (merchant, rows over the four months)
    (Merchant(("Boulangerie Lefèvre", "BOULANGERIE LEFEVRE"), "food", 9.0, 0.3), 26),
    (Merchant(("Carrefour Market", "Carrefour City"), "food", 61.0, 0.35), 22),
    (Merchant(("Crêperie du Port",), "restaurants", 28.0, 0.25), 9),
    (Merchant(("Brasserie Mère Catherine", "Le Comptoir Général"), "restaurants", 46.0, 0.3), 6),
    (Merchant(("TotalEnergies Relais", "Esso Express"), "car", 67.0, 0.2), 12),
    (Merchant(("Péage APRR", "Parking Indigo"), "car", 14.0, 0.5), 9),
    (Merchant(("SNCF Connect", "RATP Navigo"), "transport", 39.0, 0.4), 12),
    (Merchant(("Pharmacie Saint-Éloi",), "health", 16.0, 0.5), 5),
    (Merchant(("Fnac", "Decathlon"), "leisure", 52.0, 0.6), 8),
    (Merchant(("Serrurier Dupré - dépannage",), "home repairs", 180.0, 0.0), 1),
)


def tiny(path, seed: int = 55) -> Path:
    """About 130 rows from 2024-06-01 to 2024-09-30 (122 days): the Titans header without Receipt URL, an
    all-empty Payment Method column, whole-number amounts, Type expense/income in lower case, Status
    'cleared' with a few values listed nowhere ('on hold', 'disputed'), one category with a single row,
    income rows without a category, accented merchants, a reference on the rows paid by cheque."""
    rng = np.random.default_rng(seed)
    start, end = date(2024, 6, 1), date(2024, 9, 30)
    rows = []  # (date, merchant, kind)
    for merchant, count in _TINY_EXPENSES:
        rows += [(day, merchant, "expense") for day in _some_days(rng, start, end, count)]
    for merchant, day_of_month, kind in (
        (Merchant(("Loyer appartement", "Loyer - SCI Les Tilleuls"), "housing", 890.0, 0.0), 5, "expense"),
        (Merchant(("EDF électricité",), "utilities", 74.0, 0.15), 12, "expense"),
        (Merchant(("Free Mobile forfait",), "utilities", 20.0, 0.0), 8, "expense"),
        (Merchant(("Salaire Atelier Morel",), "", 2350.0, 0.02), 28, "income"),
    ):
        rows += [(day, merchant, kind) for day in _monthly(start, end, day_of_month)]
    rows += [(day, Merchant(("Remboursement CPAM",), "", 23.0, 0.3), "income")
             for day in _some_days(rng, start, end, 3)]
    rows.sort(key=lambda row: (row[0], row[1].spellings[0]))
    rows[0] = (start, *rows[0][1:])
    rows[-1] = (end, *rows[-1][1:])

    odd = rng.choice(len(rows) - 1, size=4, replace=False).tolist()
    odd_status = dict(zip(odd, ("on hold", "on hold", "disputed", "on hold")))
    cheque = 3117
    lines = []
    for i, (day, merchant, kind) in enumerate(rows):
        reference = ""
        if merchant.category in ("housing", "home repairs"):
            cheque += 1
            reference = f"CHQ {cheque}"
        lines.append((day.isoformat(), kind, _describe(rng, merchant), str(max(1, round(_amount(rng, merchant)))),
                      merchant.category, "", odd_status.get(i, "cleared"), reference))
    return _write(path, TINY_HEADER, lines)


# --- a UK bank's current account: money out and money in in two columns -------------------------------------

UK_BANK_HEADER = ("Date", "Transaction type", "Description", "Paid out", "Paid in", "Balance")
_UK_EVERYDAY = (  # (merchant, transaction type, rows over the half year)
    (Merchant(("TESCO STORES 3217", "TESCO EXPRESS 2041"), "groceries", 34.0, 0.45), "Contactless payment", 40),
    (Merchant(("SAINSBURYS S/MKTS",), "groceries", 52.0, 0.4), "Visa purchase", 18),
    (Merchant(("PRET A MANGER", "COSTA COFFEE"), "eating out", 6.4, 0.25), "Contactless payment", 45),
    (Merchant(("TFL TRAVEL CH",), "transport", 8.1, 0.35), "Contactless payment", 50),
    (Merchant(("AMAZON.CO.UK*{n}",), "shopping", 23.0, 0.7), "Visa purchase", 12),
    (Merchant(("BOOTS 1142",), "health", 11.5, 0.5), "Contactless payment", 8),
)
_UK_BILLS = (  # (merchant, transaction type, day of the month)
    (Merchant(("LANDLORD J PATEL RENT",), "rent", 1350.0, 0.0), "Standing order", 1),
    (Merchant(("COUNCIL TAX LBH",), "bills", 142.0, 0.0), "Direct debit", 3),
    (Merchant(("OCTOPUS ENERGY",), "bills", 96.0, 0.15), "Direct debit", 12),
    (Merchant(("VIRGIN MEDIA",), "bills", 45.0, 0.0), "Direct debit", 18),
)


def _spending(rng, start: date, end: date, everyday, bills) -> list:
    """A current account's money out as (date, merchant, the bank's kind, False) rows: `everyday` (merchant, kind,
    rows over the period) on random days, `bills` (merchant, kind, day of the month) monthly."""
    rows = []
    for merchant, kind, count in everyday:
        rows += [(day, merchant, kind, False) for day in _some_days(rng, start, end, count)]
    for merchant, kind, day_of_month in bills:
        rows += [(day, merchant, kind, False) for day in _monthly(start, end, day_of_month)]
    return rows


def uk_bank(path, seed: int = 66) -> Path:
    """A UK current account over half a year (2024-01-01 to 2024-06-30), unlabelled and uncategorised:
    `Date,Transaction type,Description,Paid out,Paid in,Balance` with day-first dates (DD/MM/YYYY), each amount in
    `Paid out` or `Paid in` with a pound sign and the other cell empty, a running balance, and the bank's own
    transaction types (Contactless payment, Direct debit, Standing order, Bank credit), most of which are neither
    income nor expense to the contract, so the column the amount sits in decides."""
    rng = np.random.default_rng(seed)
    start, end = date(2024, 1, 1), date(2024, 6, 30)
    rows = _spending(rng, start, end, _UK_EVERYDAY, _UK_BILLS)  # (date, merchant, transaction type, money in?)
    salary = Merchant(("ACME LTD SALARY",), "income", 2650.0, 0.01)
    rows += [(day, salary, "Bank credit", True) for day in _monthly(start, end, 25)]
    refund = Merchant(("AMAZON.CO.UK REFUND",), "refunds", 19.0, 0.5)
    rows += [(day, refund, "Bank credit", True) for day in _some_days(rng, start, end, 3)]
    rows.sort(key=lambda row: (row[0], row[1].spellings[0]))
    balance, lines = 3200.0, []
    for day, merchant, kind, money_in in rows:
        amount = _amount(rng, merchant)
        balance += amount if money_in else -amount
        paid = f"£{amount:,.2f}"
        lines.append((day.strftime("%d/%m/%Y"), kind, _describe(rng, merchant), "" if money_in else paid,
                      paid if money_in else "", f"£{balance:,.2f}"))
    return _write(path, UK_BANK_HEADER, lines)


# --- a German bank's export: what Excel writes where the decimal mark is a comma ----------------------------------

GERMAN_BANK_HEADER = ("Buchungstag", "Valuta", "Buchungstext", "Verwendungszweck", "Betrag", "Saldo")
_GERMAN_EVERYDAY = (  # (merchant, booking text, rows over the half year)
    (Merchant(("REWE Markt GmbH Koeln", "REWE SAGT DANKE {n}"), "groceries", 41.0, 0.45), "Kartenzahlung", 34),
    (Merchant(("EDEKA Center Nippes", "Edeka Brueggemann"), "groceries", 23.0, 0.4), "Kartenzahlung", 22),
    (Merchant(("dm-drogerie markt", "DM Fil. 1187"), "health", 14.0, 0.5), "Kartenzahlung", 12),
    (Merchant(("Bäckerei Merzenich", "Kamps Backstube"), "eating out", 5.8, 0.3), "Kartenzahlung", 40),
    (Merchant(("LIEFERANDO.DE", "Lieferando Bestellung {n}"), "eating out", 27.0, 0.3), "Lastschrift", 10),
    (Merchant(("DB Vertrieb GmbH", "DB FERNVERKEHR {n}"), "transport", 49.0, 0.6), "Lastschrift", 7),
    (Merchant(("AMAZON EU S.A R.L., NIEDERLASSUNG DEUTSCHLAND",), "shopping", 32.0, 0.7), "Lastschrift", 11),
)
_GERMAN_BILLS = (  # (merchant, booking text, day of the month)
    (Merchant(("MIETE WOHNUNG, VERMIETUNG SCHMITZ",), "rent", 1150.0, 0.0), "Dauerauftrag", 1),
    (Merchant(("RheinEnergie AG Abschlag",), "bills", 96.0, 0.0), "Lastschrift", 5),
    (Merchant(("Vodafone GmbH Rechnung",), "bills", 39.99, 0.0), "Lastschrift", 14),
    (Merchant(("Rundfunk ARD, ZDF, DRadio",), "bills", 18.36, 0.0), "Lastschrift", 15),
)


def german_bank(path, seed: int = 77) -> Path:
    """A German current account over half a year (2024-01-01 to 2024-06-30), unlabelled and uncategorised, as its
    bank exports it for Excel: semicolons between fields, `Buchungstag;Valuta;Buchungstext;Verwendungszweck;Betrag;
    Saldo` (booking date, value date, the bank's booking text, the purpose, the amount, the balance), dates as
    DD.MM.YYYY, amounts with a decimal comma and a point between thousands (-1.150,00), money out negative, commas
    inside the purpose, an umlaut."""
    rng = np.random.default_rng(seed)
    start, end = date(2024, 1, 1), date(2024, 6, 30)
    rows = _spending(rng, start, end, _GERMAN_EVERYDAY, _GERMAN_BILLS)  # (date, merchant, booking text, money in?)
    salary = Merchant(("GEHALT ACME GMBH",), "income", 3240.0, 0.01)
    rows += [(day, salary, "Gutschrift", True) for day in _monthly(start, end, 28)]
    rows.sort(key=lambda row: (row[0], row[1].spellings[0]))

    def german(value: float) -> str:
        return f"{value:,.2f}".translate(str.maketrans(",.", ".,"))

    balance, lines = 2800.0, []
    for day, merchant, kind, money_in in rows:
        amount = _amount(rng, merchant) * (1 if money_in else -1)
        balance += amount
        value_date = day + timedelta(days=int(rng.integers(0, 3)))
        lines.append((day.strftime("%d.%m.%Y"), value_date.strftime("%d.%m.%Y"), kind, _describe(rng, merchant),
                      german(amount), german(balance)))
    return _write(path, GERMAN_BANK_HEADER, lines, delimiter=";")


SEPARATORS = {"german_bank": ";"}  # how a user reads the file: pd.read_csv(file, sep=SEPARATORS.get(name, ","))

LEDGERS = {
    "titans_export": titans_export,
    "titans_sample_export": titans_sample_export,
    "bank_style": bank_style,
    "personal_finance": personal_finance,
    "tiny": tiny,
    "uk_bank": uk_bank,
    "german_bank": german_bank,
}
