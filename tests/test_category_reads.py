"""The category model parses only the columns it reads (issue 18), and answers every request as when it parsed all.

`CategoryPredictor.read_columns`: for the description's text model in a merchant memory (with or without word
knowledge), the contract parses date, type, description and amount and drops the rest. Nothing else it would have
parsed can refuse a request (enumerations become 'unknown', text is text), so every answer, and every refusal's
message, must be the same as when every column is parsed: checked here on requests of every kind, exports' own
headers, and requests the contract refuses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pyfunc_models.category import (CategoryPredictor, CategoryTask, MerchantMemory, MerchantLookup,
                                    text_logistic_regression)
from pyfunc_models.encoder_build import sentence_encoder
from pyfunc_models.features import columns_read, transaction_features
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import LedgerError, prepare_ledger, request_rows
from tests import real_ledgers


@pytest.fixture(scope="module")
def expenses():
    return CategoryTask().training_rows(prepare_ledger(generate_ledger(3000, seed=7))[0])


@pytest.fixture(scope="module")
def predictors(expenses) -> dict:
    classifier = MerchantMemory(text_logistic_regression()).fit(expenses, expenses["category"].to_numpy(dtype=object))
    sentence_encoder()  # built once per machine (the word knowledge tests build it too)
    return {"classifier alone": CategoryPredictor(classifier),
            "word knowledge": CategoryPredictor(classifier,
                                                word_knowledge=CategoryTask().learn_words(classifier, expenses))}


def raw_requests(expenses, folder) -> dict:
    ledger = request_rows(prepare_ledger(generate_ledger(400, seed=8))[0], drop=("category",))
    odd = ledger.iloc[:6].assign(
        description=["CAFÉ MÜLLER Zürich #12", "कैफ़े दिल्ली 221", "VOXTREJIN YACHT CHARTER MONACO", "x", "ß", "12 shell"],
        payment_method=["crypto_wallet", "credit_car", "", "CASH", "Debit Card", "zz"],
        status=["paid", "on hold", "", "???", "completed", "pending"],
        reference=["", "INV-1042", "ÉTÉ 7", "#", "   ", "ref"],
        type=["expense", "refund", "income", "", "debit", "credit"])
    bank = pd.read_csv(real_ledgers.bank_style(folder / "bank.csv"))
    titans = pd.read_csv(real_ledgers.titans_export(folder / "titans.csv")).drop(columns=["Category"])
    return {
        "a ledger's rows": ledger,
        "one row": ledger.iloc[[0]],
        "one income row": ledger[ledger["type"] == "income"].iloc[[0]],
        "odd values in the columns not read": odd,
        "only the required columns": ledger[["date", "description", "amount"]],
        "no type, signed amounts": ledger.drop(columns=["type"]),
        "empty columns as pd.read_csv reads them": ledger.assign(payment_method=np.nan, status=np.nan,
                                                                 reference=np.nan, receipt_url=np.nan),
        "numbers in text columns": ledger.iloc[:5].assign(reference=[1, 2, 3, 4, 5], status=[0.5] * 5),
        "a bank's own header": bank,
        "the Titans export's own header": titans,
        "day/month dates": ledger.iloc[:5].assign(date=["15/03/2024", "03/04/2024", "01/02/2024", "28/02/2024",
                                                        "05/06/2024"]),
        # Refused, with the same message:
        "a date that is no date": ledger.iloc[:3].assign(date=["2024-01-02", "2024-13-45", "tomorrow"]),
        "an amount that is no number": ledger.iloc[:3].assign(amount=["12,50", "-4.5", "abc"]),
        "an empty description": ledger.iloc[:3].assign(description=["SHELL", "", "   "]),
        "no amount column": ledger.drop(columns=["amount"]),
        "no description column": ledger.drop(columns=["description"]),
        "a date before 1970": ledger.iloc[:2].assign(date=["1969-12-31", "2024-01-01"]),
        "day/month dates both ways": ledger.iloc[:2].assign(date=["15/03/2024", "03/15/2024"]),
    }


def outcome(predictor, raw, params=None):
    try:
        return predictor.serve(raw, params)
    except LedgerError as error:
        return f"LedgerError: {error}"


@pytest.mark.parametrize("name", ["classifier alone", "word knowledge"])
def test_reading_fewer_columns_changes_no_answer(predictors, expenses, tmp_path, monkeypatch, name):
    predictor = predictors[name]
    assert predictor.read_columns == ("date", "type", "description", "amount")
    requests = raw_requests(expenses, tmp_path)
    params = [None, {"top_k": 1}, {"date_order": "dmy"}]
    answers = {(request, i): outcome(predictor, raw, p) for request, raw in requests.items()
               for i, p in enumerate(params)}
    refused = {key for key, answer in answers.items() if isinstance(answer, str)}
    assert {request for request, _ in refused} >= {"a date that is no date", "an amount that is no number",
                                                   "an empty description", "no amount column"}
    monkeypatch.setattr(CategoryPredictor, "read_columns", None)  # every column parsed, as before
    monkeypatch.setattr(CategoryPredictor, "only_read", False)
    for (request, i), answer in answers.items():
        expected = outcome(predictor, requests[request], params[i])
        if isinstance(expected, str) or isinstance(answer, str):
            assert answer == expected, request
        else:
            pd.testing.assert_frame_equal(answer, expected, check_exact=True, obj=request)


def test_any_other_model_reads_every_column(expenses):
    categories = expenses["category"].to_numpy(dtype=object)
    assert columns_read(text_logistic_regression().fit(expenses, categories)) == {"description"}
    others = {
        "transaction features": MerchantMemory(Pipeline([("features", transaction_features(2_000)),
                                                          ("classifier", LogisticRegression(max_iter=200))])),
        "merchant lookup": MerchantLookup(),
    }
    for name, model in others.items():
        predictor = CategoryPredictor(model.fit(expenses, categories))
        assert predictor.read_columns is None, name
        assert len(predictor.prepare(request_rows(expenses.iloc[:3])).columns) == 9, name
