"""Cash-flow forecasting: daily net cash flow over the next N days, from the history it is given.

Daily net flow is income minus expenses per calendar day; days without transactions count as zero.
What a transaction's status does to it (config.NO_MONEY_MOVED_STATUSES):
- completed (and what exports call paid, received, posted, cleared, ...): counted on its date;
- pending: counted on its date, as if it had cleared: the money is on its way, and the last days of an
  export are mostly pending, so leaving them out would forecast from an empty last week;
- unpaid (outstanding, overdue, invoiced): left out, money owed is not money moved until it is paid;
- failed, cancelled (declined, reversed, void, ...): left out, no money moved;
- written_off: left out, the amount was expected and never arrived (a bad debt), so the account never saw it;
- unknown or empty: counted, since most exports list only what happened and many have no status at all.

Ledgers beat to a weekly and a monthly drum (rent on the 1st, payroll mid-month and at month end), so every
forecaster sees the same days of the previous two months: by day of month and by days to month end. Those
features are read from the history being forecast, and the parameters learned in training are re-applied to
it (a state-space model's `apply`, a booster's trees), so a model trained last month forecasts from today's
ledger without refitting.

Training holds back the last `horizon` days as a test window that no fitted model sees. Candidates are
compared by a rolling-origin backtest on the days before it, with as many folds as fit (at most `folds`);
the chosen one is fitted on every day before the window and forecasts it from the transactions before it,
exactly as the registry's gate does (`gate_metrics`), so the run's test metrics and the gate's are one figure.
The interval comes from the backtest errors (each fold's coverage measured with quantiles of the other
folds; with a single fold, its own, which is in sample and recorded as such).

How much history it needs: a candidate learns from four weeks of days after its warm-up. Gradient boosting
needs only the weekly lags' four weeks of warm-up (trees route a missing month-ago day), so 56 days; the
state-space candidates regress on the month-ago days and need their two months, so 90 days, and are skipped
on a shorter backtest fold. Training needs the test window, one backtest fold and those 56 days; a request
needs 56 days of history, as much as the shortest backtest fold forecasts from.
"""

from __future__ import annotations

import ctypes
import functools
import json
import warnings

import numpy as np
import pandas as pd
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing
from statsmodels.tsa.statespace.sarimax import SARIMAX
from xgboost import XGBRegressor
from xgboost import core as xgboost_core

try:  # the kernel behind Series.rolling(...).mean(), for `_rolling_mean`
    from pandas._libs.window.aggregations import roll_mean as _roll_mean
except ImportError:  # another pandas: the public call, same numbers
    _roll_mean = None

from pyfunc_models import config
from pyfunc_models.ledger import (LedgerError, PreparedColumns, among, answer_frame, request_rows, signed_by_type,
                                  text_column)
from pyfunc_models.predictor import LedgerPredictor
from pyfunc_models.task import PER_LEDGER, Gate, ModelTask, Monitoring, Option, Purpose, Sample, Watch, Watched
from pyfunc_models.training import MIN_SCORED_ROWS, CandidateResult, NotEnoughData, TrainingOutcome

DEFAULT_HORIZON = 30
HORIZON_RANGE = (1, 365)
DEFAULT_LEVEL = 0.8
LEVEL_RANGE = (0.5, 0.99)
FOLDS = 4
LAG_DAYS = 28  # the farthest weekly lag
WARMUP_DAYS = 62  # two months back, for the month-ago features
FIT_DAYS = 28  # days a candidate learns from at least, after its warm-up
MIN_FIT_DAYS = LAG_DAYS + FIT_DAYS  # the shortest history a learned candidate fits on (gradient boosting)
MIN_HISTORY_DAYS = MIN_FIT_DAYS  # a request needs no more history than the shortest backtest fold forecasts from
BASELINE_PREFIX = "baseline_"


def daily_net_flow(ledger: pd.DataFrame | PreparedColumns) -> pd.Series:
    """Income minus expenses per calendar day, zero on days without transactions, of a prepared ledger (its frame,
    or the contract's columns before the frame: the served model reads its type and status by code)."""
    # The four columns it reads, each filtered once: filtering the whole ledger was most of its cost.
    moved = ~among(ledger["status"], config.NO_MONEY_MOVED_STATUSES)
    if not moved.any():
        raise LedgerError(f"no transactions that moved money (every one is "
                          f"{' or '.join(config.NO_MONEY_MOVED_STATUSES)}); expected dated amounts")
    flow = signed_by_type(np.asarray(ledger["amount"], dtype=float), ledger["type"])[moved]
    dates = np.asarray(ledger["date"])[moved]
    if dates.dtype == "datetime64[D]":  # the contract's columns (`PreparedColumns`): days already
        if np.isfinite(flow).all() and not np.isnat(dates).any():
            return _summed_by_day(dates, flow, np.dtype("datetime64[ns]"))
        dates = dates.astype("datetime64[ns]")  # the frame's dates, for pandas below
    if dates.dtype.kind == "M" and np.isfinite(flow).all():
        days = dates.astype("datetime64[D]")
        if not np.isnat(days).any() and (days == dates).all():  # dates at midnight, as the contract makes them
            return _summed_by_day(days, flow, dates.dtype)
    daily = pd.Series(flow, index=pd.DatetimeIndex(dates)).groupby(level=0).sum()
    days = pd.date_range(daily.index.min(), daily.index.max(), freq="D")
    return daily.reindex(days, fill_value=0.0).astype(float)


def _summed_by_day(days: np.ndarray, flow: np.ndarray, unit) -> pd.Series:
    """`daily_net_flow`'s groupby-sum and reindex in numpy, with pandas' numbers: for dates in order, each day's
    flows added by `np.add.reduceat` as pandas adds sorted groups; in any other order, in ledger order with the
    compensated (Kahan) sum of pandas' group_sum, one transaction of every day at a time."""
    slot = (days - days.min()).astype(np.intp)
    total = np.zeros(slot.max() + 1)
    if (slot[1:] >= slot[:-1]).all():
        starts = np.flatnonzero(np.diff(slot, prepend=-1))
        total[slot[starts]] = np.add.reduceat(flow, starts)
    else:
        order = np.argsort(slot, kind="stable")
        slot, flow = slot[order], flow[order]
        starts = np.flatnonzero(np.diff(slot, prepend=-1))
        rank = np.arange(len(slot)) - np.repeat(starts, np.diff(np.append(starts, len(slot))))  # within its day
        compensation = np.zeros_like(total)
        by_rank, begin = np.argsort(rank, kind="stable"), 0
        for end in np.cumsum(np.bincount(rank)).tolist():
            at = slot[by_rank[begin:end]]  # one transaction of each day that has this many
            added = flow[by_rank[begin:end]] - compensation[at]
            summed = total[at] + added
            compensation[at] = (summed - total[at]) - added
            total[at] = summed
            begin = end
    first = pd.Timestamp(days.min().astype(unit))
    return pd.Series(total, index=pd.date_range(first, periods=len(total), freq="D"))


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
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)  # no month back yet
        features = pd.DataFrame({
            "same_day_of_month": np.nanmean([month["day1"], month["day2"]], axis=0),
            "same_days_to_month_end": np.nanmean([month["end1"], month["end2"]], axis=0),
        }, index=dates)
    if with_lags:
        for name, values in month.items():
            features[name] = values
        for lag in (7, 14, 21, LAG_DAYS):
            features[f"lag{lag}"] = at(dates - pd.Timedelta(days=lag))
        rolling = series.rolling(28, min_periods=7).mean()
        features["mean28_a_week_ago"] = rolling.reindex(dates - pd.Timedelta(days=7)).to_numpy()
        features["weekday"] = dates.dayofweek
        features["day_of_month"] = dates.day
        features["days_to_month_end"] = dates.days_in_month - dates.day
        features["month"] = dates.month
    return features


def _days(count: int) -> str:
    return f"{count} day{'' if count == 1 else 's'}"


def warmup(days: int, least: int = 0) -> int:
    """Leading days a candidate does not learn from: the two months its month-ago features read, fewer on a
    shorter history so that FIT_DAYS remain, never fewer than `least`."""
    return min(WARMUP_DAYS, max(days - FIT_DAYS, least))


class Forecaster:
    """Fit on a daily series; forecast `horizon` days after any history, `min_lag` days at a time
    (no feature looks closer back than that, so each step only reads history and earlier steps)."""

    name = ""
    min_lag = 7
    min_fit_days = 7  # the shortest daily series `fit` learns from
    params: dict = {}

    def fit(self, series: pd.Series) -> "Forecaster":
        self.fitted_through_ = series.index[-1]  # the last day it learned from: the test window starts later
        return self._fit(series)

    def _fit(self, series: pd.Series) -> "Forecaster":
        raise NotImplementedError

    def _next(self, series: pd.Series, dates: pd.DatetimeIndex) -> np.ndarray:
        raise NotImplementedError

    def forecast(self, history: pd.Series, horizon: int) -> np.ndarray:
        series, made = history.astype(float), []
        while len(made) < horizon:
            dates = pd.date_range(series.index[-1] + pd.Timedelta(days=1),
                                  periods=min(self.min_lag, horizon - len(made)))
            values = np.asarray(self._next(series, dates), dtype=float)
            series = pd.concat([series, pd.Series(values, index=dates)])
            made.extend(values)
        return np.array(made)


class SeasonalNaive(Forecaster):
    """The baseline: each day as the same weekday last week."""

    name = "seasonal_naive_weekly"
    params = {"season": 7}

    def _fit(self, series):
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


def _after_warmup(series: pd.Series) -> pd.Series:
    """The days a state-space candidate learns from and filters: after the two-month warm-up (the last four
    weeks of a shorter history, which a request may be)."""
    return series.iloc[warmup(len(series)):]


class StateSpaceForecaster(Forecaster):
    """A statsmodels state-space model's fitted parameters (`params_`), applied to each history it forecasts.

    Never statsmodels' results object: it holds the days it was fitted on (and their filtered states), which a
    logged model must not carry."""

    def _applied(self, model):
        """The fitted parameters applied to the history in `model`, as a results object's `apply` does, without
        the parameters' covariance (a forecast needs none)."""
        return _quietly(lambda: model.filter(self.params_, cov_type="none"))

    def __setstate__(self, state):
        # Pickled before it kept only the parameters (an older champion the gate loads): the same parameters.
        if "results_" in state:
            state["params_"] = np.asarray(state.pop("results_").params)
        self.__dict__.update(state)


class Sarima(StateSpaceForecaster):
    """SARIMA(1,0,1)(1,0,1)7 with the month-ago days as regressors."""

    name = "sarima"
    min_lag = 28
    # Its regressors are the month-ago days: a zero standing in for a missing one would bias them.
    min_fit_days = WARMUP_DAYS + FIT_DAYS
    params = {"order": "(1,0,1)", "seasonal_order": "(1,0,1,7)", "exog": "same day 1-2 months ago"}

    def _exog(self, series, dates):
        return calendar_features(series, dates, with_lags=False).fillna(0.0)

    def _model(self, series, kept):
        """The state-space model of the days `kept` (after the warm-up of `series`)."""
        return SARIMAX(kept.to_numpy(), exog=self._exog(series, kept.index).to_numpy(), order=(1, 0, 1),
                       seasonal_order=(1, 0, 1, 7), trend="c")

    def _fit(self, series):
        kept = _after_warmup(series)
        self.params_ = _quiet_fit(self._model(series, kept)).params
        return self

    def _next(self, series, dates):
        kept = _after_warmup(series)
        applied = self._applied(self._model(series, kept))
        return applied.forecast(len(dates), exog=self._exog(series, dates).to_numpy())


class MonthlyEts(StateSpaceForecaster):
    """Exponential smoothing (weekly season) of what the month-ago days do not explain."""

    name = "exponential_smoothing"
    min_lag = 28
    min_fit_days = WARMUP_DAYS + FIT_DAYS  # as SARIMA; its weekly seasonals also need whole weeks to start from
    params = {"seasonal": 7, "trend": False, "monthly_part": "least squares on same day 1-2 months ago"}

    def _monthly(self, series, dates):
        features = calendar_features(series, dates, with_lags=False).fillna(0.0).to_numpy()
        return np.column_stack([np.ones(len(dates)), features])

    def _model(self, rest):
        """The state-space model of what the monthly part leaves of the days after the warm-up."""
        return ExponentialSmoothing(rest, seasonal=7)

    def _fit(self, series):
        kept = _after_warmup(series)
        design = self._monthly(series, kept.index)
        self.coefficients_ = np.linalg.lstsq(design, kept.to_numpy(), rcond=None)[0]
        rest = kept.to_numpy() - design @ self.coefficients_
        self.params_ = _quiet_fit(self._model(rest)).params
        return self

    def _next(self, series, dates):
        kept = _after_warmup(series)
        rest = kept.to_numpy() - self._monthly(series, kept.index) @ self.coefficients_
        applied = self._applied(self._model(rest))
        return applied.forecast(len(dates)) + self._monthly(series, dates) @ self.coefficients_


class BoostedCalendar(Forecaster):
    """Gradient-boosted trees on calendar features, weekly lags and the month-ago days."""

    name = "gradient_boosting"
    min_lag = 7
    min_fit_days = MIN_FIT_DAYS  # trees route a missing month-ago day, so only the weekly lags need a warm-up
    params = {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.05, "objective": "reg:absoluteerror"}

    def __init__(self, seed: int = 42):
        self.seed = seed

    def _fit(self, series):
        kept = series.index[warmup(len(series), least=LAG_DAYS):]
        features = calendar_features(series, kept, with_lags=True)
        self.model_ = XGBRegressor(n_estimators=300, max_depth=4, learning_rate=0.05, objective="reg:absoluteerror",
                                   n_jobs=1, random_state=self.seed).fit(features, series.loc[kept].to_numpy())
        return self

    def _next(self, series, dates):
        return self.model_.predict(calendar_features(series, dates, with_lags=True))

    def forecast(self, history: pd.Series, horizon: int) -> np.ndarray:
        """`Forecaster.forecast`, with the same numbers at a fraction of the cost (28 ms to under 1 ms for 30
        days): the horizon's calendar and the positions its features read are worked out once in numpy, each step
        gathers them from one array into a preallocated matrix and hands it to the booster's C prediction
        (`_predicted`) instead of `calendar_features`' DataFrame. Only a history of consecutive (tz-naive) days has
        positions that are offsets; any other takes the general path."""
        index, days = history.index, len(history)
        if days == 0 or getattr(index, "tz", None) is not None:
            return super().forecast(history, horizon)
        stamps = index.to_numpy()[[0, -1]]  # numpy: pandas' Timestamps cost 60 µs
        if stamps[1] - stamps[0] != np.timedelta64(days - 1, "D"):
            return super().forecast(history, horizon)
        first, last = stamps.astype("datetime64[D]")
        dates = last + np.arange(1, horizon + 1)
        here = np.arange(days, days + horizon)
        # The history, the horizon as it is forecast, and a NaN that every position before the first day reads.
        values = np.full(days + horizon + 1, np.nan)
        values[:days] = history.to_numpy(dtype=float)
        month = [(_months_back(dates, m, kind == "end") - first).astype(np.intp)
                 for kind in ("day", "end") for m in (1, 2)]
        reads = np.column_stack([*month, *(here - lag for lag in (7, 14, 21, LAG_DAYS))])
        reads[reads < 0] = days + horizon
        week_ago = np.where(here >= 7, here - 7, -1)  # the rolling mean's position; -1 reads the NaN after it
        # Columns in calendar_features' order: the two month means, the four month-ago days, the four weekly lags,
        # the rolling mean a week ago, then the calendar (weekday, day of month, days to month end, month).
        features = np.empty((horizon, 15))
        features[:, 11:] = _calendar(dates)
        booster = self.model_.get_booster()
        made = 0
        while made < horizon:
            rows = slice(made, min(made + self.min_lag, horizon))
            features[rows, 2:10] = values[reads[rows]]
            features[rows, 10] = np.append(_rolling_mean(values[:days + made]), np.nan)[week_ago[rows]]
            features[rows, :2] = _nanmean(features[rows, 2:6].reshape(-1, 2, 2))
            values[days + rows.start:days + rows.stop] = _predicted(booster, features[rows])
            made = rows.stop
        return values[days:days + horizon]


def _months_back(days: np.ndarray, months: int, from_end: bool) -> np.ndarray:
    """`_month_ago` of datetime64[D] days, in numpy: the same day of the month `months` back (the last day of a
    shorter month), or the same number of days before that month's end."""
    month = days.astype("datetime64[M]")
    back = month - months
    back_first = back.astype("datetime64[D]")
    back_last = (back + 1).astype("datetime64[D]") - 1
    if not from_end:
        return np.minimum(back_first + (days - month.astype("datetime64[D]")), back_last)
    to_end = (month + 1).astype("datetime64[D]") - 1 - days
    return back_last - np.minimum(to_end, back_last - back_first)


def _calendar(dates: np.ndarray) -> np.ndarray:
    """Weekday (Monday 0), day of month, days to the month's end and month of datetime64[D] days."""
    month = dates.astype("datetime64[M]")
    day = (dates - month.astype("datetime64[D]")).astype(np.int64) + 1
    length = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64)
    weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    return np.column_stack([weekday, day, length - day, month.astype(np.int64) % 12 + 1])


def _nanmean(pairs: np.ndarray) -> np.ndarray:
    """np.nanmean over the last axis (of length two), as it computes it (the NaN-free sum over the count; NaN
    where both are NaN), without its warning machinery."""
    known = ~np.isnan(pairs)
    count = known.sum(axis=-1)
    return np.divide(np.where(known, pairs, 0.0).sum(axis=-1), count, out=np.full(count.shape, np.nan),
                     where=count > 0)


# What `Booster.inplace_predict` asks XGBoost's C prediction for by default: values of every tree, NaN missing.
_PREDICT_CONFIG = json.dumps({"type": 0, "training": False, "iteration_begin": 0, "iteration_end": 0,
                              "missing": float("nan"), "strict_shape": False, "cache_id": 0}).encode()


def _predicted(booster, features: np.ndarray) -> np.ndarray:
    """`booster.inplace_predict(features)` of a C-contiguous float64 matrix, by the C function it calls
    (XGBoosterPredictFromDense) without the wrapper's per-call Python around it (half of its 120 µs), as float64;
    tests check it against inplace_predict."""
    shape, dims = ctypes.POINTER(xgboost_core.c_bst_ulong)(), xgboost_core.c_bst_ulong()
    predictions = ctypes.POINTER(ctypes.c_float)()
    xgboost_core._check_call(xgboost_core._LIB.XGBoosterPredictFromDense(
        booster.handle, json.dumps(features.__array_interface__).encode(), _PREDICT_CONFIG, ctypes.c_void_p(),
        ctypes.byref(shape), ctypes.byref(dims), ctypes.byref(predictions)))
    count = int(np.prod(np.ctypeslib.as_array(shape, (dims.value,))))
    return np.ctypeslib.as_array(predictions, (count,)).astype(float)  # a copy: XGBoost reuses its buffer


def _rolling_mean(values: np.ndarray) -> np.ndarray:
    """`pd.Series(values).rolling(28, min_periods=7).mean()` by pandas' own kernel (its sums round as they did in
    training) without the 40 µs of Series and Rolling objects around it; tests check it against the public call."""
    if _roll_mean is None:
        return pd.Series(values).rolling(28, min_periods=7).mean().to_numpy()
    end = np.arange(1, len(values) + 1, dtype=np.int64)
    return _roll_mean(values, np.maximum(end - 28, 0), end, 7)


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
    low, high = _error_quantiles(np.asarray(errors, dtype=float).tobytes(), level)
    return forecast + min(low, 0.0), forecast + max(high, 0.0)


@functools.lru_cache(maxsize=32)  # a served model asks for the same ones request after request (40 µs each)
def _error_quantiles(errors: bytes, level: float) -> tuple[float, float]:
    low, high = np.quantile(np.frombuffer(errors), [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    return float(np.mean((actual >= lower) & (actual <= upper)))


class CashflowPredictor(LedgerPredictor):
    """The served model: a ledger history in; one row per future day with forecast and interval out.
    Without params it answers the horizon and level it was trained with."""

    required_columns = ("date", "amount")
    nonempty_columns = ()
    read_columns = ("date", "amount", "type", "status")  # all `daily_net_flow` needs; the rest is not parsed
    only_read = True  # nor made: the contract's frame holds those four columns
    reads_columns = True  # a request's columns go to `predict` without the frame (`daily_net_flow` reads either)

    def example(self) -> pd.DataFrame:
        """A made-up history as short as a valid request can be (never the training ledger's days): a client
        payment every Monday and a small expense every other day."""
        days = pd.date_range("2025-01-01", periods=MIN_HISTORY_DAYS + 10, freq="D")
        income = days.dayofweek == 0
        return pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "type": np.where(income, "income", "expense"),
                             "description": np.where(income, "EXAMPLE CLIENT PAYMENT", "EXAMPLE SUPPLIER"),
                             "amount": np.where(income, 2400.0, -180.0)})

    def __init__(self, forecaster: Forecaster, errors: np.ndarray, level: float = DEFAULT_LEVEL,
                 horizon: int = DEFAULT_HORIZON):
        self.forecaster = forecaster
        self.errors = np.asarray(errors, dtype=float)
        self.default_level = level
        self.default_horizon = horizon

    def predict(self, transactions: pd.DataFrame | PreparedColumns, horizon: int | None = None,
                level: float | None = None) -> pd.DataFrame:
        horizon = self.default_horizon if horizon is None else horizon
        level = self.default_level if level is None else level
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
        dates = history.index[-1].to_datetime64().astype("datetime64[D]") + np.arange(1, int(horizon) + 1)
        return answer_frame({"date": text_column(np.datetime_as_string(dates)), "forecast": np.round(values, 2),
                             "lower": np.round(lower, 2), "upper": np.round(upper, 2)})


class CashflowTask(ModelTask):
    """The last `horizon` days are the test window; candidates are compared by a rolling-origin backtest on
    the days before it, and the best by mean MASE is fitted on them and scored on the window."""

    model_type = "cashflow"
    registered_name = "titans-finance-cashflow-forecasting"
    training_columns = CashflowPredictor.required_columns  # dated amounts; a ledger without descriptions will do
    purpose = Purpose(
        question="What will daily net cash flow (income minus expenses) be over the next days?",
        answer="one row per future day after the history sent, for `horizon` days: the date, the forecast and an "
               "interval at the `level` coverage.",
        outputs="per future day: `date`, `forecast`, `lower`, `upper`",
        evaluated_on="its training run's test window, the last `horizon` days of its ledger, forecast from the days "
                     "before")
    gate = Gate(key_metric="mase", greater_is_better=False, tolerance=0.05, relative=True,
                beat=("seasonal_naive_weekly",), floors={"mase": (None, False)})
    batch_plan = PER_LEDGER  # one forecast per ledger (or per account: batch_score's group_by)
    options = (Option("horizon", DEFAULT_HORIZON, "test window and backtest horizon in days, the served default",
                      whole=True),
               Option("folds", FOLDS, "rolling-origin backtest folds, at most", whole=True),
               Option("level", DEFAULT_LEVEL, "nominal interval coverage, the served default"))
    serving_params = {"horizon": DEFAULT_HORIZON, "level": DEFAULT_LEVEL}
    report_metrics = ("mase", "mae", "rmse", "smape", "interval_coverage")
    # MAE is MASE times a fixed scale: reported, MASE decides.
    monitoring = Monitoring(inputs=("date", "amount", "type", "status"),
                            watched=(Watched("mase", False, relative=True), Watched("mae", False, True, decides=False),
                                     Watched("interval_coverage", True)))

    def __init__(self, horizon: int = DEFAULT_HORIZON, folds: int = FOLDS, level: float = DEFAULT_LEVEL):
        if not HORIZON_RANGE[0] <= horizon <= HORIZON_RANGE[1]:
            raise ValueError(f"horizon is {horizon}; the served model answers {HORIZON_RANGE[0]} to "
                             f"{HORIZON_RANGE[1]} days")
        if not LEVEL_RANGE[0] <= level <= LEVEL_RANGE[1]:
            raise ValueError(f"level is {level}; expected a coverage between {LEVEL_RANGE[0]} and {LEVEL_RANGE[1]}")
        if folds < 1:
            raise ValueError(f"folds is {folds}; the backtest needs at least one")
        self.horizon, self.folds, self.level = horizon, folds, level
        self.serving_params = {"horizon": horizon, "level": level}  # the served defaults are the trained ones

    def needed_days(self) -> int:
        """The shortest ledger it trains on: a learned candidate's history, one backtest fold, the test window."""
        return MIN_FIT_DAYS + 2 * self.horizon

    def fold_plan(self, series: pd.Series, forecasters: list) -> tuple[int, str]:
        """How many backtest folds, and why: as many as fit before the test window (at most `folds`) while
        every candidate can fit on the first; if none can, as many as leave MIN_FIT_DAYS, and the candidates
        that need more are skipped. Too short for one fold: NotEnoughData, in numbers."""
        days, before_test = len(series), len(series) - self.horizon
        if days < self.needed_days():
            longest = (days - MIN_FIT_DAYS) // 2  # the longest horizon this ledger would train at
            shorter = f"; a horizon of at most {_days(longest)} would fit" if longest >= HORIZON_RANGE[0] else ""
            raise NotEnoughData(
                f"cash flow needs at least {self.needed_days()} days of history for a {self.horizon}-day test window "
                f"and one {self.horizon}-day backtest fold after {MIN_FIT_DAYS} days to fit on; the ledger spans "
                f"{_days(days)} ({series.index[0].date()} to {series.index[-1].date()}){shorter}")
        every_candidate = max(f.min_fit_days for f in forecasters)
        fitting = every_candidate if before_test - self.horizon >= every_candidate else MIN_FIT_DAYS
        folds = min(self.folds, (before_test - fitting) // self.horizon)
        room = (f"as many as fit in the {before_test} days before the test window with {fitting} days to fit on"
                + ("" if fitting == every_candidate else "; candidates that need more are skipped"))
        why = "as asked" if folds == self.folds else f"{self.folds} asked; {room}"
        return folds, f"{folds} backtest fold{'' if folds == 1 else 's'} of {self.horizon} days ({why})"

    def backtest(self, forecaster: Forecaster, series: pd.Series, folds: int | None = None) -> dict:
        """Per fold: fit on the days before its origin, forecast the next `horizon` days."""
        runs = []
        for fold in range(folds or self.folds, 0, -1):
            origin = len(series) - fold * self.horizon
            history, actual = series.iloc[:origin], series.iloc[origin:origin + self.horizon].to_numpy()
            forecast = forecaster.fit(history).forecast(history, self.horizon)
            runs.append({"origin": series.index[origin], "actual": actual, "forecast": forecast,
                         "history": history, "metrics": forecast_metrics(actual, forecast, history)})
        errors = [f["actual"] - f["forecast"] for f in runs]
        for k, fold in enumerate(runs):
            # Each fold's interval from the other folds' errors; a single fold has only its own (in sample).
            others = [e for j, e in enumerate(errors) if j != k] or errors
            lower, upper = interval(fold["forecast"], np.concatenate(others), self.level)
            fold["lower"], fold["upper"] = lower, upper
            fold["metrics"]["interval_coverage"] = coverage(fold["actual"], lower, upper)
        names = runs[0]["metrics"].keys()
        mean = {name: float(np.mean([f["metrics"][name] for f in runs])) for name in names}
        per_fold = {f"fold{k + 1}_{name}": f["metrics"][name] for k, f in enumerate(runs) for name in names}
        return {"folds": runs, "errors": np.concatenate(errors), "metrics": {**mean, **per_fold}}

    def train(self, ledger: pd.DataFrame, seed: int = 42, test_fraction: float = 0.2, on_candidate=None,
              log=print) -> TrainingOutcome:
        """`test_fraction` is not used: the test window is the last `horizon` days, what the model forecasts."""
        series = daily_net_flow(ledger)
        forecasters = candidates(seed)
        folds, plan = self.fold_plan(series, forecasters)
        past = series.iloc[:-self.horizon]  # every day before the test window
        first_fold_days = len(past) - folds * self.horizon
        window = series.index[-self.horizon:]
        in_sample = folds == 1
        log(f"cashflow: {len(series)} days ({series.index[0].date()} to {series.index[-1].date()}); test window "
            f"{window[0].date()} to {window[-1].date()}, never fitted on; candidates compared by {plan}"
            + ("; the interval's backtest coverage is in sample (one fold)" if in_sample else ""))
        results, backtests, skipped = [], {}, {}
        for forecaster in forecasters:
            started = pd.Timestamp.now()
            try:
                if forecaster.min_fit_days > first_fold_days:
                    raise ValueError(f"needs {forecaster.min_fit_days} days to fit on; the first backtest fold "
                                     f"has {first_fold_days}")
                backtest = self.backtest(forecaster, past, folds)
            except (ValueError, np.linalg.LinAlgError) as error:  # e.g. too few weeks to start the seasonals
                skipped[forecaster.name] = str(error).splitlines()[0]
                log(f"  candidate {forecaster.name:<22} skipped: {skipped[forecaster.name]}")
                continue
            seconds = (pd.Timestamp.now() - started).total_seconds()
            result = CandidateResult(forecaster.name, forecaster.params, backtest["metrics"], seconds, len(past))
            results.append(result)
            backtests[forecaster.name] = (forecaster, backtest)
            log(f"  candidate {forecaster.name:<22} backtest mase={backtest['metrics']['mase']:.4f} "
                f"coverage={backtest['metrics']['interval_coverage']:.3f} ({seconds:.1f}s)")
            if on_candidate:
                on_candidate(result)
        chosen = min(results, key=lambda r: r.metrics["mase"])  # the seasonal naive always competes
        forecaster, backtest = backtests[chosen.name]
        log(f"  chosen: {chosen.name}; fitted on the {len(past)} days before the test window")
        predictor = CashflowPredictor(forecaster.fit(past), backtest["errors"], self.level, self.horizon)

        # The evaluation ledger is the one the gate scores: forecasting its last `horizon` days from the rest.
        test = ledger[ledger["date"] <= window[-1]]
        scored = score_test_window(predictor.serve, test, self.horizon)
        metrics = {name: value for name, value in scored["metrics"].items() if not name.startswith(BASELINE_PREFIX)}
        naive = {name.removeprefix(f"{BASELINE_PREFIX}{SeasonalNaive.name}_"): value
                 for name, value in scored["metrics"].items() if name.startswith(BASELINE_PREFIX)}
        log(f"  test window: mase={metrics['mase']:.4f} (seasonal naive {naive['mase']:.4f}), "
            f"coverage={metrics['interval_coverage']:.3f} at level {self.level}")
        outcome = TrainingOutcome(
            predictor=predictor, chosen=chosen, candidates=results, metrics={**metrics, "interval_level": self.level},
            baseline_metrics={SeasonalNaive.name: naive}, train=ledger[ledger["date"] < window[0]], test=test,
            test_predictions=scored["forecast"]["forecast"].to_numpy(),
            params={"test_window": f"{window[0].date()} to {window[-1].date()}", "backtest_folds": folds,
                    "backtest_interval_coverage": "in sample (one fold: its interval from its own errors)"
                    if in_sample else "out of sample (each fold's interval from the other folds' errors)",
                    **({"skipped_candidates": "; ".join(f"{n}: {why}" for n, why in skipped.items())}
                       if skipped else {})},
            run_metrics={f"backtest_{name}": value for name, value in backtest["metrics"].items()})
        forecast = scored["forecast"]
        from pyfunc_models import plots  # matplotlib is for training runs only: a server never loads it

        figure = plots.forecast(past.iloc[-120:], scored["actual"], forecast["forecast"].to_numpy(),
                                forecast["lower"].to_numpy(), forecast["upper"].to_numpy(), self.level, chosen.name)
        figure.axes[0].set_title("Cash-flow forecast of the test window (out of sample)")
        outcome.artifacts["forecast_test_window.png"] = figure
        outcome.artifacts["backtest_error_by_horizon.png"] = plots.error_by_horizon(
            {name: np.mean([np.abs(f["actual"] - f["forecast"]) for f in bt["folds"]], axis=0)
             for name, (_, bt) in backtests.items()})
        outcome.warnings.extend(self.size_warnings(folds, len(series)))
        return outcome

    def size_warnings(self, folds: int, days: int) -> list:
        """When the test window (the horizon, in days) or the backtest is too short for the figures to mean much
        (training.MIN_SCORED_ROWS; a warning, never a refusal)."""
        found = []
        if self.horizon < MIN_SCORED_ROWS:
            found.append(f"cashflow: its metrics are measured on a test window of {self.horizon} days (the horizon), "
                         f"too few to mean much (at least {MIN_SCORED_ROWS} needed); train with -P "
                         f"horizon={MIN_SCORED_ROWS} to judge it (a request can still ask for any horizon)")
        if folds < 2:
            found.append(f"cashflow: its candidates were compared on one backtest fold of {self.horizon} days and its "
                         f"interval's coverage is measured in sample; at least {days + self.horizon} days of history "
                         f"would give two folds; this ledger spans {days}.")
        return found

    def gate_metrics(self, predict, ledger: pd.DataFrame, horizon: int | None = None) -> dict:
        return gate_metrics(predict, ledger, horizon)

    def monitored_rows(self, ledger: pd.DataFrame) -> pd.DataFrame:
        return ledger.reset_index(drop=True)

    def held_out(self, outcome: TrainingOutcome) -> tuple:
        last_fitted = outcome.train["date"].max()
        return outcome.test[outcome.test["date"] > last_fitted], outcome.train

    def held_out_of_evaluation(self, evaluation: pd.DataFrame, run_params: dict) -> tuple:
        """The evaluation ledger is every day up to the end of the test window (the run's `test_window`)."""
        first = pd.Timestamp(run_params["test_window"].split(" to ")[0])
        history = evaluation[evaluation["date"] < first]
        return history, evaluation[evaluation["date"] >= first], history

    def watch(self, predict, rows: pd.DataFrame, history: pd.DataFrame) -> Watch:
        """The forecast of the period's days from the history before them (the gap between them forecast too,
        and not scored), against the realised daily net flow; MASE scaled by the history's weekly naive error."""
        if history.empty:
            raise LedgerError("cash flow is forecast from the history before the period, and there is none")
        actual, known = daily_net_flow(rows), daily_net_flow(history)
        asked = (actual.index[-1] - known.index[-1]).days
        if actual.index[0] <= known.index[-1] or asked > HORIZON_RANGE[1]:
            raise LedgerError(f"the period ({actual.index[0].date()} to {actual.index[-1].date()}) must start "
                              f"after the history ends ({known.index[-1].date()}) and end at most "
                              f"{HORIZON_RANGE[1]} days later")
        answer = predict(request_rows(history, columns=CashflowPredictor.read_columns), params={"horizon": asked})
        answer = answer.set_index(pd.to_datetime(answer["date"])).reindex(actual.index)
        forecast = answer["forecast"].to_numpy(dtype=float)
        truth = actual.to_numpy()
        inside = (truth >= answer["lower"].to_numpy(dtype=float)) & (truth <= answer["upper"].to_numpy(dtype=float))
        scale = float(np.mean(np.abs(known.to_numpy()[7:] - known.to_numpy()[:-7]))) or 1.0
        columns = {"error": np.abs(truth - forecast), "inside": inside.astype(float)}
        return Watch({"forecast": forecast},
                     {"mase": Sample(columns, lambda c: float(np.mean(c["error"]) / scale)),
                      "mae": Sample(columns, lambda c: float(np.mean(c["error"]))),
                      "interval_coverage": Sample(columns, lambda c: float(np.mean(c["inside"])))})


def served_horizon(predict) -> int:
    """The horizon a model answers when a request names none: a loaded pyfunc's signature default, a
    CashflowPredictor's trained default, else DEFAULT_HORIZON."""
    model = getattr(predict, "__self__", None)
    signature = getattr(getattr(model, "metadata", None), "signature", None)
    for spec in getattr(getattr(signature, "params", None), "params", None) or ():
        if spec.name == "horizon" and spec.default is not None:
            return int(spec.default)
    return int(getattr(model, "default_horizon", DEFAULT_HORIZON))


def score_test_window(predict, ledger: pd.DataFrame, horizon: int) -> dict:
    """Forecast a ledger's last `horizon` days from the transactions before them, by the model and by the
    weekly seasonal naive. The model answers from its history's last transaction day on, so when the days
    just before the window had none, it is asked for those days too and only the window is scored."""
    series = daily_net_flow(ledger)
    if len(series) < MIN_HISTORY_DAYS + horizon:
        raise LedgerError(f"the evaluation ledger spans {len(series)} days; scoring a {horizon}-day forecast needs "
                          f"at least {MIN_HISTORY_DAYS + horizon}")
    window = series.index[-horizon:]
    rows = ledger[ledger["date"] < window[0]]
    history = daily_net_flow(rows)
    asked = (window[-1] - history.index[-1]).days
    if asked > HORIZON_RANGE[1]:
        raise LedgerError(f"the evaluation ledger has no transaction in the {asked - horizon} days before its last "
                          f"{horizon}; a forecast of them would reach {asked} days ahead")
    answer = predict(request_rows(rows), params={"horizon": asked})
    forecast = answer[pd.to_datetime(answer["date"]) >= window[0]].reset_index(drop=True)
    actual = series.loc[window].to_numpy()
    known = series.loc[: window[0] - pd.Timedelta(days=1)]  # the days before the window scale MASE
    values = forecast["forecast"].to_numpy(dtype=float)
    naive = SeasonalNaive().forecast(history, asked)[-horizon:]
    metrics = {**forecast_metrics(actual, values, known),
               "interval_coverage": coverage(actual, forecast["lower"].to_numpy(dtype=float),
                                             forecast["upper"].to_numpy(dtype=float)),
               **{f"{BASELINE_PREFIX}{SeasonalNaive.name}_{name}": value
                  for name, value in forecast_metrics(actual, naive, known).items()}}
    return {"metrics": metrics, "forecast": forecast, "actual": actual}


def gate_metrics(predict, ledger: pd.DataFrame, horizon: int | None = None) -> dict:
    """Score any cash-flow model on an evaluation ledger: forecast its last `horizon` days (by default the
    model's own served horizon) from the transactions before them. Returns the model's mase, mae, rmse, smape
    and interval_coverage, and the weekly seasonal naive's on the same days as
    baseline_seasonal_naive_weekly_<metric>. On a training run's evaluation ledger it reproduces the run's
    test metrics."""
    horizon = served_horizon(predict) if horizon is None else int(horizon)
    # The window length goes with the figures, so a champion can be scored on the candidate's very days.
    return {**score_test_window(predict, ledger, horizon)["metrics"], "horizon": float(horizon)}
