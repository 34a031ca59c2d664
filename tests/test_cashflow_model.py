"""The cash-flow model without MLflow: the daily series, month-ago days, forecasters, intervals, refusals;
training on small ledgers, its out-of-sample test window, the gate's metrics and the served defaults."""

import types

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.types.schema import ParamSchema, ParamSpec

from pyfunc_models import registry
from pyfunc_models.cashflow import (DEFAULT_HORIZON, MIN_HISTORY_DAYS, BoostedCalendar, CashflowPredictor,
                                    CashflowTask, SeasonalNaive, _month_ago, candidates, daily_net_flow,
                                    forecast_metrics, gate_metrics, interval, served_horizon)
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import LedgerError, prepare_ledger
from pyfunc_models.training import NotEnoughData


def ledger_of(rows):
    return prepare_ledger(pd.DataFrame(rows, columns=["date", "type", "description", "amount", "status"]))[0]


def test_daily_net_flow_signs_by_type_fills_empty_days_and_skips_what_moved_no_money():
    ledger = ledger_of([
        ("2024-01-01", "Income", "client", "1000", "completed"),
        ("2024-01-01", "Expense", "rent", "400", "completed"),  # a positive expense still leaves the account
        ("2024-01-03", "Expense", "fuel", "-50", "pending"),  # on its way: counted
        ("2024-01-03", "Expense", "declined", "-999", "failed"),
        ("2024-01-03", "Income", "refund", "999", "cancelled"),
        ("2024-01-04", "Income", "bad debt", "5000", "written_off"),  # never arrived
        ("2024-01-04", "Income", "client", "70", "on the moon"),  # an unknown status: counted
        ("2024-01-04", "Expense", "coffee", "-3", ""),  # no status: counted
    ])
    flow = daily_net_flow(ledger)
    assert flow.index.strftime("%Y-%m-%d").tolist() == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    assert flow.tolist() == [600.0, 0.0, -50.0, 67.0]


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


def test_predictor_answers_its_trained_horizon_and_level_when_a_request_gives_none():
    series = monthly_series(days=120)
    rows = ledger_of([(d.strftime("%Y-%m-%d"), "Income", "x", str(v), "completed") for d, v in series.items()])
    errors = np.linspace(-1000, 1000, 41)
    predictor = CashflowPredictor(SeasonalNaive(), errors=errors, level=0.9, horizon=14)
    default = predictor.predict(rows)
    assert len(default) == 14
    pd.testing.assert_frame_equal(default, predictor.predict(rows, horizon=14, level=0.9))
    narrower = predictor.predict(rows, level=0.6)
    assert ((default["upper"] - default["lower"]) > (narrower["upper"] - narrower["lower"])).all()


# --- training on small ledgers: the test window, the folds, what cannot fit -----------------------------

def generated(days: int, rows: int, seed: int = 5) -> pd.DataFrame:
    return prepare_ledger(generate_ledger(rows=rows, seed=seed, days=days))[0]


@pytest.fixture(scope="module")
def four_months():
    """About the real Titans export's span: 125 days. Trained with the defaults (30-day horizon, 4 folds)."""
    ledger, lines = generated(days=125, rows=400), []
    return ledger, CashflowTask().train(ledger, log=lines.append), lines


def test_a_four_month_ledger_trains_on_the_folds_that_fit_and_skips_candidates_that_cannot(four_months):
    _, outcome, lines = four_months
    assert outcome.params["backtest_folds"] == 1
    assert "1 backtest fold of 30 days (4 asked; as many as fit in the 95 days before the test window" in lines[0]
    assert "in sample" in lines[0] and outcome.params["backtest_interval_coverage"].startswith("in sample")
    assert {c.name for c in outcome.candidates} == {"seasonal_naive_weekly", "gradient_boosting"}
    assert "sarima: needs 90 days to fit on; the first backtest fold has 65" in outcome.params["skipped_candidates"]
    assert set(outcome.metrics) == {"mase", "mae", "rmse", "smape", "interval_coverage", "interval_level"}
    assert {"backtest_mase", "backtest_fold1_mase", "backtest_interval_coverage"} <= set(outcome.run_metrics)
    assert not any(name.startswith("backtest_fold2") for name in outcome.run_metrics)
    assert set(outcome.baseline_metrics["seasonal_naive_weekly"]) == {"mase", "mae", "rmse", "smape"}


def test_two_months_are_not_enough_and_the_message_says_so_in_numbers():
    with pytest.raises(NotEnoughData, match=r"cash flow needs at least 116 days of history for a 30-day test window "
                                            r"and one 30-day backtest fold .*the ledger spans 60 days "
                                            r"\(2023-01-01 to 2023-03-01\)"):
        CashflowTask().train(generated(days=60, rows=300), log=lambda line: None)


@pytest.mark.parametrize("days, horizon, folds, fragment", [
    (300, 30, 4, "as asked"),
    (200, 30, 2, "with 90 days to fit on)"),  # every candidate fits on the first fold
    (130, 30, 1, "with 56 days to fit on; candidates that need more are skipped"),
    (116, 30, 1, "with 56 days to fit on"),
    (100, 14, 2, "with 56 days to fit on"),
])
def test_folds_are_as_many_as_fit_before_the_test_window(days, horizon, folds, fragment):
    series = pd.Series(0.0, index=pd.date_range("2024-01-01", periods=days, freq="D"))
    used, why = CashflowTask(horizon=horizon).fold_plan(series, candidates(0))
    assert used == folds and fragment in why


def test_the_test_window_is_out_of_sample(four_months):
    ledger, outcome, _ = four_months
    series = daily_net_flow(ledger)
    past, window = series.iloc[:-30], series.index[-30:]
    forecaster = outcome.predictor.forecaster
    assert isinstance(forecaster, BoostedCalendar)
    assert forecaster.fitted_through_ == window[0] - pd.Timedelta(days=1)
    # Refitted on the days before the window, it forecasts the same; refitted on them and the window, it does not.
    refit = BoostedCalendar(seed=42).fit(past)
    assert np.allclose(refit.forecast(past, 30), forecaster.forecast(past, 30))
    assert not np.allclose(BoostedCalendar(seed=42).fit(series).forecast(past, 30), forecaster.forecast(past, 30))
    assert outcome.train["date"].max() < window[0] and outcome.test["date"].max() == window[-1]
    assert len(outcome.test_predictions) == 30


def test_gate_metrics_on_the_evaluation_ledger_reproduce_the_test_metrics(four_months, tmp_path):
    _, outcome, _ = four_months
    scored = gate_metrics(outcome.predictor.serve, outcome.test)
    naive = outcome.baseline_metrics["seasonal_naive_weekly"]
    assert scored.pop("horizon") == 30  # the window scored, so a champion can be scored on the same days
    assert scored == {**{k: v for k, v in outcome.metrics.items() if k != "interval_level"},
                      **{f"baseline_seasonal_naive_weekly_{k}": v for k, v in naive.items()}}
    # As the registry reads it back: the CSV the job logs as evaluation/test_ledger.csv.
    path = tmp_path / "test_ledger.csv"
    path.write_text(outcome.test.to_csv(index=False, date_format="%Y-%m-%d"))
    assert gate_metrics(outcome.predictor.serve, registry.evaluation_ledger("unused", str(path)))["mase"] \
        == outcome.metrics["mase"]


class Served:
    """What mlflow.pyfunc.load_model gives the registry: predict(rows, params), and the signature's defaults."""

    def __init__(self, predictor, horizon):
        self.predictor = predictor
        params = ParamSchema([ParamSpec("horizon", "long", horizon), ParamSpec("level", "double", 0.8)])
        self.metadata = types.SimpleNamespace(signature=types.SimpleNamespace(params=params))

    def predict(self, rows, params=None):
        return self.predictor.serve(rows, {"horizon": self.predictor.default_horizon, **(params or {})})


def test_gate_metrics_default_to_the_models_served_horizon(four_months):
    ledger, outcome, _ = four_months
    asked = []

    def anonymous(rows, params=None):
        asked.append(params["horizon"])
        return outcome.predictor.serve(rows, params)

    assert served_horizon(Served(outcome.predictor, 14).predict) == 14
    assert served_horizon(outcome.predictor.serve) == outcome.predictor.default_horizon
    assert served_horizon(anonymous) == DEFAULT_HORIZON
    assert gate_metrics(Served(outcome.predictor, 14).predict, ledger) == gate_metrics(anonymous, ledger, horizon=14)


def test_gate_asks_for_the_quiet_days_before_the_window_and_scores_only_the_window(four_months):
    ledger, outcome, _ = four_months
    start = daily_net_flow(ledger).index[-30]
    quiet = ledger[(ledger["date"] < start - pd.Timedelta(days=3)) | (ledger["date"] >= start)]
    asked = []

    def recording(rows, params=None):
        asked.append(params["horizon"])
        return outcome.predictor.serve(rows, params)

    scored = gate_metrics(recording, quiet, horizon=30)
    last_before = daily_net_flow(quiet[quiet["date"] < start]).index[-1]
    assert asked == [(daily_net_flow(quiet).index[-1] - last_before).days] and asked[0] >= 33
    assert np.isfinite(scored["mase"]) and np.isfinite(scored["baseline_seasonal_naive_weekly_mase"])


def test_trained_horizon_and_level_are_the_served_defaults():
    ledger = generated(days=100, rows=350)
    task = CashflowTask(horizon=14, level=0.9)
    assert task.serving_params == {"horizon": 14, "level": 0.9}
    assert CashflowTask().serving_params == CashflowTask.serving_params == {"horizon": 30, "level": 0.8}
    outcome = task.train(ledger, log=lambda line: None)
    assert outcome.params["backtest_folds"] == 2 and outcome.metrics["interval_level"] == 0.9
    example = outcome.predictor.example()
    answer = outcome.predictor.serve(example)
    assert len(answer) == 14
    pd.testing.assert_frame_equal(answer, outcome.predictor.serve(example, {"horizon": 14, "level": 0.9}))
    # The logged signature's param defaults, which MLflow fills in for a request that gives none.
    signature = infer_signature(example, answer, params=task.serving_params)
    assert {p.name: p.default for p in signature.params.params} == {"horizon": 14, "level": 0.9}


def test_training_parameters_out_of_the_served_range_are_refused():
    for kwargs, fragment in [({"horizon": 400}, "horizon is 400"), ({"level": 0.2}, "level is 0.2"),
                             ({"folds": 0}, "folds is 0")]:
        with pytest.raises(ValueError, match=fragment):
            CashflowTask(**kwargs)
