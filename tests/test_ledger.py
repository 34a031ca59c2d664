"""The ledger contract: what it accepts, how it normalises, and how it refuses."""

import io
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from pyfunc_models import config
from pyfunc_models.features import clean_text, merchant_key
from tests import real_ledgers
from pyfunc_models.ledger import (LedgerError, _normalise_name, as_frame, load_ledger, parse_amounts, prepare_ledger,
                                  read_ledger, readable_columns, signed_by_type, split_amount_columns)

ENUMERATIONS = {
    "type": (config.TRANSACTION_TYPES, config.TYPE_ALIASES),
    "payment_method": (config.PAYMENT_METHODS, config.PAYMENT_METHOD_ALIASES),
    "status": (config.STATUSES, config.STATUS_ALIASES),
}


def titans_rows(**overrides):
    row = {"Date": "2024-03-15", "Type": "Expense", "Description": "SHELL OIL 57444 SAN JOSE CA",
           "Amount": "-45.10", "Category": "Fuel", "Payment Method": "credit_card", "Status": "completed",
           "Reference": "TXN1", "Receipt URL": ""}
    row.update(overrides)
    return pd.DataFrame([row])


def test_titans_header_and_other_spellings_map_to_canonical_columns():
    ledger, report = prepare_ledger(titans_rows())
    assert list(ledger.columns) == list(config.COLUMNS)
    other = pd.DataFrame({" DATE ": ["2024-03-15"], "transaction-amount": [-3.5], "MEMO": ["x"],
                          "PaymentMethod": ["cash"], "payment type": ["cash"]})
    with pytest.raises(LedgerError, match="both mean 'payment_method'"):
        prepare_ledger(other.rename(columns={"PaymentMethod": "Payment_Method"}))
    ledger, report = prepare_ledger(other.drop(columns=["payment type"]).rename(columns={"PaymentMethod": "payment method"}))
    assert ledger.loc[0, "description"] == "x" and ledger.loc[0, "amount"] == -3.5
    assert ledger.loc[0, "payment_method"] == "cash"


def test_a_second_name_for_a_column_is_left_out_when_it_is_empty():
    """Chase's card export has Description and a Memo it never fills: both mean 'description'."""
    chase = pd.DataFrame({"Transaction Date": ["05/30/2025", "05/31/2025"], "Post Date": ["06/01/2025"] * 2,
                          "Description": ["STARBUCKS STORE 10432", "SHELL OIL 57444"], "Category": ["Food & Drink"] * 2,
                          "Type": ["Sale"] * 2, "Amount": [-6.92, -40.0], "Memo": [np.nan, np.nan]})
    for columns in (list(chase.columns), ["Memo", *chase.columns[:-1]]):  # the empty one first or last
        ledger, report = prepare_ledger(chase[columns])
        assert ledger["description"].tolist() == ["STARBUCKS STORE 10432", "SHELL OIL 57444"]
        assert "Memo" in report.dropped_columns
    with pytest.raises(LedgerError, match="columns 'Description' and 'Memo' both mean 'description'; keep only one"):
        prepare_ledger(chase.assign(Memo=["", "card 1234"]))


def test_types_income_expense_and_credit_debit_are_understood():
    raw = pd.concat([titans_rows(Type=t) for t in ["Income", "expense", "credit", "DEBIT", "Expnse", ""]])
    ledger, report = prepare_ledger(raw.reset_index(drop=True))
    assert ledger["type"].tolist() == ["income", "expense", "income", "expense", "expense", "expense"]
    assert report.type_inferred_from_sign == 1  # the empty type: amount -45.10 says expense


def test_misspelt_and_unknown_enums_are_normalised_and_counted_never_a_crash():
    raw = pd.concat([titans_rows(**{"Payment Method": m}) for m in ["credit_car", "Credit Card", "barter", "barter"]])
    ledger, report = prepare_ledger(raw.reset_index(drop=True))
    assert ledger["payment_method"].tolist() == ["credit_card", "credit_card", "unknown", "unknown"]
    assert report.corrected["payment_method"] == {"credit_car": "credit_card"}
    assert report.unknown["payment_method"] == {"barter": 2}


def _random_words(rng, count):
    """Words no vocabulary holds, in several scripts, with the blanks and punctuation exports carry."""
    alphabets = ["qxzjkvwy", "àéîõüçñøåßÀÉÎÕÜ", "αβγδεζηθξψω", "бвгджзйлфцчшщ", "的一是不了人我在有他",
                 "ابتثجحخد", "0123456789"]
    words = []
    for _ in range(count):
        letters = "".join(alphabets[rng.integers(len(alphabets))] for _ in range(2))
        word = "".join(rng.choice(list(letters), size=rng.integers(5, 12)))
        words.append(rng.choice(["", " ", "  "]) + word + rng.choice(["", " ", "-x", " #1"]))
    return words


@pytest.mark.parametrize("column", ["payment_method", "status", "type"])
def test_unknown_enum_values_of_any_spelling_flow_through_as_unknown_and_are_counted(column, tmp_path):
    """One contract: a training file and a request both keep the row, say 'unknown' and count the raw value."""
    rng = np.random.default_rng(len(column))
    words = _random_words(rng, 40)
    values = [words[i] for i in rng.integers(len(words), size=300)]
    raw = titans_rows().loc[[0] * 300].reset_index(drop=True)
    raw["Amount"] = [str(-1 - i) for i in range(300)]
    raw[{"payment_method": "Payment Method", "status": "Status", "type": "Type"}[column]] = values
    path = tmp_path / "ledger.csv"
    raw.to_csv(path, index=False)
    trained, training_report = load_ledger(path)
    served, request_report = prepare_ledger(pd.DataFrame(raw.to_dict(orient="records")),
                                            nonempty=("description",))
    expected = Counter(value.strip() for value in values)
    for ledger, report in [(trained, training_report), (served, request_report)]:
        assert len(ledger) == 300
        assert report.unknown[column] == expected
        if column == "type":  # no usable type: the sign says it
            assert set(ledger["type"]) == {"expense"} and report.type_inferred_from_sign == 300
        else:
            assert set(ledger[column]) == {config.UNKNOWN}
    pd.testing.assert_frame_equal(trained, served)


def test_both_titans_exports_and_common_bank_words_need_no_unknown():
    """The real export's and the sample export's own vocabularies, and bank words, are all known."""
    spoken = {
        "type": ["Income", "Expense", "debit", "credit", "Refund", "Withdrawal", "Deposit"],
        "payment_method": ["credit_card", "bank_transfer", "other", "credit_car", "debit_card", "cash",
                           "direct_deposit", "atm", "ATM", "ACH", "Direct Deposit", "POS", "Standing Order",
                           "Direct Debit", "SEPA", "Wire", "Zelle", "Venmo", "PayPal", "Cheque"],
        "status": ["paid", "received", "written_off", "completed", "Posted", "Pending", "Cleared", "Reversed",
                   "Returned", "Declined", "Canceled", "Written Off", "Pendng"],
    }
    header = {"type": "Type", "payment_method": "Payment Method", "status": "Status"}
    for column, words in spoken.items():
        raw = pd.concat([titans_rows(**{header[column]: word}) for word in words]).reset_index(drop=True)
        ledger, report = prepare_ledger(raw)
        assert column not in report.unknown, report.unknown
        allowed = ENUMERATIONS[column][0]
        assert set(ledger[column]) <= set(allowed)


def test_no_money_moved_statuses_are_canonical_and_pending_money_moves():
    assert set(config.NO_MONEY_MOVED_STATUSES) <= set(config.STATUSES)
    assert {"failed", "cancelled", "written_off"} <= set(config.NO_MONEY_MOVED_STATUSES)
    assert not {"pending", "completed", config.UNKNOWN} & set(config.NO_MONEY_MOVED_STATUSES)
    raw = pd.concat([titans_rows(Status=s) for s in ["Written Off", "reversed", "returned", "bounced"]])
    statuses = prepare_ledger(raw.reset_index(drop=True))[0]["status"]
    assert statuses.isin(config.NO_MONEY_MOVED_STATUSES).all()


@pytest.mark.parametrize("column", list(ENUMERATIONS))
def test_every_alias_is_a_normalised_spelling_of_a_canonical_value(column):
    allowed, aliases = ENUMERATIONS[column]
    assert config.UNKNOWN not in allowed
    for spelling, canonical in aliases.items():
        assert canonical in allowed and spelling not in allowed
        assert _normalise_name(spelling) == spelling


def test_accented_and_cased_spellings_are_one_value():
    raw = pd.concat([titans_rows(Type=t, Status=s) for t, s in [("CRÉDIT", "Payé"), ("Crédit", "payé")]])
    ledger, report = prepare_ledger(raw.reset_index(drop=True))
    assert ledger["type"].tolist() == ["income", "income"]
    assert report.unknown["status"] == {"Payé": 1, "payé": 1}  # not known, but kept and counted as written


def test_enum_spellings_that_differ_only_by_blanks_or_missing_cells_are_one_value():
    raw = pd.concat([titans_rows(Status=s) for s in [" completed", "completed ", None, np.nan, " lost ", "lost"]])
    ledger, report = prepare_ledger(raw.reset_index(drop=True))
    assert ledger["status"].tolist() == ["completed", "completed", "unknown", "unknown", "unknown", "unknown"]
    assert report.unknown["status"] == {"(empty)": 2, "lost": 2}


def test_only_the_columns_a_model_reads_are_parsed():
    """A forecast reads dates, amounts, types and statuses: a bad description is not its business."""
    raw = titans_rows(Description=None, Status="lost", **{"Payment Method": "barter", "Receipt URL": ["not", "text"]})
    ledger, report = prepare_ledger(raw, required=("date", "amount"), columns=("date", "amount", "type", "status"))
    assert ledger.loc[0, "amount"] == -45.10 and ledger.loc[0, "description"] == ""
    assert ledger.loc[0, "payment_method"] == "unknown"  # not read: as if absent
    assert ledger.loc[0, "status"] == "unknown" and report.unknown["status"] == {"lost": 1}


@pytest.mark.parametrize("cell", [["SHELL"], {"name": "SHELL"}])
def test_a_list_or_object_in_a_cell_is_refused_not_stringified(cell):
    raw = pd.concat([titans_rows(), titans_rows()]).reset_index(drop=True).astype(object)
    raw.at[1, "Description"] = cell
    with pytest.raises(LedgerError, match=r"row 1, column 'description': .* is not a single value; expected text"):
        prepare_ledger(raw)


def test_amount_formats_and_category_spelling():
    raw = pd.concat([titans_rows(Amount=a, Category=c) for a, c in
                     [("$1,234.56", "Meals & Entertainment"), ("(12.50)", " fuel "), ("7", ""),
                      ("$-27.08", "fuel"), ("-$27.08", "fuel"), ("12.50 DR", "fuel"), ("£1,012.50 CR", "fuel"),
                      ("27.08-", "fuel")]])
    ledger, _ = prepare_ledger(raw.reset_index(drop=True))
    assert ledger["amount"].tolist() == [1234.56, -12.5, 7.0, -27.08, -27.08, -12.5, 1012.5, -27.08]
    assert ledger["category"].tolist() == ["meals_entertainment", "fuel", "", "fuel", "fuel", "fuel", "fuel", "fuel"]
    for twice in ("-$-27.08", "-27.08-", "(5.00) DR", "-12.50 CR"):  # two ways of saying the sign: which one?
        with pytest.raises(LedgerError, match=f"row 0, column 'amount': '{re.escape(twice)}' is not a finite number"):
            prepare_ledger(titans_rows(Amount=twice))


def test_dates_in_common_formats_become_days():
    raw = pd.concat([titans_rows(Date=d) for d in ["2024-03-15", "03/16/2024", "2024-03-17T10:20:00Z"]])
    ledger, _ = prepare_ledger(raw.reset_index(drop=True))
    assert ledger["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-03-15", "2024-03-16", "2024-03-17"]


@pytest.mark.parametrize("written", ["2025年1月3日", "2025년 1월 3일", "2025. 1. 3.", "03-Jan-25", "Fri, 03 Jan 2025"])
def test_dates_as_east_asian_and_other_bank_exports_write_them(written):
    ledger, _ = prepare_ledger(titans_rows(Date=written))
    assert ledger["date"].dt.strftime("%Y-%m-%d").tolist() == ["2025-01-03"]


def test_a_day_that_does_not_exist_written_in_east_asian_words_is_refused():
    with pytest.raises(LedgerError, match="row 0, column 'date': '2025年2月30日' is not a date"):
        prepare_ledger(titans_rows(Date="2025年2月30日"))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"Amount": "12,50"}, r"row 1, column 'amount': '12,50' is written with a decimal comma; expected a decimal "
                                  r"point, as 1 other row\(s\) write amounts \(e.g. row 0: '-"),
        ({"Amount": "12.50 ABC"}, r"row 1, column 'amount': '12.50 ABC' is not a finite number; expected an amount"),
        ({"Amount": ""}, r"row 1, column 'amount': '' is not a finite number"),
        ({"Amount": "inf"}, r"row 1, column 'amount': 'inf'"),
        ({"Date": "2024-02-30"}, r"row 1, column 'date': '2024-02-30' is not a date; expected e.g. 2024-03-15"),
    ],
)
def test_bad_values_are_refused_naming_row_column_value_and_expectation(overrides, message):
    raw = pd.concat([titans_rows(), titans_rows(**overrides)]).reset_index(drop=True)
    with pytest.raises(LedgerError, match=message):
        prepare_ledger(raw)


def test_a_bad_value_is_named_by_the_files_own_column_name_when_it_is_another_word(tmp_path):
    """'Date' is the date column written another way and keeps the contract's name; 'Posted Date', 'Buchungstag',
    'Betrag' and 'Payee' are the file's own words, and a refusal names them so the user finds the column."""
    raw = titans_rows().rename(columns={"Date": "Posted Date", "Description": "Payee"})
    with pytest.raises(LedgerError, match=r"row 0, column 'Posted Date': '2024-02-30' is not a date"):
        prepare_ledger(raw.assign(**{"Posted Date": "2024-02-30"}))
    with pytest.raises(LedgerError, match=r"row 0, column 'Payee': null is empty; expected the transaction's "
                                          r"description"):
        prepare_ledger(raw.assign(Payee=None), nonempty=("description",))
    german = pd.read_csv(real_ledgers.german_bank(tmp_path / "de.csv"), sep=";", dtype=str)
    with pytest.raises(LedgerError, match=r"row 5, column 'Buchungstag': '31.02.2024' is not a date"):
        prepare_ledger(german.assign(Buchungstag=german["Buchungstag"].where(german.index != 5, "31.02.2024")))
    with pytest.raises(LedgerError, match=r"row 7, column 'Betrag': 'zwölf' is not a finite number"):
        prepare_ledger(german.assign(Betrag=german["Betrag"].where(german.index != 7, "zwölf")))
    with pytest.raises(LedgerError, match=r"row 0, column 'date': '2024-02-30' is not a date"):
        prepare_ledger(titans_rows(Date="2024-02-30"))


def test_missing_required_column_is_named():
    with pytest.raises(LedgerError, match=r"missing required column\(s\) 'amount'.*expected at least: date, description, amount"):
        prepare_ledger(titans_rows().drop(columns=["Amount"]))


def test_empty_description_is_refused_only_where_required():
    raw = titans_rows(Description=None)
    assert prepare_ledger(raw)[0].loc[0, "description"] == ""
    with pytest.raises(LedgerError, match=r"row 0, column 'description': null is empty"):
        prepare_ledger(raw, nonempty=("description",))


def test_file_errors_name_the_file_and_the_line(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LedgerError, match="empty.csv is empty"):
        read_ledger(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(config.TITANS_HEADER) + "\n")
    with pytest.raises(LedgerError, match="has a header but no transactions"):
        read_ledger(header_only)
    bad = tmp_path / "bad.csv"
    titans_rows(Amount="abc").to_csv(bad, index=False)
    with pytest.raises(LedgerError, match=r"row 0 \(line 2 of bad.csv\), column 'amount': 'abc'"):
        load_ledger(bad)
    with pytest.raises(LedgerError, match="does not exist"):
        read_ledger(tmp_path / "nope.csv")


def test_many_bad_rows_are_summarised_not_dumped():
    raw = pd.concat([titans_rows(Amount="x")] * 12).reset_index(drop=True)
    with pytest.raises(LedgerError) as error:
        prepare_ledger(raw)
    assert "and 7 more row(s) in column 'amount'" in str(error.value)


def test_numeric_amount_columns_and_nan():
    raw = pd.DataFrame({"date": ["2024-01-01", "2024-01-02"], "description": ["a", "b"], "amount": [1.5, np.nan]})
    with pytest.raises(LedgerError, match=r"row 1, column 'amount': null is not a finite number"):
        prepare_ledger(raw)


# What pandas makes of an export: every shape reaches the same canonical ledger as the file read as text.

TITANS_EXPORT = """Date,Type,Description,Amount,Category,Payment Method,Status,Reference,Receipt URL
2024-03-01,Income,Client invoice 1041,2500,,,received,12345,
2024-03-02,Expense,SHELL OIL 57444 SAN JOSE CA,-45,Fuel,credit_car,paid,,
2024-03-03,Expense,CAFÉ MÜLLER,-12,Food & Dining,credit_card,paid,12347,
2024-03-04,Expense,Adobe subscription,-20,Software,bank_transfer,written_off,12348,
2024-03-05,Income,Refund,30,,other,received,,
"""


@pytest.fixture()
def export(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(TITANS_EXPORT, encoding="utf-8")
    return path


def _read(**options):
    return lambda path: pd.read_csv(path, **options)


def _then(convert, **options):
    return lambda path: convert(pd.read_csv(path, **options))


@pytest.mark.parametrize("read", [
    pytest.param(_read(), id="read_csv as is (empty column float64, numbers int64/float64)"),
    pytest.param(_then(lambda raw: raw.astype({"Reference": "Int64", "Amount": "Int64"})), id="nullable Int64"),
    pytest.param(_then(lambda raw: raw.astype({c: "float64" for c in ["Amount", "Reference"]})), id="float64"),
    pytest.param(_read(dtype="string"), id="nullable string"),
    pytest.param(_read(dtype="string[pyarrow]"), id="Arrow string"),
    pytest.param(_read(dtype_backend="pyarrow"), id="Arrow dtypes"),
    pytest.param(_read(dtype_backend="numpy_nullable"), id="nullable dtypes"),
    pytest.param(_then(lambda raw: raw.astype(object).where(raw.notna(), None)), id="object with None"),
    pytest.param(_read(parse_dates=["Date"]), id="datetime64"),
    pytest.param(_then(lambda raw: raw.assign(Date=pd.to_datetime(raw["Date"]).dt.tz_localize("America/New_York"))),
                 id="tz-aware datetime64"),
    pytest.param(_then(lambda raw: raw.assign(Date=pd.to_datetime(raw["Date"]).dt.tz_localize("Asia/Tokyo")
                                              .dt.tz_convert("UTC").dt.tz_convert("Asia/Tokyo"))), id="converted tz"),
])
def test_every_dtype_pandas_gives_an_export_prepares_like_the_text_file(export, read):
    expected, expected_report = load_ledger(export)
    assert expected.loc[0, "reference"] == "12345" and expected.loc[0, "receipt_url"] == ""
    ledger, report = prepare_ledger(read(export))
    pd.testing.assert_frame_equal(ledger, expected)
    assert report.unknown == expected_report.unknown and report.corrected == expected_report.corrected


def test_a_reference_with_gaps_keeps_its_digits():
    """pandas reads 12345 and an empty cell as floats: 12345.0 is still the reference '12345'."""
    raw = pd.concat([titans_rows(), titans_rows()]).reset_index(drop=True)
    raw["Reference"] = [12345.0, np.nan]
    raw["Category"] = [7.0, 2.5]
    ledger = prepare_ledger(raw)[0]
    assert ledger["reference"].tolist() == ["12345", ""]
    assert ledger["category"].tolist() == ["7", "2_5"]


def test_an_all_empty_required_column_is_refused_by_row():
    raw = pd.concat([titans_rows(), titans_rows()]).reset_index(drop=True)
    raw["Amount"] = np.nan
    with pytest.raises(LedgerError, match=r"row 0, column 'amount': null is not a finite number"):
        prepare_ledger(raw)
    raw = pd.concat([titans_rows(), titans_rows()]).reset_index(drop=True).assign(Date=np.nan)
    with pytest.raises(LedgerError, match=r"row 0, column 'date': null is not a date"):
        prepare_ledger(raw)


# Letters of every script: accents folded, never dropped.

@pytest.mark.parametrize("written, same_as", [
    ("CAFÉ", "Cafe"),
    ("ÉPICERIE MÜLLER 12", "Epicerie Muller"),
    ("Straße", "STRASSE"),
    ("ＣＡＦＥ", "cafe"),  # full-width letters
])
def test_accents_and_case_fold_to_one_merchant(written, same_as):
    assert merchant_key(written) == merchant_key(same_as) != ""
    assert clean_text(written) == clean_text(same_as)


@pytest.mark.parametrize("description", ["Кафе Пушкин 12", "Ελληνικό Καφέ", "東京ラーメン 123", "카페 서울", "مطعم بيروت"])
def test_merchants_in_any_script_keep_their_letters_not_their_digits(description):
    key = merchant_key(description)
    words = [word for word in description.split() if not word.isdigit()]
    assert len(key.split()) == min(2, len(words))
    assert not any(character.isdigit() for character in key)
    assert all(character.isalpha() or character == " " or not character.isascii() for character in key)
    assert clean_text(description) == " ".join(clean_text(word) for word in words)
    # Letters stay in their own script: a Cyrillic name is still Cyrillic, lower-cased.
    assert merchant_key(description.upper()) == key


def test_category_names_in_any_script_are_kept():
    raw = pd.concat([titans_rows(Category=c) for c in ["Продукты", "Café & Bar", "Cafe & Bar", "餐饮"]])
    assert prepare_ledger(raw.reset_index(drop=True))[0]["category"].tolist() == [
        "продукты", "cafe_bar", "cafe_bar", "餐饮"]


@pytest.mark.parametrize("raw, message", [
    ({"date": ["now"]}, "row 0, column 'date': 'now' is not a date"),  # pandas reads 'now' and 'today', any format
    ({"date": ["today"]}, "row 0, column 'date': 'today' is not a date"),
    ({"date": ["2024"]}, "row 0, column 'date': '2024' is not a date"),  # and a year or a month as its first day
    ({"date": ["2023-12"]}, "row 0, column 'date': '2023-12' is not a date"),
    ({"amount": [1e300]}, "row 0, column 'amount': 1e+300 is not a plausible amount; expected at most "
                          "1,000,000,000,000 in size"),
    ({"amount": ["-2,000,000,000,000"]}, "row 0, column 'amount': '-2,000,000,000,000' is not a plausible amount"),
    ({"amount": [True]}, "row 0, column 'amount': True is not a finite number"),  # a column of booleans, by row too
])
def test_what_only_looks_like_a_date_or_an_amount_is_refused(raw, message):
    row = {"date": ["2024-03-15"], "description": ["SHELL OIL"], "amount": [-3.0], **raw}
    with pytest.raises(LedgerError, match=re.escape(message)):
        prepare_ledger(pd.DataFrame(row))
    assert prepare_ledger(pd.DataFrame({**row, **{"date": ["2024/3/5"], "amount": [-1e12]}}))[0]["amount"][0] == -1e12


def test_a_request_that_is_no_table_of_single_values_is_refused_by_column():
    with pytest.raises(LedgerError, match="column 'date' appears more than once; keep only one"):
        prepare_ledger(pd.DataFrame([["2024-03-15", "2024-03-16", "SHELL", -3.0]],
                                    columns=["date", "date", "description", "amount"]))
    twice_unread = pd.DataFrame([["2024-03-15", "SHELL", -3.0, "a", "b"]],
                                columns=["date", "description", "amount", "notes", "notes"])
    assert len(prepare_ledger(twice_unread)[0]) == 1  # a column the contract drops may come twice
    with pytest.raises(LedgerError, match=re.escape("the columns have different lengths ('date' 2, 'description' 1,")):
        as_frame({"date": np.array(["2024-03-15", "2024-03-16"]), "description": np.array(["SHELL"]),
                  "amount": np.array([-3.0, -4.0])})
    with pytest.raises(LedgerError, match="column 'date' holds lists, not one value per row"):
        as_frame({"date": np.array([["2024-03-15"]]), "description": np.array([["SHELL"]]), "amount": np.array([[-3]])})
    records = as_frame([{"date": np.array("2024-03-15"), "description": np.array(["a", "b"]), "amount": np.array(-3)}])
    with pytest.raises(LedgerError, match=re.escape("row 0, column 'description': ['a', 'b'] is not a single value")):
        prepare_ledger(records)


def test_a_file_in_another_encoding_says_how_to_save_it(tmp_path):
    (tmp_path / "latin.csv").write_bytes("Date,Description,Amount\n2024-03-15,CAFÉ MONDE,-3\n".encode("cp1252"))
    with pytest.raises(LedgerError, match=re.escape("latin.csv is not UTF-8 text: line 2 has the byte 0xc9, as "
                                                    "Windows-1252 or Latin-1 write an accented letter; save the file "
                                                    "as UTF-8")):
        read_ledger(tmp_path / "latin.csv")


def test_a_european_export_reads_as_the_same_ledger_written_the_english_way(tmp_path):
    """Excel where the decimal mark is a comma saves CSV with semicolons: a German bank's export (its own header, a
    value date beside the booking date, dates with dots, 1.150,00) and the same rows tab-separated read as the
    ledger written with commas, ISO dates and decimal points."""
    (tmp_path / "de.csv").write_text(
        "Buchungstag;Valuta;Verwendungszweck;Betrag (EUR);Kategorie\n"
        "03.06.2025;04.06.2025;MIETE WOHNUNG, HAUPTSTR 5;-1.150,00;Miete\n"
        "15.06.2025;15.06.2025;GEHALT JUNI;3.250,5;\n"
        "16.06.2025;16.06.2025;Bäckerei Müller;-4,20;Lebensmittel\n"
        "17.06.2025;17.06.2025;SPARKASSE GEBÜHR;-2;Gebühren\n")
    (tmp_path / "en.csv").write_text(
        "Date,Description,Amount,Category\n2025-06-03,\"MIETE WOHNUNG, HAUPTSTR 5\",-1150.00,Miete\n"
        "2025-06-15,GEHALT JUNI,3250.50,\n2025-06-16,Bäckerei Müller,-4.20,Lebensmittel\n"
        "2025-06-17,SPARKASSE GEBÜHR,-2,Gebühren\n")
    (tmp_path / "tabs.tsv").write_text((tmp_path / "de.csv").read_text().replace(";", "\t"))
    english, _ = prepare_ledger(read_ledger(tmp_path / "en.csv"))
    for name in ("de.csv", "tabs.tsv"):
        german, report = prepare_ledger(read_ledger(tmp_path / name))
        pd.testing.assert_frame_equal(german, english)
        assert report.dropped_columns == ["Valuta"] and report.date_order == "dmy"


def test_separators_are_found_the_way_a_spreadsheet_writes_them(tmp_path):
    """Quotes respected (a comma file whose header quotes semicolons; a first row whose quoted cell holds a line
    break, semicolons and commas), Excel's `sep=;` first line, blank lines before the header, a byte-order mark and
    Windows line ends."""
    files = {
        "quoted.csv": 'Date,Description,Amount,"Tags (food; rent; fun; misc; other)"\n2024-01-02,Rent,-1200.00,rent\n',
        "excel.csv": "sep=;\nDate;Description;Amount\n2024-01-02;Rent;-1200,00\n",
        "blank.csv": "\n\nDate;Description;Amount\n2024-01-02;Rent;-1200,00\n",
        "bom.csv": "\ufeffDate;Description;Amount\r\n2024-01-02;\"Rent, flat\";-1200,00\r\n",
        "newline.csv": 'Date,Description,Amount\n2024-01-02,"Rent\nNote: ""monthly"", by app",-1200.00\n',
        "blank_excel.csv": "\nsep=;\nDate;Description;Amount\n2024-01-02;Rent;-1200,00\n",
        "tab_excel.csv": "sep=\t\r\nDate\tDescription\tAmount\r\n2024-01-02\tRent\t-1200.00\r\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        ledger, _ = load_ledger(tmp_path / name)
        assert ledger["amount"].tolist() == [-1200.0] and ledger["description"].iloc[0].startswith("Rent"), name


def test_a_semicolon_file_read_by_pandas_as_one_column_is_refused_saying_how_to_read_it():
    raw = pd.read_csv(io.StringIO("Date;Description;Amount\n2024-01-02;Rent;-1200\n"))
    with pytest.raises(LedgerError, match=re.escape("found: Date;Description;Amount (one column whose name holds ';': "
                                                    "a file separated by ';' read as if by commas; read it with "
                                                    "pd.read_csv(file, sep=';'))")):
        prepare_ledger(raw)


def test_a_name_in_another_language_gives_way_to_one_in_english():
    """`Amount (EUR)` beside `Amount`, `Datum` beside `Date`: the English one is read and the other left out, as
    before those names were known; `Amount VAT` is no currency."""
    raw = pd.DataFrame({"Date": ["2024-01-02"], "Datum": ["02.01.2024"], "Description": ["Rent"],
                        "Amount": ["-1200.00"], "Amount (EUR)": ["-1.100,00"], "Amount VAT": ["0"]})
    ledger, report = prepare_ledger(raw)
    assert ledger["amount"].tolist() == [-1200.0]
    assert report.dropped_columns == ["Datum", "Amount (EUR)", "Amount VAT"]
    empty_english = raw.assign(Date="", Amount="")  # an empty English column gives way to a filled one
    ledger, report = prepare_ledger(empty_english)
    assert ledger["amount"].tolist() == [-1100.0] and ledger["date"].dt.day.tolist() == [2]
    assert report.dropped_columns == ["Date", "Amount", "Amount VAT"]
    assert prepare_ledger(pd.DataFrame({"Date": ["2024-01-02"], "Description": ["x"], "Amount (KRW)": ["-5,000"]})
                          )[0]["amount"].tolist() == [-5000.0]  # any code in parentheses


def test_a_dutch_export_says_money_out_and_in_in_af_bij():
    raw = pd.DataFrame({"Datum": ["20240102", "20240103"], "Naam / Omschrijving": ["Albert Heijn", "Salaris"],
                        "Af Bij": ["Af", "Bij"], "Bedrag (EUR)": ["39,99", "2.150,00"]})
    ledger, _ = prepare_ledger(raw)
    assert ledger["type"].tolist() == ["expense", "income"] and ledger["amount"].tolist() == [39.99, 2150.0]
    assert signed_by_type(ledger["amount"].to_numpy(), ledger["type"]).tolist() == [-39.99, 2150.0]


def test_numbers_beside_decimal_comma_text_keep_their_value():
    """A JSON request may mix numbers and text in one column: a number has no decimal mark to read."""
    assert parse_amounts(pd.Series([2.125, "-39,99", 12.5, 7], dtype=object)).tolist() == [2.125, -39.99, 12.5, 7.0]


@pytest.mark.parametrize("written, amounts", [
    (["-39,99", "1.150,00", "1.234", "12", "(5,00)", "27,08-", "1 234,5", "-€3,10", "12,50 €", "8,00 DR",
      "EUR 1.234,56", "-27,08 kr", "\u221212,00"],
     [-39.99, 1150.0, 1234.0, 12.0, -5.0, -27.08, 1234.5, -3.10, 12.5, -8.0, 1234.56, -27.08, -12.0]),
    (["-39.99", "1,150.00", "1,234", "12", "1.234"], [-39.99, 1150.0, 1234.0, 12.0, 1.234]),  # no comma: as before
    (["0.125", "1.5"], [0.125, 1.5]),
    (["0,125", "-1"], [0.125, -1.0]),  # a leading 0 groups no thousands
    (["-27.08 USD", "USD -27.08", "\u221227.08", "CHF 1'234.50", "¥3,729", "₹1,23,456.00", "(€5.00)"],
     [-27.08, -27.08, -27.08, 1234.5, 3729.0, 123456.0, -5.0]),  # currency codes, a minus sign, other groupings
])
def test_a_column_of_amounts_is_read_with_the_decimal_mark_it_shows(written, amounts):
    assert parse_amounts(pd.Series(written, dtype=str)).tolist() == amounts


@pytest.mark.parametrize("written", ["12.50 ABC", "USD12.50", "-$-5", "1,2,3", "-12.50 CR"])
def test_an_amount_said_two_ways_or_with_an_unknown_word_is_refused(written):
    with pytest.raises(LedgerError, match=re.escape(f"row 1, column 'amount': '{written}' is not a finite number")):
        parse_amounts(pd.Series(["-1.00", written], dtype=str))


def test_a_column_that_writes_both_decimal_marks_refuses_the_fewer_naming_the_others():
    mostly_commas = pd.Series(["-39,99", "12.50", "-1.150,00", "4,20", "7.25"], dtype=str)
    with pytest.raises(LedgerError, match=re.escape(
            "row 1, column 'amount': '12.50' is written with a decimal point; expected a decimal comma, as 3 other "
            "row(s) write amounts (e.g. row 0: '-39,99'); row 4, column 'amount': '7.25' is written")):
        parse_amounts(mostly_commas)
    with pytest.raises(LedgerError, match=re.escape("row 2 (line 4 of x.csv), column 'amount': '4,20' is written "
                                                    "with a decimal comma; expected a decimal point, as 2 other")):
        parse_amounts(pd.Series(["-39.99", "12.50", "4,20"], dtype=str), source="x.csv")


def test_two_amount_columns_are_read_with_one_decimal_mark():
    """Debit shows the decimal comma; Credit's '2.500' (no decimals written) is then two thousand five hundred."""
    raw = pd.DataFrame({"Datum": ["01.06.2025", "02.06.2025", "03.06.2025"], "Beschreibung": ["MIETE", "GEHALT", "X"],
                        "Debit": ["1.150,00", "", "4,20"], "Credit": ["", "2.500", ""]}, dtype=str)
    assert prepare_ledger(raw)[0]["amount"].tolist() == [-1150.0, 2500.0, -4.2]


def test_an_export_with_paid_out_and_paid_in_columns_reads_one_signed_amount(tmp_path):
    """A UK bank writes each amount in `Paid out` or `Paid in` (with a pound sign), no amount column: the contract
    reads money in minus money out, and the bank's running balance is the opening one plus those amounts."""
    path = real_ledgers.uk_bank(tmp_path / "uk.csv")
    raw = pd.read_csv(path)
    ledger, report = load_ledger(path)
    assert report.amount_columns == ["Paid out", "Paid in"] and report.dropped_columns == ["Balance"]
    balance = raw["Balance"].str.replace("[£,]", "", regex=True).astype(float).to_numpy()
    opening = balance[0] - ledger["amount"].iloc[0]
    assert np.allclose(opening + ledger["amount"].cumsum().to_numpy(), balance)
    assert (ledger.loc[raw["Paid in"].notna().to_numpy(), "type"] == "income").all()
    assert (ledger.loc[raw["Paid out"].notna().to_numpy(), "type"] == "expense").all()
    assert readable_columns(raw.columns) == {"date", "type", "description", "amount"}  # what `main` checks


def test_a_german_export_reads_the_amounts_its_running_balance_adds_up_to(tmp_path):
    """A German bank's export read as a file and as a user reads it with pandas (`sep=";"`, the amounts left as
    text): every amount with its decimal comma and thousands point, so the bank's running balance (`Saldo`, a column
    the contract drops) is the opening one plus the amounts, row by row; booking dates, day first."""
    path = real_ledgers.german_bank(tmp_path / "de.csv")
    raw = pd.read_csv(path, sep=";")
    ledger, report = load_ledger(path)
    assert report.dropped_columns == ["Valuta", "Buchungstext", "Saldo"] and report.date_order == "dmy"
    pd.testing.assert_frame_equal(prepare_ledger(raw)[0], ledger)
    balance = raw["Saldo"].str.replace(".", "").str.replace(",", ".").astype(float).to_numpy()
    opening = balance[0] - ledger["amount"].iloc[0]
    assert np.allclose(opening + ledger["amount"].cumsum().to_numpy(), balance)
    assert (ledger["amount"] < -1000).any() and (ledger["date"] == raw["Buchungstag"].map(
        lambda d: pd.Timestamp(f"{d[6:]}-{d[3:5]}-{d[:2]}"))).all()


@pytest.mark.parametrize("out, into", [("Debit", "Credit"), ("Withdrawals", "Deposits"), ("Outflow", "Inflow"),
                                       ("Money Out", "Money In"), ("Debit (EUR)", "Credit (EUR)")])
def test_money_out_and_money_in_columns_of_other_names(out, into):
    raw = pd.DataFrame({"Date": ["2024-03-01", "2024-03-02", "2024-03-03"], "Description": ["a", "b", "c"],
                        out: ["-12.50", "", "-3"], into: ["", "$1,000.00", "1"]})  # some banks sign their debits
    prepared = prepare_ledger(raw)[0]
    assert prepared["amount"].tolist() == [-12.5, 1000.0, -2.0]  # both written: money in minus money out


def test_an_amount_column_wins_and_a_row_with_neither_side_is_refused_by_row_and_columns():
    both = pd.DataFrame({"date": ["2024-03-01"], "description": ["a"], "amount": ["-5"], "debit": ["5"],
                         "credit": [""]})
    prepared, report = prepare_ledger(both)
    assert prepared["amount"].tolist() == [-5.0] and report.amount_columns is None
    assert {"debit", "credit"} <= set(report.dropped_columns)
    empty = pd.DataFrame({"date": ["2024-03-01", "2024-03-02"], "description": ["a", "b"], "Paid out": ["5", ""],
                          "Paid in": ["", None]})
    with pytest.raises(LedgerError, match=r"^row 1 \(line 3 of x.csv\): columns 'Paid out' and 'Paid in' are both "
                                          r"empty; expected the amount in one of them$"):
        prepare_ledger(empty, source="x.csv")
    assert np.isnan(prepare_ledger(empty, missing_amount_ok=True)[0]["amount"][1])
    with pytest.raises(LedgerError, match="columns 'Debit' and 'Withdrawals' both mean money out; keep only one"):
        split_amount_columns(["Debit", "Credit", "Withdrawals"])
    assert split_amount_columns(["Debit/Credit", "Credit Limit", "Debit"]) == ("Debit", None)  # neither is a side
    assert split_amount_columns(["Withdrawals", "Deposits", "Withdrawal Fee", "Deposit Ref"]) == ("Withdrawals",
                                                                                                "Deposits")
    with pytest.raises(LedgerError, match=r"^row 1 \(line 3 of x.csv\): column 'Paid out' is empty; expected the "
                                          r"amount in it$"):
        prepare_ledger(empty.drop(columns="Paid in"), source="x.csv")
    # A model that reads no amount is not refused for two money-out columns it would not read.
    assert "amount" not in prepare_ledger(pd.DataFrame({"date": ["2024-03-01"], "description": ["a"], "Debit": ["5"],
                                                        "Withdrawals": ["5"]}), required=("date",),
                                          columns=("date", "description"), only_read=True)[0]


def test_the_column_an_amount_sits_in_says_its_direction_whatever_the_type_says():
    """A UK bank's types name how money moved (a standing order, a direct debit), not which way: the rent a
    tenant pays in by standing order is money in. The rows whose type said otherwise are counted."""
    raw = pd.DataFrame({"Date": ["01/03/2024", "02/03/2024", "03/03/2024"], "Transaction type": [
        "Standing order", "Direct debit", "Debit"], "Description": ["RENT FROM TENANT", "REFUND", "SHOP"],
        "Paid out": ["", "-", "£9.00"], "Paid in": ["£800.00", "£12.50", "-"]})
    prepared, report = prepare_ledger(raw)
    assert prepared["amount"].tolist() == [800.0, 12.5, -9.0]
    assert prepared["type"].tolist() == ["income", "income", "expense"] and report.type_from_amount_columns == 2


def test_a_debit_column_of_both_signs_is_read_as_written():
    """A bank that signs every debit writes them negative throughout: read by size. A column of both signs
    writes money back as a negative debit (a refund), and a reversed credit as a negative credit."""
    mixed = pd.DataFrame({"date": ["2024-03-01", "2024-03-02", "2024-03-03"], "description": ["a", "refund", "rev"],
                          "debit": ["12.50", "-3.00", ""], "credit": ["", "", "-5"]})
    assert prepare_ledger(mixed)[0]["amount"].tolist() == [-12.5, 3.0, -5.0]


def test_a_balance_that_moves_against_the_two_columns_says_they_are_reversed(tmp_path, capsys):
    """A bookkeeping export of a bank account writes money in under Debit: its amounts would all be read backwards.
    The running balance says so (in the file's order or newest first), and the training run warns."""
    import mlflow

    from pyfunc_models.jobs import report_ledger

    raw = pd.read_csv(real_ledgers.uk_bank(tmp_path / "uk.csv"))
    swapped = raw.rename(columns={"Paid out": "Paid in", "Paid in": "Paid out"})
    assert not prepare_ledger(raw)[1].amount_columns_reversed
    assert not prepare_ledger(raw[::-1].reset_index(drop=True))[1].amount_columns_reversed
    for rows in (swapped, swapped[::-1].reset_index(drop=True)):
        report = prepare_ledger(rows)[1]
        assert report.amount_columns_reversed
    with mlflow.start_run():
        report_ledger(report)
    assert ("warning: the ledger's balance goes up where 'Paid out' has an amount and down where 'Paid in' has one"
            in capsys.readouterr().out)


def test_a_model_that_learnt_decimal_commas_reads_text_that_says_neither_with_one():
    def rows(amounts):
        return pd.DataFrame({"date": ["2024-01-02"] * len(amounts), "description": ["x"] * len(amounts),
                             "amount": amounts})

    assert prepare_ledger(rows(["-1.234", "5"]), decimal_comma=True)[0]["amount"].tolist() == [-1234.0, 5.0]
    assert prepare_ledger(rows(["12.50", "1.234"]), decimal_comma=True)[0]["amount"].tolist() == [12.5, 1.234]
    assert prepare_ledger(rows([-1.234]), decimal_comma=True)[0]["amount"].tolist() == [-1.234]  # a number is one
    assert prepare_ledger(rows(["-1.234"]))[0]["amount"].tolist() == [-1.234]  # without: a decimal point
    split = pd.DataFrame({"date": ["2024-01-02", "2024-01-03"], "description": ["x", "y"], "Debit": ["12.50", ""],
                          "Credit": ["", "1.234"]})  # one column's decimal point is the other's too
    assert prepare_ledger(split, decimal_comma=True)[0]["amount"].tolist() == [-12.5, 1.234]
    commas = split.assign(Debit=["12,50", ""])
    assert prepare_ledger(commas, decimal_comma=True)[0]["amount"].tolist() == [-12.5, 1234.0]
