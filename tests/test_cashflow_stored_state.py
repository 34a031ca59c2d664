"""What a fitted state-space forecaster keeps: its parameters, not statsmodels' results object, which holds the days
it was fitted on (endog, exog and their filtered states) and would put them in the logged model."""

import pickle

import numpy as np
import pandas as pd
import pytest

from pyfunc_models.cashflow import MonthlyEts, Sarima, _after_warmup, _quietly

FORECASTERS = {"sarima": Sarima, "exponential_smoothing": MonthlyEts}


def daily_flow(days: int, seed: int = 3) -> pd.Series:
    """Noisy days with a weekly income, rent on the 1st and payroll at month end: every value distinct."""
    dates = pd.date_range("2024-01-01", periods=days, freq="D")
    rng = np.random.default_rng(seed)
    flow = (rng.normal(-150.0, 60.0, days) + np.where(dates.dayofweek == 0, 2400.0, 0.0)
            - np.where(dates.day == 1, 3000.0, 0.0) - np.where(dates.is_month_end, 5000.0, 0.0))
    return pd.Series(flow, index=dates)


def full_results(forecaster, history: pd.Series):
    """statsmodels' results object at the forecaster's parameters, as `fit` returns it (smoothed)."""
    kept = _after_warmup(history)
    if isinstance(forecaster, Sarima):
        return forecaster._model(history, kept).smooth(forecaster.params_), kept
    rest = kept.to_numpy() - forecaster._monthly(history, kept.index) @ forecaster.coefficients_
    return forecaster._model(rest).smooth(forecaster.params_), kept


def reference_forecast(forecaster, fitted, history: pd.Series, horizon: int) -> np.ndarray:
    """The forecast the results object's own `apply` gives on `history` (what the forecaster did when it kept it)."""
    kept = _after_warmup(history)
    dates = pd.date_range(history.index[-1] + pd.Timedelta(days=1), periods=horizon)
    if isinstance(forecaster, Sarima):
        applied = _quietly(lambda: fitted.apply(kept.to_numpy(),
                                                exog=forecaster._exog(history, kept.index).to_numpy()))
        return applied.forecast(horizon, exog=forecaster._exog(history, dates).to_numpy())
    rest = kept.to_numpy() - forecaster._monthly(history, kept.index) @ forecaster.coefficients_
    applied = _quietly(lambda: fitted.apply(rest))
    return applied.forecast(horizon) + forecaster._monthly(history, dates) @ forecaster.coefficients_


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_a_fitted_state_space_forecaster_keeps_no_day_it_was_fitted_on(name):
    series = daily_flow(150)
    forecaster = FORECASTERS[name]().fit(series)
    stored = pickle.dumps(forecaster)
    fitted, kept = full_results(forecaster, series)
    # What statsmodels was given: the days after the warm-up (SARIMA: with its regressors; ETS: what the monthly
    # part leaves of them).
    given = [np.asarray(fitted.model.endog).ravel(), kept.to_numpy()]
    if isinstance(forecaster, Sarima):
        given.append(np.asarray(fitted.model.exog).ravel())
    leaked = [value for values in given for value in values if value and np.float64(value).tobytes() in stored]
    assert not leaked, f"{name} keeps {len(leaked)} training values, e.g. {leaked[:3]}"
    assert len(stored) < 2_000, f"{name} pickles to {len(stored)} bytes; its results object would be megabytes"
    assert len(pickle.dumps(fitted)) > 100 * len(stored)  # what it no longer carries


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_its_forecast_is_the_one_the_results_object_gave(name):
    series = daily_flow(200)
    forecaster = FORECASTERS[name]().fit(series.iloc[:150])
    fitted, _ = full_results(forecaster, series.iloc[:150])
    horizon = forecaster.min_lag  # one step: a longer forecast repeats it on the history plus the days forecast
    for history in (series.iloc[:150], series, series.iloc[60:]):  # the fitted days, later days, another window
        np.testing.assert_allclose(forecaster.forecast(history, horizon),
                                   reference_forecast(forecaster, fitted, history, horizon), rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_one_pickled_with_its_results_object_loads_with_the_same_parameters(name):
    """A champion logged before, loaded in process by the registry gate, forecasts as it did."""
    series = daily_flow(170)
    forecaster = FORECASTERS[name]().fit(series.iloc[:150])
    fitted, _ = full_results(forecaster, series.iloc[:150])
    older = FORECASTERS[name].__new__(FORECASTERS[name])
    older.__dict__.update({k: v for k, v in vars(forecaster).items() if k != "params_"}, results_=fitted)
    loaded = pickle.loads(pickle.dumps(older))
    assert "results_" not in vars(loaded)
    np.testing.assert_array_equal(loaded.forecast(series, 28), forecaster.forecast(series, 28))
