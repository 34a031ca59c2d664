"""Issue 18, anomaly: the single-row scoring path (the forest walked as flat arrays, the statistics read through
dicts) gives the numbers of the code it replaces: IsolationForest.score_samples, and the pandas reindexing kept
below as `pandas_features`. Speed is measured in benchmarks/, never asserted here."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest

from pyfunc_models import anomaly
from pyfunc_models.anomaly import MIN_HISTORY, AnomalyDetector, StatisticsLookup, _first_words, amount_groups
from pyfunc_models.features import merchant_keys
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import load_ledger, prepare_ledger
from tests import real_ledgers
from tests.request_kinds import answers_to, assert_as_when_every_column_is_read, refused, request_kinds


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("anomaly_fast")
    found = {"generated": prepare_ledger(generate_ledger(rows=2000, seed=13, days=300))[0]}
    for name in ("titans_export", "bank_style", "personal_finance", "tiny"):
        found[name] = load_ledger(real_ledgers.LEDGERS[name](folder / f"{name}.csv"))[0]
    return found


def pandas_features(detector: AnomalyDetector, rows: pd.DataFrame):
    """AnomalyDetector._features as it was before issue 18 (statistics reindexed with pandas): the reference. A
    merchant with few rows goes through the same few_rows_center: what is compared is how statistics are looked up."""
    log_amount = np.log1p(np.abs(rows["amount"].to_numpy(dtype=float)))
    merchants = merchant_keys(rows["description"])
    by_name = detector.merchant_stats_.reindex(merchants)
    by_first_word = detector.first_word_stats_.reindex(_first_words(merchants))
    named = (by_name["count"].fillna(0) >= MIN_HISTORY).to_numpy()
    merchant = pd.DataFrame(np.where(named[:, None], by_name.to_numpy(), by_first_word.to_numpy()),
                            columns=by_name.columns)
    count = by_first_word["count"].fillna(0).to_numpy()
    trusted = merchant["count"].astype(float).fillna(0).to_numpy() >= MIN_HISTORY
    groups = amount_groups(rows)
    group = detector.group_stats_.reindex(groups).reset_index(drop=True)
    rare = (group["count"].fillna(0) < MIN_HISTORY).to_numpy()
    if rare.any():
        kinds = rows["type"].to_numpy(dtype=object)
        by_type = detector.type_stats_.reindex(kinds).reset_index(drop=True)
        use_type = rare & by_type["count"].notna().to_numpy()
        group = pd.DataFrame(np.where(use_type[:, None], by_type[group.columns].to_numpy(), group.to_numpy()),
                             columns=group.columns).astype(float)
        groups = np.where(use_type, "type:" + kinds, groups)
    group_median = group["median"].fillna(pd.Series(log_amount)).to_numpy()
    group_scale = np.maximum(group["scale"].fillna(detector.scale_floor_).to_numpy(), detector.scale_floor_)
    z_group = (log_amount - group_median) / group_scale
    z_merchant = (log_amount - merchant["median"].astype(float).to_numpy()) / np.maximum(
        merchant["scale"].astype(float).fillna(detector.scale_floor_).to_numpy(), detector.scale_floor_)
    z_reference = np.where(trusted, z_merchant, z_group)
    reference_median = np.where(trusted, merchant["median"].astype(float).to_numpy(), group_median)
    few = (by_name["count"].fillna(0).to_numpy() > 0) & ~trusted  # its own name's few rows: few_rows_center
    if few.any():
        known_group = group["median"].notna().to_numpy()[few]
        center, spread = anomaly.few_rows_center(
            by_name["median"].to_numpy()[few], by_name["count"].to_numpy()[few],
            group_median[few], np.where(known_group, group_scale[few], np.inf), detector.within_scale_)
        z_reference[few] = (log_amount[few] - center) / np.maximum(spread, detector.scale_floor_)
        reference_median[few] = center
    features = np.column_stack([np.clip(z_reference, -50, 50), np.clip(z_group, -50, 50), np.log1p(count)])
    context = {"merchants": merchants, "count": count, "trusted": trusted | few,
               "reference_median": reference_median, "groups": groups}
    return features, z_reference, context


def batches(rows: pd.DataFrame) -> list:
    """One row at a time from across the rows, a few rows, the flat walk's largest batch and one more, all rows."""
    picked = [rows.iloc[[i]] for i in range(0, len(rows), max(len(rows) // 15, 1))]
    picked += [rows.iloc[:5], rows.iloc[: anomaly.FLAT_WALK_MAX_ROWS], rows.iloc[: anomaly.FLAT_WALK_MAX_ROWS + 1],
               rows]
    return [batch.reset_index(drop=True) for batch in picked]


@pytest.mark.slow  # a detector fitted on each ledger (seconds)
def test_isolation_scores_are_score_samples_on_both_sides_of_the_flat_walk(ledgers):
    for name, ledger in ledgers.items():
        fitted, scored = ledger.iloc[: len(ledger) // 2], ledger.iloc[len(ledger) // 2:].reset_index(drop=True)
        detector = AnomalyDetector(seed=3).fit(fitted)
        for batch in batches(scored):
            features = detector._features(batch)[0]
            lean = anomaly.isolation_scores(detector.forest_, features)
            assert np.array_equal(lean, detector.forest_.score_samples(features)), (name, len(batch))


@pytest.mark.parametrize("options", [
    {},  # the detector's own forest: every feature, 256 samples a tree (8 levels)
    {"max_features": 2, "n_estimators": 30},  # each tree reads a subset of the columns
    {"max_samples": 16, "bootstrap": True, "n_estimators": 50},  # shallow trees, some rows drawn twice
    {"max_samples": 1.0, "n_estimators": 10},  # deep trees of unequal depth
])
def test_the_flat_forest_is_score_samples_for_other_forests(options):
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.standard_normal(600), rng.exponential(size=600), rng.integers(0, 4, 600)])
    forest = IsolationForest(random_state=2, **options).fit(X[:400])
    for rows in (X[400:401], X[400:410], X[400:]):
        expected = forest.score_samples(rows)
        assert np.array_equal(anomaly.isolation_scores(forest, rows), expected)
        assert np.abs(anomaly.isolation_scores(forest, rows) - expected).max() <= 1e-9


def test_the_lookup_reads_the_statistics_as_reindex_does(ledgers):
    ledger = ledgers["generated"]
    stats = anomaly.robust_stats(np.log1p(np.abs(ledger["amount"].to_numpy(dtype=float))),
                                 merchant_keys(ledger["description"]))
    keys = np.array([*stats.index[:20], "never seen", "", *stats.index[-3:]], dtype=object)
    assert np.array_equal(StatisticsLookup(stats)(keys), stats.reindex(keys).to_numpy(dtype=float), equal_nan=True)
    assert StatisticsLookup(stats)(np.array([], dtype=object)).shape == (0, 3)


def test_features_are_the_pandas_features_for_one_row_and_for_batches(ledgers):
    for name, ledger in ledgers.items():
        fitted, scored = ledger.iloc[: len(ledger) // 2], ledger.iloc[len(ledger) // 2:].reset_index(drop=True)
        detector = AnomalyDetector(seed=3).fit(fitted)
        odd = scored.iloc[:3].assign(description=["ZZQX NEVER SEEN", "ZZQX NEVER SEEN", scored["description"][2]],
                                     category=["a category never seen", "", ""], type=["expense", "income", "unknown"])
        for batch in batches(scored) + [odd.reset_index(drop=True)]:
            features, z_reference, context = detector._features(batch)
            expected = pandas_features(detector, batch)
            assert np.array_equal(features, expected[0]), (name, len(batch))
            assert np.array_equal(z_reference, expected[1]), (name, len(batch))
            assert context.keys() == expected[2].keys()
            for key, value in context.items():
                assert np.array_equal(value, expected[2][key]), (name, len(batch), key)


def test_a_refitted_detector_reads_its_new_statistics(ledgers):
    first, second = ledgers["generated"], ledgers["bank_style"]
    detector = AnomalyDetector(seed=3).fit(first)
    row = second.iloc[[5]].reset_index(drop=True)
    detector.score(row)  # its lookups are made from the first ledger's statistics here
    detector.fit(second)
    fresh = AnomalyDetector(seed=3).fit(second)
    assert np.array_equal(detector._features(row)[0], fresh._features(row)[0])
    pd.testing.assert_frame_equal(detector.predict(row), fresh.predict(row))


def test_scoring_leaves_the_pickled_detector_as_it_was(ledgers):
    detector = AnomalyDetector(seed=3).fit(ledgers["tiny"])
    before = pickle.dumps(detector)
    detector.predict(ledgers["tiny"].iloc[[0]].reset_index(drop=True))
    assert pickle.dumps(detector) == before
    loaded = pickle.loads(before)
    pd.testing.assert_frame_equal(loaded.predict(ledgers["tiny"]), detector.predict(ledgers["tiny"]))


# --- the contract parses only the columns the detector reads ---------------------------------------------------
def test_reading_fewer_columns_changes_no_answer(ledgers, tmp_path, monkeypatch):
    detector = AnomalyDetector(seed=3).fit(ledgers["generated"])
    requests = request_kinds(tmp_path, amount=[-4.5, -40_000.0, 12.0, 0.0, -4.5, -4.5])
    ledger = requests["a ledger's rows"]
    requests |= {"a double charge": pd.concat([ledger, ledger.iloc[[7]]], ignore_index=True),
                 "only the required columns": ledger[["date", "description", "amount"]],
                 "no amount column": ledger.drop(columns=["amount"])}
    params = [None, {"threshold": 0.5}, {"date_order": "dmy"}]
    answers = answers_to(detector, requests, params)
    # A bank's month-first dates are refused only when the request says they are day-first.
    assert ("a bank's own header", 2) in {key for key, answer in answers.items() if isinstance(answer, str)}
    assert refused(answers) == {"a date that is no date", "an amount that is no number", "an empty description",
                                "no description column", "no amount column", "a date before 1970",
                                "a bank's own header"}
    assert answers[("a double charge", 0)]["reason"].iloc[-1] == "duplicate of row 7"
    assert (answers[("odd values in the columns", 1)]["reason"] != "").any()
    assert_as_when_every_column_is_read(detector, requests, params, answers, monkeypatch)
    assert len(detector.prepare(requests["one row"]).columns) == 9


def test_warming_makes_what_a_first_request_would(ledgers):
    detector = pickle.loads(pickle.dumps(AnomalyDetector(seed=3).fit(ledgers["tiny"])))
    assert detector.forest_ not in anomaly._FLAT and detector not in anomaly._LOOKUPS
    detector.warm()
    assert detector.forest_ in anomaly._FLAT and detector in anomaly._LOOKUPS
