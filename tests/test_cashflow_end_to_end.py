"""Cash-flow forecasting end to end: trained by the real `mlflow run . -e main` on a ledger's past (the
session's champions), served from the registry, and judged on the 30 days that ledger held back."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from pyfunc_models.cashflow import MIN_HISTORY_DAYS, daily_net_flow
from pyfunc_models.ledger import prepare_ledger
from tests.conftest import HELD_BACK_DAYS, invoke

pytestmark = pytest.mark.slow  # through the mlflow CLI, a served model or a tracking server


@pytest.fixture(scope="module")
def ledger_split(champions):
    """Almost a year of transactions; training saw all but the last HELD_BACK_DAYS."""
    return champions["ledger"], champions["past"], champions["future"]


@pytest.fixture(scope="module")
def cashflow_model(champions):
    return champions["trained"]["cashflow"]


@pytest.fixture(scope="module")
def server(champion_servers):
    return champion_servers["cashflow"]


def history_records(raw: pd.DataFrame) -> list:
    return raw[["Date", "Type", "Amount", "Status"]].rename(columns=str.lower).to_dict("records")


def test_run_logs_backtest_folds_candidates_and_plots(cashflow_model):
    run, client = cashflow_model["run"], cashflow_model["client"]
    metrics = run.data.metrics
    for name in ("test_mase", "test_mae", "test_rmse", "test_smape", "test_interval_coverage",
                 "backtest_mase", "backtest_fold1_mase", "backtest_fold4_mase", "baseline_seasonal_naive_weekly_test_mase"):
        assert name in metrics
    assert metrics["test_mase"] < metrics["baseline_seasonal_naive_weekly_test_mase"]
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert {c.data.tags["candidate"] for c in children} == {"seasonal_naive_weekly", "exponential_smoothing",
                                                            "sarima", "gradient_boosting"}
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/forecast_test_window.png", "evaluation/backtest_error_by_horizon.png"} <= artifacts


def test_forecast_days_follow_the_history_with_ordered_bounds(server, ledger_split):
    _, past, _ = ledger_split
    response = invoke(server, {"dataframe_records": history_records(past), "params": {"horizon": 45}})
    assert response.status_code == 200, response.text
    days = response.json()["predictions"]
    assert len(days) == 45
    last = date.fromisoformat(past["Date"].max())
    assert [d["date"] for d in days] == [(last + timedelta(days=k)).isoformat() for k in range(1, 46)]
    assert all(d["lower"] <= d["forecast"] <= d["upper"] for d in days)


def test_held_back_month_is_forecast_better_than_seasonal_naive(server, ledger_split):
    _, past, future = ledger_split
    split = {"columns": ["date", "type", "amount", "status"],
             "data": past[["Date", "Type", "Amount", "Status"]].values.tolist()}
    response = invoke(server, {"dataframe_split": split})
    assert response.status_code == 200, response.text
    forecast = np.array([d["forecast"] for d in response.json()["predictions"]])
    history = daily_net_flow(prepare_ledger(past)[0])
    actual = daily_net_flow(prepare_ledger(pd.concat([past, future]))[0]).iloc[-HELD_BACK_DAYS:].to_numpy()
    naive = np.resize(history.iloc[-7:].to_numpy(), HELD_BACK_DAYS)
    assert np.mean(np.abs(actual - forecast)) < np.mean(np.abs(actual - naive))


@pytest.mark.parametrize("params, fragment", [
    ({"horizon": 0}, "param 'horizon' is 0"),
    ({"horizon": 400}, "param 'horizon' is 400"),
    ({"level": 0.2}, "param 'level' is 0.2"),
])
def test_out_of_range_params_are_refused(server, ledger_split, params, fragment):
    response = invoke(server, {"dataframe_records": history_records(ledger_split[1]), "params": params})
    assert response.status_code == 400 and fragment in response.json()["message"]


def test_short_or_undated_histories_are_refused_and_the_server_keeps_serving(server, ledger_split):
    _, past, _ = ledger_split
    recent = past[past["Date"] >= (pd.to_datetime(past["Date"].max()) - pd.Timedelta(days=20)).strftime("%Y-%m-%d")]
    short = invoke(server, {"dataframe_records": history_records(recent)})
    assert short.status_code == 400
    assert f"at least {MIN_HISTORY_DAYS} days" in short.json()["message"]
    undated = invoke(server, {"dataframe_records": [{"date": "someday", "amount": 5.0}]})
    assert undated.status_code == 400 and "row 0, column 'date': 'someday'" in undated.json()["message"]
    assert invoke(server, {"dataframe_records": history_records(past), "params": {"horizon": 3}}).status_code == 200
