"""The cash-flow model without MLflow: the daily series, month-ago days, forecasters, intervals, refusals."""

import numpy as np
import pandas as pd
import pytest

from pyfunc_models.cashflow import (MIN_HISTORY_DAYS, BoostedCalendar, CashflowPredictor, SeasonalNaive,
                                    _month_ago, daily_net_flow, forecast_metrics, interval)
from pyfunc_models.ledger import LedgerError, prepare_ledger


def ledger_of(rows):
    return prepare_ledger(pd.DataFrame(rows, columns=["date", "type", "description", "amount", "status"]))[0]


def test_daily_net_flow_signs_by_type_fills_empty_days_and_skips_failed():
    ledger = ledger_of([
        ("2024-01-01", "Income", "client", "1000", "completed"),
        ("2024-01-01", "Expense", "rent", "400", "completed"),  # a positive expense still leaves the account
        ("2024-01-03", "Expense", "fuel", "-50", "pending"),
        ("2024-01-03", "Expense", "declined", "-999", "failed"),
    ])
    flow = daily_net_flow(ledger)
    assert flow.index.strftime("%Y-%m-%d").tolist() == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert flow.tolist() == [600.0, 0.0, -50.0]


def test_month_ago_by_day_of_month_and_by_days_to_month_end():
    dates = pd.DatetimeIndex(["2024-03-31", "2024-03-15", "2024-03-29"])
    assert _month_ago(dates, 1, from_end=False).strftime("%m-%d").tolist() == ["02-29", "02-15", "02-29"]
    # 2024-03-29 is 2 days before March's end; 2 days before February's end is the 27th.
    assert _month_ago(dates, 1, from_end=True).strftime("%m-%d").tolist() == ["02-29", "02-13", "02-27"]


def monthly_series(days=400, seed=0):
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2023-01-01", periods=days, freq="D")
    values = rng.normal(0, 100, days) + np.where(dates.dayofweek == 0, 2000, 0)
    values += np.where(dates.day == 1, -8000, 0) + np.where(dates.day == 15, 6000, 0)
    return pd.Series(values, index=dates)


def test_seasonal_naive_repeats_last_week_and_forecasts_any_horizon():
    series = monthly_series()
    forecast = SeasonalNaive().fit(series).forecast(series, 10)
    assert np.allclose(forecast[:7], series.iloc[-7:].to_numpy()) and np.allclose(forecast[7:], forecast[:3])


def test_boosted_model_learns_the_monthly_rhythm_better_than_seasonal_naive():
    series = monthly_series(days=430)
    history, future = series.iloc[:400], series.iloc[400:].to_numpy()
    boosted = BoostedCalendar(seed=0).fit(history).forecast(history, 30)
    naive = SeasonalNaive().forecast(history, 30)
    assert forecast_metrics(future, boosted, history)["mae"] < 0.5 * forecast_metrics(future, naive, history)["mae"]


def test_interval_always_contains_the_forecast():
    lower, upper = interval(np.array([10.0, -5.0]), np.array([1.0, 2.0, 3.0]), 0.8)  # errors all positive
    assert (lower <= [10.0, -5.0]).all() and (upper >= [10.0, -5.0]).all()


def test_predictor_refuses_short_history_and_bad_params():
    series = monthly_series(days=200)
    predictor = CashflowPredictor(SeasonalNaive(), errors=np.array([-1.0, 1.0]))
    rows = ledger_of([(d.strftime("%Y-%m-%d"), "Income", "x", str(v), "completed") for d, v in series.items()])
    out = predictor.predict(rows, horizon=3)
    assert out["date"].tolist() == ["2023-07-20", "2023-07-21", "2023-07-22"]
    with pytest.raises(LedgerError, match=f"spans 20 day.*at least {MIN_HISTORY_DAYS} days"):
        predictor.predict(rows.head(20))
    for horizon in (0, 366, 2.5):
        with pytest.raises(LedgerError, match="param 'horizon'"):
            predictor.predict(rows, horizon=horizon)
