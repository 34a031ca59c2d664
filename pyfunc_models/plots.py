"""Figures people would rather look at than read; each returns a matplotlib Figure to log."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # training runs headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import confusion_matrix as confusion_counts  # noqa: E402


def confusion_matrix(y_true, y_pred, labels):
    """Row-normalised confusion matrix (each true category sums to 1), counts in the title."""
    counts = confusion_counts(y_true, y_pred, labels=labels)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(6, 0.45 * len(labels))
    figure, axes = plt.subplots(figsize=(size + 2, size))
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
