"""How the ledger contract reads dates: day/month order per column, calendar dates, plausible range."""

import datetime
import json

import numpy as np
import pandas as pd
import pytest

from pyfunc_models.ledger import LedgerError, decide_date_order, load_ledger, parse_dates, prepare_ledger

ORDERS = {"dmy": "%d/%m/%Y", "mdy": "%m/%d/%Y", "dmy with dots": "%d.%m.%Y", "iso": "%Y-%m-%d"}


def ledger_on(dates, **columns):
    """Raw transactions on the given dates (text as written, or datetime values)."""
    rows = len(dates)
    return pd.DataFrame({"Date": dates, "Description": [f"shop {i % 7}" for i in range(rows)],
                         "Amount": [f"{-1 - i % 50}.25" for i in range(rows)], **columns})


def days(ledger):
    return ledger["date"].dt.strftime("%Y-%m-%d").tolist()


@pytest.fixture(scope="module")
def calendar():
    """Two months of days in random order: some days above 12, so every written order can be told apart."""
    return pd.DatetimeIndex(np.random.default_rng(3).permutation(pd.date_range("2024-01-01", "2024-02-29")))


@pytest.mark.parametrize("written", ["dmy", "mdy", "dmy with dots"])
def test_the_same_ledger_written_day_first_or_month_first_prepares_identically(calendar, written, tmp_path):
    iso, iso_report = prepare_ledger(ledger_on(calendar.strftime(ORDERS["iso"])))
    assert iso_report.date_order == "iso"
    raw = ledger_on(calendar.strftime(ORDERS[written]))
    for date_order in ["auto", written[:3]]:
        ledger, report = prepare_ledger(raw, date_order=date_order)
        pd.testing.assert_frame_equal(ledger, iso)
        assert (report.date_order, report.date_order_ambiguous) == (written[:3], False)
    path = tmp_path / "ledger.csv"
    raw.to_csv(path, index=False)
    pd.testing.assert_frame_equal(load_ledger(path)[0], iso)


def test_a_column_that_mixes_day_first_and_month_first_is_refused_naming_both_rows():
    raw = ledger_on(["2025-03-01", "25/03/2025", "01/02/2025", "03/26/2025", "27/03/2025"])
    with pytest.raises(LedgerError) as error:
        prepare_ledger(raw)
    message = str(error.value)
    assert "row 1, column 'date': '25/03/2025' can only be day-first" in message
    assert "row 3, column 'date': '03/26/2025' can only be month-first" in message
    with pytest.raises(LedgerError, match=r"row 1 \(line 3 of mixed.csv\), column 'date': '25/03/2025'"):
        prepare_ledger(raw, source="mixed.csv")


def test_an_ambiguous_column_follows_date_order_and_auto_says_it_guessed():
    raw = ledger_on(["01/02/2025", "03/04/2025", "12/11/2025"])
    ledger, report = prepare_ledger(raw)
    assert days(ledger) == ["2025-01-02", "2025-03-04", "2025-12-11"]
    assert (report.date_order, report.date_order_ambiguous) == ("mdy", True)
    assert report.as_dict()["date_order"] == "mdy" and report.as_dict()["date_order_ambiguous"] is True
    ledger, report = prepare_ledger(raw, date_order="dmy")
    assert days(ledger) == ["2025-02-01", "2025-04-03", "2025-11-12"]
    assert (report.date_order, report.date_order_ambiguous) == ("dmy", False)
    ledger, report = prepare_ledger(raw, date_order="mdy")
    assert days(ledger)[0] == "2025-01-02" and not report.date_order_ambiguous


def test_ambiguous_dotted_dates_are_read_day_first_in_auto():
    """15.03.2024 is a European convention; nobody writes month-first with dots."""
    ledger, report = prepare_ledger(ledger_on(["01.02.2025", "03.04.2025"]))
    assert days(ledger) == ["2025-02-01", "2025-04-03"]
    assert (report.date_order, report.date_order_ambiguous) == ("dmy", True)


@pytest.mark.parametrize("date_order, value, written", [("mdy", "25/03/2025", "day-first"),
                                                         ("dmy", "03/25/2025", "month-first")])
def test_an_explicit_order_that_the_column_contradicts_is_refused_with_the_row(date_order, value, written):
    raw = ledger_on(["01/02/2025", "03/04/2025", value])
    with pytest.raises(LedgerError, match=rf"row 2, column 'date': '{value}' can only be {written}, "
                                          rf"but date_order is '{date_order}'"):
        prepare_ledger(raw, date_order=date_order)


@pytest.mark.parametrize("argument, value", [("date_order", "ymd"), ("date_order", None),
                                             ("implausible_dates", "ignore")])
def test_unknown_settings_are_refused_clearly(argument, value):
    with pytest.raises(LedgerError, match=rf"{argument} is {value!r}; expected one of"):
        prepare_ledger(ledger_on(["2025-01-02"]), **{argument: value})


@pytest.mark.parametrize("date_order", ["auto", "dmy", "mdy"])
def test_iso_and_textual_month_dates_have_one_reading(date_order):
    raw = ledger_on(["2024-03-05", "5 Mar 2024", "Mar 5, 2024", "05-Mar-2024", "2024/03/05", "5 March 2024"])
    ledger, report = prepare_ledger(raw, date_order=date_order)
    assert set(days(ledger)) == {"2024-03-05"}
    assert report.date_order == "iso" and not report.date_order_ambiguous


def test_a_date_keeps_its_own_calendar_day_whatever_its_utc_offset():
    raw = ledger_on(["2024-03-15T23:30:00-05:00", "2024-03-15T00:30:00+09:00", "2024-03-15 23:59:59.5 -0800",
                     "2024-03-15T23:30:00Z", "2024-03-15T12:00:00+05:30", "2024-03-15"])
    assert set(days(prepare_ledger(raw)[0])) == {"2024-03-15"}
    late_evening = pd.Series(pd.to_datetime(["2024-03-15 23:30", "2024-03-16 00:10"]))
    for zone in ["America/New_York", "Asia/Tokyo", "UTC"]:
        aware = ledger_on(late_evening.dt.tz_localize(zone).dt.tz_convert("Europe/Paris").dt.tz_convert(zone))
        assert days(prepare_ledger(aware)[0]) == ["2024-03-15", "2024-03-16"]


def test_day_month_dates_with_a_time_of_day_keep_their_day():
    ledger, report = prepare_ledger(ledger_on(["15/03/2024 23:30", "16/03/2024 07:05:09 PM", "17/03/2024"]))
    assert days(ledger) == ["2024-03-15", "2024-03-16", "2024-03-17"] and report.date_order == "dmy"


@pytest.mark.parametrize("value", ["31/02/2024", "13/13/2024", "00/05/2024", "15/03/24x"])
def test_a_day_that_does_not_exist_is_not_a_date(value):
    with pytest.raises(LedgerError, match=rf"row 1, column 'date': '{value}' is not a date"):
        prepare_ledger(ledger_on(["15/03/2024", value]))


def _implausible_values():
    too_late = (datetime.date.today() + datetime.timedelta(days=400)).isoformat()
    return ["0025-03-15", "2099-01-01", "12/31/1969", too_late]


def test_an_implausible_date_is_refused_in_a_request_with_the_range_expected():
    for value in _implausible_values():
        raw = ledger_on(["2024-03-15", value])
        with pytest.raises(LedgerError, match=rf"row 1, column 'date': '{value}' is not a plausible date; "
                                              r"expected a date from 1970-01-01 to \d{4}-\d{2}-\d{2}"):
            prepare_ledger(raw)


def test_the_edges_of_the_plausible_range_are_plausible():
    latest = (datetime.date.today() + datetime.timedelta(days=365)).isoformat()
    assert days(prepare_ledger(ledger_on(["1970-01-01", latest]))[0]) == ["1970-01-01", latest]


def test_training_drops_and_counts_rows_with_implausible_dates(tmp_path):
    implausible = _implausible_values()
    raw = ledger_on(["2024-03-15", implausible[0], "2024-03-16", *implausible[1:]])
    ledger, report = prepare_ledger(raw, implausible_dates="drop")
    assert days(ledger) == ["2024-03-15", "2024-03-16"]
    assert ledger["description"].tolist() == ["shop 0", "shop 2"]
    assert report.dropped_rows == {"implausible date": {"count": 4, "examples": implausible}}
    assert report.as_dict()["dropped_rows"]["implausible date"]["count"] == 4
    path = tmp_path / "ledger.csv"
    raw.to_csv(path, index=False)
    ledger, report = load_ledger(path)  # what training reads with
    assert len(ledger) == 2 and report.dropped_rows["implausible date"]["count"] == 4
    far = ledger_on(pd.to_datetime(["2024-03-15", "2099-01-01"]).tz_localize("Europe/Paris"))
    report = prepare_ledger(far, implausible_dates="drop")[1]
    assert json.loads(json.dumps(report.as_dict()))["dropped_rows"]["implausible date"]["count"] == 1
    with pytest.raises(LedgerError, match="every transaction's date is implausible"):
        prepare_ledger(ledger_on(implausible), implausible_dates="drop")


def test_parse_dates_alone_reads_the_same_way():
    values = pd.Series(["25/03/2025", "01/04/2025", "2099-01-01"])
    with pytest.raises(LedgerError, match="'2099-01-01' is not a plausible date"):
        parse_dates(values)
    parsed = parse_dates(values, implausible_dates="drop")
    assert parsed.dtype == "datetime64[ns]"
    assert pd.DatetimeIndex(parsed).strftime("%Y-%m-%d").tolist()[:2] == ["2025-03-25", "2025-04-01"]
    assert np.isnat(parsed[2])


@pytest.mark.parametrize("dtype", ["str", object, float, "datetime64[ns]"])
def test_parse_dates_of_an_empty_column_is_empty(dtype):
    parsed = parse_dates(pd.Series([], dtype=dtype))
    assert parsed.dtype == "datetime64[ns]" and len(parsed) == 0


def test_a_long_column_of_repeated_dates_reads_every_row(calendar):
    """Dates are parsed once per distinct text, then given back to every row that wrote it."""
    written = np.tile(calendar.strftime(ORDERS["dmy"]).to_numpy(dtype=object), 2000)
    dates = parse_dates(pd.Series(written))
    assert len(dates) == len(written) and (dates[: len(calendar)] == calendar.to_numpy()).all()


@pytest.mark.slow
def test_a_model_trained_day_first_reads_an_ambiguous_request_day_first(tmp_path):
    """Through MLflow: the trained order is the served default of `date_order`, and a request can override it."""
    import mlflow

    from pyfunc_models import jobs
    from pyfunc_models.cashflow import CashflowTask
    from pyfunc_models.generator import generate_ledger

    raw = generate_ledger(rows=1500, seed=4, days=150)
    raw["Date"] = pd.to_datetime(raw["Date"]).dt.strftime("%d/%m/%Y")  # a European export: day first
    path = tmp_path / "european.csv"
    raw.to_csv(path, index=False)
    trained = jobs.train_model(CashflowTask(horizon=7, folds=1), str(path))
    run = mlflow.get_run(trained.run_id)
    assert "date_order_warning" not in run.data.tags  # the ledger's own dates decided it
    model = mlflow.pyfunc.load_model(trained.model_uri)
    defaults = {param.name: param.default for param in model.metadata.get_params_schema().params}
    assert defaults["date_order"] == "dmy"
    # A history whose every date reads either way: the 1st to the 12th of January to March 2024.
    history = pd.DataFrame({"date": [f"{day:02d}/{month:02d}/2024" for month in (1, 2, 3) for day in range(1, 13)],
                            "amount": [100.0] * 36, "type": "income"})
    # Read day first it ends on 12 March (a span of 72 days); month first it would end on 3 December.
    assert model.predict(history)["date"].iloc[0] == "2024-03-13"
    assert model.predict(history, params={"date_order": "mdy"})["date"].iloc[0] == "2024-12-04"


def test_a_whole_file_decides_the_order_only_when_a_date_does():
    """batch_score hands a file to a model in batches: the order is decided once, and a guess is not passed on."""
    assert decide_date_order(pd.Series(["01/02/2025", "03/04/2025", "25/04/2025"])) == "dmy"
    assert decide_date_order(pd.Series(["01/02/2025", "04/13/2025"])) == "mdy"
    assert decide_date_order(pd.Series(["01/02/2025", "03/04/2025"])) is None  # the model's own order applies
    assert decide_date_order(pd.Series(["01/02/2025", "03/04/2025"]), date_order="dmy") == "dmy"
    assert decide_date_order(pd.Series(["2025-02-01"])) is None


def test_two_digit_years_are_read_like_bank_exports_write_them():
    ledger, report = prepare_ledger(ledger_on(["15/03/25", "02/04/25", "31/12/99"]))
    assert days(ledger) == ["2025-03-15", "2025-04-02", "1999-12-31"] and report.date_order == "dmy"
    ledger, report = prepare_ledger(ledger_on(["03/15/25", "04/02/25"]))
    assert days(ledger) == ["2025-03-15", "2025-04-02"] and report.date_order == "mdy"
