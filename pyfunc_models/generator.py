"""A deterministic, realistic sample ledger in the Titans CSV export format.

For tests and demos only: a small business with card purchases at many merchants
(bank-export descriptions with store numbers, card prefixes, cities and case
noise), monthly rent, payroll and subscriptions, retainers and weekly payouts,
a few enumeration typos, and labelled injected anomalies. Everything is drawn
with numpy in bulk, so a million rows take seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pyfunc_models import catalogue, config

MIN_ROWS = 200
WEEKDAY_ACTIVITY = np.array([1.0, 1.0, 1.0, 1.0, 1.1, 0.45, 0.3])  # Monday..Sunday
ANOMALY_KINDS = ("spike", "duplicate", "unusual_merchant")
MERCHANT_MEDIAN_SPREAD = 0.7  # log sd of merchants' typical amounts around their category's
WITHIN_MERCHANT_SHARE = 0.7  # a merchant's own amount spread, as a share of its category's


def default_days(rows: int) -> int:
    """About 25 transactions a day, between three months and ten years of history."""
    return int(np.clip(rows // 25, 90, 3650))


def _month_days(dates: pd.DatetimeIndex, day: int) -> pd.DatetimeIndex:
    """The given day of every month covered by `dates` (-1 = last day of the month)."""
    months = pd.period_range(dates[0], dates[-1], freq="M")
    if day == -1:
        picked = months.to_timestamp(how="end").normalize()
    else:
        picked = months.to_timestamp() + pd.Timedelta(days=day - 1)
    return picked[(picked >= dates[0]) & (picked <= dates[-1])]


class _Rows:
    """Column lists that the generator appends blocks of rows to."""

    def __init__(self):
        self.blocks = []

    def add(self, **columns):
        size = len(columns["date"])
        block = {name: np.broadcast_to(np.asarray(value, dtype=object), size) if np.ndim(value) == 0 else np.asarray(value, dtype=object)
                 for name, value in columns.items()}
        self.blocks.append(block)

    def frame(self) -> pd.DataFrame:
        names = self.blocks[0].keys()
        return pd.DataFrame({name: np.concatenate([block[name] for block in self.blocks]) for name in names})


def _case_noise(descriptions: np.ndarray, rng) -> np.ndarray:
    draw = rng.random(len(descriptions))
    lower, title = draw < 0.08, (draw >= 0.08) & (draw < 0.13)
    descriptions = descriptions.copy()
    descriptions[lower] = [text.lower() for text in descriptions[lower]]
    descriptions[title] = [text.title() for text in descriptions[title]]
    return descriptions


def _codes(rng, size: int, width: int = 6) -> np.ndarray:
    alphabet = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZ23456789"))
    letters = np.ascontiguousarray(alphabet[rng.integers(0, len(alphabet), size=(size, width))])
    return letters.view(f"<U{width}")[:, 0].astype(object)  # each row of characters read as one string


def _recurring(rows: _Rows, dates: pd.DatetimeIndex, rng) -> None:
    for category, merchant, day, amount, jitter, method in catalogue.RECURRING_EXPENSES:
        when = _month_days(dates, day)
        values = -np.round(amount * (1 + jitter * rng.standard_normal(len(when))), 2)
        prefix = "ACH DEBIT " if method == "bank_transfer" else ""
        rows.add(date=when, type="Expense", description=f"{prefix}{merchant}", amount=values, category=category,
                 payment_method=method, reference=["ACH" + c for c in _codes(rng, len(when), 8)])
    for description, day, amount, jitter in catalogue.RECURRING_INCOME:
        when = _month_days(dates, day)
        values = np.round(amount * (1 + jitter * rng.standard_normal(len(when))), 2)
        rows.add(date=when, type="Income", description=description, amount=values, category="",
                 payment_method="bank_transfer", reference=["DEP" + c for c in _codes(rng, len(when), 8)])
    description, weekday, median, spread = catalogue.WEEKLY_INCOME
    when = dates[dates.dayofweek == weekday]
    values = np.round(median * rng.lognormal(0, spread, len(when)), 2)
    rows.add(date=when, type="Income", description=description, amount=values, category="",
             payment_method="bank_transfer", reference=["PO" + c for c in _codes(rng, len(when), 10)])


def _activity_days(dates: pd.DatetimeIndex, size: int, rng) -> np.ndarray:
    # Busier on weekdays, and the business grows over the years.
    weight = WEEKDAY_ACTIVITY[dates.dayofweek] * np.linspace(0.8, 1.25, len(dates))
    return dates.values[rng.choice(len(dates), size=size, p=weight / weight.sum())]


def _income(rows: _Rows, dates: pd.DatetimeIndex, size: int, rng) -> None:
    payers = np.array([f"CLIENT PAYMENT {p}" for p in catalogue.CLIENT_PAYERS] + list(catalogue.OTHER_INCOME), dtype=object)
    weights = np.r_[np.full(len(catalogue.CLIENT_PAYERS), 1.0), np.full(len(catalogue.OTHER_INCOME), 0.4)]
    who = rng.choice(len(payers), size=size, p=weights / weights.sum())
    # Each payer has its own usual invoice size.
    typical = catalogue.CLIENT_PAYMENT_MEDIAN * np.exp(rng.normal(0, catalogue.CLIENT_PAYMENT_SPREAD, len(payers)))
    values = np.round(typical[who] * rng.lognormal(0, catalogue.CLIENT_PAYMENT_SPREAD / 2, size), 2)
    small = who >= len(catalogue.CLIENT_PAYERS)
    values[small] = np.round(values[small] / 40, 2)
    method = np.where(rng.random(size) < 0.7, "bank_transfer", "check")
    invoice = np.array([f"INV-{n:05d}" for n in rng.integers(1, 99999, size)], dtype=object)
    rows.add(date=_activity_days(dates, size, rng), type="Income", description=payers[who], amount=values,
             category="", payment_method=method, reference=invoice)


def _merchant_table(rng) -> pd.DataFrame:
    """One row per (category, merchant) with its frequency, typical amount and home stores."""
    records = []
    for category, (share, median, spread, methods, style, merchants) in catalogue.EXPENSE_CATEGORIES.items():
        popularity = 1.0 / np.arange(1, len(merchants) + 1) ** 0.8  # a few merchants get most visits
        popularity = popularity / popularity.sum()
        for merchant, weight in zip(merchants, popularity):
            records.append({
                "category": category, "merchant": merchant, "weight": share * weight,
                # Merchants of one category differ a lot (a cable shop vs an Apple Store); one merchant's
                # amounts vary less than its category's.
                "median": median * float(np.exp(rng.normal(0, MERCHANT_MEDIAN_SPREAD))),
                "spread": spread * WITHIN_MERCHANT_SHARE,
                "methods": methods, "style": style,
                "stores": rng.integers(100, 99999, size=3), "cities": rng.choice(len(catalogue.CITIES), size=2),
            })
    table = pd.DataFrame(records)
    table["weight"] /= table["weight"].sum()
    return table


def _describe(style: np.ndarray, merchant: np.ndarray, store: np.ndarray, city: np.ndarray, rng) -> np.ndarray:
    size = len(merchant)
    card = np.array(catalogue.CARD_PREFIXES, dtype=object)[rng.integers(0, len(catalogue.CARD_PREFIXES), size)]
    ach = np.array(catalogue.ACH_PREFIXES, dtype=object)[rng.integers(0, len(catalogue.ACH_PREFIXES), size)]
    codes = _codes(rng, size, 5)
    hash_sign = rng.random(size) < 0.5
    out = np.empty(size, dtype=object)
    for i in range(size):
        if style[i] == "store":
            out[i] = f"{card[i]}{merchant[i]} {'#' if hash_sign[i] else ''}{store[i]} {city[i]}"
        elif style[i] == "online":
            out[i] = f"{card[i]}{merchant[i]}*{codes[i]} {city[i][-2:]}"
        else:
            out[i] = f"{ach[i]}{merchant[i]} {store[i]}"
    return out


def _card_expenses(rows: _Rows, dates: pd.DatetimeIndex, size: int, rng) -> None:
    table = _merchant_table(rng)
    pick = rng.choice(len(table), size=size, p=table["weight"].to_numpy())
    chosen = table.iloc[pick].reset_index(drop=True)
    store_slot = rng.integers(0, 3, size)
    stores = np.array([row[slot] for row, slot in zip(chosen["stores"], store_slot)])
    city_slot = rng.integers(0, 2, size)
    cities = np.array(catalogue.CITIES, dtype=object)[[row[slot] for row, slot in zip(chosen["cities"], city_slot)]]
    amounts = -np.round(chosen["median"].to_numpy() * rng.lognormal(0, 1, size) ** chosen["spread"].to_numpy(), 2)
    amounts = np.minimum(amounts, -0.5)
    methods = np.array([m[int(u * len(m))] for m, u in zip(chosen["methods"], rng.random(size))], dtype=object)
    descriptions = _describe(chosen["style"].to_numpy(), chosen["merchant"].to_numpy(), stores, cities, rng)
    references = np.where(chosen["style"].to_numpy() == "ach", ["ACH" + c for c in _codes(rng, size, 8)],
                          ["TXN" + c for c in _codes(rng, size, 8)])
    rows.add(date=_activity_days(dates, size, rng), type="Expense", description=descriptions, amount=amounts,
             category=chosen["category"].to_numpy(), payment_method=methods, reference=references)


def _inject_anomalies(ledger: pd.DataFrame, count: int, rng) -> pd.DataFrame:
    """Spikes change existing card purchases; duplicates and unusual merchants are added rows."""
    ledger = ledger.copy()
    ledger["anomaly_label"] = ""
    per_kind = np.full(3, count // 3)
    per_kind[: count % 3] += 1
    card = np.flatnonzero(ledger["reference"].str.startswith("TXN").to_numpy())

    spikes = rng.choice(card, size=per_kind[0], replace=False)
    ledger.loc[spikes, "amount"] = np.round(ledger.loc[spikes, "amount"] * rng.uniform(6, 15, len(spikes)), 2)
    ledger.loc[spikes, "anomaly_label"] = "spike"

    originals = rng.choice(np.setdiff1d(card, spikes), size=per_kind[1], replace=False)
    duplicates = ledger.loc[originals].copy()
    duplicates["reference"] = ["TXN" + c for c in _codes(rng, len(duplicates), 8)]
    duplicates["anomaly_label"] = "duplicate"

    size = per_kind[2]
    syllables = np.array(catalogue.UNUSUAL_SYLLABLES, dtype=object)
    kinds = np.array(catalogue.UNUSUAL_KINDS, dtype=object)[rng.integers(0, len(catalogue.UNUSUAL_KINDS), size)]
    names = syllables[rng.integers(0, len(syllables), (size, 3))]
    merchants = [f"{a}{b}{c} {kind}" for (a, b, c), kind in zip(names, kinds)]
    cities = np.array(catalogue.CITIES, dtype=object)[rng.integers(0, len(catalogue.CITIES), size)]
    unusual = pd.DataFrame({
        "date": ledger["date"].to_numpy()[rng.integers(0, len(ledger), size)],
        "type": "Expense",
        "description": [f"{m} {c}" for m, c in zip(merchants, cities)],
        "amount": -np.round(rng.uniform(400, 5000, size), 2),
        "category": rng.choice(["meals_entertainment", "travel", "equipment", "gifts"], size),
        "payment_method": "credit_card",
        "reference": ["TXN" + c for c in _codes(rng, size, 8)],
        "anomaly_label": "unusual_merchant",
    })
    return pd.concat([ledger, duplicates, unusual], ignore_index=True)


def _enum_noise(ledger: pd.DataFrame, rng) -> None:
    for column, typos in catalogue.ENUM_TYPOS.items():
        hit = np.flatnonzero(rng.random(len(ledger)) < 0.003)
        if column == "type":
            hit = hit[(ledger["type"].to_numpy()[hit] == "Expense")]
        ledger.loc[hit, column] = rng.choice(list(typos), size=len(hit))


DEFAULT_START = "2023-01-01"
# A long generated ledger ends here, not years ahead: dates more than a year in the future are implausible to the
# ledger contract and would be dropped from training. A fixed day keeps the generator deterministic.
LATEST_END = "2026-06-30"


def first_day(days: int) -> pd.Timestamp:
    """DEFAULT_START, or earlier for a ledger so long that it would end after LATEST_END."""
    return min(pd.Timestamp(DEFAULT_START), pd.Timestamp(LATEST_END) - pd.Timedelta(days=days - 1))


def generate_ledger(rows: int = 20_000, seed: int = 42, start: str | None = None, days: int | None = None,
                    anomaly_rate: float = 0.01) -> pd.DataFrame:
    """A ledger of exactly `rows` transactions in the Titans export header plus an 'Anomaly Label' column,
    from `start` (default: see `first_day`)."""
    if rows < MIN_ROWS:
        raise ValueError(f"rows must be at least {MIN_ROWS}, got {rows}")
    if not 0 <= anomaly_rate < 0.5:
        raise ValueError(f"anomaly_rate must be in [0, 0.5), got {anomaly_rate}")
    rng = np.random.default_rng(seed)
    days = days or default_days(rows)
    dates = pd.date_range(start or first_day(days), periods=days, freq="D")
    parts = _Rows()
    _recurring(parts, dates, rng)
    recurring = sum(len(block["date"]) for block in parts.blocks)
    anomalies = int(round(rows * anomaly_rate))
    added = anomalies - anomalies // 3 - (1 if anomalies % 3 else 0)  # duplicates + unusual are new rows
    free = rows - recurring - added
    if free < rows // 4:
        raise ValueError(f"{rows} rows are too few for {len(dates)} days of recurring transactions; "
                         f"use fewer days or at least {4 * (recurring + added)} rows")
    income = int(free * 0.06)
    _income(parts, dates, income, rng)
    _card_expenses(parts, dates, free - income, rng)
    ledger = parts.frame()
    ledger["date"] = pd.to_datetime(ledger["date"])
    ledger["description"] = _case_noise(ledger["description"].to_numpy(dtype=object), rng)
    ledger = _inject_anomalies(ledger, anomalies, rng)
    ledger = ledger.sort_values("date", kind="stable").reset_index(drop=True)

    size = len(ledger)
    status = rng.choice(["completed", "pending", "failed"], size=size, p=[0.95, 0.04, 0.01])
    ledger["status"] = np.where(ledger["date"] >= dates[-1] - pd.Timedelta(days=3), "pending", status)
    expense = (ledger["type"] == "Expense").to_numpy()
    receipts = _codes(rng, size, 12)
    ledger["receipt_url"] = np.where(expense & (rng.random(size) < 0.3),
                                     [f"https://receipts.titans.example/r/{c.lower()}" for c in receipts], "")
    _enum_noise(ledger, rng)
    ledger["date"] = ledger["date"].dt.strftime("%Y-%m-%d")
    columns = list(config.COLUMNS) + [config.ANOMALY_LABEL]
    headers = list(config.TITANS_HEADER) + [config.ANOMALY_LABEL_HEADER]
    return ledger[columns].set_axis(headers, axis=1)


def write_ledger(path, rows: int = 20_000, seed: int = 42, **options) -> pd.DataFrame:
    ledger = generate_ledger(rows=rows, seed=seed, **options)
    ledger.to_csv(path, index=False, float_format="%.2f")
    return ledger
