"""Monitoring's statistics and decision rules, without a model or MLflow (fast tier)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from pyfunc_models import config
from pyfunc_models.category import macro_f1
from pyfunc_models.monitoring import statistics as st
from pyfunc_models.cashflow import daily_net_flow
from pyfunc_models.ledger import prepare_ledger
from pyfunc_models.monitoring.profile import (OK, RETRAIN, WARN, _daily_totals, _judge_distribution, _judge_metric,
                                             _rate_check, history_rows)
from pyfunc_models.task import Sample

T = config.MONITORING


def test_psi_is_near_zero_for_one_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    reference = st.numeric_distribution(rng.normal(size=5000), T.NUMERIC_BINS)
    same = st.numeric_counts(rng.normal(size=3000), reference["edges"])
    shifted = st.numeric_counts(rng.normal(1.0, 1.0, size=3000), reference["edges"])
    assert st.psi(reference["counts"], same) < 0.02
    assert st.psi(reference["counts"], shifted) > 0.5
    assert st.homogeneity_p_value(reference["counts"], same) > 0.001
    assert st.homogeneity_p_value(reference["counts"], shifted) < 1e-10
    assert st.ks_against_reference(reference["quantiles"], rng.normal(1.0, 1.0, 300))[1] < 1e-6


def test_categorical_bins_pool_rare_and_new_values():
    reference = st.categorical_distribution(["a"] * 90 + ["b"] * 9 + ["c"])
    names, before, after = st.categorical_bins(reference, ["a", "b", "c", "z"], min_share=0.05)
    assert names == ["a", "b", st.OTHER]
    assert before.tolist() == [90, 9, 1] and after.tolist() == [1, 1, 2]


def test_a_metric_drop_is_retrain_only_beyond_its_size_and_outside_noise():
    rng = np.random.default_rng(1)
    held = Sample({"right": (rng.random(600) < 0.95).astype(float)}, lambda c: float(np.mean(c["right"])))
    heldout = {"value": held.value(), "replicates": st.bootstrap_replicates(held, 400, 0).tolist()}

    def judged(accuracy, rows=400):
        period = Sample({"right": (rng.random(rows) < accuracy).astype(float)}, lambda c: float(np.mean(c["right"])))
        replicates = st.bootstrap_replicates(period, 400, 1)
        return _judge_metric("accuracy", "performance", heldout, period.value(), replicates, rows, True, False, True, T)

    assert judged(0.95).status == OK
    assert judged(0.80).status == RETRAIN and "accuracy" in judged(0.80).reason
    assert judged(0.20, rows=10).status == OK  # too few rows to decide on
    assert "too few" in judged(0.20, rows=10).reason


def test_a_shift_is_judged_by_psi_and_its_test_together():
    big = {"name": "x", "kind": "input", "test": "distribution", "psi": 0.5, "p_value": 1e-9, "rows": 300}
    noisy = {**big, "p_value": 0.2}  # a large PSI from a handful of rows is not a shift
    moderate = {**big, "psi": 0.15}
    assert _judge_distribution(big, 0.001, T).status == RETRAIN
    assert _judge_distribution(noisy, 0.001, T).status == OK
    assert _judge_distribution(moderate, 0.001, T).status == WARN
    new = _rate_check("new merchants", "input", 10, 1000, 120, 300, T.NEW_MERCHANT_RETRAIN, T.NEW_MERCHANT_WARN)
    judged = _judge_distribution(new, 0.001, T)
    assert judged.status == RETRAIN and "40.0% of 300 rows" in judged.reason


def test_calibration_turns_confidences_into_the_chance_of_being_right():
    rng = np.random.default_rng(2)
    confidence = rng.uniform(0.3, 1.0, 4000)
    right = (rng.random(4000) < confidence ** 2).astype(float)  # overconfident
    points = st.calibration(confidence, right)
    fresh = rng.uniform(0.3, 1.0, 3000)
    estimate = st.calibrated(points, fresh).mean()
    assert abs(estimate - np.mean(rng.random(3000) < fresh ** 2)) < 0.03
    assert abs(fresh.mean() - estimate) > 0.1  # the raw confidence would have been wrong


def test_the_fast_macro_f1_is_sklearns():
    rng = np.random.default_rng(3)
    truth = rng.choice(list("abcdef"), 500).astype(object)
    predicted = np.where(rng.random(500) < 0.7, truth, rng.choice(list("abcdefg"), 500)).astype(object)
    assert macro_f1(truth, predicted) == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))


def test_every_model_type_says_what_monitoring_watches():
    from pyfunc_models.model_types import TASKS
    from pyfunc_models.monitoring.profile import FEATURE_COLUMNS, MAY_BE_EMPTY

    readable = set(FEATURE_COLUMNS.values()) | set(MAY_BE_EMPTY) | {config.ANOMALY_LABEL}
    for task in TASKS:
        assert set(task.monitoring.inputs) | set(task.monitoring.labels) <= readable, task.model_type
        assert any(watched.decides for watched in task.monitoring.watched), task.model_type


def test_since_splits_a_whole_export_into_history_and_the_period():
    import pandas as pd

    from pyfunc_models.ledger import LedgerError
    from pyfunc_models.monitoring.job import split_period

    ledger = pd.DataFrame({"date": pd.date_range("2026-09-01", periods=90, freq="D"), "amount": 1.0})
    period, before = split_period(ledger, "2026-11-01")
    assert period["date"].min() == pd.Timestamp("2026-11-01") and before["date"].max() == pd.Timestamp("2026-10-31")
    assert len(period) + len(before) == 90
    whole, nothing = split_period(ledger, None)
    assert len(whole) == 90 and nothing.empty
    with pytest.raises(LedgerError, match="no transaction on or after since=2027-01-01"):
        split_period(ledger, "2027-01-01")


def test_the_kept_daily_totals_give_the_daily_series_of_the_rows_they_stand_for():
    """A monitoring profile keeps a forecaster's history as daily totals per type and status; read back, they must
    give the daily net flow of the rows themselves, whatever sign the ledger wrote (the Titans export writes every
    amount positive and lets the type say the direction) and for a row whose type is unknown."""
    raw = pd.DataFrame({"date": ["2024-03-01", "2024-03-01", "2024-03-02", "2024-03-02", "2024-03-03", "2024-03-04",
                                 "2024-03-04"],
                        "description": ["rent", "salary", "coffee", "transfer", "transfer", "fuel", "cancelled"],
                        "amount": ["1200", "3000", "-4.5", "-20", "20", "-60", "99"],
                        "type": ["Expense", "Income", "", "", "", "expense", "expense"],
                        "status": ["paid", "received", "completed", "completed", "completed", "pending", "cancelled"]})
    rows = prepare_ledger(raw)[0]
    rows.loc[[3, 4], "type"] = config.UNKNOWN  # a hand-made ledger may hold any type: the amount's sign decides
    kept = {"history": _daily_totals(rows)}
    expected = pd.Series([1800.0, -24.5, 20.0, -60.0], index=pd.date_range("2024-03-01", periods=4, freq="D"))
    pd.testing.assert_series_equal(daily_net_flow(rows), expected, check_names=False, check_freq=False,
                                  check_index_type=False)
    pd.testing.assert_series_equal(daily_net_flow(history_rows(kept)), expected, check_names=False, check_freq=False,
                                  check_index_type=False)
