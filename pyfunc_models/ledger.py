"""The ledger contract: raw transactions in, one canonical DataFrame out.

Used by training (a CSV the user brings) and by every served model (a request
body), so both accept the same mess and refuse the same things, with one
error type whose message names the row, the column, the bad value and what
was expected.
"""

from __future__ import annotations

import csv
import datetime
import difflib
import functools
import io
import itertools
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pyfunc_models import config

MAX_PROBLEMS_SHOWN = 5
DATE_ORDERS = ("auto", "dmy", "mdy")
IMPLAUSIBLE_DATE_ACTIONS = ("refuse", "drop")
EARLIEST_PLAUSIBLE_DATE = np.datetime64("1970-01-01", "D")
PLAUSIBLE_DAYS_AHEAD = 365
# Larger is a typo or a sentinel (9.99e307), not a transaction; sums of such amounts would overflow to infinity.
MAX_PLAUSIBLE_AMOUNT = 1e12
# Dates with one reading, tried after ISO 8601 (2024-03-15, 2024/03/15); a day/month-first date
# (15/03/2024, 03/15/2024, 15.03.2024) is read in the order its whole column decides (`_day_month_order`).
DATE_FORMATS = ("%Y.%m.%d", "%d %b %Y", "%d %B %Y", "%d-%b-%Y", "%b %d, %Y", "%B %d, %Y", "%b %d %Y", "%d-%b-%y",
                "%a, %d %b %Y")
# Year, month and day as Japanese and Chinese exports write them (2025年1月3日), Korean ones (2025년 1월 3일,
# 2025. 1. 3.): read as the ISO date they name.
_YEAR_MONTH_DAY_WORDS = re.compile(r"(\d{4})\s*[年년.]\s*(\d{1,2})\s*[月월.]\s*(\d{1,2})\s*[日일.]?")  # fullmatch
# A two-digit year (15/03/25, common in bank exports) is 2000-2069 below 70, else 1970-1999 (dates before 1970 are
# implausible anyway).
TWO_DIGIT_YEAR_PIVOT = 70
_DAY_MONTH = (r"^(?P<first>\d{1,2})(?P<separator>[./-])(?P<second>\d{1,2})[./-](?P<year>\d{4}|\d{2})"
              r"(?:[ T]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp]\.?[Mm]\.?)?)?$")
# Year, month and day (2024-03-05, 2024/3/5, 20240305), perhaps a time after them.
_WHOLE_ISO_DATE = r"^([0-9]{8}|[0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2})([^0-9]|$)"
_PLAIN_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # fullmatch; \d would take any script's digits
# A transaction happened on its own wall-clock date: a UTC offset after the time is cut off, never applied.
_UTC_OFFSET = r"^(\d{4}-?\d{2}-?\d{2}[T ]\d{1,2}(?::?\d{2}){0,2}(?:[.,]\d+)?)\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"
# From this many distinct values on, text is handled by Arrow (a call costs ~50 µs, a cell in Python ~0.5 µs).
_ARROW_FROM = 1000
# Up to this many cells, an Arrow-backed column is read as a Python list: an Arrow kernel's fixed cost (~5 µs a
# call) is more than a few cells cost in Python.
_PYTHON_UP_TO = 64
# Typos are corrected only towards words this long: a short word is one letter away from too many others.
_MIN_TYPO_TARGET = 4
# An amount as exports write it: "$1,234.56", "(12.50)", "-€5", "12.50 DR", "EUR 12.50", "−27.08" (a minus sign).
# `_NUMBER` is its number with a decimal point (a comma or an apostrophe groups thousands, or Indian lakhs:
# 1,23,456.00), `_COMMA_NUMBER` with a decimal comma (a point or a space groups thousands: a European export's
# "-1.234,56", "1 234,00"); a column is read one way throughout (`_decimal_comma`).
_NUMBER = r"[1-9]\d{0,2}(?:[,']\d{3})+(?:\.\d+)?|[1-9]\d?(?:,\d{2})+,\d{3}(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_COMMA_NUMBER = r"[1-9]\d{0,2}(?:[. \u00a0\u202f]\d{3})+(?:,\d+)?|\d+(?:,\d+)?|,\d+"  # 0.125 is no thousand
_CURRENCY_CODES = ("USD", "EUR", "GBP", "CHF", "JPY", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF",
                   "RON", "BGN", "ISK", "TRY", "RUB", "UAH", "ILS", "AED", "SAR", "EGP", "NGN", "KES", "INR", "CNY",
                   "HKD", "TWD", "KRW", "SGD", "MYR", "THB", "IDR", "PHP", "VND", "ZAR", "BRL", "MXN", "ARS", "CLP",
                   "COP", "PEN")
_CURRENCY = rf"[$€£¥₹]|\b(?:{'|'.join(_CURRENCY_CODES)})\b|kr\.?"
_MINUS = "-\u2212"  # a hyphen, and the minus sign some exports write


def _amount_pattern(number: str) -> re.Pattern:
    return re.compile(
        rf"^(?P<open>\()?\s*(?P<sign>[{_MINUS}+])?\s*(?:{_CURRENCY})?\s*(?P<inner_sign>[{_MINUS}+])?\s*"  # -$5, $-5
        rf"(?P<number>{number})\s*(?:{_CURRENCY})?\s*(?P<close>\))?"  # "39,99 €", "12.50 USD"
        rf"(?P<after>[{_MINUS}]|\s*(?i:dr|cr))?$"  # a statement's 12.50 DR (money out), 12.50 CR (money in); 27.08-
    )


_AMOUNT_PATTERN, _COMMA_AMOUNT_PATTERN = _amount_pattern(_NUMBER), _amount_pattern(_COMMA_NUMBER)
# A currency after a column's name: "Debit (EUR)", "Amount (KRW)", "Betrag (€)", "Debit EUR"; not "Debit Fee" nor
# "Amount VAT" (after a space, only a currency code).
_CODES = "|".join(_CURRENCY_CODES)
_CURRENCY_SUFFIX = re.compile(rf"\s*(\(\s*(?:[A-Za-z]{{3}}|[$€£¥₹])\s*\)|\s(?i:{_CODES}))$")
_THOUSANDS = str.maketrans("", "", ". \u00a0\u202f")


class LedgerError(ValueError):
    """A ledger (file or request) that cannot be used, with a message a user can act on."""


@dataclass
class LedgerReport:
    """What normalisation did to a ledger: counted, so nothing changes silently."""

    rows: int = 0
    corrected: dict = field(default_factory=dict)  # column -> {raw value: canonical value}
    unknown: dict = field(default_factory=dict)  # column -> {raw value: count}
    type_inferred_from_sign: int = 0
    dropped_columns: list = field(default_factory=list)
    # How day/month dates were read: 'dmy' or 'mdy'; 'iso' when every date had one reading (ISO, textual
    # month); None when no text date was read (no date column, or a datetime column).
    date_order: str | None = None
    # True when the order was a guess: date_order='auto' and no date in the column could be read one way only.
    date_order_ambiguous: bool = False
    dropped_rows: dict = field(default_factory=dict)  # reason -> {"count": n, "examples": [raw values]}
    amount_columns: list | None = None  # [money out, money in] when the amount was read from two columns
    type_from_amount_columns: int = 0  # rows whose type said the other direction than the column of their amount
    # True when the export's running balance moves against those amounts on nearly every row (`balance_says_reversed`)
    amount_columns_reversed: bool = False
    decimal_comma: bool = False  # True when the amounts were read with a decimal comma (-39,99; 1.150,00)

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "corrected": self.corrected,
            "unknown": self.unknown,
            "type_inferred_from_sign": self.type_inferred_from_sign,
            "dropped_columns": self.dropped_columns,
            "date_order": self.date_order,
            "date_order_ambiguous": self.date_order_ambiguous,
            "dropped_rows": self.dropped_rows,
            "amount_columns": self.amount_columns,
            "type_from_amount_columns": self.type_from_amount_columns,
            "amount_columns_reversed": self.amount_columns_reversed,
            "decimal_comma": self.decimal_comma,
        }


def fold_text(text: str) -> str:
    """Case and accents folded, letters of every script kept: 'CAFÉ', 'Café' and 'cafe' are one spelling."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text).translate(_COMBINING_MARKS)
    return unicodedata.normalize("NFC", decomposed).casefold()  # NFC puts Hangul syllables back together


class CharacterTable(dict):
    """A `str.translate` table filled on first sight of each character, from `replace(character)`."""

    def __init__(self, replace):
        super().__init__()
        self.replace = replace

    def __missing__(self, code):
        self[code] = self.replace(chr(code))
        return self[code]


_COMBINING_MARKS = CharacterTable(lambda c: "" if unicodedata.combining(c) else c)
_NAME_SEPARATORS = re.compile(r"[^0-9a-z]+")
_DASHES = ("-", "\u2013", "\u2014")  # what some exports write in the empty one of two amount columns
_NON_ASCII_NAME_SEPARATORS = CharacterTable(
    lambda c: c if c.isalnum() or unicodedata.category(c).startswith("M") else "_")


def _normalise_name(name) -> str:
    folded = fold_text(str(name).strip())
    if folded.isascii():
        return _NAME_SEPARATORS.sub("_", folded).strip("_")
    return re.sub("_+", "_", folded.translate(_NON_ASCII_NAME_SEPARATORS)).strip("_")


def canonical_column_names(columns) -> dict:
    """Map each given column name to its canonical name (unknown names map to None). A name in another language
    or an amount with its currency ('Betrag', 'Amount (EUR)') gives way to a column named in English: beside
    `Amount`, `Amount (EUR)` is another column, as it was before such names were known."""
    names = {column: _canonical_name(str(column)) for column in columns}
    taken = {canonical for canonical, secondary in names.values() if canonical and not secondary}
    return {column: None if secondary and canonical in taken else canonical
            for column, (canonical, secondary) in names.items()}


def split_amount_columns(columns) -> tuple | None:
    """The (money out, money in) columns of an export that writes each amount in one of two columns (Debit and
    Credit, Paid out and Paid in), one of them None when it has only the other (a request of expenses, say); None
    when it has neither. Refused if either kind is named twice."""
    return _split_amount_columns(tuple(columns))


@functools.lru_cache(maxsize=256)  # an amount model's every request has no amount column: its header, once
def _split_amount_columns(columns: tuple) -> tuple | None:
    found = {}
    for column in columns:
        name = _normalise_name(_CURRENCY_SUFFIX.sub("", str(column)))
        for kind, names in (("money out", config.MONEY_OUT_COLUMNS), ("money in", config.MONEY_IN_COLUMNS)):
            if name in names:
                if kind in found:
                    raise LedgerError(f"columns {found[kind]!r} and {column!r} both mean {kind}; keep only one")
                found[kind] = column
    return (found.get("money out"), found.get("money in")) if found else None


def readable_columns(columns) -> set:
    """The canonical columns the contract reads from a table with these column names: an amount from money-out
    and money-in columns too (`split_amount_columns`)."""
    present = set(canonical_column_names(columns).values()) - {None}
    if "amount" not in present and split_amount_columns(columns):
        present.add("amount")
    return present


@functools.lru_cache(maxsize=256)  # a served model sees the same few headers request after request
def _canonical_name(name: str) -> tuple[str | None, bool]:
    """(the canonical name, whether it comes from a name in another language or with a currency), (None, False)."""
    key = _normalise_name(name)
    key = config.COLUMN_ALIASES.get(key, key)
    if key in config.COLUMNS or key == config.ANOMALY_LABEL:
        return key, False
    if key in config.OTHER_LANGUAGE_COLUMN_ALIASES:
        return config.OTHER_LANGUAGE_COLUMN_ALIASES[key], True
    without_currency = _normalise_name(_CURRENCY_SUFFIX.sub("", name))  # "Amount (EUR)", "Betrag EUR"
    aliases = {**config.COLUMN_ALIASES, **config.OTHER_LANGUAGE_COLUMN_ALIASES}
    return ("amount", True) if aliases.get(without_currency, without_currency) == "amount" else (None, False)


def _row_name(position: int, source: str | None) -> str:
    # Rows are counted from 0 like the records of a request; a file also gets its line.
    if source:
        return f"row {position} (line {position + 2} of {source})"
    return f"row {position}"


def _problems_message(column: str, positions, values, expected: str, source: str | None) -> str:
    positions = list(positions)
    shown = [
        f"{_row_name(int(p), source)}, column '{column}': {'null' if v is None else repr(v)} {expected}"
        for p, v in zip(positions[:MAX_PROBLEMS_SHOWN], list(values)[:MAX_PROBLEMS_SHOWN])
    ]
    more = len(positions) - len(shown)
    if more > 0:
        shown.append(f"... and {more} more row(s) in column '{column}'")
    return "; ".join(shown)


def read_ledger(path, header_only: bool = False) -> pd.DataFrame:
    """Read a ledger CSV as text, every column kept; the contract is applied by `prepare_ledger`. With
    `header_only`, just its columns (a frame of no rows), with the same errors for a file that cannot be read."""
    path = Path(path)
    if not path.is_file():
        looked = "" if path.is_absolute() else (
            f" (looked for {path.resolve()}: `mlflow run` starts its command in the project's folder, so a relative "
            f"path is read from there; pass an absolute one, e.g. -P data=$PWD/{path})")
        raise LedgerError(f"ledger file {str(path)!r} does not exist{looked}")
    if path.stat().st_size == 0:
        raise LedgerError(f"{path.name} is empty; expected a header line and at least one transaction")
    separator, excel_line = csv_layout(path)  # Excel's `sep=;` line is no header: skipped
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, sep=separator,
                          skiprows=excel_line, nrows=0 if header_only else None)
    except UnicodeDecodeError:
        data = path.read_bytes()
        try:
            data.decode("utf-8")
            raise LedgerError(f"{path.name} is not UTF-8 text; save it as UTF-8 (in Excel: CSV UTF-8)") from None
        except UnicodeDecodeError as error:  # where, in the whole file (pandas reads it in chunks)
            line = data.count(b"\n", 0, error.start) + 1
            raise LedgerError(
                f"{path.name} is not UTF-8 text: line {line} has the byte 0x{data[error.start]:02x}, as Windows-1252 "
                f"or Latin-1 write an accented letter; save the file as UTF-8 (in Excel: CSV UTF-8)") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
        raise LedgerError(f"{path.name} is not a readable CSV file: {error}") from None
    if raw.empty and not header_only:
        raise LedgerError(f"{path.name} has a header but no transactions; expected at least one row")
    return raw


def csv_layout(path: Path) -> tuple[str, int]:
    """A CSV file's field separator, and how many lines to skip before its header.

    The separator is a comma, or what European exports (Excel where the decimal mark is a comma) and others write, a
    semicolon, a tab or a bar: the one that splits the header and the first record into the same number of fields,
    the most (quotes respected). Where the first line that is not blank is Excel's `sep=;`, it names the separator,
    and that line and the blank ones before it are skipped; otherwise nothing is."""
    start = _file_start(path)
    lines = start.split("\n")
    first = next((at for at, line in enumerate(lines) if line.strip()), None)
    excel = _EXCEL_SEPARATOR_LINE.fullmatch(lines[first].rstrip("\r")) if first is not None else None
    if excel:
        return excel.group(1), first + 1

    def fields(separator):  # the header and the first record (a quoted cell may hold a line break)
        records = [len(row) for row in itertools.islice(
            (row for row in csv.reader(io.StringIO(start), delimiter=separator) if row), 2)]
        return (len(set(records)) == 1 and records[0] > 1, records[0] if records else 0, separator == ",")

    return max(",;\t|", key=fields), 0


_EXCEL_SEPARATOR_LINE = re.compile(r" *sep=(.) *")  # the separator may be a tab: only spaces around it


def _file_start(path: Path, size: int = 65536) -> str:
    """The first `size` bytes of a file as text (a byte-order mark dropped, undecodable bytes replaced)."""
    with path.open("rb") as file:
        return file.read(size).decode("utf-8-sig", errors="replace")


def _arrow_strings(values: pd.Series) -> pa.Array | None:
    """A column pandas keeps as Arrow strings (its default `str`, `string[pyarrow]`) as one Arrow array, for the
    fast path; None for any other column (object, numbers, Python strings), which is read cell by cell."""
    dtype = values.dtype
    if not ((isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow")
            or (isinstance(dtype, pd.ArrowDtype)
                and (pa.types.is_string(dtype.pyarrow_dtype) or pa.types.is_large_string(dtype.pyarrow_dtype)))):
        return None
    array = pa.array(values.array)  # pa.array(values) costs 7 µs more: pandas looks for a column named __arrow_array__
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def among(values: pd.Series, words) -> np.ndarray:
    """Which cells of a prepared text column are one of `words`, as a boolean array: Arrow's `is_in` for an
    Arrow-backed column (what the contract makes), 50 µs less than pandas' `isin` around it; for one word Arrow's
    `equal`, 40 µs less again on 10,000 rows. A `Coded` column (`prepare_columns`) is read by its distinct values."""
    if isinstance(values, Coded):
        return np.array([value in words for value in values.values], dtype=bool)[values.codes]
    arrow = _arrow_strings(values)
    if arrow is None:
        return values.isin(words).to_numpy()
    if len(words) == 1:
        found = pc.fill_null(pc.equal(arrow, pa.scalar(words[0], type=arrow.type)), False)  # a missing cell is no word
    else:
        found = pc.is_in(arrow, value_set=pa.array(words, type=arrow.type))
    return found.to_numpy(zero_copy_only=False)


def signed_by_type(amount: np.ndarray, kinds) -> np.ndarray:
    """Amounts signed as every model reads them, money out negative, whatever sign the ledger wrote: an export may
    write every amount positive and let `type` say the direction (the Titans export does). An expense is -|amount|,
    income +|amount|, any other type as written (after the contract, only a row without an amount keeps one: it
    takes its type from the amount's sign)."""
    magnitude = np.abs(amount)
    if (isinstance(kinds, Coded) and isinstance(amount, np.ndarray) and amount.dtype == float
            and all(kind in ("expense", "income") for kind in kinds.values)):
        # Every row an income or an expense: the expenses' magnitudes negated in place, one pass instead of two
        return np.negative(magnitude, out=magnitude, where=among(kinds, ("expense",)))
    return np.where(among(kinds, ("expense",)), -magnitude, np.where(among(kinds, ("income",)), magnitude, amount))


def _stripped_text(values: pd.Series) -> pa.Array:
    """`as_text` as an Arrow array: an Arrow-backed column stripped in one pass (Arrow's whitespace is Python's,
    tests/test_contract_fast_path.py checks every character), any other cell by cell."""
    arrow = _arrow_strings(values)
    if arrow is None:
        return pa.array(as_text(values), type=pa.large_string())
    stripped = pc.utf8_trim_whitespace(arrow)
    return stripped.fill_null("") if stripped.null_count else stripped


def as_text(values) -> np.ndarray:
    """Cells as stripped strings; None, NaN and pandas' missing markers become ''."""
    # Walk a plain list: iterating a pandas (Arrow-backed) column cell by cell costs microseconds a cell.
    cells = values.to_numpy(dtype=object).tolist() if isinstance(values, pd.Series) else list(values)
    text = np.empty(len(cells), dtype=object)
    text[:] = [value.strip() if type(value) is str else _cell_text(value) for value in cells]
    return text


def _cell_text(value) -> str:
    # The slow path of `as_text`, for the cells that are not already strings.
    if value is None or value is pd.NA or value != value:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # pandas reads a column of numbers with gaps as floats: 12345.0 was '12345'
    return str(value).strip()


def _refuse_nested(values: pd.Series, column: str, source: str | None) -> None:
    """A request can carry a list or an object where a cell belongs: refused by row, never stringified."""
    if values.dtype != object:
        return
    nested = np.flatnonzero([isinstance(value, (list, tuple, dict, set, bytes, np.ndarray)) for value in values])
    if nested.size:
        shown = [value.tolist() if isinstance(value, np.ndarray) else value for value in values.iloc[nested]]
        raise LedgerError(_problems_message(column, nested, shown, "is not a single value; expected text or a number",
                                            source))


def _empty_column(values: pd.Series) -> bool:
    """Every cell empty: null, NaN or blank text (what an export writes for a column it never fills)."""
    return bool(values.isna().all() or (as_text(values) == "").all())


def _shown(value):
    # How a refused cell is quoted in a message: null for a missing one, else its text.
    return None if value is None or value is pd.NA or value != value else value


def parse_amounts(values: pd.Series, column: str = "amount", source: str | None = None,
                  missing_ok: bool = False) -> np.ndarray:
    """Amounts as floats; 'abc', infinity (and, unless `missing_ok`, empty or null) are refused by row. A column
    of text is read with a decimal point or, where it writes some amount only a decimal comma reads ('-39,99',
    '1.234,56'), with a decimal comma throughout; one that writes both has the fewer refused by row."""
    return _parse_amounts(values, column, source, missing_ok)[0]


def _parse_amounts(values: pd.Series, column: str, source: str | None, missing_ok: bool,
                   decimal_comma: bool | None = None, prefer_comma: bool = False) -> tuple[np.ndarray, bool | None]:
    """`parse_amounts`, and whether the column was read with a decimal comma (None: its text does not say, or it
    is not text; False: with `prefer_comma`, its text shows a decimal point). `decimal_comma` given (True or False)
    reads it that way, for a column read beside another; `prefer_comma` reads a column whose text says neither
    ('1.234') with a decimal comma, as a model trained on a ledger that wrote one reads its requests."""
    if pd.api.types.is_bool_dtype(values):  # every cell true or false: named by row, as one such cell would be
        raise LedgerError(_problems_message(column, range(len(values)), values.iloc[:MAX_PROBLEMS_SHOWN].tolist(),
                                            "is not a finite number; expected an amount like -12.50", source))
    comma = None
    if pd.api.types.is_numeric_dtype(values):
        amounts = np.array(values.to_numpy(dtype=float, na_value=np.nan))
    else:
        text = as_text(values)
        amounts = np.array(pd.to_numeric(text, errors="coerce"), dtype=float)
        unread = np.flatnonzero(np.isnan(amounts) & (text != ""))
        comma = decimal_comma
        written = _written_cells(values, text) if unread.size or comma or prefer_comma else None  # not numbers
        if (unread.size or prefer_comma) and comma is None:  # what the text shows (text read as numbers: a point)
            comma = _decimal_comma(text, written, unread, column, source, prefer_comma)
        if comma:  # every written cell again, with a decimal comma ('1.234' is a thousand)
            unread = np.flatnonzero(written)
            amounts[unread] = np.nan
        pattern = _COMMA_AMOUNT_PATTERN if comma else _AMOUNT_PATTERN
        for position in unread:
            amounts[position] = _written_amount(text[position], pattern, bool(comma))
    bad = ~np.isfinite(amounts)
    if missing_ok and bad.any():
        bad &= ~(pd.isna(values).to_numpy() | (as_text(values) == ""))
    bad = np.flatnonzero(bad)
    if bad.size:
        example = "-12,50 or 1.234,56 (a decimal comma, as other rows write amounts)" if comma else "-12.50 or 1,234.56"
        raise LedgerError(_problems_message(column, bad, [_shown(v) for v in values.iloc[bad]],
                                            f"is not a finite number; expected an amount like {example}", source))
    huge = np.flatnonzero(np.abs(amounts) > MAX_PLAUSIBLE_AMOUNT)  # NaN (a missing amount, where allowed) is not
    if huge.size:
        raise LedgerError(_problems_message(column, huge, [_shown(v) for v in values.iloc[huge]],
                                            f"is not a plausible amount; expected at most {MAX_PLAUSIBLE_AMOUNT:,.0f} "
                                            f"in size", source))
    return amounts, comma


def _written_amount(text: str, pattern: re.Pattern, comma: bool) -> float:
    """One cell's amount as `pattern` reads it (currency, parentheses, DR/CR, a trailing minus), NaN if it does not:
    only one way of saying the sign is taken."""
    match = pattern.match(text)
    signs = [] if match is None else [m for m in (match["open"], match["sign"], match["inner_sign"], match["after"])
                                      if m]
    if match is None or bool(match["open"]) != bool(match["close"]) or len(signs) > 1:
        return np.nan
    number = match["number"]
    number = number.translate(_THOUSANDS).replace(",", ".") if comma else number.replace(",", "").replace("'", "")
    negative = bool(signs) and signs[0].strip().lower() in ("(", "-", "\u2212", "dr")
    return -float(number) if negative else float(number)


def _written_cells(values: pd.Series, text: np.ndarray) -> np.ndarray:
    """Which cells of a column of amounts are written text (not empty, not a number: a JSON request may mix
    numbers and text in one column, and a number has no decimal mark to read)."""
    written = text != ""
    if values.dtype == object:
        written &= np.array([not isinstance(value, (int, float, np.number)) for value in values.tolist()], dtype=bool)
    return written


def _decimal_comma(text: np.ndarray, written: np.ndarray, unread: np.ndarray, column: str,
                   source: str | None, prefer_comma: bool = False) -> bool | None:
    """Whether a text column of amounts writes a decimal comma, from the written cells only one reading takes:
    '-39,99' and '1.234,56' only a decimal comma, '12.50', '1,234.56' and '0.125' only a decimal point ('1,234' and
    '1.234' take either). Neither shown: None. Both: the fewer are refused by row (as a column of dates that shows
    both day/month orders), the others named as what they expected; with `prefer_comma`, a column showing neither
    is read with a decimal comma. `unread` are the cells that are not plain numbers."""
    comma_only = [p for p in unread.tolist() if written[p] and not _AMOUNT_PATTERN.match(text[p])
                  and _COMMA_AMOUNT_PATTERN.match(text[p])]
    if not comma_only and not prefer_comma:
        return None
    unread_cells = np.zeros(len(text), dtype=bool)
    unread_cells[unread] = True
    marked = [p for p in np.flatnonzero(written).tolist() if "." in text[p] or "," in text[p]]
    point_only = [p for p in marked if not _COMMA_AMOUNT_PATTERN.match(text[p])
                  and (not unread_cells[p] or _AMOUNT_PATTERN.match(text[p]))]
    if not comma_only:  # `prefer_comma`: a comma where no cell says otherwise and one reads differently ('1.234')
        if point_only:
            return False  # a decimal point shown, as a column read beside this one needs to know
        return True if marked else None
    if not point_only:
        return True
    odd, usual = ("comma", "point") if len(comma_only) <= len(point_only) else ("point", "comma")
    refused, others = (comma_only, point_only) if odd == "comma" else (point_only, comma_only)
    raise LedgerError(_problems_message(
        column, refused, text[refused[:MAX_PROBLEMS_SHOWN]].tolist(),
        f"is written with a decimal {odd}; expected a decimal {usual}, as {len(others)} other row(s) write amounts "
        f"(e.g. {_row_name(others[0], source)}: {text[others[0]]!r})", source))


def split_amounts(money_out: pd.Series | None, money_in: pd.Series | None, source: str | None = None,
                  missing_ok: bool = False) -> np.ndarray:
    """One signed amount a row from an export's two amount columns (either may be None): money in minus money out.
    A money-out column written negative throughout is read by size (a bank that signs its debits); one of both
    signs as written (-3.00 under Debit is money back). A dash is an empty cell. A row with neither is refused,
    naming the columns, unless `missing_ok`."""
    return _split_amounts(money_out, money_in, source, missing_ok)[0]


def _split_amounts(money_out: pd.Series | None, money_in: pd.Series | None, source: str | None,
                   missing_ok: bool, prefer_comma: bool = False) -> tuple[np.ndarray, bool | None]:
    """`split_amounts`, and whether the columns were read with a decimal comma (see `_parse_amounts`)."""
    rows = len(money_out if money_out is not None else money_in)

    def side(values, decimal_comma=None):
        if values is None:
            return np.full(rows, np.nan), None
        if not pd.api.types.is_numeric_dtype(values):
            values = values.where(~np.isin(as_text(values), _DASHES), None)
        return _parse_amounts(values, str(values.name), source, True, decimal_comma, prefer_comma)

    (out, out_comma), (into, in_comma) = side(money_out), side(money_in)
    if prefer_comma and False in (out_comma, in_comma):  # one column shows a decimal point: both are read so
        out = side(money_out, False)[0] if out_comma else out
        into = side(money_in, False)[0] if in_comma else into
        out_comma = in_comma = False
    elif out_comma or in_comma:  # the other column's '1.234' is a thousand too, and its '12.50' refused
        out = side(money_out, True)[0] if out_comma is None else out
        into = side(money_in, True)[0] if in_comma is None else into
    written = out[np.isfinite(out)]
    if written.size and (written <= 0).all():
        out = -out
    amounts = np.where(np.isnan(into), 0.0, into) - np.where(np.isnan(out), 0.0, out)
    neither = np.isnan(out) & np.isnan(into)
    amounts[neither] = np.nan
    if neither.any() and not missing_ok:
        empty = np.flatnonzero(neither)
        named = [repr(str(c.name)) for c in (money_out, money_in) if c is not None]
        rows_named = ", ".join(_row_name(int(p), source) for p in empty[:MAX_PROBLEMS_SHOWN])
        more = f" and {len(empty) - MAX_PROBLEMS_SHOWN} more row(s)" if len(empty) > MAX_PROBLEMS_SHOWN else ""
        where = f"columns {' and '.join(named)} are both empty" if len(named) == 2 else f"column {named[0]} is empty"
        raise LedgerError(f"{rows_named}{more}: {where}; expected the amount in "
                          f"{'one of them' if len(named) == 2 else 'it'}")
    return amounts, bool(out_comma or in_comma)


def balance_says_reversed(balance: pd.Series, amounts: np.ndarray) -> bool:
    """Whether an export's running balance moves against the amounts read from its two columns on (nearly) every
    row, in the file's order or its reverse (newest first): its Debit is money in, as in a bookkeeping export of a
    bank account. False when the balance cannot be read or says too little."""
    try:
        steps = np.diff(parse_amounts(balance, str(balance.name), missing_ok=True))
    except LedgerError:
        return False
    for step, amount in ((steps, amounts[1:]), (-steps, amounts[:-1])):  # oldest first, newest first
        known = np.isfinite(step) & np.isfinite(amount) & (amount != 0)
        along = np.isclose(step[known], amount[known], atol=0.005).sum()
        against = np.isclose(step[known], -amount[known], atol=0.005).sum()
        if known.sum() >= 5 and against >= 0.9 * known.sum() and along <= 0.1 * known.sum():
            return True
    return False


def parse_dates(values: pd.Series, column: str = "date", source: str | None = None, date_order: str = "auto",
                implausible_dates: str = "refuse") -> np.ndarray:
    """Dates as datetime64[ns] at midnight: each value's own calendar date (a UTC offset is not applied).

    Unparsable dates are refused by row; so are implausible ones (before 1970, or more than
    PLAUSIBLE_DAYS_AHEAD days from today), unless `implausible_dates='drop'`, which makes them NaT.
    Day/month dates are read in the order their column decides (see `prepare_ledger`).
    """
    _check_choice("date_order", date_order, DATE_ORDERS)
    _check_choice("implausible_dates", implausible_dates, IMPLAUSIBLE_DATE_ACTIONS)
    return _dates(values, column, source, date_order, implausible_dates)[0].astype("datetime64[ns]")


def decide_date_order(values: pd.Series, date_order: str = "auto", column: str = "date") -> str | None:
    """The day/month order a whole column is read in ('dmy', 'mdy'), or None when it has no day/month dates or
    none of them decides it (in 'auto', a guess is left to whoever reads the batches: a model's own order);
    mixed orders are refused. For a job that hands a large file to a model in batches: decide once, from every
    row, and pass the order with each batch."""
    _check_choice("date_order", date_order, DATE_ORDERS)
    _, order, guessed = _read_dates(values, column, None, date_order)
    return order if order in ("dmy", "mdy") and not guessed else None


def _dates(values: pd.Series, column: str, source: str | None, date_order: str, implausible_dates: str):
    """`parse_dates`' days (datetime64[D]) with what `prepare_ledger` reports: the order used, whether it was a
    guess, and the rows whose implausible date was made NaT (with `implausible_dates='drop'`)."""
    days, order, guessed = _read_dates(values, column, source, date_order)
    earliest, latest = _plausible_range()
    # numpy's min and max of dates cost four times those of their numbers (in the dates' unit). `_read_dates`
    # refused NaT; were one here, it is the smallest number and fails the check as it does as a date.
    numbers = days.view(np.int64)
    if not days.size or (numbers.min() >= earliest.astype(days.dtype).astype(np.int64)
                         and numbers.max() <= latest.astype(days.dtype).astype(np.int64)):
        return days, order, guessed, np.array([], dtype=np.intp)
    implausible = np.flatnonzero((days < earliest) | (days > latest))
    if implausible_dates == "refuse":
        raise LedgerError(_problems_message(
            column, implausible, [_shown(v) for v in values.iloc[implausible[:MAX_PROBLEMS_SHOWN]]],
            f"is not a plausible date; expected a date from {earliest} to {latest}", source))
    days[implausible] = np.datetime64("NaT")  # a year 0025 has no nanoseconds: made NaT before any cast to them
    return days, order, guessed, implausible


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise LedgerError(f"{name} is {value!r}; expected one of {', '.join(map(repr, choices))}")


def _plausible_range() -> tuple[np.datetime64, np.datetime64]:
    # Before 1970 or over a year ahead is a typo ('0025', '2099'), or a day/month order misread.
    return EARLIEST_PLAUSIBLE_DATE, np.datetime64(datetime.date.today(), "D") + PLAUSIBLE_DAYS_AHEAD


def _read_dates(values: pd.Series, column: str, source: str | None, date_order: str):
    """Each row's calendar date (datetime64[D]), the day/month order used and whether it was a guess.

    Text is parsed once per distinct value: a ledger has far fewer dates than rows.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        wall_clock = values.dt.tz_localize(None) if values.dt.tz is not None else values
        days, order, guessed = wall_clock.to_numpy().astype("datetime64[D]"), None, False
    else:
        days = _plain_iso_column(values)
        if days is not None:  # what a client sends (every cell a day): the general path reads these the same way
            return days, "iso", False
        codes, distinct = _coded_text(values)
        distinct_days, order, guessed = _distinct_dates(distinct, codes, values, column, source, date_order)
        days = distinct_days[codes]
    bad = np.flatnonzero(np.isnat(days))
    if bad.size:
        raise LedgerError(_problems_message(
            column, bad, [_shown(v) for v in values.iloc[bad[:MAX_PROBLEMS_SHOWN]]],
            "is not a date; expected e.g. 2024-03-15, 15/03/2024, 03/15/2024 or 15 Mar 2024", source))
    return days, order, guessed


def _distinct_dates(distinct: np.ndarray, codes: np.ndarray, values: pd.Series, column: str,
                    source: str | None, date_order: str):
    """The dates of a column's distinct texts (NaT where unreadable), the order used and whether it was a guess."""
    written = distinct != ""
    days = _plain_iso_days(distinct, written)
    if days is not None:  # what a client sends: the general path below reads these the same way
        return days, ("iso" if written.any() else None), False
    text = pa.array(distinct, type=pa.string())
    iso = distinct
    if pc.max(pc.utf8_length(text)).as_py() > len("2024-03-15"):  # a time, perhaps with an offset
        iso = pc.replace_substring_regex(text, _UTC_OFFSET, r"\1").to_numpy(zero_copy_only=False)
    days = pd.to_datetime(iso, format="ISO8601", errors="coerce", utc=True).tz_localize(None).to_numpy()
    days = days.astype("datetime64[D]")
    # pandas' ISO reading also takes 'now', 'today', '2024' and '2023-12': a transaction's date names its day.
    days[~np.asarray(pc.match_substring_regex(text, _WHOLE_ISO_DATE))] = np.datetime64("NaT")
    order, guessed = ("iso" if written.any() else None), False
    todo = np.isnat(days) & written
    if todo.any():
        fields = pc.extract_regex(text, _DAY_MONTH)  # null where the text is no day/month date
        day_month = np.flatnonzero(todo & np.asarray(fields.is_valid()))
        if day_month.size:
            picked = fields.take(pa.array(day_month))
            first, second, year = (np.asarray(pc.cast(picked.field(name), pa.int64()))
                                   for name in ("first", "second", "year"))
            year = np.where(year < 100, np.where(year < TWO_DIGIT_YEAR_PIVOT, 2000, 1900) + year, year)
            with_dots = bool(np.asarray(pc.equal(picked.field("separator"), ".")).all())
            order, guessed = _day_month_order(first, second, with_dots, day_month, codes, values, column, source,
                                              date_order)
            day, month = (first, second) if order == "dmy" else (second, first)
            days[day_month] = _calendar_days(year, month, day)
        todo &= np.isnat(days)
    for date_format in DATE_FORMATS:
        if not todo.any():
            break
        parsed = pd.to_datetime(distinct[todo], format=date_format, errors="coerce")
        days[todo] = parsed.to_numpy().astype("datetime64[D]")
        todo &= np.isnat(days)
    for position in np.flatnonzero(todo):  # a few distinct texts: one by one
        match = _YEAR_MONTH_DAY_WORDS.fullmatch(distinct[position])
        if match:
            days[position] = _calendar_days(*(np.array([int(number)]) for number in match.groups()))[0]
    days[~np.asarray(pc.match_substring_regex(text, "[0-9]"))] = np.datetime64("NaT")  # pandas reads 'now' any format
    return days, order, guessed


def _plain_iso_column(values: pd.Series) -> np.ndarray | None:
    """The days of an Arrow text column whose every cell is a plain ISO date (2024-03-15) of a day that exists, by
    Arrow's own cast to dates (a quarter of the cost of coding the column and reading its distinct texts); None for
    any other column (a missing cell, a blank, another form, 2023-02-29), left to the general path, which reads
    these cells the same way (tests/test_contract_fast_path.py)."""
    arrow = _arrow_strings(values)
    if arrow is None or not len(arrow) or arrow.null_count:
        return None
    try:
        return arrow.cast(pa.date32()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _plain_iso_days(distinct: np.ndarray, written: np.ndarray) -> np.ndarray | None:
    """The days of distinct texts that are all plain ISO dates (2024-03-15) or empty (NaT), read by numpy; None
    for a column with any other text, or a day that does not exist (2023-02-29), left to the general path."""
    if not all(map(_PLAIN_ISO_DATE.fullmatch, distinct[written].tolist())):
        return None
    days = np.full(len(distinct), np.datetime64("NaT"), dtype="datetime64[D]")
    try:
        days[written] = np.array(distinct[written].tolist(), dtype="datetime64[D]")
    except ValueError:
        return None
    return days


def _day_month_order(first, second, with_dots, where, codes, values, column, source, date_order):
    """The order of a column's day/month dates, from the values that have only one reading.

    A column is day-first if some date can only be day-first (15/03/2024), month-first if some can only be
    month-first (03/15/2024), refused if both; a column ambiguous throughout follows `date_order`, and in
    'auto' is read month-first (day-first if it writes dots, 15.03.2024: month-first dots are not a convention).
    """
    day_first = (first > 12) & (second <= 12)
    month_first = (second > 12) & (first <= 12)

    def first_row(only):
        # Distinct values are numbered in order of first appearance, so the first of them comes first in the rows.
        row = int(np.argmax(codes == where[np.argmax(only)]))
        return row, _shown(values.iloc[row])

    if day_first.any() and month_first.any():
        (day_row, day_value), (month_row, month_value) = first_row(day_first), first_row(month_first)
        raise LedgerError(
            f"column '{column}' mixes day-first and month-first dates: "
            + _problems_message(column, [day_row], [day_value], "can only be day-first", source) + "; "
            + _problems_message(column, [month_row], [month_value], "can only be month-first", source)
            + "; expected one order in the whole column (correct the other rows)")
    found = "dmy" if day_first.any() else "mdy" if month_first.any() else None
    if found and date_order != "auto" and found != date_order:
        row, value = first_row(day_first if found == "dmy" else month_first)
        written = "day-first" if found == "dmy" else "month-first"
        raise LedgerError(_problems_message(
            column, [row], [value], f"can only be {written}, but date_order is '{date_order}'; "
            f"expected date_order '{found}' or 'auto' for this column", source))
    if found:
        return found, False
    if date_order != "auto":
        return date_order, False
    return ("dmy" if with_dots else "mdy"), True


def _calendar_days(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """datetime64[D] from year, month and day numbers; NaT where there is no such day (31/02, month 13)."""
    valid = (month >= 1) & (month <= 12) & (day >= 1)
    months = ((year - 1970) * 12 + np.where(valid, month, 1) - 1).astype("datetime64[M]")
    start, following = months.astype("datetime64[D]"), (months + 1).astype("datetime64[D]")
    days = start + (day - 1).astype("timedelta64[D]")
    return np.where(valid & (days < following), days, np.datetime64("NaT"))


def _coded_text(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column as codes into its distinct stripped texts (missing cells are ''): an enumeration has a
    handful of values, so they are stripped once each, not once per row."""
    arrow = _arrow_strings(values)
    if arrow is not None and len(arrow) <= _PYTHON_UP_TO:  # numbered in order of first appearance, as below
        first: dict = {}
        codes = np.array([-1 if cell is None else first.setdefault(cell, len(first)) for cell in arrow.to_pylist()],
                         dtype=np.intp)
        distinct = as_text([*first, ""])
        return np.where(codes < 0, len(distinct) - 1, codes), distinct
    if arrow is not None:  # what pd.factorize does for such a column, without pandas around it
        encoded = arrow.dictionary_encode()
        distinct = np.append(pc.utf8_trim_whitespace(encoded.dictionary).to_numpy(zero_copy_only=False), "")
        codes = encoded.indices.fill_null(len(distinct) - 1) if encoded.indices.null_count else encoded.indices
        return codes.to_numpy().astype(np.intp), distinct
    codes, uniques = pd.factorize(values)
    cells = np.asarray(uniques, dtype=object)
    distinct = None
    if len(cells) > _ARROW_FROM:  # many texts (a column of timestamps): stripped in one Arrow pass
        try:
            stripped = pc.utf8_trim_whitespace(pa.array(cells, type=pa.string())).to_numpy(zero_copy_only=False)
            distinct = np.append(stripped.astype(object), "")
        except (pa.ArrowTypeError, pa.ArrowInvalid):  # numbers, dates, mixed cells: one by one below
            pass
    if distinct is None:
        distinct = as_text(list(cells) + [""])
    return np.where(codes < 0, len(distinct) - 1, codes), distinct


def _canonical_codes(values: pd.Series, allowed) -> np.ndarray | None:
    """Each row's position in `allowed` when every cell of an Arrow text column is exactly one of them (what a
    client sends, and the contract would keep as it is), by one Arrow lookup instead of coding the column and
    reading its distinct texts; None for any other column (a missing cell, another spelling), left to the general
    path (tests/test_contract_fast_path.py)."""
    arrow = _arrow_strings(values)
    if arrow is None or len(arrow) <= _PYTHON_UP_TO or arrow.null_count:
        return None
    found = pc.index_in(arrow, value_set=_value_set(tuple(allowed), arrow.type))
    return None if found.null_count else found.to_numpy()  # int32 codes


@functools.lru_cache(maxsize=16)
def _value_set(allowed: tuple, text_type: pa.DataType) -> pa.Array:
    return pa.array(allowed, type=text_type)


def _enum_key(value) -> str:
    return _normalise_name(value) if isinstance(value, str) else ""


def normalise_enum(codes: np.ndarray, distinct: np.ndarray, allowed, aliases: dict, column: str,
                   report: LedgerReport) -> np.ndarray:
    """Map spellings onto the allowed set: aliases, then close typos, else an explicit 'unknown'.

    Takes the column as codes into its distinct texts (`_coded_text`), so a large ledger costs what its
    vocabulary costs.
    """
    return np.array(_enum_values(codes, distinct, allowed, aliases, column, report), dtype=object)[codes]


def _enum_values(codes: np.ndarray, distinct: np.ndarray, allowed, aliases: dict, column: str,
                 report: LedgerReport) -> list:
    """`normalise_enum`'s canonical value of each distinct text (what its rows read through their codes)."""
    counts: dict = {}
    for value, count in zip(distinct.tolist(), np.bincount(codes, minlength=len(distinct)).tolist()):
        counts[value] = counts.get(value, 0) + count  # ' debit' and 'debit' are one spelling
    candidates = [word for word in (*allowed, *aliases) if len(word) >= _MIN_TYPO_TARGET]
    mapping = {}
    for raw_value, count in sorted((value, count) for value, count in counts.items() if count):
        key = _enum_key(raw_value)
        if key in allowed:
            canonical = key
        elif key in aliases:
            canonical = aliases[key]
        elif key == "":
            canonical = config.UNKNOWN
        else:
            close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.8)
            canonical = aliases.get(close[0], close[0]) if close else config.UNKNOWN
        mapping[raw_value] = canonical
        if canonical == config.UNKNOWN:
            report.unknown.setdefault(column, {})[raw_value or "(empty)"] = int(count)
        elif canonical != key:
            report.corrected.setdefault(column, {})[raw_value] = canonical
    return [mapping.get(value, config.UNKNOWN) for value in distinct.tolist()]


def _taken(values: list, codes: np.ndarray) -> pa.Array:
    """Each row's value from the values of its column's distinct texts, as an Arrow string array."""
    if len(values) == 1:  # a column the request lacks (or the model does not read): one value for every row
        return pa.repeat(pa.scalar(values[0], pa.large_string()), len(codes))
    if len(codes) <= _PYTHON_UP_TO:
        return pa.array([values[code] for code in codes.tolist()], type=pa.large_string())
    return pa.array(values, type=pa.large_string()).take(codes)


def _empty_rows(values) -> np.ndarray:
    """The positions of a prepared column's empty cells."""
    if not isinstance(values, pa.Array):
        return np.flatnonzero(values == "")
    if len(values) <= _PYTHON_UP_TO:
        return np.array([row for row, value in enumerate(values.to_pylist()) if value == ""], dtype=np.intp)
    return np.flatnonzero(pc.equal(values, "").to_numpy(zero_copy_only=False))


# What pandas makes of a column of text (pandas 3: its Arrow-backed `str`); the contract's text columns are made
# as Arrow arrays and go into the frame as they are when that is what pandas would make of them.
_TEXT_DTYPE = pd.Series([""]).dtype


def _frame_column(values):
    """A prepared column as the frame takes it: text as pandas would make it of the same strings, days as pandas'
    datetime64[ns]."""
    if not isinstance(values, pa.Array):  # dates, amounts
        return values.astype("datetime64[ns]") if values.dtype.kind == "M" else values
    if isinstance(_TEXT_DTYPE, pd.StringDtype) and _TEXT_DTYPE.storage == "pyarrow":
        return pd.arrays.ArrowStringArray(values, dtype=_TEXT_DTYPE)
    return values.to_numpy(zero_copy_only=False)  # object cells, as pandas keeps text without `str`


def text_column(texts) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """Strings as the column pandas would make of them, made through Arrow (a third of pandas' own cost)."""
    return _frame_column(pa.array(texts, type=pa.large_string()))


@functools.lru_cache(maxsize=16)
def _column_names(names: tuple) -> pd.Index:
    return pd.Index(names)  # inferring the names' dtype is a third of the constructor's cost


def answer_frame(columns: dict) -> pd.DataFrame:
    """`pd.DataFrame(columns, copy=False)` of equal-length 1-d columns named by strings and already as pandas keeps
    them (float arrays, `text_column`s), by pandas' own `DataFrame._from_arrays` without the checks and conversions
    those columns do not need, and with the names' Index made once: 15 µs against the constructor's 64 for a 30-day
    forecast, which a served model makes on every request. tests/test_cashflow_request_path.py checks it against
    the constructor."""
    arrays = list(columns.values())
    if not hasattr(pd.DataFrame, "_from_arrays") or not arrays:  # another pandas: the constructor, same frame
        return pd.DataFrame(columns, copy=False)
    names = _column_names(tuple(columns)).copy()  # a copy: a caller may name its frame's columns (`.name`) in place
    return pd.DataFrame._from_arrays(arrays, columns=names, index=pd.RangeIndex(len(arrays[0])), verify_integrity=False)


class Coded(NamedTuple):
    """A prepared enumeration before it is a column of text: its canonical values, each once, and each row's code
    into them."""

    values: list
    codes: np.ndarray


@dataclass
class PreparedColumns:
    """The contract's columns before they are `prepare_ledger`'s frame, in the frame's order: the date (its day,
    datetime64[D]; the frame's is datetime64[ns]) and the amount (float) as arrays, text as Arrow arrays, an
    enumeration (type, payment method, status) as `Coded`. A model that reads only a few columns may read these
    instead of the frame: `among` and `signed_by_type` read a coded column by its few distinct values, and no column
    of text is made for it (the served cash-flow model sums its daily series straight from them)."""

    columns: dict
    rows: int

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, column: str):
        return self.columns[column]

    def frame(self) -> pd.DataFrame:
        """`prepare_ledger`'s frame of these columns."""
        return pd.DataFrame({column: _frame_column(_taken(*values) if isinstance(values, Coded) else values)
                             for column, values in self.columns.items()}, copy=False)  # all made here

    def without(self, rows: np.ndarray) -> "PreparedColumns":
        """These columns without the rows at positions `rows`."""
        keep = np.ones(self.rows, dtype=bool)
        keep[rows] = False

        def kept(values):
            if isinstance(values, Coded):
                return Coded(values.values, values.codes[keep])
            return values.filter(pa.array(keep)) if isinstance(values, pa.Array) else values[keep]

        return PreparedColumns({column: kept(values) for column, values in self.columns.items()}, int(keep.sum()))


def prepare_ledger(raw: pd.DataFrame, *args, **kwargs) -> tuple[pd.DataFrame, LedgerReport]:
    """`prepare_columns`' columns as one frame: the contract as every model and job reads a ledger."""
    columns, report = prepare_columns(raw, *args, **kwargs)
    return columns.frame(), report


def prepare_columns(
    raw: pd.DataFrame,
    required=("date", "description", "amount"),
    nonempty=(),
    source: str | None = None,
    missing_amount_ok: bool = False,
    columns=None,
    *,
    date_order: str = "auto",
    implausible_dates: str = "refuse",
    only_read: bool = False,
    decimal_comma: bool = False,
) -> tuple[PreparedColumns, LedgerReport]:
    """Apply the contract to raw transactions, the same for a training file and a request.

    Returns the columns of a DataFrame (`PreparedColumns`; `prepare_ledger` makes the frame) with every canonical
    column present (optional ones filled with their empty value), `date` as datetime64, `amount` as float, enumerations
    normalised (missing amounts stay NaN where `missing_amount_ok`); and a report of what
    normalisation did. Raises LedgerError naming
    row, column, value and expectation for anything it cannot accept: only required values
    (a date, an amount, a description where `nonempty` asks for it) are refused.

    Enumeration values (type, payment method, status) that are neither allowed, an alias nor a
    close typo become 'unknown' and are counted in the report; they never refuse a row.

    Any column may come as pandas reads it: all-empty as float NaN, numbers as int or float,
    nullable or Arrow strings, the date as datetime64 (its wall-clock date is taken).

    Day/month dates (15/03/2024, 03/15/2024, 15.03.2024) are read in one order per column: the one
    its unambiguous values show (both shown: refused, naming a row of each); a column ambiguous
    throughout follows `date_order` ('dmy', 'mdy'; 'auto' reads it month-first and says so in the
    report). Dates before 1970 or more than a year ahead are refused, or with
    `implausible_dates='drop'` (training) their rows are dropped and counted in the report.

    `columns`, if given, are the canonical columns a model reads: only those are checked and parsed,
    the others are filled with their empty value as if they were absent (a forecast that reads dates
    and amounts need not parse descriptions). With `only_read` as well, the others are not made at all: the
    frame holds `columns` (and `nonempty`), in canonical order, and the report counts nothing of the others.

    Amounts written as text are read with the decimal mark their column shows (`parse_amounts`); one that shows
    neither ('1.234') with a decimal comma where `decimal_comma` says so (a model trained on such a ledger).
    """
    if not isinstance(raw, pd.DataFrame):
        raise LedgerError(f"expected a table of transactions, got {type(raw).__name__}")
    _check_choice("date_order", date_order, DATE_ORDERS)
    _check_choice("implausible_dates", implausible_dates, IMPLAUSIBLE_DATE_ACTIONS)
    report = LedgerReport(rows=len(raw))
    if raw.columns.has_duplicates:
        repeated = [name for name, canonical in canonical_column_names(raw.columns[raw.columns.duplicated()]).items()
                    if canonical is not None]  # one the contract reads: which of them would it be?
        if repeated:
            raise LedgerError(f"column {str(repeated[0])!r} appears more than once; keep only one")
    seen = {}
    headers = raw.columns.tolist()  # iterating the Index itself reads an Arrow-backed one cell by cell
    names = {column: _canonical_name(str(column)) for column in headers}
    # English names first: a name in another language or with a currency gives way to one (canonical_column_names)
    for original, (canonical, secondary) in sorted(names.items(), key=lambda item: item[1][1]):
        if canonical is None:
            report.dropped_columns.append(str(original))
        elif canonical in seen:  # two names for one column (Description and Memo): an empty one is left out
            if _empty_column(raw[original]) or (secondary and not names[seen[canonical]][1]
                                                and not _empty_column(raw[seen[canonical]])):
                report.dropped_columns.append(str(original))
            elif _empty_column(raw[seen[canonical]]):
                report.dropped_columns.append(str(seen[canonical]))
                seen[canonical] = original
            else:
                raise LedgerError(f"columns {seen[canonical]!r} and {original!r} both mean '{canonical}'; keep only "
                                  f"one")
        else:
            seen[canonical] = original
    position = {str(column): at for at, column in enumerate(headers)}
    report.dropped_columns.sort(key=position.get)
    if columns is not None:
        seen = {canonical: original for canonical, original in seen.items() if canonical in columns}
    split = None  # (money out, money in): an export that writes each amount in one of two columns
    if "amount" not in seen and (columns is None or "amount" in columns):
        try:
            split = split_amount_columns(raw.columns)
        except LedgerError:
            if "amount" in required:
                raise
        if split:
            named = [str(c) for c in split if c is not None]
            report.dropped_columns = [c for c in report.dropped_columns if c not in named]
            report.amount_columns = [None if c is None else str(c) for c in split]
    made = [c for c in config.COLUMNS if not only_read or columns is None or c in columns or c in nonempty]
    missing = [column for column in required if column not in seen and not (column == "amount" and split)]
    if missing:
        found = ", ".join(map(str, raw.columns)) or "none"
        separator = next((s for s in ";\t|" if s in str(raw.columns[0])), None) if len(raw.columns) == 1 else None
        hint = (f" (one column whose name holds {separator!r}: a file separated by {separator!r} read as if by commas; "
                f"read it with pd.read_csv(file, sep={separator!r}))") if separator else ""
        raise LedgerError(
            f"missing required column(s) {', '.join(repr(c) for c in missing)}; "
            f"found: {found}{hint}; expected at least: {', '.join(required)}"
        )
    rows = len(raw)
    if rows == 0:
        raise LedgerError("no transactions: expected at least one row")
    given = {column: raw[original] for column, original in seen.items()}  # each column taken out of raw once
    # Errors name a column by the file's own name when it is not just the canonical one written another way
    named = {column: column if _normalise_name(str(original)) == column else str(original)
             for column, original in seen.items()}

    for column, values in given.items():
        _refuse_nested(values, named[column], source)
    if split:
        for column in split:
            if column is not None:
                _refuse_nested(raw[column], str(column), source)

    # Text columns are Arrow string arrays until the frame is made (`_frame_column`): pandas keeps text as
    # Arrow, so a request's text never goes through Python objects and back.
    def text(column):
        return _stripped_text(given[column]) if column in given else pa.repeat(pa.scalar("", pa.large_string()), rows)

    def coded(column):
        # A column of few distinct values (a name, an enumeration) as codes into its distinct stripped texts.
        return _coded_text(given[column]) if column in given else (np.zeros(rows, dtype=np.intp),
                                                                   np.array([""], dtype=object))

    if "date" in given:
        dates, report.date_order, report.date_order_ambiguous, implausible = _dates(
            given["date"], named["date"], source, date_order, implausible_dates)
    else:
        dates, implausible = np.full(rows, np.datetime64("NaT"), "datetime64[D]"), np.array([], dtype=int)
    comma = None  # whether the amounts are written with a decimal comma
    if "amount" in given:
        amounts, comma = _parse_amounts(given["amount"], named["amount"], source, missing_amount_ok,
                                        prefer_comma=decimal_comma)
    elif split:
        amounts, comma = _split_amounts(*(None if c is None else raw[c] for c in split), source, missing_amount_ok,
                                        decimal_comma)
    else:
        amounts = np.full(rows, np.nan)
    report.decimal_comma = bool(comma)
    ledger = {"date": dates, "amount": amounts}
    if split and all(split):
        balances = [c for c in raw.columns if _normalise_name(str(c)) in config.BALANCE_COLUMNS]
        if balances and balance_says_reversed(raw[balances[0]], ledger["amount"]):
            report.amount_columns_reversed = True
    for column in ("description", "reference", "receipt_url"):
        if column in made:
            ledger[column] = text(column)
    if "category" in made:
        codes, distinct = coded("category")  # a regex per distinct name, not per row
        ledger["category"] = _taken([_normalise_name(value) if value else "" for value in distinct.tolist()], codes)
    for column in nonempty:
        empty = _empty_rows(ledger[column])
        if empty.size:
            shown = [_shown(v) for v in given[column].iloc[empty]] if column in given else [None] * empty.size
            raise LedgerError(
                _problems_message(named.get(column, column), empty, shown,
                                  f"is empty; expected the transaction's {column}", source)
            )

    def enumeration(column, allowed, aliases):
        # The canonical value of each distinct text, and each row's code into them.
        canonical = _canonical_codes(given[column], allowed) if column in given else None
        if canonical is not None:  # every cell one of the allowed values, as a client sends them: nothing to report
            return list(allowed), canonical
        codes, distinct = coded(column)
        return _enum_values(codes, distinct, allowed, aliases, column, report), codes

    if "type" in made:
        kinds, codes = enumeration("type", config.TRANSACTION_TYPES, config.TYPE_ALIASES)
        # No usable type: the sign says it (money out is negative in a signed ledger). With the amount from two
        # columns the sign says it for every row: the column an amount sits in is its direction, whatever the
        # bank's type calls it (a standing order paid in); rows whose type said the other direction are counted.
        if split or config.UNKNOWN in kinds:  # else every row has its type, and nothing below changes
            has_amount = ~np.isnan(ledger["amount"])
            unknown_type = np.array([kind == config.UNKNOWN for kind in kinds])[codes] & has_amount
            report.type_inferred_from_sign = int(unknown_type.sum())
            from_sign = has_amount if split else unknown_type
            if split:
                said = np.array([kind if kind in config.TRANSACTION_TYPES else "" for kind in kinds],
                                dtype=object)[codes]
                report.type_from_amount_columns = int(
                    ((said != "") & (said != np.where(ledger["amount"] < 0, "expense", "income")) & has_amount).sum())
            if from_sign.any():
                expense, income = len(kinds), len(kinds) + 1
                kinds = [*kinds, "expense", "income"]
                codes = np.where(from_sign, np.where(ledger["amount"] < 0, expense, income), codes)
        ledger["type"] = Coded(kinds, codes)
    if "payment_method" in made:
        ledger["payment_method"] = Coded(*enumeration("payment_method", config.PAYMENT_METHODS,
                                                      config.PAYMENT_METHOD_ALIASES))
    if "status" in made:
        ledger["status"] = Coded(*enumeration("status", config.STATUSES, config.STATUS_ALIASES))
    ordered = made
    if config.ANOMALY_LABEL in given:
        ledger[config.ANOMALY_LABEL] = text(config.ANOMALY_LABEL)
        ordered.append(config.ANOMALY_LABEL)
    prepared = PreparedColumns({column: ledger[column] for column in ordered}, rows)
    if implausible.size:
        examples = [str(v) for v in given["date"].iloc[implausible[:MAX_PROBLEMS_SHOWN]]]  # JSON, as logged
        report.dropped_rows["implausible date"] = {"count": int(implausible.size), "examples": examples}
        prepared = prepared.without(implausible)
        if not len(prepared):
            earliest, latest = _plausible_range()
            raise LedgerError(f"every transaction's date is implausible (e.g. {examples[0]!r}); "
                              f"expected dates from {earliest} to {latest}")
    return prepared, report


def as_frame(model_input) -> pd.DataFrame:
    """What MLflow hands over without an input schema, as one DataFrame: a DataFrame as it is (dataframe_split,
    dataframe_records, CSV); the `inputs` format's records (a list of dicts of 0-d arrays) or columns (a dict of
    arrays)."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, dict):
        columns = {column: np.atleast_1d(values) for column, values in model_input.items()}
        for column, values in columns.items():
            if values.ndim > 1:
                raise LedgerError(f"column {column!r} holds lists, not one value per row; expected text or a number "
                                  f"in each cell")
        lengths = {column: len(values) for column, values in columns.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{column!r} {length}" for column, length in lengths.items())
            raise LedgerError(f"the columns have different lengths ({shown}); expected one value per row in each")
        return pd.DataFrame(columns)
    if isinstance(model_input, list) and all(isinstance(row, dict) for row in model_input):
        return pd.DataFrame([{column: value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
                              for column, value in row.items()} for row in model_input])
    raise LedgerError(f"expected transactions as rows with named columns (dataframe_split, dataframe_records, or "
                      f"inputs as a list of records), got {type(model_input).__name__}")


def request_rows(rows: pd.DataFrame, drop=(), columns=None) -> pd.DataFrame:
    """Canonical ledger rows as a client sends them: ISO dates, no label column, without `drop`
    (or only `columns`)."""
    kept = [c for c in (columns or rows.columns) if c not in (*drop, config.ANOMALY_LABEL)]
    out = rows[kept].copy()
    out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    return out.reset_index(drop=True)


def load_ledger(path, required=("date", "description", "amount"), date_order: str = "auto",
                implausible_dates: str = "drop") -> tuple[pd.DataFrame, LedgerReport]:
    """Read and prepare a ledger CSV in one step (what training uses: rows with implausible dates are
    dropped and counted, not a reason to fail the run)."""
    return prepare_ledger(read_ledger(path), required=required, source=Path(path).name, date_order=date_order,
                          implausible_dates=implausible_dates)
