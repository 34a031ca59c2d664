"""The ledger contract: what it accepts, how it normalises, and how it refuses."""

import numpy as np
import pandas as pd
import pytest

from pyfunc_models import config
from pyfunc_models.ledger import LedgerError, load_ledger, prepare_ledger, read_ledger


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


def test_a_request_refuses_unknown_enums_but_takes_typos_aliases_empty_and_unknown():
    raw = pd.concat([titans_rows(**{"Payment Method": m, "Type": t})
                     for m, t in [("credit_car", "debit"), ("", ""), ("Unknown", "credit")]]).reset_index(drop=True)
    ledger, _ = prepare_ledger(raw, refuse_unknown_values=True)
    assert ledger["payment_method"].tolist() == ["credit_card", "unknown", "unknown"]
    refused = pd.concat([raw, titans_rows(**{"Payment Method": "barter"})]).reset_index(drop=True)
    with pytest.raises(LedgerError, match=r"row 3, column 'payment_method': 'barter' is not a known payment method; "
                                          r"expected one of cash, credit_card, .*, unknown or empty"):
        prepare_ledger(refused, refuse_unknown_values=True)
    with pytest.raises(LedgerError, match=r"row 0, column 'status': 'lost' is not a known status"):
        prepare_ledger(titans_rows(Status="lost"), refuse_unknown_values=True)


def test_enum_spellings_that_differ_only_by_blanks_or_missing_cells_are_one_value():
    raw = pd.concat([titans_rows(Status=s) for s in [" completed", "completed ", None, np.nan, " lost ", "lost"]])
    ledger, report = prepare_ledger(raw.reset_index(drop=True))
    assert ledger["status"].tolist() == ["completed", "completed", "unknown", "unknown", "unknown", "unknown"]
    assert report.unknown["status"] == {"(empty)": 2, "lost": 2}


def test_only_the_columns_a_model_reads_are_parsed():
    """A forecast reads dates, amounts, types and statuses: a bad description is not its business."""
    raw = titans_rows(Description=None, **{"Payment Method": "barter", "Receipt URL": ["not", "text"]})
    ledger, _ = prepare_ledger(raw, required=("date", "amount"), refuse_unknown_values=True,
                               columns=("date", "amount", "type", "status"))
    assert ledger.loc[0, "amount"] == -45.10 and ledger.loc[0, "description"] == ""
    assert ledger.loc[0, "payment_method"] == "unknown"
    with pytest.raises(LedgerError, match=r"row 0, column 'status': 'lost' is not a known status"):
        prepare_ledger(titans_rows(Status="lost"), required=("date", "amount"), refuse_unknown_values=True,
                       columns=("date", "amount", "type", "status"))


@pytest.mark.parametrize("cell", [["SHELL"], {"name": "SHELL"}])
def test_a_list_or_object_in_a_cell_is_refused_not_stringified(cell):
    raw = pd.concat([titans_rows(), titans_rows()]).reset_index(drop=True).astype(object)
    raw.at[1, "Description"] = cell
    with pytest.raises(LedgerError, match=r"row 1, column 'description': .* is not a single value; expected text"):
        prepare_ledger(raw)


def test_amount_formats_and_category_spelling():
    raw = pd.concat([titans_rows(Amount=a, Category=c) for a, c in
                     [("$1,234.56", "Meals & Entertainment"), ("(12.50)", " fuel "), ("7", "")]])
    ledger, _ = prepare_ledger(raw.reset_index(drop=True))
    assert ledger["amount"].tolist() == [1234.56, -12.5, 7.0]
    assert ledger["category"].tolist() == ["meals_entertainment", "fuel", ""]


def test_dates_in_common_formats_become_days():
    raw = pd.concat([titans_rows(Date=d) for d in ["2024-03-15", "03/16/2024", "2024-03-17T10:20:00Z"]])
    ledger, _ = prepare_ledger(raw.reset_index(drop=True))
    assert ledger["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-03-15", "2024-03-16", "2024-03-17"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"Amount": "12,50"}, r"row 1, column 'amount': '12,50' is not a finite number; expected an amount"),
        ({"Amount": ""}, r"row 1, column 'amount': '' is not a finite number"),
        ({"Amount": "inf"}, r"row 1, column 'amount': 'inf'"),
        ({"Date": "2024-02-30"}, r"row 1, column 'date': '2024-02-30' is not a date; expected e.g. 2024-03-15"),
    ],
)
def test_bad_values_are_refused_naming_row_column_value_and_expectation(overrides, message):
    raw = pd.concat([titans_rows(), titans_rows(**overrides)]).reset_index(drop=True)
    with pytest.raises(LedgerError, match=message):
        prepare_ledger(raw)


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
