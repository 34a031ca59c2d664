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

from pyfunc_models.category import (CategoryPredictor, CategoryTask, MerchantMemory, MerchantLookup,
                                    text_logistic_regression)
from pyfunc_models.encoder_build import sentence_encoder
from pyfunc_models.features import columns_read, transaction_features
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import prepare_ledger, request_rows
from tests.request_kinds import answers_to, assert_as_when_every_column_is_read, refused, request_kinds


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


@pytest.mark.parametrize("name", ["classifier alone", "word knowledge"])
def test_reading_fewer_columns_changes_no_answer(predictors, tmp_path, monkeypatch, name):
    predictor = predictors[name]
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
