"""Issue 18, cash flow: a request's lean path (the daily series in numpy, the horizon's calendar in numpy, one
booster call a week into a preallocated matrix, the answer's frame through Arrow) answers what the general path
answers, to the last bit: the daily series as pandas' groupby reads it, the forecast as `Forecaster.forecast` makes
it from `calendar_features`, the answer as pandas' date_range and DataFrame shaped it. Speed is measured in
benchmarks/, never asserted here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pyfunc_models import cashflow, config
from pyfunc_models.cashflow import (BoostedCalendar, CashflowPredictor, Forecaster, _calendar, _month_ago,
                                    _months_back, _rolling_mean, daily_net_flow)
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import (Coded, answer_frame, load_ledger, prepare_columns, prepare_ledger, request_rows,
                                  signed_by_type, text_column)
from tests import real_ledgers
from tests.sweeps import sweep

HORIZONS = (1, 6, 7, 8, 30, 45, 365)


def plain_daily_net_flow(ledger: pd.DataFrame) -> pd.Series:
    """The daily series as pandas reads it, signed as `ledger.signed_by_type` signs it: what the numpy path must
    give."""
    moved = ~ledger["status"].isin(config.NO_MONEY_MOVED_STATUSES).to_numpy()
    amount, kinds = ledger["amount"].to_numpy()[moved], ledger["type"].to_numpy()[moved]
    flow = np.where(kinds == "income", np.abs(amount), np.where(kinds == "expense", -np.abs(amount), amount))
    daily = pd.Series(flow, index=pd.DatetimeIndex(ledger["date"])[moved]).groupby(level=0).sum()
    days = pd.date_range(daily.index.min(), daily.index.max(), freq="D")
    return daily.reindex(days, fill_value=0.0).astype(float)


def plain_answer(predictor: CashflowPredictor, ledger: pd.DataFrame, horizon: int, level: float) -> pd.DataFrame:
    """The answer as the general path makes it: pandas' daily series, `Forecaster.forecast`, pandas' shaping."""
    history = plain_daily_net_flow(ledger)
    values = Forecaster.forecast(predictor.forecaster, history, horizon)
    low, high = np.quantile(predictor.errors, [(1 - level) / 2, 1 - (1 - level) / 2])
    lower, upper = values + min(low, 0.0), values + max(high, 0.0)
    dates = pd.date_range(history.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "forecast": np.round(values, 2),
                         "lower": np.round(lower, 2), "upper": np.round(upper, 2)})


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory) -> dict:
    """Canonical ledgers: the generator's, the real-export shapes, a 100-transaction history spread over a long
    ledger (the benchmark's request), one with whole weeks without a transaction, and one of a single day."""
    folder = tmp_path_factory.mktemp("cashflow_request")
    found = {"generated": prepare_ledger(generate_ledger(rows=4000, seed=42, days=500))[0]}
    for name, write in real_ledgers.LEDGERS.items():
        found[name] = load_ledger(write(folder / f"{name}.csv"))[0]
    long = prepare_ledger(generate_ledger(rows=6000, seed=7, days=600))[0]
    found["hundred"] = long.iloc[np.unique(np.linspace(0, len(long) - 1, 100).round().astype(int))].reset_index(
        drop=True)
    week = long["date"].dt.isocalendar().week.to_numpy()
    found["gaps"] = long[(week % 5 != 0) & (week % 7 != 3)].reset_index(drop=True)
    found["single_day"] = long[long["date"] == long["date"].iloc[len(long) // 2]].reset_index(drop=True)
    return found


@pytest.fixture(scope="module")
def forecaster() -> BoostedCalendar:
    series = daily_net_flow(prepare_ledger(generate_ledger(rows=3000, seed=3, days=400))[0])
    return BoostedCalendar(seed=3).fit(series)


def test_months_back_is_month_ago_on_every_day_of_three_decades():
    dates = pd.date_range("1999-11-01", "2031-03-31")
    for months in (1, 2):
        for from_end in (False, True):
            numpy_days = _months_back(dates.to_numpy().astype("datetime64[D]"), months, from_end)
            assert np.array_equal(numpy_days, _month_ago(dates, months, from_end).to_numpy().astype("datetime64[D]"))


def test_calendar_is_pandas_calendar():
    dates = pd.date_range("1969-12-01", "2031-03-31")
    expected = np.column_stack([dates.dayofweek, dates.day, dates.days_in_month - dates.day, dates.month])
    assert np.array_equal(_calendar(dates.to_numpy().astype("datetime64[D]")), expected)


def test_rolling_mean_is_the_public_rolling_mean(monkeypatch):
    for size in (0, 1, 6, 7, 28, 29, 700):
        values = np.random.default_rng(size).normal(size=size) * 1000
        expected = pd.Series(values, dtype=float).rolling(28, min_periods=7).mean().to_numpy()
        assert np.array_equal(_rolling_mean(values), expected, equal_nan=True)
        monkeypatch.setattr(cashflow, "_roll_mean", None)  # another pandas: the public call
        assert np.array_equal(_rolling_mean(values), expected, equal_nan=True)
        monkeypatch.undo()


def test_the_answer_frame_is_the_constructors_frame(monkeypatch):
    """`answer_frame` makes through pandas' `_from_arrays` the frame `pd.DataFrame` makes: dtypes, index, names."""
    rng = np.random.default_rng(5)
    for rows in (0, 1, 30, 365):
        columns = {"date": text_column(np.datetime_as_string(np.datetime64("2025-01-31") + np.arange(rows))),
                   "forecast": np.round(rng.normal(size=rows) * 1000, 2), "lower": np.full(rows, np.nan),
                   "upper": np.full(rows, -0.0), "note": text_column(["Café", ""] * (rows // 2) + ["x"] * (rows % 2))}
        expected = pd.DataFrame(columns, copy=False)
        for found in (answer_frame(columns), answer_frame(columns)):  # the names' Index is made once, then copied
            pd.testing.assert_frame_equal(found, expected, check_exact=True, check_index_type=True,
                                          check_column_type=True)
            assert list(found.dtypes) == list(expected.dtypes)
            found.columns.name = "named in place by a caller"  # must not reach the next answer
        assert answer_frame(columns).columns.name is None
        monkeypatch.delattr(pd.DataFrame, "_from_arrays")  # another pandas: the constructor
        pd.testing.assert_frame_equal(answer_frame(columns), expected, check_exact=True, check_column_type=True)
        monkeypatch.undo()


def test_signing_a_coded_type_is_signing_its_text():
    """A `Coded` type of incomes and expenses is signed by one lookup of its codes: the same numbers, signs of zero
    and missing amounts as reading its text."""
    amounts = np.array([-12.5, 12.5, -0.0, 0.0, np.nan, np.inf, -np.inf, 1e-300, -3.0, 7.0])
    for values in (["income", "expense"], ["expense", "income"], ["income", "expense", "unknown"]):
        codes = np.random.default_rng(len(values)).integers(0, len(values), len(amounts)).astype(np.int32)
        found = signed_by_type(amounts, Coded(values, codes))
        expected = signed_by_type(amounts, pd.Series(np.array(values, dtype=object)[codes]))
        assert np.array_equal(found, expected, equal_nan=True)
        assert np.array_equal(np.signbit(found), np.signbit(expected))


def test_the_daily_series_is_pandas_reading_in_any_order(ledgers):
    for name, ledger in ledgers.items():
        unpaid = ledger.assign(status=np.where(np.arange(len(ledger)) % 9 == 0, "unpaid", ledger["status"]))
        for rows in (ledger, ledger.iloc[::-1], ledger.sample(frac=1, random_state=2), unpaid,
                     pd.concat([ledger, ledger.iloc[:40]]).sort_values("date", kind="stable")):
            pd.testing.assert_series_equal(daily_net_flow(rows), plain_daily_net_flow(rows), check_exact=True,
                                           check_freq=True, obj=name)


def test_the_daily_series_of_the_contracts_columns_is_the_frames(ledgers, tmp_path):
    """The served model sums its daily series from the contract's columns (`PreparedColumns`: type and status by
    code, dates as days), never making the frame: the series must be the frame's, for every request the frame's is
    made of (rows in any order, types left to the sign, statuses that moved no money, rows dropped as implausible)."""
    read = dict(required=CashflowPredictor.required_columns, columns=CashflowPredictor.read_columns, only_read=True)
    raws = [request_rows(ledger) for ledger in ledgers.values()]
    raws += [pd.read_csv(write(tmp_path / f"{name}.csv"), sep=real_ledgers.SEPARATORS.get(name, ","))
             for name, write in real_ledgers.LEDGERS.items()]
    first = raws[0]
    every = np.arange(len(first))
    raws += [first.iloc[::-1], first.sample(frac=1, random_state=3),
             first.assign(type=np.where(every % 3 == 0, "", first["type"]),
                          status=np.where(every % 4 == 0, "Cancelled ", first["status"])),
             first.assign(date=np.where(every % 50 == 0, "2099-01-01", first["date"]))]
    for raw in raws:
        columns, _ = prepare_columns(raw, **read, implausible_dates="drop")
        assert columns["date"].dtype == "datetime64[D]"
        pd.testing.assert_series_equal(daily_net_flow(columns), daily_net_flow(columns.frame()), check_exact=True,
                                       check_freq=True)


@pytest.mark.parametrize("horizon", sweep(HORIZONS, fast=4))  # 30, 45 and 365 days: the full suite
def test_the_forecast_is_the_general_forecast(ledgers, forecaster, horizon):
    # A year ahead on two ledgers only: the general path forecasts it day by day in pandas (seconds a history).
    for name in ledgers if horizon <= 45 else ("generated", "gaps"):
        series = daily_net_flow(ledgers[name])
        for history in (series, series.iloc[-100:], series.iloc[-29:], series.iloc[-8:], series.iloc[-1:]):
            lean = forecaster.forecast(history, horizon)
            general = Forecaster.forecast(forecaster, history, horizon)
            assert np.array_equal(lean, general), (name, len(history), horizon)


def test_a_history_not_in_consecutive_days_takes_the_general_path(ledgers, forecaster):
    series = daily_net_flow(ledgers["generated"])
    gapped = series.drop(series.index[-20])
    assert np.array_equal(forecaster.forecast(gapped, 14), Forecaster.forecast(forecaster, gapped, 14))


def test_the_answer_is_the_general_paths_answer(ledgers, forecaster):
    errors = np.random.default_rng(4).normal(size=90) * 500
    predictor = CashflowPredictor(forecaster, errors)
    for name, ledger in ledgers.items():
        if len(daily_net_flow(ledger)) < cashflow.MIN_HISTORY_DAYS:
            continue
        for horizon, level in ((30, 0.8), (1, 0.5), (45, 0.99)):
            served = predictor.serve(request_rows(ledger), {"horizon": horizon, "level": level})
            pd.testing.assert_frame_equal(served, plain_answer(predictor, ledger, horizon, level), check_exact=True,
                                          obj=name)


def _reads_only(report) -> dict:
    """A report's figures, without the columns a narrow frame does not make."""
    found = report.as_dict()
    for key in ("corrected", "unknown"):
        found[key] = {column: counts for column, counts in found[key].items()
                      if column in CashflowPredictor.read_columns}
    return found


def test_the_narrow_contract_is_the_whole_contract_on_the_columns_it_reads(ledgers, tmp_path):
    read = dict(required=CashflowPredictor.required_columns, columns=CashflowPredictor.read_columns)
    raws = [request_rows(ledger) for ledger in ledgers.values()]
    raws += [pd.read_csv(write(tmp_path / f"{name}.csv"), sep=real_ledgers.SEPARATORS.get(name, ","))
             for name, write in real_ledgers.LEDGERS.items()]
    raws.append(raws[0].assign(type=np.where(np.arange(len(raws[0])) % 3 == 0, "", raws[0]["type"]),
                               status=np.where(np.arange(len(raws[0])) % 4 == 0, "Cleared ", raws[0]["status"])))
    for raw in raws:
        for settings in ({}, {"implausible_dates": "drop", "source": "ledger.csv"}):
            whole, whole_report = prepare_ledger(raw, **read, **settings)
            narrow, narrow_report = prepare_ledger(raw, **read, **settings, only_read=True)
            assert list(narrow.columns) == [c for c in config.COLUMNS if c in CashflowPredictor.read_columns]
            pd.testing.assert_frame_equal(narrow, whole[list(narrow.columns)], check_exact=True)
            assert _reads_only(narrow_report) == _reads_only(whole_report)
    predictor = CashflowPredictor(BoostedCalendar(), np.zeros(3))
    pd.testing.assert_frame_equal(predictor.prepare(raws[0]), prepare_ledger(raws[0], **read, only_read=True)[0])


@pytest.mark.parametrize("bad", [{"date": "2024-13-01"}, {"amount": "abc"}, {"date": "2099-01-01"},
                                 {"amount": None}, {"date": ["2024-01-01"]}])
def test_the_narrow_contract_refuses_what_the_whole_contract_refuses_in_the_same_words(ledgers, bad):
    raw = request_rows(ledgers["tiny"]).astype(object)
    for column, value in bad.items():
        raw.at[3, column] = value
    read = dict(required=CashflowPredictor.required_columns, columns=CashflowPredictor.read_columns)
    with pytest.raises(ValueError) as whole:
        prepare_ledger(raw, **read)
    with pytest.raises(ValueError) as narrow:
        prepare_ledger(raw, **read, only_read=True)
    assert type(narrow.value) is type(whole.value) and str(narrow.value) == str(whole.value)


def test_the_booster_called_directly_predicts_what_inplace_predict_does(forecaster):
    booster = forecaster.model_.get_booster()
    rng = np.random.default_rng(5)
    for rows in (1, 7, 30, 200):
        features = rng.normal(size=(rows, 15)) * rng.choice([1.0, 100.0, 5000.0], size=15)
        features[rng.random(features.shape) < 0.2] = np.nan
        expected = booster.inplace_predict(features)
        found = cashflow._predicted(booster, features)
        assert found.dtype == np.float64 and np.array_equal(found, expected.astype(float))


def test_nanmean_is_numpys():
    pairs = np.random.default_rng(6).normal(size=(500, 2, 2)) * 1000
    pairs[np.random.default_rng(7).random(pairs.shape) < 0.4] = np.nan
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmean(pairs, axis=-1)
    assert np.array_equal(cashflow._nanmean(pairs), expected, equal_nan=True)
