"""Anomaly detection: is this transaction unusual?

Evidence, with every statistic learned from the training ledger:

- amount: a robust (median/MAD, mean-deviation fallback) z-score of log |amount|
  against the merchant's history, or its category's (or type's) when the merchant
  is new or rare, read as a tail share of the training rows; a merchant never seen
  multiplies it by how often rare merchants occur in this ledger;
- an IsolationForest on those engineered features (z-scores, merchant history),
  combined with the amount evidence by Fisher's method;
- duplicates inside the scored batch: same day, same description, same amount
  (score 1: always flagged, whatever the threshold).

The score is 1 minus the smallest p-value. The threshold is chosen on a later
validation slice: with anomaly labels, the lowest one whose precision is at least
`min_precision`; without, the `expected_rate` quantile. Labels are never a feature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chi2
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, precision_recall_curve

from pyfunc_models import config, plots
from pyfunc_models.features import merchant_keys
from pyfunc_models.ledger import LedgerError, prepare_ledger, request_rows
from pyfunc_models.splits import time_split
from pyfunc_models.training import TrainingOutcome

MIN_HISTORY = 5  # rows a merchant needs before its own statistics are trusted
MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation
MEAN_AD_TO_SD = 1.2533  # mean absolute deviation to sd, the fallback when MAD is 0
DEFAULT_EXPECTED_RATE = 0.01  # share of rows flagged when the ledger has no labels to choose a threshold with
DEFAULT_MIN_PRECISION = 0.8  # with labels: catch as much as possible while 8 in 10 flags are real
REASON_TEXT_LENGTH = 50  # characters of a description quoted in a reason (bank text runs long)


def robust_stats(values: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    """Per group: count, median and a robust scale (MAD; mean absolute deviation when MAD is 0)."""
    frame = pd.DataFrame({"group": groups, "value": values})
    median = frame.groupby("group")["value"].median()
    deviation = (frame["value"] - frame["group"].map(median)).abs()
    grouped = deviation.groupby(frame["group"])
    scale = (grouped.median() * MAD_TO_SD).where(lambda s: s > 0, grouped.mean() * MEAN_AD_TO_SD)
    return pd.DataFrame({"count": frame.groupby("group").size(), "median": median, "scale": scale})


def tail_probability(sorted_reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of reference values at least as large as each value, (k + 1) / (n + 1), never 0."""
    at_least = len(sorted_reference) - np.searchsorted(sorted_reference, values, side="left")
    return (at_least + 1) / (len(sorted_reference) + 1)


def _first_words(merchants) -> np.ndarray:
    return np.array([key.split(" ")[0] for key in merchants], dtype=object)


def quoted(description) -> str:
    """A description as written, spaces collapsed, cut to REASON_TEXT_LENGTH characters ('...' marks a cut)."""
    text = " ".join(str(description).split())
    return text if len(text) <= REASON_TEXT_LENGTH else text[: REASON_TEXT_LENGTH - 3].rstrip() + "..."


def batch_duplicates(transactions: pd.DataFrame) -> np.ndarray:
    """For each row, the position of an earlier identical row in the batch (same day, text and amount), else -1."""
    key = pd.DataFrame({
        "date": transactions["date"].to_numpy(),
        "text": transactions["description"].str.lower().str.split().str.join(" ").to_numpy(),
        "amount": transactions["amount"].to_numpy(),
    })
    first = key.groupby(["date", "text", "amount"], sort=False).cumcount()
    positions = np.arange(len(key))
    first_position = pd.Series(positions).groupby([key["date"], key["text"], key["amount"]], sort=False).transform("min")
    return np.where(first.to_numpy() > 0, first_position.to_numpy(), -1)


class AnomalyDetector:
    """Fitted statistics + IsolationForest + threshold; scores raw transactions with a reason each."""

    input_columns = config.COLUMNS
    required_columns = ("date", "description", "amount")
    nonempty_columns = ("description",)

    def __init__(self, seed: int = 42):
        self.seed = seed

    # --- what is learned -------------------------------------------------------------
    def fit(self, rows: pd.DataFrame) -> "AnomalyDetector":
        log_amount = np.log1p(np.abs(rows["amount"].to_numpy(dtype=float)))
        merchants = merchant_keys(rows["description"])
        self.merchant_stats_ = robust_stats(log_amount, merchants)
        # Bank text often puts the city after a one-word name ("STAPLES SAN JOSE"): the first word is a coarser key.
        self.first_word_stats_ = robust_stats(log_amount, _first_words(merchants))
        self.group_stats_ = robust_stats(log_amount, self._groups(rows))
        positive = pd.concat([self.merchant_stats_["scale"], self.group_stats_["scale"]])
        # Groups whose amounts never vary (a fixed subscription) still need a scale: a tenth of the typical one.
        self.scale_floor_ = float(positive[positive > 0].median() * 0.1) if (positive > 0).any() else 0.01
        counts = self.first_word_stats_["count"]
        # How ordinary a rare or new merchant is in this ledger: the share of rows from rare merchants.
        self.novelty_rate_ = float(counts[counts < MIN_HISTORY].sum() / counts.sum())
        features, z_reference, _ = self._features(rows)
        self.z_reference_ = np.sort(z_reference)
        self.forest_ = IsolationForest(n_estimators=200, random_state=self.seed).fit(features)
        self.forest_reference_ = np.sort(-self.forest_.score_samples(features))
        self.threshold_ = 0.99
        return self

    @staticmethod
    def _groups(rows: pd.DataFrame) -> np.ndarray:
        categories = rows["category"].to_numpy(dtype=object)
        return np.where(categories != "", categories, "type:" + rows["type"].to_numpy(dtype=object))

    def _features(self, rows: pd.DataFrame):
        log_amount = np.log1p(np.abs(rows["amount"].to_numpy(dtype=float)))
        merchants = merchant_keys(rows["description"])
        by_name = self.merchant_stats_.reindex(merchants)
        by_first_word = self.first_word_stats_.reindex(_first_words(merchants))
        named = (by_name["count"].fillna(0) >= MIN_HISTORY).to_numpy()
        merchant = pd.DataFrame(np.where(named[:, None], by_name.to_numpy(), by_first_word.to_numpy()),
                                columns=by_name.columns)
        count = by_first_word["count"].fillna(0).to_numpy()
        trusted = merchant["count"].astype(float).fillna(0).to_numpy() >= MIN_HISTORY
        groups = self._groups(rows)
        group = self.group_stats_.reindex(groups).reset_index(drop=True)
        # An unknown group (new category) falls back to the row's amount itself: no evidence either way.
        group_median = group["median"].fillna(pd.Series(log_amount)).to_numpy()
        group_scale = np.maximum(group["scale"].fillna(self.scale_floor_).to_numpy(), self.scale_floor_)
        z_group = (log_amount - group_median) / group_scale
        z_merchant = (log_amount - merchant["median"].astype(float).to_numpy()) / np.maximum(
            merchant["scale"].astype(float).fillna(self.scale_floor_).to_numpy(), self.scale_floor_)
        z_reference = np.where(trusted, z_merchant, z_group)
        # Relative features only: a large amount that is usual for its merchant is not odd.
        features = np.column_stack([np.clip(z_reference, -50, 50), np.clip(z_group, -50, 50), np.log1p(count)])
        reference_median = np.where(trusted, merchant["median"].astype(float).to_numpy(), group_median)
        context = {"merchants": merchants, "count": count, "trusted": trusted,
                   "reference_median": reference_median, "groups": groups}
        return features, z_reference, context

    # --- scoring -----------------------------------------------------------------------
    def score(self, transactions: pd.DataFrame):
        features, z_reference, context = self._features(transactions)
        p_amount = tail_probability(self.z_reference_, z_reference)
        unseen = context["count"] == 0
        p_amount = np.where(unseen, p_amount * max(self.novelty_rate_, 1 / (len(self.forest_reference_) + 1)), p_amount)
        p_forest = tail_probability(self.forest_reference_, -self.forest_.score_samples(features))
        duplicate_of = batch_duplicates(transactions)
        p_duplicate = np.where(duplicate_of >= 0, 0.0, 1.0)  # an exact repeat is the strongest evidence there is
        # The forest backs up the statistics (Fisher's method) rather than voting alone: alone, it flags
        # every rare-but-ordinary row (a small refund) as often as real spikes.
        p_row = chi2.sf(-2 * (np.log(p_amount) + np.log(p_forest)), 4)
        evidence = np.column_stack([p_row, p_duplicate])
        strongest = evidence.argmin(axis=1)
        score = 1 - evidence.min(axis=1)
        return score, strongest, duplicate_of, unseen, context

    @staticmethod
    def _reason(kind, duplicate_of, unseen, amount, reference_median, description, group, trusted):
        if kind == 1:
            return f"duplicate of row {duplicate_of}"
        ratio = abs(amount) / max(np.expm1(reference_median), 0.01)
        # Quote the merchant as the user wrote it, not the lower-case key the statistics are grouped by.
        usual_for = quoted(description) if trusted else group.removeprefix("type:")
        text = f"amount {ratio:.1f}x the usual for {usual_for or 'this kind of transaction'}"
        return f"merchant never seen ({quoted(description) or 'no name'}); {text}" if unseen else text

    def predict(self, transactions: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
        if threshold is None:
            threshold = self.threshold_
        if not 0 <= float(threshold) <= 1:
            raise LedgerError(f"param 'threshold' is {threshold}; expected a score between 0 and 1")
        score, strongest, duplicate_of, unseen, context = self.score(transactions)
        flagged = score >= float(threshold)
        amounts = transactions["amount"].to_numpy(dtype=float)
        descriptions = transactions["description"].to_numpy(dtype=object)
        reasons = np.full(len(score), "", dtype=object)
        for i in np.flatnonzero(flagged):
            reasons[i] = self._reason(strongest[i], duplicate_of[i], unseen[i], amounts[i],
                                      context["reference_median"][i], descriptions[i],
                                      context["groups"][i], context["trusted"][i])
        return pd.DataFrame({"anomaly_score": np.round(score, 6), "is_anomaly": flagged,
                             "reason": reasons.astype(str)})

    def prepare(self, raw: pd.DataFrame) -> pd.DataFrame:
        return prepare_ledger(raw, required=self.required_columns, nonempty=self.nonempty_columns)[0]


def choose_threshold(scores: np.ndarray, labels: np.ndarray | None, expected_rate: float,
                     min_precision: float) -> float:
    """With labelled validation rows: the lowest threshold (most recall) whose precision is still at least
    `min_precision`, or the best-F1 one if none reaches it. Without labels: the expected-rate quantile."""
    if labels is not None and labels.any() and not labels.all():
        precision, recall, thresholds = precision_recall_curve(labels, scores)
        precise = np.flatnonzero(precision[:-1] >= min_precision)
        if precise.size:
            return float(thresholds[precise[0]])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        return float(thresholds[np.flatnonzero(f1 >= f1.max() - 1e-12)[-1]])
    return float(np.quantile(scores, 1 - expected_rate))


def detection_metrics(labels: np.ndarray, kinds: np.ndarray, scores: np.ndarray, flagged: np.ndarray) -> dict:
    true_positive = (labels & flagged).sum()
    precision = true_positive / max(flagged.sum(), 1)
    recall = true_positive / max(labels.sum(), 1)
    metrics = {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(2 * precision * recall / max(precision + recall, 1e-12)),
        "pr_auc": float(average_precision_score(labels, scores)) if labels.any() else float("nan"),
        "flagged_rate": float(flagged.mean()),
        "labelled_anomalies": float(labels.sum()),
    }
    for kind in sorted(set(kinds[labels])):
        metrics[f"recall_{kind}"] = float(flagged[kinds == kind].mean())
    return metrics


class AnomalyTask:
    """Not a candidate search: one detector, fitted on the past, its threshold chosen on a later slice."""

    model_type = "anomaly"
    target_column = None
    primary_metric = "f1"
    serving_params = {"threshold": 0.99}
    report_metrics = ("precision", "recall", "f1", "pr_auc", "recall_spike", "recall_duplicate",
                      "recall_unusual_merchant")

    def __init__(self, expected_rate: float = DEFAULT_EXPECTED_RATE, min_precision: float = DEFAULT_MIN_PRECISION):
        self.expected_rate = expected_rate
        self.min_precision = min_precision

    @staticmethod
    def labels(rows: pd.DataFrame):
        if config.ANOMALY_LABEL not in rows:
            return None, np.full(len(rows), "", dtype=object)
        kinds = rows[config.ANOMALY_LABEL].to_numpy(dtype=object)
        return kinds != "", kinds

    def train(self, ledger: pd.DataFrame, seed: int = 42, test_fraction: float = 0.2, on_candidate=None,
              log=print) -> TrainingOutcome:
        if len(ledger) < 100:
            raise LedgerError(f"the ledger has {len(ledger)} rows; anomaly detection needs at least 100")
        past, test = time_split(ledger, test_fraction)
        train, validation = time_split(past, 0.25)
        log(f"anomaly: {len(train)} train / {len(validation)} validation / {len(test)} test rows "
            f"(time-ordered, test from {test['date'].min().date()})")
        # The served detector is the one whose threshold was chosen: refitting would shift its scores.
        detector = AnomalyDetector(seed).fit(train)
        labels, _ = self.labels(validation)
        threshold = choose_threshold(detector.score(validation)[0], labels, self.expected_rate, self.min_precision)
        how = f"most recall at precision >= {self.min_precision} on labelled validation rows" \
            if labels is not None and labels.any() else \
            f"the {1 - self.expected_rate:.1%} quantile of validation scores"
        log(f"  threshold {threshold:.6f} ({how})")
        detector.threshold_ = threshold
        self.serving_params = {"threshold": threshold}
        scored = detector.predict(test)
        labels, kinds = self.labels(test)
        metrics = {"threshold": threshold, "flagged_rate": float(scored["is_anomaly"].mean())}
        baseline_metrics = {}
        if labels is not None and labels.any():
            scores, flagged = scored["anomaly_score"].to_numpy(), scored["is_anomaly"].to_numpy()
            metrics.update(detection_metrics(labels, kinds, scores, flagged))
            # Baseline: the amount z-score against the category alone, flagging as many rows as the model does.
            baseline_scores = self._category_z(detector, test)
            cut = np.quantile(baseline_scores, 1 - flagged.mean()) if flagged.any() else np.inf
            baseline_metrics["category_zscore"] = detection_metrics(labels, kinds, baseline_scores,
                                                                    baseline_scores >= cut)
        outcome = TrainingOutcome(predictor=detector, chosen=None, candidates=[], metrics=metrics,
                                  baseline_metrics=baseline_metrics, train=train, test=test,
                                  test_predictions=scored)
        outcome.artifacts["score_distribution.png"] = plots.score_distribution(
            scored["anomaly_score"].to_numpy(), labels, threshold)
        outcome.artifacts["flagged_test_rows.csv"] = pd.concat(
            [test.reset_index(drop=True), scored], axis=1)[scored["is_anomaly"]].to_csv(index=False)
        return outcome

    @staticmethod
    def _category_z(detector: AnomalyDetector, rows: pd.DataFrame) -> np.ndarray:
        log_amount = np.log1p(np.abs(rows["amount"].to_numpy(dtype=float)))
        group = detector.group_stats_.reindex(detector._groups(rows))
        return ((log_amount - group["median"].fillna(0).to_numpy())
                / np.maximum(group["scale"].fillna(1).to_numpy(), detector.scale_floor_))


def gate_metrics(predict, ledger: pd.DataFrame) -> dict:
    """Score any anomaly model on an evaluation ledger's labelled anomalies (labels never sent to it)."""
    labels, kinds = AnomalyTask.labels(ledger)
    if labels is None or not labels.any():
        raise LedgerError("the evaluation ledger has no labelled anomalies ('anomaly_label' column) to score "
                          "an anomaly model on")
    scored = predict(request_rows(ledger))
    return detection_metrics(labels, kinds, scored["anomaly_score"].to_numpy(), scored["is_anomaly"].to_numpy())
