"""The ledger contract: raw transactions in, one canonical DataFrame out.

Used by training (a CSV the user brings) and by every served model (a request
body), so both accept the same mess and refuse the same things, with one
error type whose message names the row, the column, the bad value and what
was expected.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pyfunc_models import config

MAX_PROBLEMS_SHOWN = 5
DATE_FORMATS = ("ISO8601", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d %b %Y", "%b %d, %Y")
# From this many distinct values on, text is handled by Arrow (a call costs ~50 µs, a cell in Python ~0.5 µs).
_ARROW_FROM = 1000
# Typos are corrected only towards words this long: a short word is one letter away from too many others.
_MIN_TYPO_TARGET = 4
# "$1,234.56", "(12.50)", "-1 234,00" is refused: a comma is only a thousands separator.
_AMOUNT_PATTERN = re.compile(
    r"^(?P<open>\()?\s*(?P<sign>[-+])?\s*[$€£]?\s*"
    r"(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)\s*(?P<close>\))?$"
)


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

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "corrected": self.corrected,
            "unknown": self.unknown,
            "type_inferred_from_sign": self.type_inferred_from_sign,
            "dropped_columns": self.dropped_columns,
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
_NON_ASCII_NAME_SEPARATORS = CharacterTable(
    lambda c: c if c.isalnum() or unicodedata.category(c).startswith("M") else "_")


def _normalise_name(name) -> str:
    folded = fold_text(str(name).strip())
    if folded.isascii():
        return _NAME_SEPARATORS.sub("_", folded).strip("_")
    return re.sub("_+", "_", folded.translate(_NON_ASCII_NAME_SEPARATORS)).strip("_")


def canonical_column_names(columns) -> dict:
    """Map each given column name to its canonical name (unknown names map to None)."""
    mapping = {}
    for column in columns:
        key = _normalise_name(column)
        key = config.COLUMN_ALIASES.get(key, key)
        mapping[column] = key if key in config.COLUMNS or key == config.ANOMALY_LABEL else None
    return mapping


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


def read_ledger(path) -> pd.DataFrame:
    """Read a ledger CSV as text, every column kept; the contract is applied by `prepare_ledger`."""
    path = Path(path)
    if not path.is_file():
        raise LedgerError(f"ledger file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise LedgerError(f"{path.name} is empty; expected a header line and at least one transaction")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise LedgerError(f"{path.name} is not a readable CSV file: {error}") from None
    if raw.empty:
        raise LedgerError(f"{path.name} has a header but no transactions; expected at least one row")
    return raw


def _as_text(values) -> np.ndarray:
    """Cells as stripped strings; None, NaN and pandas' missing markers become ''."""
    # Walk a plain list: iterating a pandas (Arrow-backed) column cell by cell costs microseconds a cell.
    cells = values.to_numpy(dtype=object).tolist() if isinstance(values, pd.Series) else list(values)
    text = np.empty(len(cells), dtype=object)
    text[:] = [value.strip() if type(value) is str else _cell_text(value) for value in cells]
    return text


def _cell_text(value) -> str:
    # The slow path of `_as_text`, for the cells that are not already strings.
    if value is None or value is pd.NA or value != value:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # pandas reads a column of numbers with gaps as floats: 12345.0 was '12345'
    return str(value).strip()


def _refuse_nested(values: pd.Series, column: str, source: str | None) -> None:
    """A request can carry a list or an object where a cell belongs: refused by row, never stringified."""
    if values.dtype != object:
        return
    nested = np.flatnonzero([isinstance(value, (list, tuple, dict, set, bytes)) for value in values])
    if nested.size:
        raise LedgerError(_problems_message(column, nested, values.iloc[nested],
                                            "is not a single value; expected text or a number", source))


def _shown(value):
    # How a refused cell is quoted in a message: null for a missing one, else its text.
    return None if value is None or value is pd.NA or value != value else value


def parse_amounts(values: pd.Series, column: str = "amount", source: str | None = None,
                  missing_ok: bool = False) -> np.ndarray:
    """Amounts as floats; '12,50', 'abc', infinity (and, unless `missing_ok`, empty or null) are refused by row."""
    if pd.api.types.is_bool_dtype(values):
        raise LedgerError(f"column '{column}' holds true/false values; expected numbers like -12.50")
    if pd.api.types.is_numeric_dtype(values):
        amounts = np.array(values.to_numpy(dtype=float, na_value=np.nan))
    else:
        text = _as_text(values)
        amounts = np.array(pd.to_numeric(text, errors="coerce"), dtype=float)
        for position in np.flatnonzero(np.isnan(amounts) & (text != "")):
            match = _AMOUNT_PATTERN.match(text[position])
            if match and bool(match["open"]) == bool(match["close"]):
                number = float(match["number"].replace(",", ""))
                negative = match["open"] or match["sign"] == "-"
                amounts[position] = -number if negative else number
    bad = ~np.isfinite(amounts)
    if missing_ok and bad.any():
        bad &= ~(pd.isna(values).to_numpy() | (_as_text(values) == ""))
    bad = np.flatnonzero(bad)
    if bad.size:
        raise LedgerError(
            _problems_message(
                column,
                bad,
                [_shown(v) for v in values.iloc[bad]],
                "is not a finite number; expected an amount like -12.50 or 1,234.56",
                source,
            )
        )
    return amounts


def parse_dates(values: pd.Series, column: str = "date", source: str | None = None) -> np.ndarray:
    """Dates as datetime64[ns] at midnight (time zone dropped); unparsable ones refused by row."""
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values.dt.tz_localize(None) if getattr(values.dt, "tz", None) is not None else values
        dates = dates.to_numpy(dtype="datetime64[ns]")
    else:
        dates = _iso_dates(values)
    if dates is None:
        text = _as_text(values)
        dates = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
        todo = text != ""
        for date_format in DATE_FORMATS:
            if not todo.any():
                break
            parsed = pd.to_datetime(text[todo], format=date_format, errors="coerce", utc=True)
            dates[todo] = parsed.tz_localize(None).to_numpy(dtype="datetime64[ns]")
            todo &= np.isnat(dates)
    bad = np.flatnonzero(np.isnat(dates))
    if bad.size:
        raise LedgerError(
            _problems_message(
                column,
                bad,
                [_shown(v) for v in values.iloc[bad]],
                "is not a date; expected e.g. 2024-03-15 or 03/15/2024",
                source,
            )
        )
    return dates.astype("datetime64[D]").astype("datetime64[ns]")


def _iso_dates(values: pd.Series) -> np.ndarray | None:
    """The common case in one vectorised pass: every cell an ISO date as it stands. None otherwise."""
    if not pd.api.types.is_string_dtype(values):
        return None
    parsed = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True)
    if parsed.isna().any():
        return None
    return parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _coded_text(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column as codes into its distinct stripped texts (missing cells are ''): an enumeration has a
    handful of values, so they are stripped once each, not once per row."""
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
        distinct = _as_text(list(cells) + [""])
    return np.where(codes < 0, len(distinct) - 1, codes), distinct


def _enum_key(value) -> str:
    return _normalise_name(value) if isinstance(value, str) else ""


def normalise_enum(codes: np.ndarray, distinct: np.ndarray, allowed, aliases: dict, column: str,
                   report: LedgerReport) -> np.ndarray:
    """Map spellings onto the allowed set: aliases, then close typos, else an explicit 'unknown'.

    Takes the column as codes into its distinct texts (`_coded_text`), so a large ledger costs what its
    vocabulary costs.
    """
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
    return np.array([mapping.get(value, config.UNKNOWN) for value in distinct.tolist()], dtype=object)[codes]


def prepare_ledger(
    raw: pd.DataFrame,
    required=("date", "description", "amount"),
    nonempty=(),
    source: str | None = None,
    missing_amount_ok: bool = False,
    columns=None,
) -> tuple[pd.DataFrame, LedgerReport]:
    """Apply the contract to raw transactions, the same for a training file and a request.

    Returns a DataFrame with every canonical column present (optional ones filled
    with their empty value), `date` as datetime64, `amount` as float, enumerations
    normalised (missing amounts stay NaN where `missing_amount_ok`); and a report of what
    normalisation did. Raises LedgerError naming
    row, column, value and expectation for anything it cannot accept: only required values
    (a date, an amount, a description where `nonempty` asks for it) are refused.

    Enumeration values (type, payment method, status) that are neither allowed, an alias nor a
    close typo become 'unknown' and are counted in the report; they never refuse a row.

    Any column may come as pandas reads it: all-empty as float NaN, numbers as int or float,
    nullable or Arrow strings, the date as datetime64 (its wall-clock date is taken).

    `columns`, if given, are the canonical columns a model reads: only those are checked and parsed,
    the others are filled with their empty value as if they were absent (a forecast that reads dates
    and amounts need not parse descriptions).
    """
    if not isinstance(raw, pd.DataFrame):
        raise LedgerError(f"expected a table of transactions, got {type(raw).__name__}")
    report = LedgerReport(rows=len(raw))
    seen = {}
    for original, canonical in canonical_column_names(raw.columns).items():
        if canonical is None:
            report.dropped_columns.append(str(original))
        elif canonical in seen:
            raise LedgerError(f"columns {seen[canonical]!r} and {original!r} both mean '{canonical}'; keep only one")
        else:
            seen[canonical] = original
    if columns is not None:
        seen = {canonical: original for canonical, original in seen.items() if canonical in columns}
    missing = [column for column in required if column not in seen]
    if missing:
        found = ", ".join(map(str, raw.columns)) or "none"
        raise LedgerError(
            f"missing required column(s) {', '.join(repr(c) for c in missing)}; "
            f"found: {found}; expected at least: {', '.join(required)}"
        )
    rows = len(raw)
    if rows == 0:
        raise LedgerError("no transactions: expected at least one row")

    def given(column):
        return raw[seen[column]] if column in seen else None

    for column, original in seen.items():
        _refuse_nested(raw[original], column, source)

    def text(column):
        return _as_text(given(column)) if column in seen else np.full(rows, "", dtype=object)

    def coded(column):
        # A column of few distinct values (a name, an enumeration) as codes into its distinct stripped texts.
        return _coded_text(given(column)) if column in seen else (np.zeros(rows, dtype=int),
                                                                  np.array([""], dtype=object))

    ledger = {
        "date": parse_dates(given("date"), source=source) if "date" in seen else np.full(rows, np.datetime64("NaT"), "datetime64[ns]"),
        "amount": parse_amounts(given("amount"), source=source, missing_ok=missing_amount_ok) if "amount" in seen else np.full(rows, np.nan),
    }
    for column in ("description", "reference", "receipt_url"):
        ledger[column] = text(column)
    codes, distinct = coded("category")  # a regex per distinct name, not per row
    ledger["category"] = np.array([_normalise_name(value) if value else "" for value in distinct.tolist()],
                                  dtype=object)[codes]
    for column in nonempty:
        empty = np.flatnonzero(ledger[column] == "")
        if empty.size:
            shown = [_shown(v) for v in given(column).iloc[empty]] if column in seen else [None] * empty.size
            raise LedgerError(
                _problems_message(column, empty, shown, f"is empty; expected the transaction's {column}", source)
            )

    def enumeration(column, allowed, aliases):
        codes, distinct = coded(column)
        return normalise_enum(codes, distinct, allowed, aliases, column, report)

    kinds = enumeration("type", config.TRANSACTION_TYPES, config.TYPE_ALIASES)
    unknown_type = (kinds == config.UNKNOWN) & ~np.isnan(ledger["amount"])
    if unknown_type.any():
        # No usable type: the sign says it (money out is negative in a signed ledger).
        kinds[unknown_type] = np.where(ledger["amount"][unknown_type] < 0, "expense", "income")
        report.type_inferred_from_sign = int(unknown_type.sum())
    ledger["type"] = kinds
    ledger["payment_method"] = enumeration("payment_method", config.PAYMENT_METHODS, config.PAYMENT_METHOD_ALIASES)
    ledger["status"] = enumeration("status", config.STATUSES, config.STATUS_ALIASES)
    ordered = list(config.COLUMNS)
    if config.ANOMALY_LABEL in seen:
        ledger[config.ANOMALY_LABEL] = text(config.ANOMALY_LABEL)
        ordered.append(config.ANOMALY_LABEL)
    return pd.DataFrame({column: ledger[column] for column in ordered}), report


def request_rows(rows: pd.DataFrame, drop=(), columns=None) -> pd.DataFrame:
    """Canonical ledger rows as a client sends them: ISO dates, no label column, without `drop`
    (or only `columns`)."""
    kept = [c for c in (columns or rows.columns) if c not in (*drop, config.ANOMALY_LABEL)]
    out = rows[kept].copy()
    out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    return out.reset_index(drop=True)


def load_ledger(path, required=("date", "description", "amount")) -> tuple[pd.DataFrame, LedgerReport]:
    """Read and prepare a ledger CSV in one step (what training uses)."""
    return prepare_ledger(read_ledger(path), required=required, source=Path(path).name)
