"""The category model parses only the columns it reads (issue 18), and answers every request as when it parsed all.

`CategoryPredictor.read_columns`: for the description's text model in a merchant memory (with or without word
knowledge), the contract parses date, type, description and amount and drops the rest. Nothing else it would have
parsed can refuse a request (enumerations become 'unknown', text is text), so every answer, and every refusal's
message, must be the same as when every column is parsed: checked here on requests of every kind, exports' own
headers, and requests the contract refuses.
"""

from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pyfunc_models.category import (CategoryPredictor, MerchantMemory, MerchantLookup,
                                    text_logistic_regression)
from pyfunc_models.features import columns_read, transaction_features
from pyfunc_models.ledger import request_rows
from tests.request_kinds import answers_to, assert_as_when_every_column_is_read, refused, request_kinds


@pytest.fixture
def expenses(seven_expenses):
    return seven_expenses


@pytest.mark.parametrize("with_words", [pytest.param(False, id="classifier alone"),
                                        pytest.param(True, marks=pytest.mark.slow, id="word knowledge")])  # seconds
def test_reading_fewer_columns_changes_no_answer(seven_classifier, request, tmp_path, monkeypatch, with_words):
    words = request.getfixturevalue("seven_word_knowledge") if with_words else None
    predictor = CategoryPredictor(seven_classifier, word_knowledge=words)
    assert predictor.read_columns == ("date", "type", "description", "amount")
    requests = request_kinds(tmp_path, drop=("category",), titans_drop=("Category",))
    ledger = requests["a ledger's rows"]
    requests |= {"one income row": ledger[ledger["type"] == "income"].iloc[[0]],
                 "only the required columns": ledger[["date", "description", "amount"]],
                 "no amount column": ledger.drop(columns=["amount"]),
                 "day/month dates both ways": ledger.iloc[:2].assign(date=["15/03/2024", "03/15/2024"])}
    params = [None, {"top_k": 1}, {"date_order": "dmy"}]
    answers = answers_to(predictor, requests, params)
    assert refused(answers) >= {"a date that is no date", "an amount that is no number", "an empty description",
                                "no amount column"}
    assert_as_when_every_column_is_read(predictor, requests, params, answers, monkeypatch)


@pytest.mark.slow  # fits two more category models (seconds)
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
