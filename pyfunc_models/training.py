"""The skeleton every row model shares: split by time, try candidates, pick, refit, test vs baselines.

Pure modelling: no MLflow here. What a model differs in (rows, target, candidates,
metrics, baselines, predictor) comes from its task object; what happens to each
candidate's result is the caller's `on_candidate` callback (the job logs it as a
nested run).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.base import clone

from pyfunc_models.ledger import LedgerError
from pyfunc_models.splits import time_split


class NotEnoughData(LedgerError):
    """The ledger is valid but too small for this model: `main` skips the model with this message (in numbers,
    e.g. "cash flow needs 120 days of history; the ledger spans 62") and goes on with the others."""


@dataclass
class Candidate:
    """One estimator to try: an unfitted pipeline, the parameters worth logging, an optional row cap."""

    name: str
    estimator: Any
    params: dict
    max_rows: int | None = None  # train on the most recent rows only, for estimators that cannot scale


@dataclass
class CandidateResult:
    name: str
    params: dict
    metrics: dict
    fit_seconds: float
    rows_used: int


@dataclass
class TrainingOutcome:
    """What a job logs: the predictor to serve, its test metrics, the baselines' and the evidence."""

    predictor: Any
    chosen: CandidateResult
    candidates: list
    metrics: dict  # test metrics of the chosen model, plus any extra evaluation (e.g. merchant hold-out)
    baseline_metrics: dict  # baseline name -> test metrics
    train: pd.DataFrame
    test: pd.DataFrame
    test_predictions: Any
    artifacts: dict = field(default_factory=dict)  # name -> matplotlib figure | dict | str
    params: dict = field(default_factory=dict)  # row caps and other choices the run should record as parameters
    run_metrics: dict = field(default_factory=dict)  # logged under their own names (e.g. backtest_mase), no test_ prefix


class RowTask:
    """What a supervised row model supplies to the skeleton. Subclasses fill in every method."""

    model_type: str = ""
    primary_metric: str = ""
    greater_is_better: bool = True
    # Candidates are compared on at most this many recent training rows (None = all): ranking them needs far
    # fewer rows than the served model learns from, and the search is where most of the fitting happens.
    max_search_rows: int | None = None

    def training_rows(self, ledger: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def target(self, rows: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def candidates(self, seed: int) -> list:
        raise NotImplementedError

    def metrics(self, rows: pd.DataFrame, y_true, y_pred) -> dict:
        raise NotImplementedError

    def baselines(self, train: pd.DataFrame) -> dict:
        """Baseline name -> fitted object with predict(rows)."""
        raise NotImplementedError

    def predictions(self, fitted, rows: pd.DataFrame):
        return fitted.predict(rows)

    def predictor(self, fitted, past: pd.DataFrame, chosen: Candidate):
        """The object to serve, from the chosen candidate fitted on the whole past."""
        raise NotImplementedError

    def evidence(self, outcome: TrainingOutcome, chosen: Candidate, seed: int) -> None:
        """Add extra metrics and artifacts (plots, reports) to the outcome."""

    def train(self, ledger: pd.DataFrame, seed: int = 42, test_fraction: float = 0.2,
              on_candidate: Callable | None = None, log: Callable[[str], None] = print) -> TrainingOutcome:
        return train_row_task(self, ledger, seed, test_fraction, on_candidate=on_candidate, log=log)


def _recent(rows: pd.DataFrame, max_rows: int | None) -> pd.DataFrame:
    return rows if max_rows is None or len(rows) <= max_rows else rows.iloc[-max_rows:]


def _tighter(*caps):
    given = [cap for cap in caps if cap]
    return min(given) if given else None


def fit_candidate(task: RowTask, candidate: Candidate, rows: pd.DataFrame, max_rows: int | None = None):
    """Fit a fresh copy on the most recent rows allowed by the candidate's own cap and `max_rows`."""
    used = _recent(rows, _tighter(candidate.max_rows, max_rows))
    return clone(candidate.estimator).fit(used, task.target(used)), len(used)


def _better(task: RowTask, score: float, best: float | None) -> bool:
    if best is None:
        return True
    return score > best if task.greater_is_better else score < best


def train_row_task(
    task: RowTask,
    ledger: pd.DataFrame,
    seed: int = 42,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    on_candidate: Callable[[CandidateResult], None] | None = None,
    log: Callable[[str], None] = print,
) -> TrainingOutcome:
    rows = task.training_rows(ledger)
    past, test = time_split(rows, test_fraction)
    train, validation = time_split(past, validation_fraction)
    log(f"{task.model_type}: {len(train)} train / {len(validation)} validation / {len(test)} test rows "
        f"(time-ordered, test from {test['date'].min().date()})")
    search_rows = task.max_search_rows
    if search_rows and len(train) > search_rows:
        log(f"  candidates compared on the latest {search_rows} of {len(train)} train rows (max_search_rows)")

    results, best, best_score = [], None, None
    for candidate in task.candidates(seed):
        started = time.perf_counter()
        fitted, used = fit_candidate(task, candidate, train, search_rows)
        seconds = time.perf_counter() - started
        metrics = task.metrics(validation, task.target(validation), task.predictions(fitted, validation))
        result = CandidateResult(candidate.name, candidate.params, metrics, seconds, used)
        results.append(result)
        log(f"  candidate {candidate.name:<20} validation {task.primary_metric}={metrics[task.primary_metric]:.4f} "
            f"({seconds:.1f}s on {used} rows)")
        if on_candidate:
            on_candidate(result)
        if _better(task, metrics[task.primary_metric], best_score):
            best, best_score, chosen = candidate, metrics[task.primary_metric], result

    fitted, refit_rows = fit_candidate(task, best, past)
    log(f"  chosen: {best.name}; refit on train + validation: {refit_rows} of {len(past)} rows")
    predictions = task.predictions(fitted, test)
    y_test = task.target(test)
    outcome = TrainingOutcome(
        predictor=task.predictor(fitted, past, best),
        chosen=chosen,
        candidates=results,
        metrics=task.metrics(test, y_test, predictions),
        baseline_metrics={
            name: task.metrics(test, y_test, baseline.predict(test)) for name, baseline in task.baselines(past).items()
        },
        train=past,
        test=test,
        test_predictions=predictions,
        params={"max_search_rows": search_rows or "none", "refit_rows": refit_rows},
    )
    task.evidence(outcome, best, seed)
    log("  rows used: " + ", ".join(f"{name}={value}" for name, value in outcome.params.items()))
    return outcome


def require_classes(labels, minimum: int = 2, what: str = "categories") -> None:
    distinct = pd.unique(np.asarray(labels))
    if len(distinct) < minimum:
        found = ", ".join(map(repr, distinct[:5])) or "none"
        raise LedgerError(f"the ledger has {len(distinct)} distinct {what} ({found}); need at least {minimum} to learn from")


def select_candidates(candidates: list, only) -> list:
    """The named candidates only (all when `only` is empty); an unknown name is an error, not a silent skip."""
    if not only:
        return candidates
    known = {c.name for c in candidates}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ValueError(f"unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    return [c for c in candidates if c.name in only]
