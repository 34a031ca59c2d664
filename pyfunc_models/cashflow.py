"""Cash-flow forecasting: daily net cash flow over the next N days, from the history it is given.

Daily net flow is income minus expenses per day (failed and cancelled transactions
move no money; days without transactions count as zero). Ledgers beat to a weekly
and a monthly drum (rent on the 1st, payroll mid-month and at month end), so every
forecaster sees the same days of the previous two months: by day of month and by
days to month end. Those features are read from the history being forecast, and
the parameters learned in training are re-applied to it (a state-space model's
`apply`, a booster's trees), so a model trained last month forecasts from today's
ledger without refitting.

Candidates are compared by a rolling-origin backtest; the interval comes from the
backtest errors (each fold's coverage measured with quantiles of the other folds).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing
from statsmodels.tsa.statespace.sarimax import SARIMAX
from xgboost import XGBRegressor

from pyfunc_models import config, plots
from pyfunc_models.ledger import LedgerError, prepare_ledger, request_rows
from pyfunc_models.training import CandidateResult, TrainingOutcome

DEFAULT_HORIZON = 30
HORIZON_RANGE = (1, 365)
DEFAULT_LEVEL = 0.8
LEVEL_RANGE = (0.5, 0.99)
FOLDS = 4
WARMUP_DAYS = 62  # two months back, for the month-ago features
MIN_HISTORY_DAYS = WARMUP_DAYS + 28  # plus four weeks to forecast from
MIN_TRAINING_DAYS = 180
NO_MONEY_MOVED = ("failed", "cancelled")


def daily_net_flow(ledger: pd.DataFrame) -> pd.Series:
    """Income minus expenses per calendar day, zero on days without transactions."""
    moved = ledger[~ledger["status"].isin(NO_MONEY_MOVED)]
    if moved.empty:
        raise LedgerError("no transactions that moved money (all failed or cancelled); expected dated amounts")
    magnitude = moved["amount"].abs().to_numpy()
    flow = np.where(moved["type"].to_numpy() == "income", magnitude, -magnitude)
    daily = pd.Series(flow, index=pd.DatetimeIndex(moved["date"])).groupby(level=0).sum()
    days = pd.date_range(daily.index.min(), daily.index.max(), freq="D")
    return daily.reindex(days, fill_value=0.0).astype(float)


def _month_ago(dates: pd.DatetimeIndex, months: int, from_end: bool) -> pd.DatetimeIndex:
    """The same day `months` back: by day of month, or by days to the month's end."""
    if not from_end:
        return dates - pd.DateOffset(months=months)  # the 31st maps to the last day of a shorter month
    to_end = (dates.days_in_month - dates.day).to_numpy()
    month_end = (dates - pd.DateOffset(months=months)) + pd.offsets.MonthEnd(0)
    return month_end - pd.to_timedelta(np.minimum(to_end, month_end.day - 1), unit="D")


def calendar_features(series: pd.Series, dates: pd.DatetimeIndex, with_lags: bool) -> pd.DataFrame:
    """Features of `dates`, read from `series` (history, plus forecasts already made)."""
    def at(lagged):
        return series.reindex(lagged).to_numpy()

    month = {f"{kind}{m}": at(_month_ago(dates, m, kind == "end")) for kind in ("day", "end") for m in (1, 2)}
    features = pd.DataFrame({
        "same_day_of_month": np.nanmean([month["day1"], month["day2"]], axis=0),
        "same_days_to_month_end": np.nanmean([month["end1"], month["end2"]], axis=0),
    }, index=dates)
    if with_lags:
        for name, values in month.items():
            features[name] = values
        for lag in (7, 14, 21, 28):
            features[f"lag{lag}"] = at(dates - pd.Timedelta(days=lag))
        rolling = series.rolling(28, min_periods=7).mean()
        features["mean28_a_week_ago"] = rolling.reindex(dates - pd.Timedelta(days=7)).to_numpy()
        features["weekday"] = dates.dayofweek
        features["day_of_month"] = dates.day
        features["days_to_month_end"] = dates.days_in_month - dates.day
        features["month"] = dates.month
    return features


class Forecaster:
    """Fit on a daily series; forecast `horizon` days after any history, `min_lag` days at a time
    (no feature looks closer back than that, so each step only reads history and earlier steps)."""

    name = ""
    min_lag = 7
    params: dict = {}

    def fit(self, series: pd.Series) -> "Forecaster":
        raise NotImplementedError

    def _next(self, series: pd.Series, dates: pd.DatetimeIndex) -> np.ndarray:
        raise NotImplementedError

    def forecast(self, history: pd.Series, horizon: int) -> np.ndarray:
        series, made = history.astype(float), []
        while len(made) < horizon:
            dates = pd.date_range(series.index[-1] + pd.Timedelta(days=1), periods=min(self.min_lag, horizon - len(made)))
            values = np.asarray(self._next(series, dates), dtype=float)
            series = pd.concat([series, pd.Series(values, index=dates)])
            made.extend(values)
        return np.array(made)


class SeasonalNaive(Forecaster):
    """The baseline: each day as the same weekday last week."""

    name = "seasonal_naive_weekly"
    params = {"season": 7}

    def fit(self, series):
        return self

    def _next(self, series, dates):
        return series.iloc[-7:].to_numpy()[: len(dates)]


def _quietly(action):
    """statsmodels warns about convergence and overflow while it searches; the backtest judges the result."""
    with warnings.catch_warnings():
        for category in (ConvergenceWarning, UserWarning, RuntimeWarning):
            warnings.filterwarnings("ignore", category=category)
        return action()


def _quiet_fit(model):
    return _quietly(lambda: model.fit(disp=False))


class Sarima(Forecaster):
    """SARIMA(1,0,1)(1,0,1)7 with the month-ago days as regressors."""

    name = "sarima"
    min_lag = 28
    params = {"order": "(1,0,1)", "seasonal_order": "(1,0,1,7)", "exog": "same day 1-2 months ago"}

    def _exog(self, series, dates):
        return calendar_features(series, dates, with_lags=False).fillna(0.0)

    def fit(self, series):
        kept = series.iloc[WARMUP_DAYS:]
        model = SARIMAX(kept.to_numpy(), exog=self._exog(series, kept.index).to_numpy(), order=(1, 0, 1),
                        seasonal_order=(1, 0, 1, 7), trend="c")
        self.results_ = _quiet_fit(model)
        return self

    def _next(self, series, dates):
        kept = series.iloc[WARMUP_DAYS:]
        applied = _quietly(lambda: self.results_.apply(kept.to_numpy(), exog=self._exog(series, kept.index).to_numpy()))
        return applied.forecast(len(dates), exog=self._exog(series, dates).to_numpy())


class MonthlyEts(Forecaster):
    """Exponential smoothing (weekly season) of what the month-ago days do not explain."""

    name = "exponential_smoothing"
    min_lag = 28
    params = {"seasonal": 7, "trend": False, "monthly_part": "least squares on same day 1-2 months ago"}

    def _monthly(self, series, dates):
        features = calendar_features(series, dates, with_lags=False).fillna(0.0).to_numpy()
        return np.column_stack([np.ones(len(dates)), features])

    def fit(self, series):
        kept = series.iloc[WARMUP_DAYS:]
        design = self._monthly(series, kept.index)
        self.coefficients_ = np.linalg.lstsq(design, kept.to_numpy(), rcond=None)[0]
        rest = kept.to_numpy() - design @ self.coefficients_
        self.results_ = _quiet_fit(ExponentialSmoothing(rest, seasonal=7))
        return self

    def _next(self, series, dates):
        kept = series.iloc[WARMUP_DAYS:]
        rest = kept.to_numpy() - self._monthly(series, kept.index) @ self.coefficients_
        applied = _quietly(lambda: self.results_.apply(rest))
        return applied.forecast(len(dates)) + self._monthly(series, dates) @ self.coefficients_


class BoostedCalendar(Forecaster):
    """Gradient-boosted trees on calendar features, weekly lags and the month-ago days."""

    name = "gradient_boosting"
    min_lag = 7
    params = {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.05, "objective": "reg:absoluteerror"}

    def __init__(self, seed: int = 42):
        self.seed = seed

    def fit(self, series):
        kept = series.index[WARMUP_DAYS:]
        features = calendar_features(series, kept, with_lags=True)
        self.model_ = XGBRegressor(n_estimators=300, max_depth=4, learning_rate=0.05, objective="reg:absoluteerror",
                                   n_jobs=1, random_state=self.seed).fit(features, series.loc[kept].to_numpy())
        return self

    def _next(self, series, dates):
        return self.model_.predict(calendar_features(series, dates, with_lags=True))


def candidates(seed: int) -> list:
    return [SeasonalNaive(), MonthlyEts(), Sarima(), BoostedCalendar(seed)]


def forecast_metrics(actual: np.ndarray, forecast: np.ndarray, history: pd.Series) -> dict:
    error = actual - forecast
    scale = np.mean(np.abs(history.to_numpy()[7:] - history.to_numpy()[:-7]))  # in-sample weekly seasonal naive
    denominator = np.abs(actual) + np.abs(forecast)
    smape = np.where(denominator > 0, 2 * np.abs(error) / np.where(denominator > 0, denominator, 1), 0.0)
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error ** 2))),
        "smape": float(np.mean(smape)),
        "mase": float(np.mean(np.abs(error)) / scale) if scale > 0 else float("nan"),
    }


def interval(forecast: np.ndarray, errors: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Forecast plus the central `level` share of past errors, never excluding the forecast itself."""
    low, high = np.quantile(errors, [(1 - level) / 2, 1 - (1 - level) / 2])
    return forecast + min(low, 0.0), forecast + max(high, 0.0)


class CashflowPredictor:
    """The served model: a ledger history in; one row per future day with forecast and interval out."""

    input_columns = config.COLUMNS
    required_columns = ("date", "amount")
    nonempty_columns = ()
    read_columns = ("date", "amount", "type", "status")  # all `daily_net_flow` needs; the rest is not parsed

    def __init__(self, forecaster: Forecaster, errors: np.ndarray, level: float = DEFAULT_LEVEL):
        self.forecaster = forecaster
        self.errors = np.asarray(errors, dtype=float)
        self.default_level = level

    def prepare(self, raw: pd.DataFrame) -> pd.DataFrame:
        return prepare_ledger(raw, required=self.required_columns,
                              columns=self.read_columns)[0]

    def predict(self, transactions: pd.DataFrame, horizon: int = DEFAULT_HORIZON,
                level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        if not HORIZON_RANGE[0] <= int(horizon) <= HORIZON_RANGE[1] or int(horizon) != float(horizon):
            raise LedgerError(f"param 'horizon' is {horizon}; expected a whole number of days from "
                              f"{HORIZON_RANGE[0]} to {HORIZON_RANGE[1]}")
        if not LEVEL_RANGE[0] <= float(level) <= LEVEL_RANGE[1]:
            raise LedgerError(f"param 'level' is {level}; expected a coverage between {LEVEL_RANGE[0]} and "
                              f"{LEVEL_RANGE[1]}, e.g. 0.8")
        history = daily_net_flow(transactions)
        if len(history) < MIN_HISTORY_DAYS:
            raise LedgerError(
                f"the history spans {len(history)} day(s) ({history.index[0].date()} to {history.index[-1].date()}); "
                f"at least {MIN_HISTORY_DAYS} days of transactions are needed to forecast")
        values = self.forecaster.forecast(history, int(horizon))
        lower, upper = interval(values, self.errors, float(level))
        dates = pd.date_range(history.index[-1] + pd.Timedelta(days=1), periods=int(horizon), freq="D")
        return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "forecast": np.round(values, 2),
                             "lower": np.round(lower, 2), "upper": np.round(upper, 2)})


class CashflowTask:
    """Rolling-origin backtest of every candidate; the best by mean MASE is refit on the whole history."""

    model_type = "cashflow"
    target_column = None
    primary_metric = "mase"
    serving_params = {"horizon": DEFAULT_HORIZON, "level": DEFAULT_LEVEL}
    report_metrics = ("mase", "mae", "rmse", "smape", "interval_coverage")

    def __init__(self, horizon: int = DEFAULT_HORIZON, folds: int = FOLDS, level: float = DEFAULT_LEVEL):
        self.horizon, self.folds, self.level = horizon, folds, level

    def backtest(self, forecaster: Forecaster, series: pd.Series) -> dict:
        """Per fold: fit on the days before its origin, forecast the next `horizon` days."""
        folds = []
        for fold in range(self.folds, 0, -1):
            origin = len(series) - fold * self.horizon
            history, actual = series.iloc[:origin], series.iloc[origin:origin + self.horizon].to_numpy()
            forecast = forecaster.fit(history).forecast(history, self.horizon)
            folds.append({"origin": series.index[origin], "actual": actual, "forecast": forecast,
                          "history": history, "metrics": forecast_metrics(actual, forecast, history)})
        errors = [f["actual"] - f["forecast"] for f in folds]
        for k, fold in enumerate(folds):
            others = np.concatenate([e for j, e in enumerate(errors) if j != k])
            lower, upper = interval(fold["forecast"], others, self.level)
            fold["lower"], fold["upper"] = lower, upper
            fold["metrics"]["interval_coverage"] = float(np.mean((fold["actual"] >= lower) & (fold["actual"] <= upper)))
        names = folds[0]["metrics"].keys()
        mean = {name: float(np.mean([f["metrics"][name] for f in folds])) for name in names}
        per_fold = {f"fold{k + 1}_{name}": f["metrics"][name] for k, f in enumerate(folds) for name in names}
        return {"folds": folds, "errors": np.concatenate(errors), "metrics": {**mean, **per_fold}}

    @staticmethod
    def serving_example(outcome: TrainingOutcome) -> pd.DataFrame:
        """A history as small as a valid request can be: the last days' net flow, one row a day."""
        days = daily_net_flow(outcome.train).iloc[-(MIN_HISTORY_DAYS + 10):]
        return pd.DataFrame({"date": days.index.strftime("%Y-%m-%d"),
                             "type": np.where(days.to_numpy() < 0, "expense", "income"),
                             "description": "daily net flow", "amount": days.to_numpy().round(2)})

    def train(self, ledger: pd.DataFrame, seed: int = 42, test_fraction: float = 0.2, on_candidate=None,
              log=print) -> TrainingOutcome:
        series = daily_net_flow(ledger)
        needed = MIN_TRAINING_DAYS + self.folds * self.horizon
        if len(series) < needed:
            raise LedgerError(f"the ledger spans {len(series)} day(s); a {self.folds}-fold backtest at horizon "
                              f"{self.horizon} needs at least {needed} days of history")
        log(f"cashflow: {len(series)} days ({series.index[0].date()} to {series.index[-1].date()}), "
            f"{self.folds} backtest folds of {self.horizon} days")
        results, backtests = [], {}
        for forecaster in candidates(seed):
            started = pd.Timestamp.now()
            backtest = self.backtest(forecaster, series)
            seconds = (pd.Timestamp.now() - started).total_seconds()
            result = CandidateResult(forecaster.name, forecaster.params, backtest["metrics"], seconds, len(series))
            results.append(result)
            backtests[forecaster.name] = (forecaster, backtest)
            log(f"  candidate {forecaster.name:<22} backtest mase={backtest['metrics']['mase']:.4f} "
                f"coverage={backtest['metrics']['interval_coverage']:.3f} ({seconds:.1f}s)")
            if on_candidate:
                on_candidate(result)
        chosen = min(results, key=lambda r: r.metrics["mase"])
        forecaster, backtest = backtests[chosen.name]
        log(f"  chosen: {chosen.name}; refitting on the whole history")
        predictor = CashflowPredictor(forecaster.fit(series), backtest["errors"], self.level)
        naive = backtests[SeasonalNaive.name][1]["metrics"]
        last = backtest["folds"][-1]
        # The evaluation data is the whole ledger: a forecast of its last days needs the history before them.
        outcome = TrainingOutcome(predictor=predictor, chosen=chosen, candidates=results,
                                  metrics=dict(backtest["metrics"]),
                                  baseline_metrics={SeasonalNaive.name: naive},
                                  train=ledger[ledger["date"] < last["origin"]], test=ledger,
                                  test_predictions=last["forecast"])
        outcome.metrics["interval_level"] = self.level
        outcome.artifacts["forecast_last_fold.png"] = plots.forecast(
            last["history"].iloc[-120:], last["actual"], last["forecast"], last["lower"], last["upper"], self.level,
            chosen.name)
        outcome.artifacts["backtest_error_by_horizon.png"] = plots.error_by_horizon(
            {name: np.mean([np.abs(f["actual"] - f["forecast"]) for f in bt["folds"]], axis=0)
             for name, (_, bt) in backtests.items()})
        return outcome


def gate_metrics(predict, ledger: pd.DataFrame, horizon: int = DEFAULT_HORIZON) -> dict:
    """Score any cash-flow model on an evaluation ledger: forecast its last `horizon` days from the rest."""
    series = daily_net_flow(ledger)
    if len(series) < MIN_HISTORY_DAYS + horizon:
        raise LedgerError(f"the evaluation ledger spans {len(series)} days; scoring a {horizon}-day forecast needs "
                          f"at least {MIN_HISTORY_DAYS + horizon}")
    origin = series.index[-horizon]
    history = ledger[ledger["date"] < origin]
    forecast = predict(request_rows(history), params={"horizon": horizon})["forecast"].to_numpy(dtype=float)
    return forecast_metrics(series.iloc[-horizon:].to_numpy(), forecast, series.loc[: origin - pd.Timedelta(days=1)])
