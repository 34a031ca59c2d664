"""The anomaly detector without a tracking server (but one test through a logged pyfunc): planted anomalies
on unlabelled ledgers, labels where a ledger has them, the gate's metrics, small ledgers, reasons."""

import itertools
import re

import mlflow
import numpy as np
import pandas as pd
import pytest

from pyfunc_models import anomaly, config, tracking
from pyfunc_models.anomaly import (AnomalyDetector, AnomalyTask, batch_duplicates, gate_metrics, labelled_threshold,
                                   plant_anomalies, planted_threshold, robust_stats, tail_probability)
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import prepare_ledger, request_rows
from pyfunc_models.training import NotEnoughData
from tests import real_ledgers
from tests.conftest import python_module


def quiet(message):
    pass


def in_process(detector):
    """What a loaded pyfunc's predict does, for a detector that was never logged."""
    return lambda raw: detector.predict(detector.prepare(raw))


@pytest.fixture(scope="module")
def labelled():
    return prepare_ledger(generate_ledger(rows=3000, seed=4, anomaly_rate=0.02))[0]


@pytest.fixture(scope="module")
def unlabelled():
    raw = generate_ledger(rows=3000, seed=4, anomaly_rate=0.02).drop(columns=[config.ANOMALY_LABEL_HEADER])
    return prepare_ledger(raw)[0]


@pytest.fixture(scope="module")
def trained_unlabelled(unlabelled):
    task = AnomalyTask()
    return task, task.train(unlabelled, log=quiet)


@pytest.fixture(scope="module")
def small():
    """About 130 rows over four months, most categories with a row or two: the real Titans export's shape."""
    raw = generate_ledger(rows=600, seed=8, days=123).drop(columns=[config.ANOMALY_LABEL_HEADER])
    return prepare_ledger(raw.sample(130, random_state=8).sort_values("Date"))[0]


# --- planting --------------------------------------------------------------------------------------
def test_planting_adds_exactly_the_share_after_the_untouched_rows(unlabelled):
    rows = unlabelled.tail(200).reset_index(drop=True)
    planted, kinds = plant_anomalies(rows, seed=3, share=0.1)
    assert len(planted) == 220 and len(kinds) == 220
    pd.testing.assert_frame_equal(planted.head(200), rows)
    assert (kinds[:200] == "").all()
    assert {kind: int((kinds == kind).sum()) for kind in anomaly.PLANTED_KINDS} == {
        "spike": 7, "duplicate": 7, "unusual_merchant": 6}
    assert len(plant_anomalies(rows.head(130), seed=3, share=0.3)[0]) == 130 + 39


def test_planted_rows_are_the_kinds_the_model_exists_to_find(unlabelled):
    rows = unlabelled.tail(300).reset_index(drop=True)
    planted, kinds = plant_anomalies(rows, seed=5, share=0.2)
    by_day_and_text = rows.groupby(["date", "description"])["amount"].apply(list)
    for _, spike in planted[kinds == "spike"].iterrows():
        ratios = np.array([spike["amount"] / amount for amount in by_day_and_text[(spike["date"], spike["description"])]])
        assert ((ratios >= anomaly.SPIKE_FACTORS[0] - 0.01) & (ratios <= anomaly.SPIKE_FACTORS[1] + 0.01)).any()
    duplicates = planted[kinds == "duplicate"]
    assert len(duplicates.merge(rows, how="inner")) >= len(duplicates)  # every column equal to an untouched row's
    strangers = planted[kinds == "unusual_merchant"]
    assert strangers["amount"].isin(rows["amount"]).all()  # amounts this ledger has, under names it has not


def test_planted_merchant_names_are_never_in_the_ledger(unlabelled):
    ledger_words = {word for text in unlabelled["description"] for word in re.findall(r"[^\W\d_]+", text.casefold())}
    planted, kinds = plant_anomalies(unlabelled.tail(600), seed=9, share=0.5)
    names = planted.loc[kinds == "unusual_merchant", "description"]
    assert len(names) == 100 and names.is_unique
    assert all(ledger_words.isdisjoint(name.casefold().split()) for name in names)
    # Every two-syllable word taken: the generator must find three-syllable ones, not reuse a name.
    syllables = ["".join(pair) for pair in itertools.product(anomaly._CONSONANTS, anomaly._VOWELS)]
    taken = ["".join(pair) for pair in itertools.product(syllables, syllables)]
    planted, kinds = plant_anomalies(unlabelled.tail(60), seed=9, share=0.5, avoid=taken)
    words = " ".join(planted.loc[kinds == "unusual_merchant", "description"]).split()
    assert words and all(len(word) == 6 for word in words)


def test_planting_is_seeded(unlabelled):
    rows = unlabelled.tail(100)
    first, again, other = (plant_anomalies(rows, seed, 0.3)[0] for seed in (1, 1, 2))
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


# --- training without labels -----------------------------------------------------------------------
def test_unlabelled_ledger_trains_and_is_judged_on_planted_anomalies(trained_unlabelled):
    task, outcome = trained_unlabelled
    metrics, baseline = outcome.metrics, outcome.baseline_metrics["category_zscore"]
    assert outcome.params == {"evaluated_on": "planted", "threshold_chosen_on": "planted"}
    for name in ("f1", "precision", "recall", "recall_planted", "flag_rate_untouched", "planted_anomalies",
                 *(f"recall_planted_{kind}" for kind in anomaly.PLANTED_KINDS)):
        assert name in metrics and name in baseline
    assert metrics["planted_anomalies"] == round(anomaly.planting_share(len(outcome.test)) * len(outcome.test))
    assert metrics["recall_planted"] >= baseline["recall_planted"] + 0.25
    assert metrics["f1"] > baseline["f1"]
    assert metrics["flag_rate_untouched"] <= 2 * anomaly.MAX_FLAG_RATE
    # The served default is the threshold chosen on the validation slice.
    assert task.serving_params == {"threshold": metrics["threshold"]} == {"threshold": outcome.predictor.threshold_}
    assert metrics["threshold"] < 1


def test_threshold_chosen_without_labels_catches_most_real_anomalies_later(trained_unlabelled, labelled):
    """The generator's own injected anomalies in the test months, which the detector never saw labels of."""
    _, outcome = trained_unlabelled
    test = labelled[labelled["date"] >= outcome.test["date"].min()]
    flagged = outcome.predictor.predict(test)["is_anomaly"].to_numpy()
    real = test[config.ANOMALY_LABEL].to_numpy() != ""
    assert real.sum() >= 8
    assert flagged[real].mean() >= 0.75
    assert flagged[~real].mean() <= anomaly.MAX_FLAG_RATE


def test_gate_metrics_on_an_unlabelled_ledger_are_repeatable_and_match_the_run(trained_unlabelled):
    _, outcome = trained_unlabelled
    first = gate_metrics(in_process(outcome.predictor), outcome.test)
    assert first == gate_metrics(in_process(outcome.predictor), outcome.test)
    for name in ("f1", "recall_planted", "flag_rate_untouched"):
        assert first[name] == pytest.approx(outcome.metrics[name])  # the run's test rows, planted alike
        assert f"baseline_category_zscore_{name}" in first
    assert first["baseline_category_zscore_f1"] < first["f1"]
    assert first["baseline_category_zscore_flagged_rate"] == pytest.approx(first["flagged_rate"])  # as many rows


@pytest.mark.slow  # logs and loads a model through MLflow (seconds)
def test_gate_scores_a_logged_model_against_the_baseline_it_was_trained_beside(trained_unlabelled):
    task, outcome = trained_unlabelled
    with mlflow.start_run():
        info = tracking.log_predictor(outcome.predictor, request_rows(outcome.test.head(3)), task.serving_params,
                                      "anomaly")
    model = mlflow.pyfunc.load_model(info.model_uri)
    served_default = {spec.name: spec.default for spec in model.metadata.signature.params.params}
    assert served_default == {"threshold": outcome.metrics["threshold"]}
    metrics = gate_metrics(model.predict, outcome.test)
    baseline = outcome.baseline_metrics["category_zscore"]
    for name in ("f1", "recall_planted", "flag_rate_untouched"):
        assert metrics[name] == pytest.approx(outcome.metrics[name])
        assert metrics[f"baseline_category_zscore_{name}"] == pytest.approx(baseline[name])


# --- labels ----------------------------------------------------------------------------------------
def test_labelled_ledger_is_still_judged_on_its_labels(labelled):
    outcome = AnomalyTask().train(labelled, log=quiet)
    assert outcome.params == {"evaluated_on": "labels", "threshold_chosen_on": "labels"}
    labels = outcome.test[config.ANOMALY_LABEL].to_numpy() != ""
    assert outcome.metrics["labelled_anomalies"] == labels.sum() > 0
    assert "recall_planted" not in outcome.metrics and "recall_spike" in outcome.metrics
    gate = gate_metrics(in_process(outcome.predictor), outcome.test)
    assert gate["labelled_anomalies"] == labels.sum() and "planted_anomalies" not in gate
    assert gate["recall"] == pytest.approx(outcome.metrics["recall"])
    assert "baseline_category_zscore_f1" in gate


# --- small ledgers ---------------------------------------------------------------------------------
def test_a_ledger_of_130_rows_trains_with_a_sane_threshold(small):
    task = AnomalyTask()
    outcome = task.train(small, log=quiet)
    assert outcome.params["evaluated_on"] == "planted"
    assert 0 < outcome.metrics["threshold"] <= 1 and task.serving_params["threshold"] == outcome.metrics["threshold"]
    assert outcome.metrics["recall_planted_duplicate"] == 1.0
    assert outcome.metrics["flag_rate_untouched"] <= 0.2
    assert set(gate_metrics(in_process(outcome.predictor), outcome.test)) >= {"f1", "baseline_category_zscore_f1"}


@pytest.mark.slow  # a training process (about 10 s)
def test_train_anomaly_on_an_unlabelled_ledger_prints_the_planted_metrics_it_was_judged_on(tmp_path):
    ledger = real_ledgers.tiny(tmp_path / "ledger.csv")
    printed = python_module("entrypoints.train", "anomaly", "--data", str(ledger),
                            uri=f"sqlite:///{tmp_path}/mlflow.db").stdout
    table = printed[printed.index("\nmetric "):]
    assert "recall_planted_spike" in table and "recall_spike" not in table and " nan" not in table, printed


def test_too_small_a_ledger_says_so_in_numbers(small):
    with pytest.raises(NotEnoughData, match=f"needs at least {anomaly.MIN_ROWS} transactions.*the ledger has 30"):
        AnomalyTask().train(small.head(30), log=quiet)
    one_day = small.head(60).assign(date=small["date"].iloc[0])
    with pytest.raises(NotEnoughData, match="1 day"):
        AnomalyTask().train(one_day, log=quiet)


# --- thresholds ------------------------------------------------------------------------------------
def test_planted_threshold_separates_and_sits_between_the_two_sides():
    untouched = np.linspace(0.1, 0.9, 40)
    planted = np.array([0.95, 0.99, 0.999, 1.0])
    scores = np.r_[untouched, planted]
    threshold = planted_threshold(scores, np.r_[np.zeros(40, bool), np.ones(4, bool)])
    assert 0.9 < threshold < 0.95
    assert threshold == pytest.approx(1 - np.sqrt(0.1 * 0.05))  # halfway on the log(1 - score) scale


def test_planted_threshold_keeps_false_alarms_under_the_cap():
    rng = np.random.default_rng(0)
    untouched, planted = rng.uniform(0, 1, 400), rng.uniform(0.5, 1, 400)  # overlapping: F1 alone would flag many
    scores, is_planted = np.r_[untouched, planted], np.r_[np.zeros(400, bool), np.ones(400, bool)]
    threshold = planted_threshold(scores, is_planted, max_flag_rate=0.05)
    assert (untouched >= threshold).sum() <= 20


def test_planted_threshold_on_a_tiny_slice_with_a_real_double_charge():
    untouched = np.array([0.1, 0.3, 0.5, 0.7, 0.8, 1.0])  # the 1.0 is a repeated charge: flagged whatever
    planted = np.array([0.95, 0.97, 0.99, 1.0, 1.0])
    threshold = planted_threshold(np.r_[untouched, planted], np.r_[np.zeros(6, bool), np.ones(5, bool)])
    assert 0.8 < threshold < 0.95


def test_labelled_threshold_keeps_precision():
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.85, 0.9, 0.95])
    labels = np.array([False, False, False, False, True, False, True])
    assert labelled_threshold(scores, labels, min_precision=0.6) == 0.85


# --- the detector ----------------------------------------------------------------------------------
def test_robust_stats_fall_back_to_mean_deviation_when_mad_is_zero():
    values = np.array([1.0, 1.0, 1.0, 1.0, 3.0, 5.0, 6.0, 7.0])
    stats = robust_stats(values, np.array(["fixed"] * 4 + ["fixed", "varied", "varied", "varied"]))
    assert stats.loc["fixed", "median"] == 1.0
    assert stats.loc["fixed", "scale"] == pytest.approx(np.mean([0, 0, 0, 0, 2]) * 1.2533)
    assert stats.loc["varied", "scale"] == pytest.approx(1.0 * 1.4826)


def test_tail_probability_is_never_zero():
    reference = np.sort(np.array([0.0, 1.0, 2.0, 3.0]))
    assert list(tail_probability(reference, np.array([-1.0, 2.0, 99.0]))) == [1.0, 3 / 5, 1 / 5]


def test_batch_duplicates_point_to_the_first_occurrence():
    rows = pd.DataFrame({"date": pd.to_datetime(["2024-01-01"] * 4 + ["2024-01-02"]),
                         "description": ["SHELL 1", "shell  1", "SHELL 1", "OTHER", "SHELL 1"],
                         "amount": [-5.0, -5.0, -6.0, -5.0, -5.0]})
    assert batch_duplicates(rows).tolist() == [-1, 0, -1, -1, -1]


def test_detector_learns_from_its_ledger_and_scores_without_labels(labelled):
    normal = labelled[labelled["anomaly_label"] == ""].drop(columns=["anomaly_label"])
    detector = AnomalyDetector(seed=0).fit(normal)
    assert 0 < detector.novelty_rate_ < 0.5
    scored = detector.predict(normal.tail(50), threshold=0.5)
    assert scored["anomaly_score"].between(0, 1).all()
    assert (scored["reason"] != "").sum() == scored["is_anomaly"].sum()


def test_reasons_quote_the_description_as_the_user_wrote_it(unlabelled):
    detector = AnomalyDetector(seed=0).fit(unlabelled)
    usual = unlabelled[unlabelled["description"].str.contains("STARBUCKS")].iloc[-1]
    rows = pd.DataFrame([
        {**usual, "description": "CAFÉ DU MONDE", "amount": -900.0},
        {**usual, "amount": usual["amount"] * 20},
        {**usual, "description": "ÉPICERIE MÜLLER & SÖHNE FEINKOST " + "X" * 40, "amount": -900.0},
    ])
    reasons = detector.predict(rows, threshold=0.0)["reason"].tolist()
    assert reasons[0].startswith("merchant never seen (CAFÉ DU MONDE); amount ")
    assert f"the usual for {' '.join(usual['description'].split())}" in reasons[1]
    long_name = f"({'ÉPICERIE MÜLLER & SÖHNE FEINKOST ' + 'X' * (anomaly.REASON_TEXT_LENGTH - 36)}...);"
    assert long_name in reasons[2]


def four_months_with_a_rent(seed: int = 3) -> pd.DataFrame:
    """A four-month bank export, unlabelled: everyday merchants every week, and three merchants with one row a month
    (a rent, a phone bill and a salary), so that each has three rows before the fourth month."""
    rng = np.random.default_rng(seed)
    rows = []
    for day in pd.date_range("2025-02-01", "2025-05-31", freq="D"):
        for merchant, median, share in (("TRADER JOE'S #552", 70, 0.35), ("UBER *TRIP", 20, 0.3),
                                        ("STARBUCKS 0331", 7, 0.4), ("SHELL OIL 5741", 45, 0.15)):
            if rng.random() < share:
                rows.append((day, "expense", merchant, -round(median * rng.lognormal(0, 0.3), 2)))
        if day.day == 3:
            rows += [(day, "expense", "ZELLE TO JOHN SMITH RENT", -2400.0), (day, "expense", "T-MOBILE BILL", -85.0),
                     (day, "income", "ACME CORP PAYROLL", 4100.0)]
    raw = pd.DataFrame(rows, columns=["date", "type", "description", "amount"])
    return prepare_ledger(raw.assign(date=raw["date"].dt.strftime("%Y-%m-%d")))[0]


def test_a_monthly_rent_in_a_four_month_ledger_is_read_against_the_earlier_rents():
    ledger = four_months_with_a_rent()
    outcome = AnomalyTask().train(ledger, log=quiet)
    detector = outcome.predictor
    may_bills = ledger[(ledger["date"] == "2025-05-03") & ledger["description"].isin(
        ["ZELLE TO JOHN SMITH RENT", "T-MOBILE BILL", "ACME CORP PAYROLL"])].reset_index(drop=True)
    assert sorted(may_bills["description"]) == ["ACME CORP PAYROLL", "T-MOBILE BILL", "ZELLE TO JOHN SMITH RENT"]
    usual = detector.predict(may_bills)
    # Compared with every expense, as before, the usual rent scored 0.986 against a threshold of 0.992 (on a bank's
    # four-month export it was flagged: "amount 61.0x the usual for expense"), ten times the phone bill was not
    # flagged and ten times the rent was "926.9x the usual for expense".
    assert not usual["is_anomaly"].any(), usual
    # Its own few rows are its reference: ten times each is flagged, and the reason names the merchant itself.
    spike = detector.predict(may_bills.assign(amount=may_bills["amount"] * 10))
    assert spike["is_anomaly"].all(), spike
    rent = may_bills.index[may_bills["description"] == "ZELLE TO JOHN SMITH RENT"][0]
    assert re.fullmatch(r"amount 1\d\.\dx the usual for ZELLE TO JOHN SMITH RENT", spike.loc[rent, "reason"])


def test_a_new_name_that_shares_a_first_word_with_a_few_rows_is_a_new_merchant():
    """Only a merchant's own name's few rows are its history: the first word is a coarser key, trusted from
    MIN_HISTORY rows on. Three salary rows of ACME CORP PAYROLL say nothing of what ACME HARDWARE charges."""
    ledger = four_months_with_a_rent()
    detector = AnomalyTask().train(ledger, log=quiet).predictor
    payroll = ledger[ledger["description"] == "ACME CORP PAYROLL"].iloc[[-1]].reset_index(drop=True)
    hardware = payroll.assign(description="ACME HARDWARE", type="expense", amount=-4100.0)
    answer = detector.predict(hardware)
    # Compared with the expenses, as it was before few-row merchants were read; read as ACME CORP PAYROLL's next row
    # it scored 0.90, not flagged.
    assert answer["is_anomaly"][0] and answer["reason"][0].endswith("x the usual for expense"), answer


def test_few_rows_center_sits_at_a_steady_merchants_own_amount_and_weighs_its_rows():
    group_median, group_scale, within = np.log1p(50.0), 1.2, 0.3
    center, spread = anomaly.few_rows_center(np.array([np.log1p(2400.0)] * 3), np.array([1.0, 3.0, 0.0]),
                                             np.full(3, group_median), np.full(3, group_scale), within)
    off = np.abs(center - np.log1p(2400.0))
    assert off[1] < 0.1 < off[0] < 0.25  # one row moves the centre most of the way from its group's; three, nearly all
    assert center[2] == pytest.approx(group_median)  # no rows: the group's
    assert spread[2] == pytest.approx(np.sqrt(within ** 2 + group_scale ** 2))
    assert spread[1] == pytest.approx(group_scale / 2)  # never steadier than its group's spread over sqrt(rows + 1)
    never_seen_group = anomaly.few_rows_center(np.array([3.0]), np.array([2.0]), np.array([9.0]), np.array([np.inf]),
                                               within)
    assert never_seen_group[0][0] == pytest.approx(3.0)


def test_others_median_leaves_each_row_out():
    medians, counts = anomaly.others_median(np.array([1.0, 2.0, 9.0, 5.0, 7.0]), np.array(["a", "a", "a", "b", "c"]))
    assert medians[:3].tolist() == [5.5, 5.0, 1.5] and counts.tolist() == [2, 2, 2, 0, 0]
    assert np.isnan(medians[3:]).all()


def test_others_z_reads_each_row_against_its_keys_other_rows_as_robust_stats_would():
    rng = np.random.default_rng(3)
    keys = np.array(["bakery"] * 12 + ["rent"] * 6 + ["big"] * (anomaly.LEAVE_ONE_OUT_UP_TO + 1) + ["one"])
    values = rng.normal(2.0, 0.3, len(keys))
    values[12:18] = 7.0  # a rent of one amount: MAD 0, the mean deviation (0 too) gives way to the floor
    with_the_row = rng.normal(size=len(keys))
    z = anomaly.others_z(values, keys, 0.05, with_the_row)
    for row in range(18):
        others = np.delete(np.arange(18), row)
        others = others[keys[others] == keys[row]]
        stats = robust_stats(values[others], keys[others]).iloc[0]
        assert z[row] == pytest.approx((values[row] - stats["median"]) / max(stats["scale"], 0.05))
    assert (z[18:] == with_the_row[18:]).all()  # a large key moves too little; a key of one has no others


def test_a_merchants_training_rows_are_read_as_its_next_row_will_be():
    """A bakery of 12 training rows: each row's reference z-score in `fit` is read against the other 11 (as a
    detector fitted on them would read it), not against a median and scale that include the row itself."""
    rng = np.random.default_rng(8)
    days = pd.date_range("2024-01-01", periods=60, freq="D")
    rows = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "type": "expense", "category": "food",
                         "description": [f"SHOP {i % 12}" for i in range(48)] + ["BAKERY"] * 12,
                         "amount": -np.round(np.exp(rng.normal(2.0, 0.3, 60)), 2)})
    ledger = prepare_ledger(rows)[0]
    detector = AnomalyDetector(seed=1).fit(ledger)
    _, z, _ = detector._features(ledger, held_out=True)
    bakery = np.flatnonzero(ledger["description"] == "BAKERY")
    log_amount = np.log1p(np.abs(ledger["amount"].to_numpy()))[bakery]
    with_the_row = detector._features(ledger)[1][bakery]
    expected = anomaly.others_z(log_amount, np.zeros(len(bakery)), detector.scale_floor_, with_the_row)
    assert np.allclose(z[bakery], expected) and not np.allclose(z[bakery], with_the_row)
