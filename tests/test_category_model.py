"""The category model without MLflow: features, splits, baselines, candidates and the predictor."""

import numpy as np
import pandas as pd
import pytest

from pyfunc_models.category import CategoryPredictor, CategoryTask, MerchantLookup
from pyfunc_models.features import merchant_key, transaction_features
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import LedgerError, prepare_ledger
from pyfunc_models.splits import merchant_groups, merchant_split, time_split
from pyfunc_models.training import train_row_task


@pytest.mark.parametrize("description, key", [
    ("POS PURCHASE SHELL OIL #57444 SAN JOSE CA", "shell oil"),
    ("VISA ADOBE*8F3K2 CA", "adobe"),
    ("ach debit comcast xfinity 4431", "comcast xfinity"),
    ("SQ *B&H PHOTO 41957 PORTLAND OR", "b&h photo"),
    ("TST* STAPLES #1 BOSTON MA", "staples boston"),  # one-word names keep the city: grouping uses the first word
    ("", ""),
])
def test_merchant_key_strips_bank_noise(description, key):
    assert merchant_key(description) == key


@pytest.fixture(scope="module")
def ledger():
    return prepare_ledger(generate_ledger(rows=2500, seed=11))[0]


def test_time_split_puts_each_day_on_one_side(ledger):
    past, future = time_split(ledger, 0.2)
    assert past["date"].max() < future["date"].min()
    assert len(past) + len(future) == len(ledger)


def test_merchant_split_shares_no_merchant(ledger):
    known, unseen = merchant_split(ledger, 0.2, seed=1)
    assert not set(merchant_groups(known["description"])) & set(merchant_groups(unseen["description"]))


def test_features_handle_empty_text_and_unseen_values(ledger):
    features = transaction_features().fit(ledger)
    odd = ledger.head(2).copy()
    odd["description"] = ["", "zzzz never seen qqq"]
    odd["payment_method"] = "unknown"
    assert features.transform(odd).shape[0] == 2


def test_merchant_lookup_baseline_knows_merchants_it_saw(ledger):
    expenses = ledger[ledger["category"] != ""]
    lookup = MerchantLookup().fit(expenses)
    assert (lookup.predict(expenses) == expenses["category"].to_numpy()).mean() > 0.8


@pytest.mark.slow  # every candidate on rolling-origin folds: ~13 s; the quick singleton check is below
def test_tiny_categories_and_one_example_classes_do_not_crash(ledger):
    rows = ledger[ledger["category"] != ""].head(700).copy()  # every candidate, on a ledger of a few months
    # Categories with one and two examples, the last one only in the future.
    rows.iloc[5, rows.columns.get_loc("category")] = "one_off"
    rows.iloc[[10, 11], rows.columns.get_loc("category")] = "twice"
    rows.iloc[-1, rows.columns.get_loc("category")] = "only_in_the_future"
    task = CategoryTask(max_tree_rows=500)
    outcome = train_row_task(task, rows, seed=1, log=lambda _: None)
    assert outcome.metrics["accuracy"] > 0.5
    assert {c.name for c in outcome.candidates} == {"text_logistic_regression", "logistic_regression", "random_forest",
                                                    "xgboost", "merchant_lookup", "majority"}
    assert "merchant_holdout_accuracy" in outcome.metrics
    assert set(outcome.baseline_metrics) == {"majority", "merchant_lookup"}


def test_a_single_category_is_refused(ledger):
    rows = ledger.copy()
    rows.loc[rows["category"] != "", "category"] = "fuel"
    with pytest.raises(LedgerError, match="1 distinct categories"):
        CategoryTask().training_rows(rows)


def test_predictor_top_k_and_bad_top_k(ledger):
    rows = ledger[ledger["category"] != ""]
    task = CategoryTask()
    fitted = task.candidates(seed=0)[0].estimator.fit(rows, rows["category"])
    predictor = CategoryPredictor(fitted)
    out = predictor.predict(rows.head(4), top_k=2)
    assert list(out.columns) == ["category", "confidence", "alternatives", "answered_from"]
    assert set(out["answered_from"]) == {"merchant_history"}  # all four merchants are in its training rows
    assert all(len(a) == 2 and a[0]["category"] == c for a, c in zip(out["alternatives"], out["category"]))
    assert np.allclose(out["confidence"], [a[0]["probability"] for a in out["alternatives"]], atol=1e-6)
    with pytest.raises(LedgerError, match="param 'top_k' is 0"):
        predictor.predict(rows.head(1), top_k=0)


@pytest.mark.slow  # fits the category task's random forest (seconds)
def test_a_served_forest_predicts_on_one_thread_with_the_same_answers(ledger):
    """n_jobs=-1 makes a one-row request wait in joblib's polling sleeps; the served model uses one thread."""
    rows = ledger[ledger["category"] != ""]
    forest = next(c for c in CategoryTask().candidates(seed=0) if c.name == "random_forest")
    fitted = forest.estimator.fit(rows, rows["category"])
    threaded = fitted.predict_proba(rows.head(50))
    assert [v for k, v in fitted.get_params().items() if k.endswith("n_jobs")] == [None, -1]
    predictor = CategoryPredictor(fitted)
    assert [v for k, v in predictor.pipeline.get_params().items() if k.endswith("n_jobs")] == [None, 1]
    assert np.array_equal(predictor.pipeline.predict_proba(rows.head(50)), threaded)


@pytest.mark.slow  # two whole trainings
def test_row_caps_bound_every_fit_and_are_reported(ledger):
    rows = ledger[ledger["category"] != ""]
    task = CategoryTask(max_tree_rows=300, max_search_rows=400, max_linear_rows=600,
                        only=["logistic_regression", "random_forest"], word_knowledge=0)
    outcome = train_row_task(task, rows, seed=1, log=lambda _: None)
    assert {c.name: c.rows_used for c in outcome.candidates} == {"logistic_regression": 400, "random_forest": 300}
    assert outcome.params["max_search_rows"] == 400
    assert outcome.params["refit_rows"] == (600 if outcome.chosen.name == "logistic_regression" else 300)
    assert outcome.params["merchant_holdout_train_rows"] <= 400


def test_small_ledgers_compare_candidates_on_rolling_origin_folds_and_log_each_fold(ledger):
    rows = ledger[ledger["category"] != ""].head(600)
    outcome = train_row_task(CategoryTask(only=["text_logistic_regression", "merchant_lookup"], word_knowledge=0),
                             rows, seed=1,
                             log=lambda _: None)
    assert outcome.params["validation_folds"] == 3
    for result in outcome.candidates:
        folds = [result.metrics[f"fold{k}_macro_f1"] for k in (1, 2, 3)]
        assert result.metrics["macro_f1"] == pytest.approx(np.mean(folds))


def test_a_naive_baseline_is_chosen_only_when_it_beats_the_learned_models_beyond_the_margin():
    from pyfunc_models.training import Candidate, CandidateResult, choose

    def scored(name, score, baseline=False):
        return Candidate(name, None, {}, baseline=baseline), CandidateResult(name, {}, {"macro_f1": score}, 0.0, 1)

    task = CategoryTask()
    assert choose(task, [scored("model", 0.90), scored("lookup", 0.905, True)])[0].name == "model"
    assert choose(task, [scored("model", 0.90), scored("lookup", 0.95, True)])[0].name == "lookup"
    assert choose(task, [scored("lookup", 0.95, True)])[0].name == "lookup"


def test_a_tiny_ledger_with_singleton_categories_trains():
    """About 80 categorised expenses over four months, most categories with one to three rows."""
    rng = np.random.default_rng(5)
    merchants = [(f"MERCHANT {chr(65 + i)}{chr(70 + i)} STORE", f"category_{i % 22}") for i in range(30)]
    picks = rng.integers(0, len(merchants), 80)
    rows = pd.DataFrame({
        "Date": pd.date_range("2024-01-01", "2024-04-30", periods=80).strftime("%Y-%m-%d"),
        "Type": "Expense", "Description": [merchants[i][0] for i in picks],
        "Amount": np.round(rng.lognormal(3, 1, 80), 2), "Category": [merchants[i][1] for i in picks],
    })
    ledger = prepare_ledger(rows)[0]
    outcome = train_row_task(CategoryTask(), ledger, seed=1, log=lambda _: None)
    assert outcome.params["validation_folds"] >= 2
    answer = outcome.predictor.predict(ledger.head(3))
    assert len(answer) == 3 and answer["category"].isin(ledger["category"]).all()


def test_a_fold_with_one_category_does_not_discard_a_candidate(ledger):
    """A small ledger whose early months hold one category: the early fold cannot fit a classifier, the later
    folds can, and the candidate is judged on those."""
    rows = ledger[ledger["category"] != ""].head(500).copy()
    rows.iloc[:260, rows.columns.get_loc("category")] = "groceries_pantry"  # past the first fold's train part
    outcome = train_row_task(CategoryTask(only=["text_logistic_regression", "majority"], word_knowledge=0), rows,
                             seed=1,
                             log=lambda _: None)
    assert "skipped_candidates" not in outcome.params
    learned = next(c for c in outcome.candidates if c.name == "text_logistic_regression")
    assert "fold3_macro_f1" not in learned.metrics  # judged on the folds it could be fitted on, not all three
