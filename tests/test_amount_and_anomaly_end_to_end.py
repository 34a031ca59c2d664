"""Amount prediction and anomaly detection end to end: trained by the real `mlflow run . -e main` (the
session's champions), served from the registry by a real `mlflow models serve`."""

import re

import numpy as np
import pandas as pd
import pytest

from pyfunc_models.features import merchant_keys
from pyfunc_models.ledger import load_ledger
from tests.conftest import invoke

pytestmark = pytest.mark.slow  # through the mlflow CLI, a served model or a tracking server


def records(rows: pd.DataFrame) -> list:
    out = rows[["date", "type", "description", "amount", "category", "payment_method"]].copy()
    out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    return out.to_dict("records")


@pytest.fixture(scope="module")
def ledger(champions):
    return load_ledger(champions["ledger"])[0]


@pytest.fixture(scope="module")
def usual_purchase(ledger):
    """A purchase at the ledger's busiest card merchant, at that merchant's median amount."""
    expenses = ledger[(ledger["type"] == "expense") & (ledger["anomaly_label"] == "")
                      & ledger["reference"].str.startswith("TXN")]
    keys = merchant_keys(expenses["description"])
    busiest = pd.Series(keys).value_counts().index[0]
    rows = expenses[keys == busiest]
    median = rows["amount"].median()
    row = rows.iloc[[int(np.argmin(np.abs(rows["amount"].to_numpy() - median)))]].copy()
    row["date"] = ledger["date"].max() + pd.Timedelta(days=1)
    return row


# --- amount -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def amount_model(champions):
    return champions["trained"]["amount"]


@pytest.fixture(scope="module")
def amount_server(champion_servers):
    return champion_servers["amount"]


def test_amount_run_logs_candidates_baselines_interval_and_plot(amount_model):
    run, client = amount_model["run"], amount_model["client"]
    metrics = run.data.metrics
    assert run.info.status == "FINISHED"
    for name in ("test_mae", "test_rmse", "test_r2", "test_mape", "test_interval_coverage",
                 "baseline_category_median_test_mae", "baseline_merchant_median_test_mae"):
        assert name in metrics
    assert metrics["test_mae"] < metrics["baseline_category_median_test_mae"]
    assert 0.8 <= metrics["test_interval_coverage"] <= 1.0
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert {c.data.tags["candidate"] for c in children} == {"ridge", "random_forest", "xgboost",
                                                                 "category_median", "merchant_median"}
    assert "evaluation/predicted_vs_actual.png" in {a.path for a in client.list_artifacts(run.info.run_id,
                                                                                           "evaluation")}


def test_served_amount_gives_interval_and_flags_a_mistyped_amount(amount_server, usual_purchase):
    usual = records(usual_purchase)[0]
    mistyped = {**usual, "amount": usual["amount"] * 10}
    no_amount = {key: value for key, value in usual.items() if key != "amount"}
    response = invoke(amount_server, {"dataframe_records": [usual, mistyped, no_amount]})
    assert response.status_code == 200, response.text
    normal, inflated, unknown = response.json()["predictions"]
    for prediction in (normal, inflated, unknown):
        assert prediction["lower"] <= prediction["predicted_amount"] <= prediction["upper"]
    assert normal["outside_interval"] is False
    assert inflated["outside_interval"] is True
    assert inflated["deviation"] < normal["deviation"] - 0.5 * abs(usual["amount"])  # money out is negative
    assert unknown["deviation"] is None and unknown["outside_interval"] is None
    assert unknown["predicted_amount"] < 0  # an expense, read from its type


def test_served_amount_level_param_widens_the_interval(amount_server, usual_purchase):
    row = records(usual_purchase)
    narrow = invoke(amount_server, {"dataframe_records": row, "params": {"level": 0.5}}).json()["predictions"][0]
    wide = invoke(amount_server, {"dataframe_records": row, "params": {"level": 0.99}}).json()["predictions"][0]
    assert wide["upper"] - wide["lower"] > narrow["upper"] - narrow["lower"]
    bad = invoke(amount_server, {"dataframe_records": row, "params": {"level": 1.5}})
    assert bad.status_code == 400 and "param 'level' is 1.5" in bad.json()["message"]


# --- anomaly ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def anomaly_model(champions):
    return champions["trained"]["anomaly"]


@pytest.fixture(scope="module")
def anomaly_server(champion_servers):
    return champion_servers["anomaly"]


def test_anomaly_run_logs_detection_metrics_per_kind_and_plot(anomaly_model):
    run, client = anomaly_model["run"], anomaly_model["client"]
    metrics = run.data.metrics
    assert run.info.status == "FINISHED"
    for name in ("test_precision", "test_recall", "test_f1", "test_pr_auc", "test_threshold",
                 "test_recall_duplicate", "baseline_category_zscore_test_recall"):
        assert name in metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/score_distribution.png" in artifacts


def test_served_anomaly_flags_a_spike_a_duplicate_and_a_stranger_with_reasons(anomaly_server, usual_purchase):
    usual = records(usual_purchase)[0]
    batch = [
        usual,
        {**usual, "amount": usual["amount"] * 10},
        usual,  # the same charge again, same day
        {**usual, "description": "QUAZELTRO YACHT CHARTER MONACO", "amount": usual["amount"] * 40},
    ]
    response = invoke(anomaly_server, {"dataframe_records": batch})
    assert response.status_code == 200, response.text
    normal, spike, duplicate, stranger = response.json()["predictions"]
    assert normal["is_anomaly"] is False and normal["reason"] == ""
    assert spike["is_anomaly"] is True
    ratio = re.fullmatch(r"amount (\d+\.\d)x the usual for .+", spike["reason"])
    assert ratio and 5 <= float(ratio.group(1)) <= 20, spike["reason"]
    assert duplicate["is_anomaly"] is True and duplicate["reason"] == "duplicate of row 0"
    assert stranger["is_anomaly"] is True and "merchant never seen" in stranger["reason"]
    assert all(0 <= p["anomaly_score"] <= 1 for p in (normal, spike, duplicate, stranger))
    assert spike["anomaly_score"] > normal["anomaly_score"]


def test_served_anomaly_threshold_param(anomaly_server, usual_purchase):
    row = records(usual_purchase)
    everything = invoke(anomaly_server, {"dataframe_records": row, "params": {"threshold": 0.0}})
    assert everything.json()["predictions"][0]["is_anomaly"] is True
    bad = invoke(anomaly_server, {"dataframe_records": row, "params": {"threshold": 5}})
    assert bad.status_code == 400 and "param 'threshold' is 5" in bad.json()["message"]
    missing = invoke(anomaly_server, {"dataframe_records": [{k: v for k, v in row[0].items() if k != "amount"}]})
    assert missing.status_code == 400 and "amount" in missing.json()["message"]
    assert invoke(anomaly_server, {"dataframe_records": row}).status_code == 200
