"""Requests of every kind, for the tests that a model parsing only the columns it reads (issue 18:
`LedgerPredictor.read_columns`, `only_read`) answers every request, and refuses every bad one with the same message,
as when it parsed every column: tests/test_category_reads.py, test_amount_fast.py, test_anomaly_fast.py."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import LedgerError, prepare_ledger, request_rows
from tests import real_ledgers

ODD_VALUES = dict(  # six rows of values no ledger here has, in every column a model may skip
    description=["CAFÉ MÜLLER Zürich #12", "कैफ़े दिल्ली 221", "VOXTREJIN YACHT CHARTER MONACO", "x", "ß", "12 shell"],
    payment_method=["crypto_wallet", "credit_car", "", "CASH", "Debit Card", "zz"],
    status=["paid", "on hold", "", "???", "completed", "pending"],
    receipt_url=["http://x", "", "ftp://y", "z", "   ", "receipt"],
    reference=["", "INV-1042", "ÉTÉ 7", "#", "   ", "ref"],
    type=["expense", "refund", "income", "", "debit", "credit"])


def request_kinds(folder, drop: tuple = (), titans_drop: tuple = (), **odd) -> dict:
    """name -> a raw request: rows of a generated ledger (without the `drop` columns), odd values (ODD_VALUES, with
    `odd` overriding), empty and numeric columns, a bank's and the Titans export's own files as pd.read_csv reads
    them (the latter without `titans_drop`), day-first dates; and requests the contract refuses, each for its own
    reason. A test adds its model's own kinds (its required columns, a column it may go without)."""
    ledger = request_rows(prepare_ledger(generate_ledger(400, seed=8))[0], drop=drop)
    return {
        "a ledger's rows": ledger,
        "one row": ledger.iloc[[0]],
        "odd values in the columns": ledger.iloc[:6].assign(**{**ODD_VALUES, **odd}),
        "no type, signed amounts": ledger.drop(columns=["type"]),
        "empty columns as pd.read_csv reads them": ledger.assign(payment_method=np.nan, status=np.nan,
                                                                 reference=np.nan, receipt_url=np.nan),
        "numbers in text columns": ledger.iloc[:5].assign(reference=[1, 2, 3, 4, 5], status=[0.5] * 5),
        "a bank's own header": pd.read_csv(real_ledgers.bank_style(folder / "bank.csv")),
        "the Titans export's own header": pd.read_csv(real_ledgers.titans_export(folder / "titans.csv")).drop(
            columns=list(titans_drop)),
        "day/month dates": ledger.iloc[:5].assign(date=["15/03/2024", "03/04/2024", "01/02/2024", "28/02/2024",
                                                        "05/06/2024"]),
        # Refused, with the same message:
        "a date that is no date": ledger.iloc[:3].assign(date=["2024-01-02", "2024-13-45", "tomorrow"]),
        "an amount that is no number": ledger.iloc[:3].assign(amount=["12,50", "-4.5", "abc"]),
        "an empty description": ledger.iloc[:3].assign(description=["SHELL", "", "   "]),
        "no description column": ledger.drop(columns=["description"]),
        "a date before 1970": ledger.iloc[:2].assign(date=["1969-12-31", "2024-01-01"]),
    }


def outcome(predictor, raw, params=None):
    """The served answer, or the refusal's message."""
    try:
        return predictor.serve(raw, params)
    except LedgerError as error:
        return f"LedgerError: {error}"


def answers_to(predictor, requests: dict, params: list) -> dict:
    return {(request, i): outcome(predictor, raw, p) for request, raw in requests.items() for i, p in enumerate(params)}


def refused(answers: dict) -> set:
    return {request for (request, _), answer in answers.items() if isinstance(answer, str)}


def assert_as_when_every_column_is_read(predictor, requests: dict, params: list, answers: dict, monkeypatch):
    """`answers` (given while reading only `read_columns`) are what the predictor's class answers parsing all."""
    monkeypatch.setattr(type(predictor), "read_columns", None)  # every column parsed, as before
    monkeypatch.setattr(type(predictor), "only_read", False)
    for (request, i), answer in answers.items():
        expected = outcome(predictor, requests[request], params[i])
        if isinstance(expected, str) or isinstance(answer, str):
            assert answer == expected, request
        else:
            pd.testing.assert_frame_equal(answer, expected, check_exact=True, obj=request)
