"""Issue 18, amount: the single-row path (the ridge scored from its coefficients, the answer's nullable columns made
from masks) gives the answers of the code it replaces: the fitted pipeline's own predict, and the answer shaping
kept below as `listed_answers`. Speed is measured in benchmarks/, never asserted here."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn

from pyfunc_models import config
from pyfunc_models.amount import (AmountPredictor, AmountTask, expected_amounts, scored_rows, signed_exp,
                                  signed_log)
from pyfunc_models.features import predict_in_one_thread
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import prepare_ledger, request_rows
from pyfunc_models.splits import time_split
from tests.request_kinds import answers_to, assert_as_when_every_column_is_read, refused, request_kinds


@pytest.fixture(scope="module")
def split():
    ledger = prepare_ledger(generate_ledger(rows=3000, seed=21, days=240))[0]
    return time_split(ledger[ledger["amount"] != 0].reset_index(drop=True), 0.2)


def fitted(name: str, past: pd.DataFrame, **params):
    """One of the task's candidates fitted, predicting on one thread as a served one does (a forest's sum over its
    trees then has one order)."""
    estimator = next(c.estimator for c in AmountTask().candidates(seed=1) if c.name == name).set_params(**params)
    return predict_in_one_thread(estimator.fit(past, past["amount"]))


@pytest.fixture(scope="module")
def pipelines(split) -> dict:
    past, _ = split
    return {"ridge": fitted("ridge", past),
            "random_forest": fitted("random_forest", past, regressor__regressor__n_estimators=10),
            "category_median": fitted("category_median", past)}


def requests(rows: pd.DataFrame) -> list:
    """One row at a time, a few, all; then the same rows without amounts, with no type, and a mix of both."""
    plain = [rows.iloc[[0]], rows.iloc[[len(rows) // 2]], rows.iloc[:7], rows]
    mixed = rows.copy()
    mixed.loc[::2, "amount"] = np.nan
    mixed.loc[::3, "type"] = config.UNKNOWN
    changed = [rows.assign(amount=np.nan), rows.iloc[:5].assign(type=config.UNKNOWN), mixed, mixed.iloc[[0]]]
    return [batch.reset_index(drop=True) for batch in plain + changed]


def listed_answers(predictor: AmountPredictor, transactions: pd.DataFrame, level: float) -> pd.DataFrame:
    """AmountPredictor.predict as it was before issue 18 (the fitted pipeline's own predict, nullable columns from
    lists): the reference."""
    unknown = (transactions["type"] == config.UNKNOWN).to_numpy()
    if unknown.any():
        transactions = transactions.assign(type=np.where(unknown, predictor.usual_type, transactions["type"]))
    center = signed_log(predictor.pipeline.predict(transactions))
    width = predictor.half_width(float(level))
    predicted = np.round(signed_exp(center), 2)
    lower, upper = np.round(signed_exp(center - width), 2), np.round(signed_exp(center + width), 2)
    actual = transactions["amount"].to_numpy(dtype=float)
    given = ~np.isnan(actual)
    deviation = np.where(given, np.round(actual - predicted, 2), np.nan)
    outside = (actual < lower) | (actual > upper)
    return pd.DataFrame({
        "predicted_amount": predicted, "lower": lower, "upper": upper,
        "deviation": pd.array([d if g else None for d, g in zip(deviation, given)], dtype="Float64"),
        "outside_interval": pd.array([bool(o) if g else None for o, g in zip(outside, given)], dtype="boolean"),
    })


@pytest.mark.parametrize("name", ["ridge", "random_forest", "category_median"])
def test_expected_amounts_are_the_pipelines_predictions(pipelines, split, name):
    _, test = split
    for batch in requests(test)[:4]:
        assert np.array_equal(expected_amounts(pipelines[name], batch), pipelines[name].predict(batch)), len(batch)


def test_the_ridge_is_scored_from_its_coefficients(pipelines, split, monkeypatch):
    calls = []
    ridge = pipelines["ridge"][-1].regressor_
    monkeypatch.setattr(type(ridge), "predict", lambda self, X: calls.append(X) or np.zeros(X.shape[0]))
    expected_amounts(pipelines["ridge"], split[1].iloc[[0]])
    assert calls == []


@pytest.mark.parametrize("name", ["ridge", "random_forest", "category_median"])
def test_answers_are_the_listed_answers(pipelines, split, name):
    past, test = split
    predictor = AmountPredictor(pipelines[name], np.linspace(0.05, 1.5, 40), usual_type="expense")
    for batch in requests(test):
        for level in (None, 0.5, 0.99):
            expected = listed_answers(predictor, batch, predictor.default_level if level is None else level)
            pd.testing.assert_frame_equal(predictor.predict(batch, level=level), expected, check_exact=True)


def test_an_amount_written_positive_is_read_by_its_type(split):
    """An export may write every amount positive and let `type` say the direction (the Titans export): trained on
    and asked that way, the model learns and answers money out negative, as from a signed ledger."""
    past, test = split
    rows = pd.concat([test[test["type"] == kind].head(20) for kind in ("expense", "income")], ignore_index=True)
    written_positive = rows.assign(amount=rows["amount"].abs())
    booster = fitted("xgboost", past, regressor__regressor__n_estimators=20)  # answers in float32
    predictor = AmountPredictor(booster, np.linspace(0.05, 1.5, 40), usual_type="expense")
    answers = predictor.predict(rows)
    pd.testing.assert_frame_equal(predictor.predict(written_positive), answers, check_exact=True)
    assert (answers["predicted_amount"][rows["type"] == "expense"] < 0).all()
    assert answers["outside_interval"].mean() < 0.5  # an expense written positive is not off by twice its amount
    pd.testing.assert_frame_equal(scored_rows(past.assign(amount=past["amount"].abs())), scored_rows(past))
    # Cents in float64: a forest answers float32, which rounded as float32 is -31.649999618530273 in the JSON.
    cents = answers[["predicted_amount", "lower", "upper"]].to_numpy() * 100
    assert np.abs(cents - np.round(cents)).max() < 1e-6


def test_the_category_median_answers_a_row_without_category_by_its_type(pipelines, split):
    """Income is never categorised: an expense sent without its category gets the expenses' median, not income's."""
    past, test = split
    expenses = test[test["type"] == "expense"].head(5).assign(category="")
    answers = AmountPredictor(pipelines["category_median"], np.linspace(0.05, 1.5, 40)).predict(expenses)
    expected = round(float(np.median(past.loc[past["type"] == "expense", "amount"])), 2)
    assert (answers["predicted_amount"] == expected).all() and expected < 0


def test_a_served_request_without_amounts_answers_nulls(pipelines, split):
    predictor = AmountPredictor(pipelines["ridge"], np.linspace(0.05, 1.5, 40))
    raw = request_rows(split[1].iloc[:3], drop=("amount",))
    answers = predictor.serve(raw)
    assert answers["deviation"].isna().all() and answers["outside_interval"].isna().all()
    assert str(answers["deviation"].dtype) == "Float64" and str(answers["outside_interval"].dtype) == "boolean"
    with_amounts = predictor.serve(request_rows(split[1].iloc[:3]))
    assert with_amounts["deviation"].notna().all() and with_amounts["outside_interval"].notna().all()


def test_scikit_learns_checks_are_back_on_after_an_answer(pipelines, split):
    before = sklearn.get_config()
    AmountPredictor(pipelines["ridge"], np.linspace(0.05, 1.5, 40)).predict(split[1].iloc[:3])
    assert sklearn.get_config() == before and not before["assume_finite"]


# --- the contract parses only the columns the model reads ------------------------------------------------------
def test_reading_fewer_columns_changes_no_answer(pipelines, tmp_path, monkeypatch):
    predictor = AmountPredictor(pipelines["ridge"], np.linspace(0.05, 1.5, 40))
    assert predictor.read_columns == ("date", "type", "description", "amount", "category", "payment_method",
                                      "reference")
    requests = request_kinds(tmp_path)
    ledger = requests["a ledger's rows"]
    requests |= {"one row without its amount": ledger.iloc[[3]].drop(columns=["amount"]),
                 "only the required columns": ledger[["date", "description"]]}
    params = [None, {"level": 0.5}, {"date_order": "dmy"}]
    answers = answers_to(predictor, requests, params)
    assert refused(answers) >= {"a date that is no date", "an amount that is no number", "an empty description",
                                "no description column", "a date before 1970"}
    assert not refused(answers) & {"a ledger's rows", "odd values in the columns", "the Titans export's own header"}
    assert_as_when_every_column_is_read(predictor, requests, params, answers, monkeypatch)


def test_a_model_without_column_transformer_reads_every_column(pipelines, split):
    predictor = AmountPredictor(pipelines["category_median"], np.linspace(0.05, 1.5, 40))
    assert predictor.read_columns is None
    assert len(predictor.prepare(request_rows(split[1].iloc[:3])).columns) == 9


def test_warming_makes_what_a_first_request_would(pipelines):
    from pyfunc_models import features

    predictor = pickle.loads(pickle.dumps(AmountPredictor(pipelines["ridge"], np.linspace(0.05, 1.5, 40))))
    assert predictor.pipeline not in features._LEAN
    predictor.warm()
    assert predictor.pipeline in features._LEAN
