"""The skeleton every row model shares: split by time, try candidates, pick, refit, test vs baselines.

Pure modelling: no MLflow here. What a model differs in (rows, target, candidates,
metrics, baselines, predictor) comes from its task object; what happens to each
candidate's result is the caller's `on_candidate` callback (the job logs it as a
nested run).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.base import clone

from pyfunc_models.ledger import LedgerError
from pyfunc_models.splits import rolling_origin_folds, time_split
from pyfunc_models.task import ModelTask


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
    baseline: bool = False  # a naive baseline competing as a candidate (see RowTask.baseline_margin)


@dataclass
class CandidateResult:
    name: str
    params: dict
    metrics: dict
    fit_seconds: float
    rows_used: int
    # Seconds the candidate fitted on the last validation fold takes to score: {"one_row": ..., "1000_rows": ...}
    scoring_seconds: dict = field(default_factory=dict)


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
    warnings: list = field(default_factory=list)  # what the user must know about these figures (small_split_warning)


class RowTask(ModelTask):
    """A supervised model of one answer per row (category, amount): candidates compared on validation folds, the best
    refit on the past and tested on the latest rows (`train_row_task`). Subclasses fill in every method."""

    # Candidates are compared on at most this many recent training rows (None = all): ranking them needs far
    # fewer rows than the served model learns from, and the search is where most of the fitting happens.
    max_search_rows: int | None = None
    # A naive baseline (merchant lookup, group median) is chosen over the learned candidates only when it is better
    # on validation by more than this (in the primary metric's units): within it, the learned model is preferred,
    # since it also answers for what the lookup has never seen.
    baseline_margin: float = 0.0
    rows_name: str = "rows"  # what a training row is, in the user's words ("categorised expense rows")

    def training_rows(self, ledger: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def target(self, rows: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def candidates(self, seed: int) -> list:
        raise NotImplementedError

    def metrics(self, rows: pd.DataFrame, y_true, y_pred) -> dict:
        raise NotImplementedError

    def baseline_candidates(self) -> list:
        """The naive baselines, as candidates (baseline=True): they compete, and are measured beside the model."""
        return []

    def baselines(self, train: pd.DataFrame) -> dict:
        """Baseline name -> baseline fitted on `train`, with predict(rows)."""
        return {c.name: clone(c.estimator).fit(train, self.target(train)) for c in self.baseline_candidates()}

    def classes(self, rows: pd.DataFrame) -> int:
        """How many classes a classifier's metrics average over; 0 for a regression (see `rows_needed`)."""
        return 0

    def predictions(self, fitted, rows: pd.DataFrame):
        return fitted.predict(rows)

    def predictor(self, fitted, past: pd.DataFrame, chosen: Candidate):
        """The object to serve, from the chosen candidate fitted on the whole past."""
        raise NotImplementedError

    def test_predictions(self, predictor, fitted, rows: pd.DataFrame):
        """The served model's predictions of the test rows (what the test metrics score): the fitted candidate's,
        unless the predictor adds to it (the category model's word knowledge for merchants never seen)."""
        return self.predictions(fitted, rows)

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
    with warnings.catch_warnings():
        # scikit-learn's guess on a tiny ledger (many categories, few rows: "could represent a regression problem");
        # what such a ledger's figures are worth, small_split_warning says in numbers.
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%",
                                category=UserWarning)
        return clone(candidate.estimator).fit(used, task.target(used)), len(used)


# A learned candidate within the gate's tolerance of the best validation score is served instead of the best when it
# scores one row at least this many times faster: served latency is per row, and a smaller ratio is timing noise.
CHEAPER_BY = 2.0


def within_tolerance(task: RowTask, score: float, best: float) -> bool:
    """Whether `score` is no worse than `best` beyond the gate's tolerance (absolute, or relative for errors)."""
    gate = task.gate
    slack = gate.tolerance * abs(best) if gate.relative else gate.tolerance
    return (best - score if task.greater_is_better else score - best) <= slack


def choose(task: RowTask, scored: list) -> tuple:
    """The (candidate, result, why) to serve, by a fixed rule:
    1. the learned candidate with the best validation score (ties keep the earlier one);
    2. a naive baseline instead, only if it beats that by more than the task's baseline_margin;
    3. else the learned candidate within the gate's tolerance of the best that scores one row fastest, if it is at
       least CHEAPER_BY times faster than the best (the same accuracy as the gate judges it, for a fraction of the
       served latency); candidates without timings are not considered for this."""
    sign = 1.0 if task.greater_is_better else -1.0
    metric = task.primary_metric

    def best_of(pairs):
        return max(pairs, key=lambda pair: sign * pair[1].metrics[metric], default=None)

    learned = best_of([pair for pair in scored if not pair[0].baseline])
    baseline = best_of([pair for pair in scored if pair[0].baseline])
    if learned is None:
        return (*baseline, "a baseline: no learned candidate could be fitted")
    if baseline is not None:
        gain = sign * (baseline[1].metrics[metric] - learned[1].metrics[metric])
        if gain > task.baseline_margin:
            why = (f"a baseline, better than the best learned candidate ({learned[0].name}) by {abs(gain):.4f} "
                   f"{metric}, more than the margin {task.baseline_margin:g}")
            return (*baseline, why)
    best_score, best_cost = learned[1].metrics[metric], learned[1].scoring_seconds.get("one_row")
    close = [pair for pair in scored if not pair[0].baseline and "one_row" in pair[1].scoring_seconds
             and within_tolerance(task, pair[1].metrics[metric], best_score)]
    cheapest = min(close, key=lambda pair: pair[1].scoring_seconds["one_row"], default=learned)
    if best_cost and cheapest is not learned and best_cost >= CHEAPER_BY * cheapest[1].scoring_seconds["one_row"]:
        times = best_cost / cheapest[1].scoring_seconds["one_row"]
        why = (f"within tolerance ({task.gate.tolerance_text()} {metric}) of the best, {learned[0].name} "
               f"({metric} {cheapest[1].metrics[metric]:.4f} vs {best_score:.4f}), and {times:.1f} times cheaper to "
               f"score one row")
        return (*cheapest, why)
    return (*learned, f"the best validation {metric} ({best_score:.4f})")


ONE_ROW_CALLS = 20  # one-row scorings timed per candidate; the fastest is its cost


def scoring_seconds(task: RowTask, fitted, rows: pd.DataFrame) -> dict:
    """How long `fitted` takes to score one row (the fastest of ONE_ROW_CALLS calls after a warm-up) and 1,000 rows
    (the faster of 2), on `rows` repeated as needed: the served latency a candidate would have, for `choose`. The
    fastest, not the median: candidates are timed one after another, and a neighbour's burst of work that slows
    one candidate's calls must not change the served model (a median of 5 calls did, under a load of 6)."""
    def timed(batch):
        started = time.perf_counter()
        task.predictions(fitted, batch)
        return time.perf_counter() - started

    one, thousand = rows.iloc[:1], rows.iloc[np.arange(1000) % len(rows)].reset_index(drop=True)
    timed(one)
    return {"one_row": min(timed(one) for _ in range(ONE_ROW_CALLS)),
            "1000_rows": min(timed(thousand) for _ in range(2))}


SEARCH_FOLDS = 3  # rolling-origin validation folds for ledgers below ONE_SLICE_FROM_ROWS
ONE_SLICE_FROM_ROWS = 2_000  # from this many past rows on, one validation slice (>= 400 rows) ranks candidates
FOLD_FRACTION = 0.15  # each rolling-origin validation block, as a share of the past


def validation_folds(past: pd.DataFrame, validation_fraction: float) -> list:
    """Where candidates are compared: one latest slice on a large ledger, rolling-origin folds on a small one."""
    if len(past) >= ONE_SLICE_FROM_ROWS:
        return [time_split(past, validation_fraction)]
    return rolling_origin_folds(past, SEARCH_FOLDS, FOLD_FRACTION)


def score_candidate(task: RowTask, candidate: Candidate, folds: list, search_rows: int | None) -> CandidateResult:
    """Fit on each fold's train part, score on its validation part; metrics are the folds' means (and each fold's
    own, as fold<k>_<metric>, when there are several). A fold the candidate cannot be fitted on (an early fold
    of a small ledger with one category, say) is left out; a candidate no fold fits raises the first fold's error."""
    started, per_fold, used, errors, last = time.perf_counter(), [], 0, [], None
    for train, validation in folds:
        try:
            fitted, used = fit_candidate(task, candidate, train, search_rows)
        except ValueError as error:
            errors.append(error)
            continue
        per_fold.append(task.metrics(validation, task.target(validation), task.predictions(fitted, validation)))
        last = fitted, validation
    if not per_fold:
        raise errors[0]
    seconds = time.perf_counter() - started
    metrics = {name: float(np.nanmean([fold[name] for fold in per_fold])) for name in per_fold[0]}
    if len(per_fold) > 1:
        metrics.update({f"fold{k + 1}_{name}": value for k, fold in enumerate(per_fold) for name, value in fold.items()})
    return CandidateResult(candidate.name, candidate.params, metrics, seconds, used, scoring_seconds(task, *last))


# When a split is too small for its metrics to mean anything (a warning, never a refusal):
MIN_SCORED_ROWS = 30  # a rate on n rows has a standard error up to sqrt(0.25 / n): +-0.09 at 30, worse below
MIN_ROWS_PER_CLASS = 5  # a macro average: a class scored on fewer rows has a recall of a few possible values


def rows_needed(classes: int = 0) -> int:
    """Scored rows a metric needs to mean something: MIN_SCORED_ROWS, and for a classifier MIN_ROWS_PER_CLASS per
    class on average (a macro-F1 over 18 categories needs 90)."""
    return max(MIN_SCORED_ROWS, MIN_ROWS_PER_CLASS * classes)


def small_split_warning(what: str, scored: int, of: int, rows_name: str = "rows", classes: int = 0,
                        scored_as: str = "test rows", compared_on: int | None = None) -> str | None:
    """A warning when `scored` rows (taken from `of` rows of the ledger) are too few for a metric on them to mean
    anything (`rows_needed`), saying how many rows the ledger would need at the same share; None when enough."""
    needed = rows_needed(classes)
    if scored >= needed:
        return None
    rule = (f"{MIN_ROWS_PER_CLASS} per class for {classes} classes" if needed > MIN_SCORED_ROWS
            else f"at least {MIN_SCORED_ROWS}")
    compared = (f"; its candidates were compared on {compared_on} validation rows"
                if compared_on is not None and compared_on < needed else "")
    enough = math.ceil(needed * of / max(scored, 1))
    return (f"{what}: its metrics are measured on {scored} {scored_as}{compared}, too few to mean much "
            f"({needed} needed: {rule}); a perfect or a zero score on so few is often chance. About {enough} "
            f"{rows_name} would give {needed} {scored_as}; this ledger has {of}.")


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
    try:
        past, test = time_split(rows, test_fraction)
        folds = validation_folds(past, validation_fraction)
    except ValueError as error:  # every row on one or two days: nothing to learn the future from
        raise NotEnoughData(f"{task.model_type}: {error}") from None
    how = "one validation slice" if len(folds) == 1 else f"{len(folds)} rolling-origin validation folds"
    log(f"{task.model_type}: {len(past)} past / {len(test)} test rows (time-ordered, test from "
        f"{test['date'].min().date()}); candidates compared on {how} "
        f"({', '.join(str(len(validation)) for _, validation in folds)} rows)")
    search_rows = task.max_search_rows
    if search_rows and len(folds[-1][0]) > search_rows:
        log(f"  candidates compared on the latest {search_rows} of {len(folds[-1][0])} train rows (max_search_rows)")

    candidates = task.candidates(seed)
    if not candidates:
        raise ValueError(f"{type(task).__name__}.candidates() offered no candidate to train")
    results, scored, skipped = [], [], {}
    for candidate in candidates:
        try:
            result = score_candidate(task, candidate, folds, search_rows)
        except ValueError as error:  # e.g. a text vectoriser with no word seen twice in a tiny ledger
            skipped[candidate.name] = str(error).splitlines()[0]
            log(f"  candidate {candidate.name:<20} skipped: it cannot be fitted on this ledger ({skipped[candidate.name]})")
            continue
        results.append(result)
        log(f"  candidate {candidate.name:<20} validation {task.primary_metric}={result.metrics[task.primary_metric]:.4f} "
            f"({result.fit_seconds:.1f}s on {result.rows_used} rows; scores one row in "
            f"{result.scoring_seconds['one_row'] * 1000:.1f} ms, 1,000 in {result.scoring_seconds['1000_rows'] * 1000:.0f} ms)")
        if on_candidate:
            on_candidate(result)
        scored.append((candidate, result))
    if not scored:
        raise LedgerError(f"no {task.model_type} candidate could be fitted on this ledger: "
                          + "; ".join(f"{name}: {why}" for name, why in skipped.items()))
    best, chosen, why = choose(task, scored)

    fitted, refit_rows = fit_candidate(task, best, past)
    log(f"  chosen: {best.name} ({why}); refit on all {refit_rows} past rows")
    predictor = task.predictor(fitted, past, best)
    predictions = task.test_predictions(predictor, fitted, test)
    y_test = task.target(test)
    outcome = TrainingOutcome(
        predictor=predictor,
        chosen=chosen,
        candidates=results,
        metrics=task.metrics(test, y_test, predictions),
        baseline_metrics={
            name: task.metrics(test, y_test, baseline.predict(test)) for name, baseline in task.baselines(past).items()
        },
        train=past,
        test=test,
        test_predictions=predictions,
        params={"max_search_rows": search_rows or "none", "refit_rows": refit_rows, "validation_folds": len(folds),
                **({"skipped_candidates": "; ".join(skipped)} if skipped else {})},
    )
    task.evidence(outcome, best, seed)
    warning = small_split_warning(task.model_type, len(test), len(rows), task.rows_name, task.classes(rows),
                                  compared_on=sum(len(validation) for _, validation in folds))
    outcome.warnings.extend(filter(None, [warning]))
    log("  rows used: " + ", ".join(f"{name}={value}" for name, value in outcome.params.items()))
    return outcome


def require_classes(labels, minimum: int = 2, what: str = "categories") -> None:
    distinct = pd.unique(np.asarray(labels))
    if len(distinct) < minimum:
        found = ", ".join(map(repr, distinct[:5])) or "none"
        raise NotEnoughData(f"the ledger has {len(distinct)} distinct {what} ({found}); need at least {minimum} to learn from")


def select_candidates(candidates: list, only) -> list:
    """The named candidates only (all when `only` is empty); an unknown name is an error, not a silent skip."""
    if not only:
        return candidates
    known = {c.name for c in candidates}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ValueError(f"unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    return [c for c in candidates if c.name in only]
