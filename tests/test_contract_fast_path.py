"""The contract's fast paths answer exactly what its general path answers.

`prepare_ledger` reads a column pandas keeps as Arrow strings (every request, every CSV) in whole-column Arrow
passes, a column of plain ISO dates with Arrow's cast to dates (or its distinct texts with numpy); anything
else goes cell by cell. Here the same inputs go through both, the fast paths switched off for the second, and the
prepared frames, the reports and the refusals must be the same to the last character.
"""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pyfunc_models import config, ledger
from pyfunc_models.cashflow import CashflowPredictor, daily_net_flow
from pyfunc_models.generator import write_ledger
from pyfunc_models.ledger import LedgerError, prepare_ledger
from tests import real_ledgers
from tests.sweeps import sweep

# Cell values per canonical column: what exports and clients write, and what the contract refuses.
DATE_FAMILIES = {
    "iso": ["2024-03-15", "2024-03-16", "2025-01-02", " 2024-03-17 ", "2024-02-29"],
    "iso_times": ["2024-03-15T10:30:00", "2024-03-15 23:59:59+02:00", "2024-03-16T00:00:00Z", "2024-03-17"],
    "day_first": ["15/03/2024", "16/03/2024", "01/02/2024", "15/03/24", "13-12-2023"],
    "month_first": ["03/15/2024", "03/16/2024", "01/02/2024", "12/13/23"],
    "ambiguous": ["01/02/2024", "03/04/2024", "05.06.2024", "11/12/2024"],
    "textual": ["15 Mar 2024", "Mar 15, 2024", "15-Mar-2024", "2024.03.15", "15 March 2024"],
    "mixed_orders": ["15/03/2024", "03/15/2024"],
    "bad": ["2023-02-29", "2024-13-01", "not a date", "2024-3-5", "٢٠٢٤-٠٣-١٥", "2099-01-01", "1969-12-31",
            "0001-01-01", ""],
    # Texts numpy reads as days and pandas does not, or differently: the ISO fast path must leave them alone.
    "numpy_reads": ["today", "now", "NaT", "20240315", "2024", "2024-03", "+2024-03-15", "12024-03-15",
                    "2024-03-15T10", "2024-03-15T01:00:00+05:00", "2024-03-15"],
}
AMOUNTS = ["-45.10", "$1,234.56", "(12.50)", " 12 ", "€3", "-0", "1e3", ".5", "+7", "£ 20.00", "-1,000"]
BAD_AMOUNTS = ["12,50", "abc", "inf", "", "1 234,00"]
# Leading and trailing blanks of every kind Python strips, accents, other scripts, empty cells.
TEXTS = ["SHELL OIL 57444 SAN JOSE CA", " Café ", "CAFÉ\u3000", "\x1cCOFFEE\x1f", "\xa0rent\u2028", "的一是不了",
         "ابتثجحخد", "  ", "", "Ôbb\u0301e", "x\u200b", "\ufeffBOM"]
TYPES = ["Expense", "income", "credit", "DEBIT", "Expnse", "", " debit", "débit", "xyzzy", "Crédit\u00a0"]
PAYMENT_METHODS = ["credit_card", "credit_car", "Credit Card", "", "barter", "chek", " CASH ", "débit_card"]
STATUSES = ["completed", "paid", "written_off", "pending", "", "Complété", "received", "cancelled", "Void\u2009"]
CATEGORIES = ["Fuel", "Food & Dining", " café ", "", "的", "Office   Supplies", "Ünïcode-Näme"]
REFERENCES = ["TXN1", "", " 0042 ", "INV-1042"]
LABELS = ["", "duplicate", "spike"]
HEADERS = {
    "date": ["date", "Date", " DATE ", "Posted Date", "transaction_date"],
    "type": ["type", "Type", "Transaction Type", "debit/credit"],
    "description": ["description", "Description", "MEMO", "Payee"],
    "amount": ["amount", "Amount", "transaction-amount", "Value"],
    "category": ["category", "Category"],
    "payment_method": ["payment_method", "Payment Method", "PaymentMethod", "method"],
    "status": ["status", "Status", "STATUS "],
    "reference": ["reference", "Reference", "Ref"],
    "receipt_url": ["receipt_url", "Receipt URL", "receipt"],
    config.ANOMALY_LABEL: [config.ANOMALY_LABEL_HEADER],
}


def generated(path):
    write_ledger(path, rows=3000, seed=9)
    return path


EXPORTS = [real_ledgers.titans_export, real_ledgers.titans_sample_export, real_ledgers.bank_style,
           real_ledgers.personal_finance, generated]
SETTINGS = [
    {},
    {"nonempty": ("description",)},
    {"required": ("date", "description"), "missing_amount_ok": True},
    {"required": CashflowPredictor.required_columns, "columns": CashflowPredictor.read_columns},
    {"date_order": "dmy"},
    {"date_order": "mdy"},
    {"implausible_dates": "drop"},
    {"source": "ledger.csv"},
]


def outcome(raw: pd.DataFrame, **settings):
    """What the contract makes of `raw`: the frame and the report, or the refusal's message."""
    try:
        prepared, report = prepare_ledger(raw.copy(), **settings)
    except LedgerError as error:
        return f"LedgerError: {error}"
    return prepared, report.as_dict()


def general_outcome(raw: pd.DataFrame, **settings):
    """`outcome` with the fast paths off: every column cell by cell, every date by pandas."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ledger, "_arrow_strings", lambda values: None)
        patch.setattr(ledger, "_plain_iso_days", lambda distinct, written: None)
        return outcome(raw, **settings)


def assert_same(fast, general):
    if isinstance(general, str) or isinstance(fast, str):
        assert fast == general
        return
    pd.testing.assert_frame_equal(fast[0], general[0], check_exact=True)
    assert fast[1] == general[1]


def assert_fast_equals_general(raw: pd.DataFrame, **settings):
    fast = outcome(raw, **settings)
    assert_same(fast, general_outcome(raw, **settings))
    return fast


def random_ledger(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """A request as a client or a CSV gives it: text cells (missing ones None), odd headers, optional columns
    left out; now and then a value the contract refuses."""
    def cells(pool, missing=0.1):
        return [None if rng.random() < missing else pool[rng.integers(len(pool))] for _ in range(rows)]

    family = list(DATE_FAMILIES)[rng.integers(len(DATE_FAMILIES))]
    amounts = AMOUNTS + (BAD_AMOUNTS if rng.random() < 0.2 else [])
    columns = {
        "date": cells(DATE_FAMILIES[family], missing=0.02 if rng.random() < 0.2 else 0.0),
        "type": cells(TYPES),
        "description": cells(TEXTS, missing=0.05),
        "amount": cells(amounts, missing=0.05 if rng.random() < 0.3 else 0.0),
        "category": cells(CATEGORIES),
        "payment_method": cells(PAYMENT_METHODS),
        "status": cells(STATUSES),
        "reference": cells(REFERENCES),
        # An all-empty column as JSON records give it (None: object) and as pd.read_csv does (NaN: float).
        "receipt_url": [[None] * rows, [np.nan] * rows, cells(["", "https://example.com/r/1.pdf"])][rng.integers(3)],
        config.ANOMALY_LABEL: cells(LABELS),
    }
    kept = [c for c in columns if c in ("date", "description", "amount") or rng.random() < 0.8]
    return pd.DataFrame({HEADERS[c][rng.integers(len(HEADERS[c]))]: columns[c] for c in kept})


def test_arrow_strips_exactly_the_characters_python_strips():
    """The fast path strips text with Arrow's utf8_trim_whitespace; a cell stripped by Python's str.strip must lose
    the same characters, for every code point."""
    characters = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    trimmed = pc.utf8_trim_whitespace(pa.array(characters)).to_pylist()
    assert [c for c, t in zip(characters, trimmed) if t == ""] == [c for c in characters if c.isspace()]


@pytest.mark.parametrize("seed", range(60))
def test_random_requests_prepare_the_same_by_either_path(seed):
    rng = np.random.default_rng(seed)
    raw = random_ledger(rng, int(rng.choice([1, 2, 5, 40, ledger._PYTHON_UP_TO + 1, 300])))
    assert (raw.dtypes == pd.Series([""]).dtype).sum() >= 3  # what the fast path is for
    for settings in SETTINGS:
        assert_fast_equals_general(raw, **settings)


@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]", pd.ArrowDtype(pa.string()),
                                   pd.ArrowDtype(pa.large_string()), "string[python]", object])
@pytest.mark.parametrize("rows", [3, 3 * ledger._PYTHON_UP_TO])  # a few cells are read in Python, more in Arrow
def test_every_text_dtype_pandas_gives_prepares_as_the_object_column_does(dtype, rows):
    rng = np.random.default_rng(7)
    raw = random_ledger(rng, rows)
    raw[raw.columns[0]] = (DATE_FAMILIES["iso"][:3] * rows)[:rows]  # a readable date, so the whole frame is compared
    for settings in SETTINGS:
        typed = assert_fast_equals_general(raw.astype(dtype), **settings)
        assert_same(typed, outcome(raw.astype(object), **settings))


def test_columns_in_several_arrow_chunks_are_read_whole():
    """pd.concat keeps each part's Arrow chunk: codes must still number distinct values in order of first
    appearance across the chunks (the refusal of mixed date orders names the first row of each)."""
    rng = np.random.default_rng(3)
    parts = [random_ledger(np.random.default_rng(11), ledger._PYTHON_UP_TO) for _ in range(3)]
    raw = pd.concat(parts, ignore_index=True)
    for family in ("iso", "day_first", "mixed_orders"):
        raw["date" if "date" in raw else raw.columns[0]] = [DATE_FAMILIES[family][i % len(DATE_FAMILIES[family])]
                                                            for i in rng.permutation(len(raw))]
        for settings in SETTINGS:
            assert_fast_equals_general(raw, **settings)


def test_a_large_request_with_many_distinct_texts_prepares_the_same():
    """Above ledger._ARROW_FROM distinct texts the general path strips them with Arrow too; below, in Python."""
    rng = np.random.default_rng(5)
    rows = 3000
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300 * 24 * 3600, rows), unit="s")
    raw = pd.DataFrame({
        "Date": [f" {s:%Y-%m-%dT%H:%M:%S} " for s in stamps],
        "Description": [TEXTS[i % len(TEXTS)] + f" {i}" for i in rng.integers(0, 10**6, rows)],
        "Amount": [AMOUNTS[i] for i in rng.integers(len(AMOUNTS), size=rows)],
        "Type": [TYPES[i] for i in rng.integers(len(TYPES), size=rows)],
        "Status": [STATUSES[i] for i in rng.integers(len(STATUSES), size=rows)],
    })
    for settings in SETTINGS:
        assert_fast_equals_general(raw, **settings)
    plain = raw.assign(Date=[f"{s:%Y-%m-%d}" for s in stamps])
    assert_fast_equals_general(plain)


@pytest.mark.parametrize("seed", sweep(range(5)))
def test_plain_iso_dates_read_by_numpy_are_the_days_pandas_reads(seed):
    """Every YYYY-MM-DD text, real day or not (2023-02-29, month 13, day 00, year 0000), and every text numpy would
    read as a day, reads the same by the fast path (or is sent to the general one) as by pandas."""
    rng = np.random.default_rng(seed)
    texts = [f"{y:04d}-{m:02d}-{d:02d}" for y, m, d in zip(rng.choice([0, 1, 1677, 1969, 1970, 2000, 2024, 2025,
                                                                       2262, 9999], 200),
                                                           rng.integers(0, 14, 200), rng.integers(0, 33, 200))]
    for text in texts + DATE_FAMILIES["numpy_reads"] + ["٢٠٢٤-٠٣-١٥", "2024-03-١٥", "02024-03-15"]:
        for settings in ({}, {"implausible_dates": "drop"}):
            raw = pd.DataFrame({"date": [text, "2024-03-15"], "description": ["x", "y"], "amount": [1.0, 2.0]})
            assert_fast_equals_general(raw, **settings)


def test_enumerations_written_as_the_contract_writes_them_prepare_the_same_by_either_path():
    """A client's request holds the canonical values themselves: such a column is looked up in the allowed values
    in one Arrow call (`_canonical_codes`); one cell of any other spelling sends the column to the general path."""
    rng = np.random.default_rng(8)
    rows = 3 * ledger._PYTHON_UP_TO
    raw = pd.DataFrame({"date": ["2024-03-15"] * rows, "description": ["x"] * rows,
                        "amount": rng.normal(size=rows).round(2) * 100,
                        "type": rng.choice(config.TRANSACTION_TYPES, rows),
                        "payment_method": rng.choice(config.PAYMENT_METHODS, rows),
                        "status": rng.choice(config.STATUSES, rows)})
    for column, allowed in (("type", config.TRANSACTION_TYPES), ("payment_method", config.PAYMENT_METHODS),
                            ("status", config.STATUSES)):
        codes = ledger._canonical_codes(raw[column], allowed)
        assert codes is not None and [allowed[code] for code in codes] == raw[column].tolist()
    for odd in ("Expense", " income", "", None, "credit"):
        changed = raw.assign(type=[odd] + raw["type"].tolist()[1:])
        assert ledger._canonical_codes(changed["type"], config.TRANSACTION_TYPES) is None
        for settings in SETTINGS:
            assert_fast_equals_general(changed, **settings)
    for settings in SETTINGS:
        assert_fast_equals_general(raw, **settings)


def test_a_type_left_to_the_sign_makes_zero_income():
    """The type is inferred in codes, not per row: money out is below zero, so 0 and -0 are income."""
    raw = pd.DataFrame({"date": ["2024-03-15"] * 5, "description": ["x"] * 5,
                        "amount": ["-0", "0", "-0.01", "12", ""], "type": ["", "debit", "zzz", "", ""]})
    prepared, report = prepare_ledger(raw, missing_amount_ok=True, required=("date", "description"))
    assert prepared["type"].tolist() == ["income", "expense", "expense", "income", "unknown"]
    assert report.type_inferred_from_sign == 3


def test_the_prepared_frame_is_what_pandas_makes_of_its_columns():
    """Text columns are made as Arrow arrays: the frame must be the one pandas would make of the same values
    handed over as plain arrays (dtypes, missing markers, index)."""
    raw = random_ledger(np.random.default_rng(1), 30)
    raw[raw.columns[0]] = DATE_FAMILIES["iso"][:3] * 10
    prepared, _ = prepare_ledger(raw)
    rebuilt = pd.DataFrame({column: prepared[column].to_numpy() for column in prepared})
    pd.testing.assert_frame_equal(prepared, rebuilt, check_exact=True)
    assert (prepared.dtypes.drop(["date", "amount"]) == pd.Series([""]).dtype).all()


def _plain_daily_net_flow(ledger: pd.DataFrame) -> pd.Series:
    """`daily_net_flow` written the plain pandas way (the whole ledger filtered, then grouped): the reference it
    must equal. A type other than income or expense keeps its amount's sign, as the contract reads a row without
    a type (`ledger.signed_by_type`)."""
    moved = ledger[~ledger["status"].isin(config.NO_MONEY_MOVED_STATUSES)]
    magnitude, kinds = moved["amount"].abs().to_numpy(), moved["type"].to_numpy()
    flow = np.where(kinds == "income", magnitude, np.where(kinds == "expense", -magnitude, moved["amount"].to_numpy()))
    daily = pd.Series(flow, index=pd.DatetimeIndex(moved["date"])).groupby(level=0).sum()
    days = pd.date_range(daily.index.min(), daily.index.max(), freq="D")
    return daily.reindex(days, fill_value=0.0).astype(float)


@pytest.mark.parametrize("export", EXPORTS)
def test_real_exports_prepare_the_same_by_either_path(export, tmp_path):
    raw = ledger.read_ledger(export(tmp_path / "ledger.csv"))
    for read in (raw, pd.read_csv(export(tmp_path / "ledger.csv"))):  # as text, and as pandas reads it
        for settings in ({"source": "ledger.csv", "implausible_dates": "drop"}, {"nonempty": ("description",)},
                         {"required": CashflowPredictor.required_columns, "columns": CashflowPredictor.read_columns}):
            assert_fast_equals_general(read, **settings)


@pytest.mark.parametrize("export", EXPORTS)
def test_the_daily_net_flow_is_the_plain_pandas_reading(export, tmp_path):
    ledger_rows, _ = ledger.load_ledger(export(tmp_path / "ledger.csv"))
    typeless = ledger_rows.assign(type=np.where(np.arange(len(ledger_rows)) % 5 == 0, config.UNKNOWN,
                                                ledger_rows["type"]))  # a hand-made ledger may hold any type
    for rows in (ledger_rows, ledger_rows.sample(frac=1, random_state=1), ledger_rows.iloc[::7],
                 ledger_rows.astype({"type": object, "status": object}), typeless):
        expected = _plain_daily_net_flow(rows)
        found = daily_net_flow(rows)
        pd.testing.assert_series_equal(found, expected, check_exact=True, check_freq=True)
        assert found.index.name == expected.index.name
