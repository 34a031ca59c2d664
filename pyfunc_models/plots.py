"""Figures people would rather look at than read; each returns a matplotlib Figure to log."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix as confusion_counts


def _figure(width: float, height: float):
    """A figure outside pyplot: nothing global to close or leak, no backend to choose (saving renders with Agg)."""
    figure = Figure(figsize=(width, height))
    return figure, figure.subplots()


def confusion_matrix(y_true, y_pred, labels):
    """Row-normalised confusion matrix (each true category sums to 1), counts in the title."""
    counts = confusion_counts(y_true, y_pred, labels=labels)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(6, 0.45 * len(labels))
    figure, axes = _figure(size + 2, size)
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("predicted category")
    axes.set_ylabel("true category")
    axes.set_title(f"Confusion matrix on the time-ordered test split ({counts.sum()} rows)")
    for i, j in zip(*np.nonzero(counts)):
        axes.text(j, i, counts[i, j], ha="center", va="center", fontsize=6,
                  color="white" if shares[i, j] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.04, label="share of true category")
    figure.tight_layout()
    return figure


def predicted_vs_actual(actual, predicted, lower, upper, level):
    """Predicted against actual |amount| on log axes, the interval as bars on a sample of rows."""
    actual, predicted = np.abs(np.asarray(actual)), np.abs(np.asarray(predicted))
    low, high = np.minimum(np.abs(lower), np.abs(upper)), np.maximum(np.abs(lower), np.abs(upper))
    figure, axes = _figure(7, 7)
    sample = np.random.default_rng(0).choice(len(actual), size=min(400, len(actual)), replace=False)
    axes.errorbar(predicted[sample], actual[sample],
                  # Clipped at 0: a prediction is not rounded to cents as its interval is, so it can lie a hair
                  # outside a zero-width interval (a fixed price), and matplotlib refuses a negative bar.
                  xerr=[np.maximum(predicted[sample] - low[sample], 0),
                        np.maximum(high[sample] - predicted[sample], 0)],
                  fmt="none", ecolor="lightgray", alpha=0.6, label=f"{level:.0%} interval (sample)")
    axes.scatter(predicted, actual, s=4, alpha=0.4, label="test rows")
    span = [max(0.5, min(actual.min(), predicted.min())), max(actual.max(), predicted.max())]
    axes.plot(span, span, color="black", linewidth=1, label="perfect")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("predicted |amount|")
    axes.set_ylabel("actual |amount|")
    axes.set_title("Amount model on the time-ordered test split")
    axes.legend()
    figure.tight_layout()
    return figure


def score_distribution(scores, labels, threshold):
    """Anomaly scores of the test rows (log count axis), labelled anomalies apart, with the threshold."""
    figure, axes = _figure(8, 4.5)
    bins = np.linspace(0, 1, 51)
    if labels is not None and labels.any():
        axes.hist(scores[~labels], bins=bins, alpha=0.7, label="normal rows")
        axes.hist(scores[labels], bins=bins, alpha=0.7, label="labelled anomalies")
    else:
        axes.hist(scores, bins=bins, alpha=0.7, label="test rows")
    axes.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:.4f}")
    axes.set_yscale("log")
    axes.set_xlabel("anomaly score")
    axes.set_ylabel("rows")
    axes.set_title("Anomaly scores on the time-ordered test split")
    axes.legend()
    figure.tight_layout()
    return figure


def forecast(history, actual, predicted, lower, upper, level, name):
    """The last backtest fold: recent history, what happened, the forecast and its interval."""
    figure, axes = _figure(11, 4.5)
    days = len(predicted)
    future = history.index[-1] + np.arange(1, days + 1) * np.timedelta64(1, "D")
    axes.plot(history.index, history.to_numpy(), color="gray", linewidth=1, label="history")
    axes.plot(future, actual, color="black", linewidth=1, label="actual")
    axes.plot(future, predicted, color="tab:blue", linewidth=1.5, label=f"forecast ({name})")
    axes.fill_between(future, lower, upper, color="tab:blue", alpha=0.2, label=f"{level:.0%} interval")
    axes.set_ylabel("daily net cash flow")
    axes.set_title("Cash-flow forecast, last backtest fold")
    axes.legend(loc="upper left", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def error_by_horizon(mean_absolute_errors: dict):
    """Backtest MAE by days ahead, one line per candidate."""
    figure, axes = _figure(8, 4.5)
    for name, errors in mean_absolute_errors.items():
        axes.plot(np.arange(1, len(errors) + 1), errors, marker=".", label=name)
    axes.set_xlabel("days ahead")
    axes.set_ylabel("mean absolute error over folds")
    axes.set_title("Backtest error by horizon")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def reliability(bins):
    """Accuracy against confidence, bin by bin (`category.calibration_bins`: (mean confidence, accuracy, rows)):
    a calibrated model sits on the diagonal."""
    figure, axes = _figure(6, 6)
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    rows = sum(size for *_, size in bins)
    axes.plot([b[0] for b in bins], [b[1] for b in bins], marker="o",
              label=f"{len(bins)} bins of ~{rows // max(len(bins), 1)} rows")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("mean confidence")
    axes.set_ylabel("accuracy")
    axes.set_title(f"Merchants held out of training: confidence vs accuracy ({rows} rows)")
    axes.legend(loc="upper left")
    figure.tight_layout()
    return figure
