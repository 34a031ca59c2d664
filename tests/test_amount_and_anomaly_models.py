"""The amount model without MLflow: baselines and interval (the anomaly detector's: test_anomaly_model.py)."""

import numpy as np
import pandas as pd
import pytest

from pyfunc_models.amount import AmountPredictor, GroupMedian, category_of, signed_exp, signed_log
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import LedgerError, prepare_ledger
from tests.conftest import RidgeAndBaselines


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
                ledger.loc[ledger["type"] == "income", "amount"].median()]  # no category: its type's median
    assert np.allclose(baseline.predict(odd), expected)


def test_conformal_half_width_is_the_right_order_statistic():
    predictor = AmountPredictor(pipeline=None, calibration_residuals=-np.arange(1.0, 10.0))  # |r| = 1..9
    assert predictor.half_width(0.5) == 5.0  # ceil(10 * 0.5) = 5th smallest
    assert predictor.half_width(0.9) == 9.0
    with pytest.raises(LedgerError, match="param 'level' is 2"):
        predictor.predict(pd.DataFrame(), level=2)


def test_the_level_trained_with_is_the_served_default(ledger):
    """About the served default, not model choice: the cheapest candidates do."""
    task = RidgeAndBaselines(level=0.8)
    assert task.serving_params == {"level": 0.8}  # the logged signature's param default
    outcome = task.train(ledger, log=lambda _: None)
    rows = outcome.test.head(20)
    assert outcome.predictor.predict(rows).equals(outcome.predictor.predict(rows, level=0.8))
    assert not outcome.predictor.predict(rows).equals(outcome.predictor.predict(rows, level=0.95))
