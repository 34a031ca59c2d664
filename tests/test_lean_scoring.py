"""The lean scoring path (issue 18): the fitted pipelines' own numbers, without scikit-learn's per-call machinery.

`features.CompiledFeatures` must give exactly the fitted `transaction_features` ColumnTransformer's matrix, and the
predictors exactly the answers the fitted pipelines give, at one row and at thousands, on a generated ledger and on
the ledgers in the shapes of real exports, with what training never saw (merchants, categories, payment methods),
empty columns and accents. A predictor pickled before the lean path existed must load and score the lean way.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from pyfunc_models import amount, category
from pyfunc_models.amount import AmountPredictor, AmountTask
from pyfunc_models.category import CategoryPredictor, CategoryTask, categorised_expenses
from pyfunc_models.features import CompiledFeatures, LeanPipeline, lean, predict_in_one_thread, transaction_features
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import load_ledger, prepare_ledger, request_rows
from pyfunc_models.splits import time_split
from tests import real_ledgers

LEDGERS = ("generated", "titans_export", "titans_sample_export", "bank_style", "personal_finance", "tiny")
FEATURES = {  # the category model's features, and the amount model's
    "category": dict(max_text_features=2_000),
    "amount": dict(use_amount=False, use_category=True),
}
# Rows no ledger has: an unseen category, payment method, type and merchants, accents and another script, a
# reference where the ledger has none, a leap day and a month's first day.
ODD_ROWS = pd.DataFrame({
    "date": ["2024-02-29", "2025-03-01", "2024-12-31"],
    "type": ["expense", "refund", "income"],
    "description": ["CAFÉ MÜLLER Zürich #12", "कैफ़े दिल्ली 221", "zzqx never seen before"],
    "amount": [-4.5, -0.01, 1250.0],
    "category": ["Brand New Category", "", "food"],
    "payment_method": ["crypto_wallet", "credit_car", ""],
    "status": ["paid", "on hold", ""],
    "reference": ["", "INV-1042", "ÉTÉ 7"],
    "receipt_url": [np.nan] * 3,  # an all-empty column, as pd.read_csv reads it
})


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory) -> dict:
    """Each ledger split in time: the past to fit on, and requests (the future, then ODD_ROWS) through the contract."""
    folder = tmp_path_factory.mktemp("lean_ledgers")
    split = {}
    for name in LEDGERS:
        if name == "generated":
            ledger = prepare_ledger(generate_ledger(rows=4_000, seed=3))[0]
        else:
            ledger = load_ledger(getattr(real_ledgers, name)(folder / f"{name}.csv"))[0]
        past, future = time_split(ledger, 0.3)
        raw = pd.concat([request_rows(future), ODD_ROWS], ignore_index=True)
        split[name] = past, prepare_ledger(raw, required=("date", "description"), missing_amount_ok=True)[0]
    return split


def assert_same_matrix(compiled, expected):
    assert compiled.shape == expected.shape and compiled.dtype == expected.dtype
    assert (compiled != expected).nnz == 0


@pytest.mark.parametrize("model", FEATURES)
@pytest.mark.parametrize("name", LEDGERS)
def test_compiled_features_equal_the_fitted_column_transformer(ledgers, name, model):
    past, requests = ledgers[name]
    fitted = transaction_features(**FEATURES[model]).fit(past)
    compiled = CompiledFeatures(fitted)
    assert_same_matrix(compiled.transform(requests), fitted.transform(requests))
    for row in (0, *range(len(requests) - len(ODD_ROWS), len(requests))):  # one row: a known one, each odd one
        one = requests.iloc[[row]]
        assert_same_matrix(compiled.transform(one), fitted.transform(one))
    # Columns a client left empty throughout: float64 NaN, as pd.read_csv reads them.
    empty = request_rows(requests).assign(payment_method=np.nan, reference=np.nan, category=np.nan)
    empty = prepare_ledger(empty, required=("date", "description"))[0]
    assert_same_matrix(compiled.transform(empty), fitted.transform(empty))
    # Values the contract would have made `unknown`, straight to the encoders: all-zero blocks in both.
    unseen = requests.assign(payment_method="never_seen", type="never_seen", category="never_seen")
    assert_same_matrix(compiled.transform(unseen), fitted.transform(unseen))


def candidate(task, name, **params):
    """One of the task's own candidates, made smaller (fewer trees) where `params` say so."""
    estimator = next(c.estimator for c in task.candidates(seed=1) if c.name == name)
    return estimator.set_params(**params)


@pytest.fixture(scope="module")
def fitted_models(ledgers) -> dict:
    past, _ = ledgers["generated"]
    expenses = categorised_expenses(past)
    forest = candidate(CategoryTask(), "random_forest", estimator__classifier__n_estimators=20)
    linear = candidate(CategoryTask(), "logistic_regression",  # fewer n-grams: a quicker fit, the same code path
                       estimator__features__words__tfidfvectorizer__max_features=2_000,
                       estimator__features__characters__tfidfvectorizer__max_features=2_000)
    ridge = candidate(AmountTask(), "ridge")
    amount_forest = candidate(AmountTask(), "random_forest", regressor__regressor__n_estimators=20)
    return {
        "category forest": CategoryPredictor(forest.fit(expenses, expenses["category"])),
        "category linear": CategoryPredictor(linear.fit(expenses, expenses["category"])),
        "amount ridge": AmountPredictor(ridge.fit(past, past["amount"]), np.linspace(0.1, 1, 10)),
        "amount forest": AmountPredictor(amount_forest.fit(past, past["amount"]), np.linspace(0.1, 1, 10)),
    }


@pytest.mark.slow  # four models fitted on a 2,800-row past (seconds)
@pytest.mark.parametrize("name", ["category forest", "category linear", "amount ridge", "amount forest"])
def test_predictors_answer_as_the_fitted_pipelines(fitted_models, ledgers, name, monkeypatch):
    predictor = fitted_models[name]
    _, requests = ledgers["generated"]
    batches = [requests, requests.iloc[[0]], requests.iloc[[-3]]]  # thousands of rows; one known row; one odd row
    lean_answers = [predictor.predict(batch) for batch in batches]
    module = category if name.startswith("category") else amount
    monkeypatch.setattr(module, "lean", lambda fitted: fitted)  # the fitted sklearn pipeline itself
    for batch, answers in zip(batches, lean_answers):
        pd.testing.assert_frame_equal(answers, predictor.predict(batch), check_exact=True)


@pytest.mark.slow  # the four models of `fitted_models` (seconds)
def test_the_forest_is_scored_through_the_lean_path(fitted_models):
    pipeline = fitted_models["category forest"].pipeline.estimator_
    assert isinstance(lean(pipeline), LeanPipeline) and lean(pipeline) is lean(pipeline)  # made once


def test_predictors_predict_on_the_calling_thread():
    """The fitted forests, not only the unfitted templates they were cloned from (`get_params` reaches only those)."""
    ledger = prepare_ledger(generate_ledger(rows=600, seed=2))[0]
    expenses = categorised_expenses(ledger)
    memory = candidate(CategoryTask(), "random_forest", estimator__classifier__n_estimators=3)
    regression = candidate(AmountTask(), "random_forest", regressor__regressor__n_estimators=3)
    classifier = CategoryPredictor(memory.fit(expenses, expenses["category"])).pipeline.estimator_[-1]
    regressor = predict_in_one_thread(regression.fit(ledger, ledger["amount"]))[-1].regressor_
    assert (classifier.n_jobs, regressor.n_jobs) == (1, 1)


@pytest.mark.slow  # the four models of `fitted_models` (seconds)
def test_a_predictor_pickled_before_the_lean_path_scores_the_lean_way(fitted_models, ledgers):
    """Scoring adds nothing to the pickle, so a pickle made before the lean path existed is the same as one made now:
    it loads, builds its lean path on its first prediction, and answers as before."""
    predictor = fitted_models["category forest"]
    _, requests = ledgers["generated"]
    fresh = CategoryPredictor(predictor.pipeline)
    before = pickle.dumps(fresh)
    answers = fresh.predict(requests)
    assert pickle.dumps(fresh) == before
    assert b"LeanPipeline" not in before and b"CompiledFeatures" not in before
    loaded = pickle.loads(before)
    pd.testing.assert_frame_equal(loaded.predict(requests), answers, check_exact=True)
    assert isinstance(lean(loaded.pipeline.estimator_), LeanPipeline)
