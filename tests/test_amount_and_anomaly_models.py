"""Amount and anomaly models without MLflow: baselines, interval, robust statistics, duplicates, threshold."""

import numpy as np
import pandas as pd
import pytest

from pyfunc_models.amount import AmountPredictor, GroupMedian, category_of, signed_exp, signed_log
from pyfunc_models.anomaly import (AnomalyDetector, batch_duplicates, choose_threshold, robust_stats,
                                   tail_probability)
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import LedgerError, prepare_ledger


@pytest.fixture(scope="module")
def ledger():
    return prepare_ledger(generate_ledger(rows=2500, seed=5))[0]


def test_signed_log_round_trips():
    amounts = np.array([-4200.0, -3.5, 0.0, 12.25])
    assert np.allclose(signed_exp(signed_log(amounts)), amounts)


def test_category_median_baseline_falls_back_to_the_type(ledger):
    baseline = GroupMedian(category_of).fit(ledger)
    odd = ledger.head(2).assign(category=["never_seen_category", ""], type=["expense", "income"])
    expected = [ledger.loc[ledger["type"] == "expense", "amount"].median(),
                baseline.by_group_["(none)"]]
    assert np.allclose(baseline.predict(odd), expected)


def test_conformal_half_width_is_the_right_order_statistic():
    predictor = AmountPredictor(pipeline=None, calibration_residuals=-np.arange(1.0, 10.0))  # |r| = 1..9
    assert predictor.half_width(0.5) == 5.0  # ceil(10 * 0.5) = 5th smallest
    assert predictor.half_width(0.9) == 9.0
    with pytest.raises(LedgerError, match="param 'level' is 2"):
        predictor.predict(pd.DataFrame(), level=2)


def test_robust_stats_fall_back_to_mean_deviation_when_mad_is_zero():
    values = np.array([1.0, 1.0, 1.0, 1.0, 3.0, 5.0, 6.0, 7.0])
    stats = robust_stats(values, np.array(["fixed"] * 4 + ["fixed", "varied", "varied", "varied"]))
    assert stats.loc["fixed", "median"] == 1.0
    assert stats.loc["fixed", "scale"] == pytest.approx(np.mean([0, 0, 0, 0, 2]) * 1.2533)
    assert stats.loc["varied", "scale"] == pytest.approx(1.0 * 1.4826)


def test_tail_probability_is_never_zero():
    reference = np.sort(np.array([0.0, 1.0, 2.0, 3.0]))
    assert list(tail_probability(reference, np.array([-1.0, 2.0, 99.0]))) == [1.0, 3 / 5, 1 / 5]


def test_batch_duplicates_point_to_the_first_occurrence():
    rows = pd.DataFrame({"date": pd.to_datetime(["2024-01-01"] * 4 + ["2024-01-02"]),
                         "description": ["SHELL 1", "shell  1", "SHELL 1", "OTHER", "SHELL 1"],
                         "amount": [-5.0, -5.0, -6.0, -5.0, -5.0]})
    assert batch_duplicates(rows).tolist() == [-1, 0, -1, -1, -1]


def test_threshold_with_labels_keeps_precision_and_without_uses_the_rate():
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.85, 0.9, 0.95])
    labels = np.array([False, False, False, False, True, False, True])
    assert choose_threshold(scores, labels, 0.01, min_precision=0.6) == 0.85
    assert choose_threshold(scores, None, 0.5, min_precision=0.6) == pytest.approx(np.quantile(scores, 0.5))


def test_detector_learns_from_its_ledger_and_scores_without_labels(ledger):
    normal = ledger[ledger["anomaly_label"] == ""].drop(columns=["anomaly_label"])
    detector = AnomalyDetector(seed=0).fit(normal)
    assert 0 < detector.novelty_rate_ < 0.5
    scored = detector.predict(normal.tail(50), threshold=0.5)
    assert scored["anomaly_score"].between(0, 1).all()
    assert (scored["reason"] != "").sum() == scored["is_anomaly"].sum()
