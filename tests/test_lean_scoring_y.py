"""Issue 18, anomaly and cash flow: the lean scoring paths give today's answers exactly, and training's
latency-aware choice follows its rule.

Each lean path is compared with the code it replaces (IsolationForest.score_samples, Forecaster.forecast), on
generated ledgers and on ledgers in the shapes of real exports (tests/real_ledgers.py). Speed is measured in
benchmarks/, never asserted here.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from pyfunc_models import anomaly, tracking
from pyfunc_models.cashflow import BoostedCalendar, Forecaster, daily_net_flow
from pyfunc_models.category import CategoryTask
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import load_ledger
from pyfunc_models.training import Candidate, CandidateResult, choose
from tests import real_ledgers
from tests.sweeps import sweep


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory) -> dict:
    """Canonical ledgers: two generated, and the real-export shapes long enough to forecast from."""
    folder = tmp_path_factory.mktemp("lean_y")
    paths = {}
    for seed, days in ((3, 200), (11, 400)):
        path = folder / f"generated_{seed}.csv"
        generate_ledger(rows=1500, seed=seed, days=days).to_csv(path, index=False)
        paths[f"generated_{seed}"] = path
    for name in ("titans_export", "bank_style", "personal_finance", "tiny"):
        paths[name] = real_ledgers.LEDGERS[name](folder / f"{name}.csv")
    return {name: load_ledger(path)[0] for name, path in paths.items()}


@pytest.mark.slow  # a detector fitted on each ledger (seconds)
def test_isolation_scores_are_score_samples(ledgers):
    for name, ledger in ledgers.items():
        detector = anomaly.AnomalyDetector(seed=1).fit(ledger)
        features = detector._features(ledger)[0]
        assert np.array_equal(anomaly.isolation_scores(detector.forest_, features),
                              detector.forest_.score_samples(features)), name


@pytest.mark.slow  # a detector fitted on each ledger (seconds)
def test_anomaly_answers_are_todays_for_one_row_and_for_a_batch(ledgers, monkeypatch):
    for name, ledger in ledgers.items():
        fitted, scored = ledger.iloc[: len(ledger) // 2], ledger.iloc[len(ledger) // 2:].reset_index(drop=True)
        detector = anomaly.AnomalyDetector(seed=1).fit(fitted)
        batches = [scored.iloc[[i]].reset_index(drop=True) for i in range(0, len(scored), max(len(scored) // 6, 1))]
        batches.append(pd.concat([scored, scored.iloc[:5]], ignore_index=True))  # with duplicates in the batch
        lean = [detector.predict(batch, threshold=0.5) for batch in batches]
        with monkeypatch.context() as today:
            today.setattr(anomaly, "isolation_scores", lambda forest, features: forest.score_samples(features))
            for batch, answer in zip(batches, lean):
                pd.testing.assert_frame_equal(answer, detector.predict(batch, threshold=0.5), obj=name)
    assert lean[-1]["reason"].str.startswith("duplicate of row").sum() == 5


def test_a_single_row_is_a_duplicate_of_nothing_as_the_grouping_says(ledgers):
    row = ledgers["generated_3"].iloc[[0]].reset_index(drop=True)
    assert anomaly.batch_duplicates(row).tolist() == [-1]
    assert anomaly.batch_duplicates(pd.concat([row, row], ignore_index=True)).tolist() == [-1, 0]


@pytest.mark.parametrize("horizon", sweep([1, 7, 30, 45], fast=2))
def test_boosted_calendar_forecast_is_the_general_forecast(ledgers, horizon):
    for name, ledger in ledgers.items():
        series = daily_net_flow(ledger)
        if len(series) < 70:
            continue
        forecaster = BoostedCalendar(seed=2).fit(series.iloc[: len(series) - 10])
        for history in (series, series.iloc[-100:], series.iloc[-40:], series.iloc[-8:]):
            lean = forecaster.forecast(history, horizon)
            assert np.array_equal(lean, Forecaster.forecast(forecaster, history, horizon)), (name, len(history))


def test_boosted_calendar_takes_the_general_path_for_days_not_consecutive(ledgers):
    series = daily_net_flow(ledgers["generated_11"])
    forecaster = BoostedCalendar(seed=2).fit(series)
    gapped = series.drop(series.index[-20])
    assert np.array_equal(forecaster.forecast(gapped, 14), Forecaster.forecast(forecaster, gapped, 14))


# --- latency-aware choice ----------------------------------------------------------------------------------------
def scored(name, score, one_row=None, baseline=False):
    seconds = {"one_row": one_row, "1000_rows": 0.1} if one_row is not None else {}
    return Candidate(name, None, {}, baseline=baseline), CandidateResult(name, {}, {"macro_f1": score}, 0.0, 1, seconds)


def test_choose_prefers_a_cheaper_candidate_within_the_gates_tolerance():
    task = CategoryTask()  # macro_f1, tolerance 0.01 absolute
    forest, linear = scored("random_forest", 0.9864, 0.020), scored("logistic_regression", 0.9846, 0.002)
    candidate, _, why = choose(task, [forest, linear])
    assert candidate.name == "logistic_regression"
    assert why == ("within tolerance (0.01 macro_f1) of the best, random_forest (macro_f1 0.9846 vs 0.9864), and "
                   "10.0 times cheaper to score one row")


def test_choose_keeps_the_best_when_the_cheaper_is_outside_tolerance_or_not_cheap_enough():
    task = CategoryTask()
    assert choose(task, [scored("forest", 0.98, 0.020), scored("linear", 0.969, 0.001)])[0].name == "forest"
    assert choose(task, [scored("forest", 0.98, 0.020), scored("linear", 0.975, 0.011)])[0].name == "forest"
    assert choose(task, [scored("forest", 0.98), scored("linear", 0.975)])[0].name == "forest"  # no timings
    best = choose(task, [scored("forest", 0.98, 0.020), scored("linear", 0.975, 0.011)])
    assert best[2] == "the best validation macro_f1 (0.9800)"


def test_choose_never_trades_accuracy_for_a_baseline_and_keeps_the_baseline_rule():
    task = CategoryTask()
    assert choose(task, [scored("forest", 0.98, 0.02), scored("lookup", 0.975, 0.0001, baseline=True)])[0].name == "forest"
    candidate, _, why = choose(task, [scored("forest", 0.90, 0.02), scored("lookup", 0.95, 0.0001, baseline=True)])
    assert candidate.name == "lookup" and why.startswith("a baseline, better than the best learned candidate (forest)")


@pytest.mark.slow  # trains the whole category task with MLflow logging: the slow tier
def test_category_training_times_each_candidate_logs_it_and_says_why(monkeypatch):
    ledger = load_ledger_frame(generate_ledger(rows=800, seed=5, days=120))
    task = CategoryTask()
    monkeypatch.setattr(task, "candidates", lambda seed: [c for c in CategoryTask.candidates(task, seed)
                                                          if c.name == "logistic_regression" or c.baseline])
    printed, results = [], []
    mlflow.set_experiment("lean-y")
    with mlflow.start_run() as run:
        def log_candidate(result):
            results.append(result)
            tracking.log_candidate(result)
        task.train(ledger, seed=1, on_candidate=log_candidate, log=printed.append)
    assert results and all(set(r.scoring_seconds) == {"one_row", "1000_rows"} for r in results)
    assert all(r.scoring_seconds["one_row"] > 0 and r.scoring_seconds["1000_rows"] > 0 for r in results)
    children = mlflow.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(children) == len(results)
    assert children["metrics.scoring_seconds_one_row"].notna().all()
    assert children["metrics.scoring_seconds_1000_rows"].notna().all()
    chosen = [line for line in printed if line.strip().startswith("chosen: ")]
    assert len(chosen) == 1 and "(" in chosen[0] and "refit on all" in chosen[0]
    assert any("scores one row in" in line for line in printed)


def load_ledger_frame(raw: pd.DataFrame) -> pd.DataFrame:
    from pyfunc_models.ledger import prepare_ledger
    return prepare_ledger(raw)[0]
