"""The statistics monitoring rests on, pure: binned distributions, PSI, the two-sample tests (scipy), bootstrap
replicates of a metric (scipy.stats.bootstrap) and the calibration of a classifier's confidences.

No MLflow and no model here: `profile` builds and compares profiles with these, `job` is the MLflow edge.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.isotonic import IsotonicRegression

OTHER = "(other)"  # the pooled bin of rare and never-seen values


def numeric_distribution(values, bins: int) -> dict:
    """Reference distribution of a numeric feature: inner edges at its quantiles (repeated edges merged, so a
    discrete feature gets fewer bins, never an empty one), counts per bin, and 101 quantiles for the KS test."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"kind": "numeric", "edges": [], "counts": [0], "quantiles": [], "count": 0}
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    return {"kind": "numeric", "edges": edges.round(6).tolist(), "counts": numeric_counts(values, edges).tolist(),
            "quantiles": np.quantile(values, np.linspace(0, 1, 101)).round(6).tolist(), "count": int(values.size)}


def numeric_counts(values, edges) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return np.bincount(np.searchsorted(np.asarray(edges, dtype=float), values, side="right"),
                       minlength=len(edges) + 1)


def categorical_distribution(values) -> dict:
    """Reference distribution of a categorical feature: count per value."""
    keys, counts = np.unique(np.asarray(values, dtype=object).astype(str), return_counts=True)
    return {"kind": "categorical", "counts": dict(zip(keys.tolist(), counts.tolist())), "count": int(counts.sum())}


def categorical_bins(reference: dict, values, min_share: float, top: int | None = None) -> tuple:
    """(bin names, reference counts, period counts): the reference's values with at least `min_share` of its rows
    (at most `top` of them, the most frequent), the rest and every value the reference never had in OTHER."""
    counts = reference["counts"]
    total = max(sum(counts.values()), 1)
    kept = [key for key, n in sorted(counts.items(), key=lambda item: -item[1]) if n / total >= min_share][:top]
    names = kept + [OTHER]
    index = {key: i for i, key in enumerate(kept)}
    reference_counts = np.zeros(len(names))
    for key, n in counts.items():
        reference_counts[index.get(key, len(kept))] += n
    period = np.asarray(values, dtype=object).astype(str)
    period_counts = np.bincount([index.get(v, len(kept)) for v in period], minlength=len(names)).astype(float)
    return names, reference_counts, period_counts


def psi(reference_counts, period_counts) -> float:
    """Population stability index, sum((p - q) ln(p / q)) over the bins, of shares with half a row added to every
    bin of both (Jeffreys), so that a bin empty by chance in a small period is not an infinite shift."""
    p = np.asarray(period_counts, dtype=float) + 0.5
    q = np.asarray(reference_counts, dtype=float) + 0.5
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((p - q) * np.log(p / q)))


def homogeneity_p_value(reference_counts, period_counts) -> float:
    """Chi-square test that the reference and the period were drawn from one distribution over the bins
    (scipy.stats.chi2_contingency on the 2 x bins table; bins empty in both are left out)."""
    table = np.vstack([np.asarray(reference_counts, dtype=float), np.asarray(period_counts, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(stats.chi2_contingency(table, correction=False)[1])


def ks_against_reference(quantiles, values) -> tuple:
    """(statistic, p-value) of scipy's one-sample KS test of the period's values against the reference's
    distribution, read from its stored quantiles (piecewise linear). Reported beside PSI; approximate where
    values repeat (rows per day)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    quantiles = np.asarray(quantiles, dtype=float)
    if values.size == 0 or quantiles.size < 2:
        return float("nan"), float("nan")
    levels = np.linspace(0, 1, len(quantiles))
    unique, first = np.unique(quantiles, return_index=True)

    def cdf(x):
        return np.interp(x, unique, levels[first], left=0.0, right=1.0)

    result = stats.kstest(values, cdf)
    return float(result.statistic), float(result.pvalue)


def rate_p_value(reference_hits: int, reference_rows: int, hits: int, rows: int) -> float:
    """Chi-square test (2 x 2) that a rate is the same in the reference and the period."""
    return homogeneity_p_value([reference_hits, reference_rows - reference_hits], [hits, rows - hits])


def bootstrap_replicates(sample, resamples: int, seed: int = 0) -> np.ndarray:
    """`resamples` bootstrap replicates of a task.Sample's metric: its units (rows, days) drawn with replacement
    (scipy.stats.bootstrap's resampling). Empty when there are fewer than two units."""
    units = sample.units
    if units < 2:
        return np.array([])
    columns = {name: np.asarray(values) for name, values in sample.columns.items()}

    def statistic(index):
        index = np.asarray(index, dtype=int)
        return sample.statistic({name: values[index] for name, values in columns.items()})

    result = stats.bootstrap((np.arange(units),), statistic, n_resamples=resamples, vectorized=False,
                             method="percentile", random_state=np.random.default_rng(seed))
    return np.asarray(result.bootstrap_distribution, dtype=float)


def drop_interval(heldout_replicates, period_replicates, confidence: float) -> tuple:
    """Percentile interval of held-out minus period replicates (each drawn independently): where a drop lies."""
    heldout, period = np.asarray(heldout_replicates, dtype=float), np.asarray(period_replicates, dtype=float)
    size = min(len(heldout), len(period))
    if size == 0:
        return float("nan"), float("nan")
    differences = heldout[:size] - period[:size]
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(differences, [tail, 100 - tail])
    return float(low), float(high)


def calibration(confidence, correct) -> dict | None:
    """How often the classifier is right at each confidence, on held-out rows: an isotonic (monotone) fit of
    right (1) / wrong (0) on the confidence, kept as its breakpoints."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    known = np.isfinite(confidence) & np.isfinite(correct)
    if known.sum() < 2:
        return None
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(confidence[known], correct[known])
    return {"x": np.round(fitted.X_thresholds_, 6).tolist(), "y": np.round(fitted.y_thresholds_, 6).tolist()}


def calibrated(calibration_points: dict, confidence) -> np.ndarray:
    """The chance that each answer is right, from its confidence and a `calibration`."""
    return np.interp(np.asarray(confidence, dtype=float), calibration_points["x"], calibration_points["y"])
