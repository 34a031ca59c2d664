"""Splits that mirror use: the past predicts the future; known merchants predict unseen ones.

No split here is stratified, so a category with one example never breaks one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pyfunc_models.features import merchant_keys


def time_split(rows: pd.DataFrame, future_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Past and future by date: every row of the cut-off day goes to the future, so no day is in both."""
    if not 0 < future_fraction < 1:
        raise ValueError(f"future_fraction must be between 0 and 1, got {future_fraction}")
    ordered = rows.sort_values("date", kind="stable")
    cutoff = ordered["date"].iloc[int(len(ordered) * (1 - future_fraction))]
    past = ordered[ordered["date"] < cutoff]
    future = ordered[ordered["date"] >= cutoff]
    if past.empty or future.empty:
        raise ValueError(
            f"cannot split {len(rows)} rows at {future_fraction:.0%} by date: "
            f"they span {ordered['date'].dt.date.nunique()} day(s); need rows on at least two days"
        )
    return past.reset_index(drop=True), future.reset_index(drop=True)


def merchant_groups(descriptions) -> np.ndarray:
    """A coarse merchant group (first word of the merchant key), so one merchant never lands on both sides."""
    return np.array([key.split(" ")[0] if key else "" for key in merchant_keys(descriptions)], dtype=object)


def merchant_split(rows: pd.DataFrame, held_out_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of a random share of merchant groups held out entirely, to measure unseen-merchant accuracy."""
    groups = merchant_groups(rows["description"])
    distinct = np.unique(groups)
    rng = np.random.default_rng(seed)
    held = rng.choice(distinct, size=max(1, int(round(len(distinct) * held_out_fraction))), replace=False)
    mask = np.isin(groups, held)
    if mask.all() or not mask.any():
        raise ValueError(f"cannot hold out merchants: only {len(distinct)} merchant group(s) found")
    return rows[~mask].reset_index(drop=True), rows[mask].reset_index(drop=True)


def rolling_origin_folds(rows: pd.DataFrame, folds: int, validation_fraction: float) -> list:
    """`folds` (train, validation) pairs whose validation blocks are consecutive slices of `validation_fraction`
    of the rows each, ending at the last day, and whose train parts are everything before each block.

    One small validation slice cannot rank candidates on a ledger of a few hundred rows; several later slices,
    each predicted from its own past, can. Cuts fall on day boundaries, so no day is on both sides; a fold
    whose train or validation part would be empty is left out.
    """
    ordered = rows.sort_values("date", kind="stable").reset_index(drop=True)
    dates, block = ordered["date"].to_numpy(), max(1, int(len(ordered) * validation_fraction))
    pairs = []
    for k in range(folds, 0, -1):
        start, end = len(ordered) - k * block, len(ordered) - (k - 1) * block
        if start <= 0:
            continue
        in_validation = (dates >= dates[start]) & ((dates < dates[end]) if end < len(ordered) else True)
        train, validation = ordered[dates < dates[start]], ordered[in_validation]
        if len(train) and len(validation):
            pairs.append((train.reset_index(drop=True), validation.reset_index(drop=True)))
    if not pairs:
        raise ValueError(f"cannot make a validation fold from {len(rows)} rows: they span "
                         f"{ordered['date'].dt.date.nunique()} day(s); need rows on at least two days")
    return pairs
